"""The safety layer: every action passes here before it reaches hardware."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from hal.robot import Health, HealthStatus, Robot
from robot_rl.core import (
    ArraySpec,
    ConfigError,
    DictSpec,
    HardwareError,
    Observation,
    SafetyError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SafetyLimits:
    """Limits for Δ end-effector actions `[dx, dy, dz, ..., gripper]` in [-1, 1].

    `workspace_low/high` bound the end-effector position (metres) that an action may aim for;
    `max_delta` bounds each action component; `translation_scale` is metres per unit action,
    the robot's own scale, so the workspace can be enforced before the arm moves.
    `max_speed` bounds the end effector's commanded speed (m/s at `control_hz`), shortening the
    step but keeping its direction. Where the robot reports joints (`joint_key`, `joint_vel_key`
    in its observation), a joint outside `joint_low/high` (radians) or faster than
    `max_joint_velocity` (rad/s) gets hold actions until it is back (a reset brings it home).
    """

    workspace_low: tuple[float, float, float] = (-1.0, -1.0, 0.0)
    workspace_high: tuple[float, float, float] = (1.0, 1.0, 1.5)
    max_delta: float = 1.0
    translation_scale: float = 0.05
    ee_key: str = "ee_pos"
    max_speed: float | None = None
    control_hz: float = 10.0
    joint_low: tuple[float, ...] | None = None
    joint_high: tuple[float, ...] | None = None
    max_joint_velocity: float | None = None
    joint_key: str = "joint_pos"
    joint_vel_key: str = "joint_vel"


class SafeRobot(Robot):
    """Wraps a Robot: rejects malformed actions, clips to limits, and holds on e-stop or fault.

    Every intervention is counted in `events` and logged, so nothing is corrected silently.
    Safe to call from a second thread (a health monitor): commands to the robot are serialised.
    """

    def __init__(
        self, robot: Robot, limits: SafetyLimits | None = None, *,
        reset_wait_s: float = 600.0, reset_poll_s: float = 0.5,
    ) -> None:
        self.inner = robot
        self.reset_wait_s = reset_wait_s
        self.reset_poll_s = reset_poll_s
        self.robot_id = robot.robot_id
        self.limits = limits or SafetyLimits()
        self._check_joint_limits()
        self.events: Counter[str] = Counter()
        self._estop_reason: str | None = None
        self._last_obs: Observation | None = None
        self._io = threading.RLock()  # one command at a time reaches the robot

    def _check_joint_limits(self) -> None:
        """Joint limits need a robot that reports joints, one bound per joint."""
        lim, spec = self.limits, self.inner.observation_spec
        positions = lim.joint_low is not None or lim.joint_high is not None
        for key, wanted in ((lim.joint_key, positions),
                            (lim.joint_vel_key, lim.max_joint_velocity is not None)):
            if wanted and key not in spec:
                raise ConfigError(f"safety: joint limits are set but {self.robot_id} reports no "
                                  f"`{key}`; remove them for this robot")
        for name, bound in (("joint_low", lim.joint_low), ("joint_high", lim.joint_high)):
            if bound is not None and (len(bound),) != spec[lim.joint_key].shape:
                raise ConfigError(f"safety.{name} has {len(bound)} values; {self.robot_id} has "
                                  f"{spec[lim.joint_key].shape[0]} joints: give one per joint")

    # -- pass-through ------------------------------------------------------------------------
    def connect(self) -> None:
        self.inner.connect()

    def disconnect(self) -> None:
        self.inner.disconnect()

    @property
    def observation_spec(self) -> DictSpec:
        return self.inner.observation_spec

    @property
    def action_spec(self) -> ArraySpec:
        return self.inner.action_spec

    def get_observation(self) -> Observation:
        with self._io:
            self._last_obs = self.inner.get_observation()
        return self._last_obs

    def reset(self) -> Observation:
        if self._estop_reason is not None:
            raise SafetyError(f"e-stop is engaged ({self._estop_reason}); release it before reset")
        self.inner.reset()
        self._wait_for_scene()
        self._last_obs = self.inner.get_observation()
        return self._last_obs

    def _wait_for_scene(self) -> None:
        """A robot that cannot reset its scene alone reports RESET_NEEDED: wait for a person."""
        health = self.inner.health()
        if health.status is not HealthStatus.RESET_NEEDED:
            return
        self._event("reset_needed", f"waiting for a person to reset the scene: {health.message}")
        deadline = time.monotonic() + self.reset_wait_s
        while health.status is HealthStatus.RESET_NEEDED:
            if time.monotonic() > deadline:
                raise HardwareError(
                    f"{self.robot_id}: the scene still needs a person to reset it "
                    f"({health.message}) after {self.reset_wait_s:.0f} s; reset it and start again"
                )
            time.sleep(self.reset_poll_s)
            health = self.inner.health()

    def health(self) -> Health:
        if self._estop_reason is not None:
            return Health(HealthStatus.FAULT, f"e-stop: {self._estop_reason}")
        return self.inner.health()

    # -- e-stop --------------------------------------------------------------------------------
    def estop(self, reason: str) -> None:
        """Engage the e-stop: every later action is replaced by a hold until `release()`."""
        if self._estop_reason is None:
            log.warning("e-stop engaged on %s: %s", self.robot_id, reason)
            self.events["estop"] += 1
        self._estop_reason = reason
        with self._io:
            self.inner.send_action(self.inner.hold_action())

    def release(self) -> None:
        self._estop_reason = None

    @property
    def estopped(self) -> bool:
        return self._estop_reason is not None

    @property
    def estop_reason(self) -> str | None:
        return self._estop_reason

    # -- the filter ------------------------------------------------------------------------------
    def _event(self, kind: str, detail: str) -> None:
        """Count an intervention; the first of each kind is a warning, the rest debug lines."""
        self.events[kind] += 1
        level = logging.WARNING if self.events[kind] == 1 else logging.DEBUG
        log.log(level, "safety %s #%d on %s: %s", kind, self.events[kind], self.robot_id, detail)

    def filter(self, action: object) -> np.ndarray:
        """The action that may reach hardware: held on malformed input, else clipped to limits."""
        spec = self.action_spec
        try:
            arr = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            self._event("rejected", f"action is not numeric: {action!r:.80}")
            return self.inner.hold_action()
        if arr.shape != spec.shape:
            self._event("rejected", f"action shape {arr.shape}, expected {spec.shape}")
            return self.inner.hold_action()
        if not np.all(np.isfinite(arr)):
            self._event("rejected", "action contains NaN or infinity")
            return self.inner.hold_action()
        out = np.clip(arr, -self.limits.max_delta, self.limits.max_delta)
        out = spec.clip(out).astype(np.float64)
        if not np.allclose(out, arr):
            self._event("clipped", f"action {np.round(arr, 3)} outside limits")
        out = self._keep_in_workspace(self._limit_speed(out))
        return out.astype(spec.dtype)

    def _limit_speed(self, action: np.ndarray) -> np.ndarray:
        lim = self.limits
        if lim.max_speed is None:
            return action
        speed = float(np.linalg.norm(action[:3])) * lim.translation_scale * lim.control_hz
        if speed <= lim.max_speed:
            return action
        self._event("speed", f"end effector at {speed:.3f} m/s, limit {lim.max_speed:g} m/s")
        action = action.copy()
        action[:3] *= lim.max_speed / speed
        return action

    def _joint_violation(self) -> tuple[str, str] | None:
        """(kind, detail) where the last observed joints call for a hold, else None."""
        obs, lim = self._last_obs, self.limits
        if obs is None:
            return None
        if lim.joint_low is not None or lim.joint_high is not None:
            q = np.asarray(obs[lim.joint_key], dtype=np.float64)
            low = -np.inf if lim.joint_low is None else np.asarray(lim.joint_low)
            high = np.inf if lim.joint_high is None else np.asarray(lim.joint_high)
            outside = np.flatnonzero((q < low) | (q > high))
            if outside.size:
                j = int(outside[0])
                return "joint_limit", f"joint {j} at {q[j]:.3f} rad is beyond its limit"
        if lim.max_joint_velocity is not None:
            qd = np.abs(np.asarray(obs[lim.joint_vel_key], dtype=np.float64))
            if qd.size and qd.max() > lim.max_joint_velocity:
                return "joint_velocity", (f"joint {int(qd.argmax())} at {qd.max():.3f} rad/s, "
                                          f"limit {lim.max_joint_velocity:g}")
        return None

    def _keep_in_workspace(self, action: np.ndarray) -> np.ndarray:
        obs = self._last_obs
        if obs is None or self.limits.ee_key not in obs:
            return action
        ee = np.asarray(obs[self.limits.ee_key], dtype=np.float64)[:3]
        scale = self.limits.translation_scale
        target = ee + action[:3] * scale
        bounded = np.clip(target, self.limits.workspace_low, self.limits.workspace_high)
        if not np.allclose(bounded, target):
            self._event("workspace", f"target {np.round(target, 3)} outside the workspace box")
            action = action.copy()
            action[:3] = (bounded - ee) / scale
        return action

    def send_action(self, action: np.ndarray) -> np.ndarray:
        with self._io:
            health = self.inner.health()
            if self._estop_reason is not None or not health.ok:
                if not health.ok and self._estop_reason is None:
                    self._event("hold", f"robot unhealthy: {health.status.value} "
                                f"{health.message}")
                return self.inner.send_action(self.inner.hold_action())
            violation = self._joint_violation()
            if violation is not None:
                self._event(*violation)
                return self.inner.send_action(self.inner.hold_action())
            return self.inner.send_action(self.filter(action))

    def hold(self) -> np.ndarray:
        """Send a hold action now (the link to the policy is gone, a deadline was missed, ...)."""
        with self._io:
            return self.inner.send_action(self.inner.hold_action())
