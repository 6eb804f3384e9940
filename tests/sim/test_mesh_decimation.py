"""Lighter visual meshes: clustering keeps a mesh's shape and winding, and the SO-101 rendered
from them looks like the SO-101 rendered from its CAD meshes."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

import sim.arm_models
from robot_rl.core import HardwareError
from sim.arm import compile_scene
from sim.mesh_decimation import SUFFIX, cluster, read_binary_stl


def grid_triangles(n: int) -> np.ndarray:
    """A unit square in the z=0 plane as 2 n^2 triangles, all facing +z."""
    xs = np.linspace(0.0, 1.0, n + 1)
    tris = []
    for i in range(n):
        for j in range(n):
            a, b = (xs[i], xs[j], 0.0), (xs[i + 1], xs[j], 0.0)
            c, d = (xs[i + 1], xs[j + 1], 0.0), (xs[i], xs[j + 1], 0.0)
            tris += [(a, b, c), (a, c, d)]
    return np.array(tris)


def normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    v = verts[faces]
    return np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])


def test_clustering_keeps_the_shape_and_winding_with_fewer_triangles() -> None:
    verts, faces = cluster(grid_triangles(40), cell=0.1)
    assert 0 < len(faces) < 2 * 40 * 40 / 10
    assert np.all(normals(verts, faces)[:, 2] > 0)  # still facing +z: winding kept
    assert np.allclose(verts.min(0), 0.0, atol=0.1) and np.allclose(verts.max(0)[:2], 1.0,
                                                                     atol=0.1)
    assert len(np.unique(np.sort(faces, axis=1), axis=0)) == len(faces)  # no duplicates


def test_a_text_stl_is_refused_with_its_path(tmp_path) -> None:
    path = tmp_path / "part.stl"
    path.write_text("solid part\nendsolid part\n")
    with pytest.raises(HardwareError, match="part.stl: not a binary STL"):
        read_binary_stl(path)


@pytest.mark.slow
def test_the_so101_renders_from_light_meshes_and_looks_the_same(make_arm, monkeypatch) -> None:
    light = make_arm("pick_cube", arm="so101", cameras=["side_cam"], image_size=128)
    model = light.model
    visual = [g for g in range(model.ngeom)
              if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH and model.geom_group[g] == 2]
    collision = [g for g in range(model.ngeom)
                 if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH and model.geom_group[g] == 3]
    assert visual and collision
    assert all(model.mesh(model.geom_dataid[g]).name.endswith(SUFFIX) for g in visual)
    assert not any(model.mesh(model.geom_dataid[g]).name.endswith(SUFFIX) for g in collision)
    faces = sum(int(model.mesh_facenum[model.geom_dataid[g]]) for g in visual)

    monkeypatch.setattr(sim.arm_models, "lighten_visual_meshes", lambda *args: {})
    compile_scene.cache_clear()
    try:
        full = make_arm("pick_cube", arm="so101", cameras=["side_cam"], image_size=128)
    finally:
        compile_scene.cache_clear()  # later tests compile the light scene again
    full_faces = sum(int(full.model.mesh_facenum[full.model.geom_dataid[g]]) for g in visual)
    assert faces < full_faces / 10
    difference = np.abs(light.render("side_cam").astype(np.int16)
                        - full.render("side_cam").astype(np.int16)).sum(-1)
    assert np.mean(difference > 60) < 0.01, "more than 1% of the pixels look different"
