"""Learning benchmarks: SAC on reach, RLPD + demos + interventions vs SAC on pick-cube (from
state and from pixels), the reward classifier and RLPD rewarded by it, and learner throughput of
the state, frozen-feature and end-to-end pixel paths.

Every learning curve comes from a real session (MuJoCo arm, Zarr buffer, the learner of
`robot-rl train`); success is the share of training episodes that succeed with no
intervention, per window of env steps.
    python -m benchmarks.learning --quick                 # a smoke run of every part
    python -m benchmarks.learning --parts reach_sac --seeds 3 --json out.json --plot curve.png
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("MUJOCO_GL", "egl")

from benchmarks.common import print_table, report, target  # noqa: E402
from buffer import ReplayBuffer  # noqa: E402
from policies import SAC, EncoderConfig, FrozenCameraFeatures, SACConfig  # noqa: E402
from policies.reward_classifier import (  # noqa: E402
    ClassifierConfig,
    scores,
    train_success_classifier,
)
from robot_rl.commands.record_demos import record_episode  # noqa: E402
from robot_rl.config import compose_session  # noqa: E402
from robot_rl.core import ArraySpec, Batch, DictSpec  # noqa: E402
from robot_rl.runtime.build import build_robot  # noqa: E402
from robot_rl.runtime.run_dir import RunDir  # noqa: E402
from robot_rl.runtime.session import Session  # noqa: E402
from sim.experts import EXPERTS  # noqa: E402

Results = tuple[dict[str, Any], list[dict[str, Any]]]


# -- learner throughput --------------------------------------------------------------------------
def random_batch(spec: DictSpec, size: int, rng: np.random.Generator) -> Batch:
    def obs() -> dict[str, np.ndarray]:
        return {k: (rng.integers(0, 256, (size, *s.shape), dtype=np.uint8) if s.dtype == "uint8"
                    else rng.normal(size=(size, *s.shape)).astype(np.float32))
                for k, s in spec.items()}
    return Batch(obs(), rng.uniform(-1, 1, (size, 5)).astype(np.float32),
                 rng.normal(size=size).astype(np.float32), obs(), np.zeros(size, np.float32),
                 np.zeros(size, bool), np.zeros(size, np.int8), np.zeros(size, np.int64))


def updates_per_second(spec: DictSpec, config: SACConfig, updates: int) -> float:
    algo = SAC(spec, ArraySpec((5,), "float32", -1, 1), config)
    batch = random_batch(spec, 256, np.random.default_rng(0))
    batches = iter(lambda: batch, None)
    algo.update(batches)  # warm-up
    start = time.perf_counter()
    for _ in range(updates):
        algo.update(batches)
    return updates / (time.perf_counter() - start)


def part_throughput(args: argparse.Namespace) -> Results:
    vec = ArraySpec((15,), "float32")
    cams = {"side": ArraySpec((64, 64, 3), "uint8"), "wrist": ArraySpec((64, 64, 3), "uint8")}
    frozen = FrozenCameraFeatures(DictSpec(cams), EncoderConfig(cameras=("side", "wrist")))
    n = (5, 5, 1) if args.quick else (200, 200, 5)
    rows = {
        "state": updates_per_second(DictSpec({"proprio": vec, "object": ArraySpec((7,), "f4")}),
                                    SACConfig(), n[0]),
        "frozen_features": updates_per_second(frozen.output_spec(DictSpec({"proprio": vec})),
                                              SACConfig(), n[1]),
        "end_to_end_pixels": updates_per_second(
            DictSpec({"proprio": vec, **cams}),
            SACConfig(encoder=EncoderConfig(cameras=("side", "wrist"))), n[2]),
    }
    obs = {k: np.zeros(s.shape, np.uint8) for k, s in cams.items()}
    start, reps = time.perf_counter(), 5 if args.quick else 50
    for _ in range(reps):
        frozen(obs)
    actor_ms = 1000 * (time.perf_counter() - start) / reps
    titled_table("learner updates/s at batch 256 (2 cameras 64x64 where pixels)",
                ["path", "updates/s", "vs end-to-end"],
                [[k, v, v / rows["end_to_end_pixels"]] for k, v in rows.items()])
    print(f"actor-side frozen feature extraction: {actor_ms:.1f} ms per step (2 cameras)")
    return {"updates_per_s": rows, "actor_feature_ms": actor_ms}, []


# -- sessions and curves -------------------------------------------------------------------------
def run_session(
    root: Path, overrides: list[str], demos: int = 0, eval_episodes: int = 0,
) -> dict[str, Any]:
    """One real training session; returns per-episode end steps, successes and wall-clock, and
    with `eval_episodes` the final policy's success as the task rule judges it."""
    run = RunDir(root)
    cfg = compose_session([*overrides, f"run.dir={root}"])
    run.root.mkdir(parents=True)
    run.save_config(cfg)
    session = Session(cfg, run)
    if demos:
        record_demos(session, demos)
    start = time.perf_counter()
    counters = session.run_until_budget()
    table = session.buffer.episode_table()
    autonomous = table["success"].astype(bool) & (table["interventions"] == 0)
    return {"ends": (table["start"] + table["length"]).tolist(),
            "success": autonomous.tolist(),  # a success the intervener helped does not count
            "interventions": int(table["interventions"].sum()),
            "updates": counters.updates, "wall_s": time.perf_counter() - start,
            "eval_success": evaluate(session, eval_episodes) if eval_episodes else None}


def evaluate(session: Session, episodes: int) -> float:
    """Success rate of the session's policy acting deterministically on fresh episodes, judged by
    the task rule (whatever reward source trained it)."""
    robot, arm, policy = session.robot, session.arm, session.algo.policy
    robot.connect()
    wins = 0
    try:
        for _ in range(episodes):
            obs = robot.reset()
            for _ in range(session.cfg.task.max_steps):
                robot.send_action(policy.act(session.observe(obs), deterministic=True))
                obs = robot.get_observation()
                if arm.outcome().success:
                    wins += 1
                    break
    finally:
        robot.disconnect()
    return wins / episodes


def record_demos(session: Session, episodes: int) -> None:
    """The task's scripted expert (sim.experts) recorded to the run's demo side before training."""
    robot, arm, cfg = session.robot, session.arm, session.cfg
    expert = EXPERTS.get(cfg.task.name)(arm, seed=cfg.seed)
    robot.connect()
    with ReplayBuffer(session.run.demos, robot.observation_spec, robot.action_spec) as demos:
        for e in range(episodes):  # closed after: the session is the next writer
            demos.add_episode(record_episode(arm, robot, expert, -1 - e, cfg))


def scripted_teleop(budget: int) -> list[str]:
    """The task's scripted expert taking over now and then (`teleop=scripted`), `budget` steps
    in all: a tenth of the run, as a person's takeovers fade out."""
    return ["teleop=scripted", "teleop.params.start_prob=0.03", "teleop.params.window=10",
            f"teleop.params.budget={budget // 10}"]


def run_sessions(jobs: list[tuple[Any, ...]], workers: int) -> list[dict[str, Any]]:
    """`run_session(*job)` for every job, `workers` processes at a time (1 thread each).

    Workers are spawned, not forked: a child forked after the parent rendered (an EGL context)
    hangs in its first render.
    """
    if workers <= 1:
        return [run_session(*job) for job in jobs]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(run_session, *zip(*jobs, strict=True)))


def success_curve(run: dict[str, Any], budget: int, window: int) -> list[float]:
    """Success rate of the episodes ending in each window of `window` env steps."""
    ends, success = np.asarray(run["ends"]), np.asarray(run["success"])
    curve = []
    for hi in range(window, budget + 1, window):
        inside = (ends > hi - window) & (ends <= hi)
        curve.append(float(success[inside].mean()) if inside.any() else 0.0)
    return curve


def steps_to(curve: list[float], level: float, window: int) -> int | None:
    return next(((i + 1) * window for i, v in enumerate(curve) if v >= level), None)


def curves(name: str, runs: list[dict[str, Any]], budget: int, window: int) -> dict[str, Any]:
    per_seed = np.array([success_curve(r, budget, window) for r in runs])
    return {"name": name, "steps": list(range(window, budget + 1, window)),
            "mean": per_seed.mean(0).tolist(), "std": per_seed.std(0).tolist(),
            "final": float(per_seed[:, -1].mean()), "final_std": float(per_seed[:, -1].std()),
            "steps_to_0.8": [steps_to(list(c), 0.8, window) for c in per_seed],
            "wall_s": [r["wall_s"] for r in runs],
            "interventions": [r["interventions"] for r in runs]}


def titled_table(title: str, headers: list[str], rows: list[list[Any]]) -> None:
    print(f"\n{title}")
    print_table(headers, rows)


def print_curves(title: str, results: list[dict[str, Any]]) -> None:
    rows = [[r["name"], f"{r['final']:.2f} ± {r['final_std']:.2f}", r["steps_to_0.8"],
             f"{np.mean(r['wall_s']):.0f}", r["interventions"]] for r in results]
    titled_table(title, ["run", "final success", "steps to 0.8 (per seed)", "wall s", "interv."],
                rows)


def part_reach_sac(args: argparse.Namespace) -> Results:
    budget, window = (1500, 500) if args.quick else (args.steps or 20000, 1000)
    runs = run_sessions([(args.work / f"reach-sac-{s}", ["task=reach", "algo=sac", f"seed={s}",
                                                         f"run.env_steps={budget}"])
                         for s in range(args.seeds)], args.workers)
    result = curves("sac reach (state, dense)", runs, budget, window)
    print_curves(f"SAC on reach, {args.seeds} seeds, {budget} env steps", [result])
    return {"reach_sac": result}, [
        target("reach SAC success within 20k env steps", result["final"], 0.9, ">=")]


def part_pick_cube(args: argparse.Namespace) -> Results:
    """Pick-cube from state: RLPD + 20 scripted demos + a scripted intervener vs plain SAC."""
    budget, window = (1000, 500) if args.quick else (args.steps or 30000, 1000)
    common = ["task=pick_cube", f"task.reward={args.task_reward}", f"run.env_steps={budget}"]
    rlpd = ["algo=rlpd", *scripted_teleop(budget)]
    jobs = [(args.work / f"pick-rlpd-{s}", [*common, *rlpd, f"seed={s}"], 20)
            for s in range(args.seeds)]
    jobs += [(args.work / f"pick-sac-{s}", [*common, "algo=sac", f"seed={s}"], 0)
             for s in range(args.seeds)]
    runs = run_sessions(jobs, args.workers)
    rlpd, sac = runs[:args.seeds], runs[args.seeds:]
    results = [curves(f"pick_cube rlpd+20 demos+interventions ({args.task_reward})", rlpd, budget,
                      window),
               curves(f"pick_cube sac ({args.task_reward})", sac, budget, window)]
    print_curves(f"pick_cube from state, {args.task_reward} reward, {args.seeds} seeds, "
                 f"{budget} env steps", results)
    to_80 = [np.mean([budget if s is None else s for s in r["steps_to_0.8"]]) for r in results]
    pick = {"rlpd": results[0], "sac": results[1], "budget": budget, "reward": args.task_reward,
            "final_ratio_rlpd_over_sac": results[0]["final"] / max(results[1]["final"], 1e-9),
            # a seed that never reached 0.8 counts as the whole budget: then a lower bound
            "steps_to_0.8_ratio_sac_over_rlpd": float(to_80[1] / to_80[0]),
            "steps_to_0.8_ratio_is_lower_bound": None in results[1]["steps_to_0.8"]}
    print(f"steps to 0.8 success, SAC / RLPD: "
          f"{'>= ' if pick['steps_to_0.8_ratio_is_lower_bound'] else ''}"
          f"{pick['steps_to_0.8_ratio_sac_over_rlpd']:.2f}")
    return {"pick_cube_rlpd_vs_sac": pick}, [
        target(f"pick-cube (state) RLPD+interventions success in {budget} (issue: 30k) steps",
               results[0]["final"], 0.8, ">="),
        target("pick-cube RLPD minus plain SAC success, same budget (SAC markedly worse)",
               results[0]["final"] - results[1]["final"], 0.3, ">="),
    ]


def pretrained_encoder(root: Path, overrides: list[str], episodes: int, steps: int) -> Path:
    """A camera encoder pretrained by behaviour cloning on `episodes` scripted episodes, offline
    frames of an earlier collection, exactly as a session pretrains on its own demos."""
    run = RunDir(root)
    cfg = compose_session([*overrides, f"run.dir={root}", f"algo.features.pretrain_steps={steps}"])
    run.root.mkdir(parents=True)
    run.save_config(cfg)
    session = Session(cfg, run)
    record_demos(session, episodes)
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)  # the only process running: use every core
    try:
        session.observer.prepare(run)
    finally:
        torch.set_num_threads(threads)
    return run.root / "encoder.npz"


def part_pick_cube_pixels(args: argparse.Namespace) -> Results:
    """Pick-cube seen only through two cameras: RLPD + 20 demos + interventions on the features
    of an encoder pretrained offline by behaviour cloning and frozen (dense task-rule reward)."""
    budget, window = (600, 300) if args.quick else (args.steps or 30000, 1000)
    overrides = ["task=pick_cube_pixels", "task.reward=dense", "algo=rlpd_frozen",
                 "robot.image_size=64", f"robot.randomize.enabled={args.randomize_scene}"]
    start, encoder, pretrain_s = time.perf_counter(), args.encoder, None
    if encoder is None:
        encoder = pretrained_encoder(args.work / "pixels-pretrain", overrides,
                                     *((5, 50) if args.quick else (100, 3000)))
        pretrain_s = time.perf_counter() - start
    runs = run_sessions([(args.work / f"pixels-rlpd-{s}",
                          [*overrides, f"algo.features.weights={encoder}",
                           *scripted_teleop(budget), f"run.env_steps={budget}", f"seed={s}"], 20)
                         for s in range(args.seeds)], args.workers)
    result = curves("pick_cube pixels rlpd_frozen+20 demos+interventions", runs, budget, window)
    result.update(encoder_pretrain_s=pretrain_s, encoder=str(args.encoder or "pretrained here"),
                  randomized_scene=args.randomize_scene)
    origin = encoder if pretrain_s is None else f"pretrained in {pretrain_s:.0f} s"
    scene = "randomized" if args.randomize_scene else "fixed"
    print_curves(f"pick_cube from pixels (frozen encoder, {scene} scene), {args.seeds} seeds, "
                 f"{budget} env steps, encoder {origin}", [result])
    return {"pick_cube_pixels_rlpd_frozen": result}, [
        target(f"pick-cube from pixels (frozen encoder) RLPD success in {budget} steps",
               result["final"], 0.7, ">=")]


CLASSIFIER_CAMERAS = ("side_cam", "wrist_cam")  # the wrist sees whether the cube sits in the goal
EXPERT_MODES = {"skill 1": 1.0, "skill 0.7": 0.7, "skill 0": 0.0, "near miss": 1.0}  # -> skill
NEAR_MISS = list(EXPERT_MODES).index("near miss")


def pick_cube_frames(episodes: int, size: int
                     ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Frames of pick_cube episodes by the expert in turn at full, middling and no skill, and
    near misses (full skill, aiming 4-8 cm off the goal), each labelled by the task rule:
    (frames per camera, success labels, episode ids)."""
    cfg = compose_session(["task=pick_cube"])
    arm, robot = build_robot(cfg)
    robot.connect()
    frames: dict[str, list[np.ndarray]] = {cam: [] for cam in CLASSIFIER_CAMERAS}
    labels, ids = [], []
    try:
        for e in range(episodes):
            mode = e % len(EXPERT_MODES)
            skill = list(EXPERT_MODES.values())[mode]
            miss = 0.04 + 0.04 * (e % 7) / 6 if mode == NEAR_MISS else 0.0
            expert = EXPERTS.get("pick_cube")(arm, skill=skill, seed=e, miss=miss)
            robot.reset()
            expert.reset()
            for _ in range(cfg.task.max_steps):  # on past success: the cube held at the goal
                robot.send_action(expert.act())
                for cam in CLASSIFIER_CAMERAS:
                    frames[cam].append(arm.render(cam, size, size))
                labels.append(arm.outcome().success)
                ids.append(e)
    finally:
        robot.disconnect()
    return {cam: np.stack(f) for cam, f in frames.items()}, np.array(labels), np.array(ids)


def part_classifier(args: argparse.Namespace) -> Results:
    """A success classifier on pick_cube frames (side and wrist camera), then RLPD rewarded by it
    vs by the task rule (both sparse), the final policies judged by the task rule."""
    episodes, size, steps = (20, 48, 50) if args.quick else (80, 64, 1500)
    frames, labels, ids = pick_cube_frames(episodes, size)
    test = ids % 5 == 4  # every fifth episode is held out (every expert mode among them)
    near_miss = test & (ids % len(EXPERT_MODES) == NEAR_MISS)
    start = time.perf_counter()
    model, _ = train_success_classifier({c: f[~test] for c, f in frames.items()}, labels[~test],
                                        EncoderConfig(cameras=CLASSIFIER_CAMERAS),
                                        ClassifierConfig(steps=steps))
    result = scores(model, {c: f[test] for c, f in frames.items()}, labels[test])
    result.update(train_s=time.perf_counter() - start, frames=len(labels),
                  successes=int(labels.sum()), held_out_frames=int(test.sum()),
                  near_miss_failure_recall=scores(
                      model, {c: f[near_miss] for c, f in frames.items()},
                      labels[near_miss])["failure_recall"])
    titled_table("reward classifier on held-out episodes (pick_cube, side + wrist camera)",
                 list(result), [list(result.values())])
    classifier = args.work / "pick_cube_reward.npz"
    model.save(classifier)

    budget, window = (600, 300) if args.quick else (args.steps or 30000, 1000)
    common = ["task=pick_cube", "task.reward=sparse", "algo=rlpd", "buffer.n_step=3",
              "algo.params.critic_updates=2", f"run.env_steps={budget}",  # sparse: more updates
              *scripted_teleop(budget)]
    by_classifier = ["reward=classifier", f"reward.params.path={classifier}",
                     f"robot.cameras=[{','.join(CLASSIFIER_CAMERAS)}]", f"robot.image_size={size}"]
    evals = 10 if args.quick else 50
    jobs = [(args.work / f"reward-{name}-{s}", [*common, *extra, f"seed={s}"], 20, evals)
            for name, extra in (("rule", []), ("classifier", by_classifier))
            for s in range(args.seeds)]
    runs = run_sessions(jobs, args.workers)
    rule, learned = runs[:args.seeds], runs[args.seeds:]
    results = [curves("pick_cube rlpd, task-rule reward (sparse)", rule, budget, window),
               curves("pick_cube rlpd, classifier reward", learned, budget, window)]
    print_curves(f"pick_cube RLPD by reward source, {args.seeds} seeds, {budget} env steps "
                 "(curves: each run's own success verdict)", results)
    rule_eval, learned_eval = (float(np.mean([r["eval_success"] for r in rs]))
                               for rs in (rule, learned))
    ratio = learned_eval / max(rule_eval, 1e-9)
    print(f"final policies judged by the task rule ({evals} episodes each): rule reward "
          f"{rule_eval:.2f}, classifier reward {learned_eval:.2f}, ratio {ratio:.2f}")
    return {"classifier": result, "reward_sources": {
        "rule": results[0], "classifier": results[1], "budget": budget,
        "eval_success_rule": rule_eval, "eval_success_classifier": learned_eval,
        "eval_ratio_classifier_over_rule": ratio}}, [
        target("reward classifier accuracy on held-out episodes", result["accuracy"], 0.9, ">="),
        target("RLPD with classifier reward / with rule reward success", ratio, 0.7, ">="),
    ]


PARTS: dict[str, Callable[[argparse.Namespace], Results]] = {
    "throughput": part_throughput, "classifier": part_classifier,
    "reach_sac": part_reach_sac,
    "pick_cube": part_pick_cube, "pick_cube_pixels": part_pick_cube_pixels,
}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = [results["reach_sac"]] if "reach_sac" in results else []
    for part, keys in (("pick_cube_rlpd_vs_sac", ("rlpd", "sac")),
                       ("reward_sources", ("rule", "classifier"))):
        found += [results[part][k] for k in keys] if part in results else []
    found += [results[k] for k in ("pick_cube_pixels_rlpd_frozen",) if k in results]
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for c in found:
        mean, std = np.array(c["mean"]), np.array(c["std"])
        ax.plot(c["steps"], mean, label=c["name"])
        ax.fill_between(c["steps"], mean - std, mean + std, alpha=0.2)
    ax.set(xlabel="env steps", ylabel="training-episode success", ylim=(0, 1.02))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot -> {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"any of {', '.join(PARTS)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=None,
                        help="env-step budget of the learning curves (default: the issue's)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (2 threads on a busy 2-core machine thrash)")
    parser.add_argument("--task-reward", default="dense", choices=["dense", "sparse"],
                        help="task.reward of the pick_cube runs")
    parser.add_argument("--encoder", type=Path, default=None,
                        help="pick_cube_pixels: a camera encoder pretrained earlier (skips the BC "
                             "pretraining, which takes ~19 min on one core here)")
    parser.add_argument("--randomize-scene", action="store_true",
                        help="pick_cube_pixels: randomize colours, lights and camera poses per "
                             "episode (the encoder must have been pretrained the same way)")
    parser.add_argument("--replot", type=Path, nargs="+", default=None, metavar="JSON",
                        help="draw --plot from the JSON of earlier runs instead of running")
    parser.add_argument("--workers", type=int, default=1,
                        help="sessions of a part run in parallel, one process each")
    args = parser.parse_args()
    if args.replot is not None:
        if args.plot is None:
            parser.error("--replot needs --plot PATH")
        merged: dict[str, Any] = {}
        for path in args.replot:
            merged.update(json.loads(path.read_text())["results"])
        plot(merged, args.plot)
        return 0
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"seeds": args.seeds, "quick": args.quick}
    targets: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="robot-rl-bench-") as work:
        args.work = Path(work)
        for name in args.parts.split(","):
            start = time.perf_counter()
            part_results, part_targets = PARTS[name](args)
            results.update(part_results)
            results[f"{name}_wall_s"] = time.perf_counter() - start
            targets.extend(part_targets)
    if args.plot is not None:
        plot(results, args.plot)
    return report("learning", results, targets, args.json)


if __name__ == "__main__":
    sys.exit(main())
