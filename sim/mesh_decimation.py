"""Lighter visual meshes for rendering: vertex clustering of an arm's CAD meshes at load time.

CAD exports carry hundreds of thousands of triangles that a 128-pixel camera cannot resolve and
that a software renderer draws one by one. Visual geoms get a clustered copy of their mesh;
collision geoms keep the original (their convex hulls are unchanged), and bodies with explicit
inertias keep their physics exactly.
"""

from __future__ import annotations

import functools
from pathlib import Path

import mujoco
import numpy as np

from robot_rl.core import HardwareError

VISUAL_GROUP = 2  # MuJoCo's convention, and that of the MJCFs exported by onshape-to-robot
SUFFIX = "_visual"


def read_binary_stl(path: Path) -> np.ndarray:
    """The triangles of a binary STL, m x 3 corners x 3 coordinates (float64)."""
    raw = path.read_bytes()
    count = int(np.frombuffer(raw, np.uint32, 1, 80)[0]) if len(raw) >= 84 else -1
    if count < 0 or len(raw) != 84 + 50 * count:
        raise HardwareError(f"{path}: not a binary STL ({len(raw)} bytes); export the mesh as "
                            "binary STL or convert it")
    records = np.frombuffer(raw, np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)),
                                           ("attr", "<u2")]), count, 84)
    return records["corners"].astype(np.float64)


@functools.lru_cache(maxsize=64)
def clustered_stl(path: Path, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """`cluster` of an STL file's triangles, computed once per process."""
    return cluster(read_binary_stl(path), cell)


def cluster(triangles: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and faces of `triangles` (m x 3 x 3) with every corner in a `cell`-sized cube
    merged into their mean; the triangles that collapse and the duplicates left behind are
    dropped, and each kept triangle keeps its winding."""
    corners = triangles.reshape(-1, 3)
    keys = np.floor(corners / cell).astype(np.int64)
    keys -= keys.min(axis=0)
    span = keys.max(axis=0) + 1
    _, group = np.unique((keys[:, 0] * span[1] + keys[:, 1]) * span[2] + keys[:, 2],
                         return_inverse=True)
    n = int(group.max()) + 1
    merged = np.stack([np.bincount(group, corners[:, i], n) for i in range(3)], 1)
    merged /= np.bincount(group, minlength=n)[:, None]
    tri = group.reshape(-1, 3)
    tri = tri[(tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])]
    _, first = np.unique(np.sort(tri, axis=1), axis=0, return_index=True)
    return merged, tri[np.sort(first)]


def lighten_visual_meshes(spec: mujoco.MjSpec, mesh_dir: Path, cell: float) -> dict[str, int]:
    """Point every visual mesh geom of `spec` at a clustered copy of its mesh (files under
    `mesh_dir`); returns each copied mesh's triangle count."""
    meshes = {m.name: m for m in spec.meshes}
    copies: dict[str, int] = {}
    for geom in spec.geoms:
        if geom.type != mujoco.mjtGeom.mjGEOM_MESH or geom.group != VISUAL_GROUP:
            continue
        name = geom.meshname
        if name not in copies:
            source = meshes[name]
            verts, faces = clustered_stl(mesh_dir / source.file, cell)
            light = spec.add_mesh(name=name + SUFFIX, scale=source.scale,
                                  uservert=verts.ravel().tolist(),
                                  userface=faces.ravel().tolist())
            light.refpos, light.refquat = source.refpos, source.refquat
            copies[name] = len(faces)
        geom.meshname = name + SUFFIX
    return copies
