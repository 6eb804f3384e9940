"""The scripted expert of each built-in task, registered under the task's name."""

from __future__ import annotations

import numpy as np

from sim.experts.base import EXPERTS, Expert
from sim.tasks.objects import wrap_quarter, yaw_of
from sim.tasks.peg_insertion import HOLE_DEPTH

OPEN, CLOSE = -1.0, 1.0


@EXPERTS.register("reach")
class ReachExpert(Expert):
    """Straight to the target."""

    def plan(self) -> np.ndarray:
        target = self.aim(self.arm.task_state()["target_pos"])
        return self.command(self.toward(target), 0.0, OPEN)


@EXPERTS.register("push")
class PushExpert(Expert):
    """Goes behind the block (seen from the goal) above the table, lowers, pushes along the line."""

    hover, low = 0.08, 0.02

    def plan(self) -> np.ndarray:
        s, ee = self.arm.task_state(), self.arm.ee_pos()
        obj, goal = s["object_pos"][:2], self.aim(s["goal_pos"][:2])
        line = goal - obj
        direction = line / max(np.linalg.norm(line), 1e-6)
        behind = obj - direction * 0.055
        rel = ee[:2] - obj
        off_line = np.linalg.norm(ee[:2] - behind) if self.phase != "push" else abs(
            direction[0] * rel[1] - direction[1] * rel[0])
        if self.phase == "push" and (off_line > 0.02 or np.dot(ee[:2] - obj, direction) > 0):
            self.phase = "approach"  # lost the block: go round again
        if self.phase != "push":
            if off_line > 0.01:
                height = self.hover if np.linalg.norm(ee[:2] - obj) < 0.06 else max(ee[2], self.low)
                return self.command(self.toward([*behind, min(height, self.hover)]), 0.0, CLOSE)
            if ee[2] > self.low + 0.01:
                return self.command(self.toward([*behind, self.low]), 0.0, CLOSE)
            self.phase = "push"
        overshoot = min(np.linalg.norm(line), 0.03)
        target = obj + direction * overshoot - direction * 0.03
        return self.command(self.toward([*target, self.low], gain=1.5), 0.0, CLOSE)


@EXPERTS.register("pick_cube")
class PickCubeExpert(Expert):
    """Hovers over the cube, turns to its faces, descends open, closes, lifts, carries to goal."""

    hover, grasp_depth = 0.07, 0.0

    def plan(self) -> np.ndarray:
        s, ee = self.arm.task_state(), self.arm.ee_pos()
        obj, goal = s["object_pos"], self.aim(s["goal_pos"])
        yaw_err = wrap_quarter(yaw_of(s["object_quat"]) - self.arm.ee_yaw())
        xy_err = np.linalg.norm(ee[:2] - obj[:2])
        if self.phase in ("close", "carry") and np.linalg.norm(ee - obj) > 0.04:
            self.phase = "start"  # dropped it
        if self.phase == "start":
            if xy_err > 0.008 or abs(yaw_err) > 0.05:
                z = self.hover if xy_err > 0.03 else max(ee[2], obj[2] + 0.04)
                return self.command(self.toward([*obj[:2], z]), self.turn_toward(yaw_err), OPEN)
            if ee[2] > obj[2] + self.grasp_depth + 0.006:
                return self.command(self.toward([*obj[:2], obj[2] + self.grasp_depth]),
                                    self.turn_toward(yaw_err), OPEN)
            self.phase, self.closing = "close", 0
        if self.phase == "close":
            self.closing += 1
            if self.closing < 4:
                return self.command(np.zeros(3), 0.0, CLOSE)
            self.phase = "carry"
        lift = np.array([*ee[:2], max(goal[2], obj[2] + 0.04)])
        target = goal + (ee - obj) if obj[2] > goal[2] - 0.02 else lift
        return self.command(self.toward(target), 0.0, CLOSE)


@EXPERTS.register("peg_insertion")
class PegInsertionExpert(Expert):
    """Lines the peg's tip up over the hole (position and yaw), then lowers it in slowly.

    A tip that catches on the rim is lifted clear and lined up again.
    """

    clear = HOLE_DEPTH + 0.012  # tip height for lining up
    aligned = 0.0012  # metres
    descent = -0.012  # metres per step

    def plan(self) -> np.ndarray:
        task, s = self.arm.task, self.arm.task_state()
        tip = task.tip(self.arm.data)
        yaw_err = wrap_quarter(-yaw_of(s["object_quat"]))
        xy = self.aim(s["goal_pos"][:2]) - tip[:2]
        off = float(np.linalg.norm(xy))
        if tip[2] < HOLE_DEPTH + 0.002 and off > task.clearance + 0.0005:
            dz = self.clear - tip[2]  # caught on the rim: back out
        elif off > self.aligned or abs(yaw_err) > 0.03:
            dz = float(np.clip(self.clear - tip[2], -0.01, 0.02)) if tip[2] > HOLE_DEPTH else 0.0
        else:
            dz = self.descent
        move = np.clip(np.array([*xy, dz]) / self.arm.translation_scale * 1.2, -1, 1)
        return self.command(move, self.turn_toward(yaw_err), CLOSE)
