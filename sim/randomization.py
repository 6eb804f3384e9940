"""Seeded domain randomization of a scene: object colours, lighting and camera poses."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np


@dataclass
class RandomizationConfig:
    """How far each property strays from the scene's nominal value at every reset."""

    colours: bool = True
    light_pos: float = 0.3  # metres
    light_intensity: float = 0.3  # fraction of the nominal diffuse light
    camera_pos: float = 0.01  # metres
    camera_angle: float = 0.03  # radians


class DomainRandomizer:
    """Remembers the nominal scene and redraws the randomized properties from a generator.

    Colours change on every geom outside the arm (table material included); the arm keeps its
    look, like a real arm whose surroundings change.
    """

    def __init__(self, model: mujoco.MjModel, arm_bodies: set[int], config: RandomizationConfig):
        self.config = config
        scene = [g for g in range(model.ngeom) if model.geom_bodyid[g] not in arm_bodies]
        self.geoms = np.array([g for g in scene if model.geom_matid[g] < 0], dtype=int)
        self.materials = np.unique(
            np.array([model.geom_matid[g] for g in scene if model.geom_matid[g] >= 0], dtype=int))
        self.nominal = {
            "geom_rgba": model.geom_rgba.copy(), "mat_rgba": model.mat_rgba.copy(),
            "light_pos": model.light_pos.copy(), "light_diffuse": model.light_diffuse.copy(),
            "cam_pos": model.cam_pos.copy(), "cam_quat": model.cam_quat.copy(),
        }

    def apply(self, model: mujoco.MjModel, rng: np.random.Generator) -> None:
        """Draw a new look for the scene (every draw comes from `rng`, so a seed repeats it)."""
        cfg, nom = self.config, self.nominal
        if cfg.colours:
            model.geom_rgba[self.geoms, :3] = rng.uniform(0.1, 0.95, (len(self.geoms), 3))
            shade = rng.uniform(0.6, 1.4, (len(self.materials), 1))
            nominal_rgb = nom["mat_rgba"][self.materials, :3]
            model.mat_rgba[self.materials, :3] = np.clip(nominal_rgb * shade, 0, 1)
        jitter = rng.uniform(-1, 1, nom["light_pos"].shape)
        model.light_pos[:] = nom["light_pos"] + jitter * cfg.light_pos
        gain = 1.0 + rng.uniform(-1, 1, (model.nlight, 1)) * cfg.light_intensity
        model.light_diffuse[:] = np.clip(nom["light_diffuse"] * gain, 0.0, 1.0)
        jitter = rng.uniform(-1, 1, nom["cam_pos"].shape)
        model.cam_pos[:] = nom["cam_pos"] + jitter * cfg.camera_pos
        for cam in range(model.ncam):
            axis = rng.normal(size=3)
            turn = np.zeros(4)
            mujoco.mju_axisAngle2Quat(turn, axis / np.linalg.norm(axis),
                                      rng.uniform(-1, 1) * cfg.camera_angle)
            mujoco.mju_mulQuat(model.cam_quat[cam], nom["cam_quat"][cam], turn)
