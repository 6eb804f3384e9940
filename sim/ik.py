"""Damped-least-squares inverse kinematics for an end-effector site, on a scratch MjData."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np


@dataclass(frozen=True)
class IKResult:
    qpos: np.ndarray  # solution for the controlled joints
    pos_error: float  # metres left between the site and the target
    rot_error: float  # radians left between the site and the target orientation


class DLSIK:
    """Solves joint positions that put `site` at a target position and orientation.

    Works on a private copy of the state, so it never disturbs the simulation it serves.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        site: str,
        joints: list[str],
        *,
        damping: float = 0.02,
        rot_weight: float = 0.3,
        iterations: int = 20,
        tolerance: float = 1e-4,
    ) -> None:
        self.model = model
        self.scratch = mujoco.MjData(model)
        self.site_id = model.site(site).id
        self.qadr = np.array([model.joint(j).qposadr[0] for j in joints])
        self.dadr = np.array([model.joint(j).dofadr[0] for j in joints])
        self.lower = model.jnt_range[[model.joint(j).id for j in joints], 0]
        self.upper = model.jnt_range[[model.joint(j).id for j in joints], 1]
        self.damping = damping
        self.rot_weight = rot_weight
        self.iterations = iterations
        self.tolerance = tolerance
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self._quat = np.zeros(4)
        self._rot_err = np.zeros(3)

    def solve(self, qpos: np.ndarray, target_pos: np.ndarray, target_quat: np.ndarray) -> IKResult:
        m, s = self.model, self.scratch
        s.qpos[:] = qpos
        n = len(self.qadr)
        eye = np.eye(6)
        pos_err = rot_err = np.inf
        for _ in range(self.iterations):
            mujoco.mj_kinematics(m, s)
            mujoco.mj_comPos(m, s)
            err_p = target_pos - s.site_xpos[self.site_id]
            mujoco.mju_mat2Quat(self._quat, s.site_xmat[self.site_id])
            mujoco.mju_subQuat(self._rot_err, target_quat, self._quat)
            pos_err = float(np.linalg.norm(err_p))
            rot_err = float(np.linalg.norm(self._rot_err))
            if pos_err < self.tolerance and rot_err < 10 * self.tolerance:
                break
            mujoco.mj_jacSite(m, s, self._jacp, self._jacr, self.site_id)
            jac = np.vstack([self._jacp[:, self.dadr], self.rot_weight * self._jacr[:, self.dadr]])
            err = np.concatenate([err_p, self.rot_weight * self._rot_err])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + self.damping**2 * eye, err)
            s.qpos[self.qadr] = np.clip(s.qpos[self.qadr] + dq[:n], self.lower, self.upper)
        return IKResult(s.qpos[self.qadr].copy(), pos_err, rot_err)
