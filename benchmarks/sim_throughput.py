"""Sim throughput: control steps/s of each arm with and without cameras, render fps, and the
overhead against a bare `mujoco.mj_step` loop on the same model in the same run; plus the
scripted experts' success rates. Targets: 1x real time at 10 Hz without cameras, 10x with two
128 px cameras (a learner can then be fed faster than a real arm), experts >= 0.9 on every task.

    python -m benchmarks.sim_throughput [--quick] [--json benchmarks/results/sim_throughput.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import print_table, report, target  # noqa: E402
from sim import ARMS, TASKS, MujocoArm  # noqa: E402
from sim.experts import EXPERTS, success_rate  # noqa: E402

CONTROL_HZ = 10.0
TASK = "pick_cube"


def rate(fn: Callable[[], object], count: int, trials: int = 3) -> float:
    """Calls of `fn` per second: the best of `trials` runs of `count` calls (the machine is
    shared, so the fastest run is the least disturbed one)."""
    fn()
    best = 0.0
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        best = max(best, count / (time.perf_counter() - start))
    return best


def measure_arm(arm_name: str, steps: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps + 1, 5)).astype(np.float32)
    plain = MujocoArm(TASKS.get(TASK)(), arm=arm_name)
    seeing = MujocoArm(TASKS.get(TASK)(), arm=arm_name, cameras=["wrist_cam", "side_cam"])
    plain.connect()
    seeing.connect()
    try:
        bare = mujoco.MjData(plain.model)
        bare.ctrl[:] = plain.data.ctrl
        physics = rate(lambda: mujoco.mj_step(plain.model, bare), steps * plain.substeps)
        counter = iter(range(10**9))

        def control(arm: MujocoArm) -> None:
            step = next(counter)
            arm.send_action(actions[step % len(actions)])
            arm.get_observation()
            if step % 20 == 19:  # episodes of 20 steps: resets are part of the cost
                arm.reset()

        no_render = rate(lambda: control(plain), steps)
        with_render = rate(lambda: control(seeing), max(steps // 10, 5))
        fps = rate(lambda: seeing.render("side_cam", 128, 128), max(steps // 5, 10))
        substeps = plain.substeps
    finally:
        plain.disconnect()
        seeing.disconnect()
    return {
        "arm": arm_name,
        "bare_physics_steps_s": physics,
        "control_steps_s": no_render,
        "physics_ratio_vs_bare": no_render * substeps / physics,
        "control_steps_s_2cams": with_render,
        "render_fps_128": fps,
        "rtf_10hz": no_render / CONTROL_HZ,
        "rtf_10hz_2cams": with_render / CONTROL_HZ,
    }


def expert_success(arm_name: str, task: str, episodes: int) -> float:
    arm = MujocoArm(TASKS.get(task)(), arm=arm_name, seed=123)
    arm.connect()
    try:
        return success_rate(EXPERTS.get(task)(arm, seed=123), episodes)
    finally:
        arm.disconnect()


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--json", type=Path, default=None, help="write the results here")
    args.add_argument("--quick", action="store_true", help="a short smoke run")
    args = args.parse_args()
    steps, episodes = (40, 10) if args.quick else (400, 100)
    arms = ARMS.names()
    speed = [measure_arm(name, steps) for name in arms]
    print(f"throughput ({TASK} scene, {int(1000 / CONTROL_HZ)} ms control period, 128x128 cameras)")
    print_table(list(speed[0]), [list(row.values()) for row in speed])
    success = [{"arm": a, "task": t, "episodes": episodes,
                "success": expert_success(a, t, episodes)} for a in arms for t in EXPERTS.names()]
    print("\nscripted experts at full skill")
    print_table(list(success[0]), [list(row.values()) for row in success])
    targets = []
    for row in speed:
        targets.append(target(f"{row['arm']} real-time factor at 10 Hz", row["rtf_10hz"],
                              1.0, ">="))
        targets.append(target(f"{row['arm']} real-time factor at 10 Hz with 2 cameras",
                              row["rtf_10hz_2cams"], 10.0, ">="))
    targets += [target(f"{r['arm']} {r['task']} expert success", r["success"], 0.9, ">=")
                for r in success]
    return report("sim_throughput", {"throughput": speed, "experts": success}, targets, args.json,
                  quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
