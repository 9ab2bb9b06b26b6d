#!/usr/bin/env python3
"""Rebuild spatial/canonical_face_478.npy from the pack's MediaPipe meshes of the sample photos.

    python scripts/derive_canonical_face.py          # print how far the shipped file is from a rebuild
    python scripts/derive_canonical_face.py --write  # rewrite spatial/canonical_face_478.npy

Offline tooling: the runtime reads the .npy through spatial.mesh_topology and never imports this
module, so mesh_topology no longer imports pose (the old import circle). What the canonical face
is (frame, symmetry, scale) is documented in spatial/mesh_topology.py; tests/test_projector_mesh.py
rebuilds it with derive_canonical_478 and compares.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from standalone import load_pack  # noqa: E402

load_pack()

from faceadapter_suite.face.records import Face  # noqa: E402
from faceadapter_suite.spatial.mesh_topology import (  # noqa: E402
    CANONICAL_FILE, IBUG68_FROM_MESH, RIGID_MESH, eye_centres, interocular, mesh_to_points70)
from faceadapter_suite.spatial.pose import umeyama  # noqa: E402

# Centres of the six t1 faces (frame pixels); each is meshed on a 400 px sub-image around it.
T1_FACES = {"jennifer": (105, 320), "courteney": (330, 200), "david": (520, 320), "matthew": (800, 400),
            "matt": (965, 130), "lisa": (1180, 320)}
WHOLE_PHOTOS = ("astronaut", "grace_hopper", "tom_hanks")
# Canonical-face inputs, in the order canonical_face_478.npy was derived from.
CANONICAL_SOURCES = WHOLE_PHOTOS + tuple(T1_FACES)

# Midline vertices used to find the mesh's symmetry plane.
MIDLINE = (10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 164, 0, 11, 12, 13, 14, 15, 16, 17, 18,
           200, 199, 175, 152)


def _face_near(faces: Sequence[Face], centre=None) -> Face:
    """The meshed face nearest ``centre`` (the largest one when None)."""
    meshed = [f for f in faces if f.landmarks is not None]
    if not meshed:
        raise ValueError("no face with a mesh")
    if centre is None:
        return max(meshed, key=lambda f: f.area)
    return min(meshed, key=lambda f: float(np.linalg.norm(f.center - np.asarray(centre, np.float32))))


def sample_faces(analyzer) -> dict[str, Face]:
    """name -> Face with a (478, 3) mesh in frame pixels: the three single-face photos and t1's six."""
    from faceadapter_suite.face.sample_photos import load_sample

    out = {name: _face_near(analyzer.detect(load_sample(name)).faces) for name in WHOLE_PHOTOS}
    group = load_sample("t1")
    h, w = group.shape[:2]
    for name, (cx, cy) in T1_FACES.items():
        x0, y0 = max(cx - 200, 0), max(cy - 200, 0)
        crop = np.ascontiguousarray(group[y0:min(cy + 200, h), x0:min(cx + 200, w)])
        face = _face_near(analyzer.detect(crop).faces, (cx - x0, cy - y0))
        shift = np.array([x0, y0], np.float32)
        mesh = face.landmarks.copy()
        mesh[:, :2] += shift
        out[name] = Face(bbox=face.bbox + np.tile(shift, 2), score=face.score, kps5=face.kps5 + shift,
                         landmarks=mesh, landmark_format=face.landmark_format)
    return out


def _mirror_permutation(shape: np.ndarray) -> np.ndarray:
    """Vertex i's left/right partner, found by reflecting a roughly frontal mean shape
    through its midline plane and solving the one-to-one nearest assignment."""
    from scipy.optimize import linear_sum_assignment

    mid = shape[list(MIDLINE)]
    centre = mid.mean(axis=0)
    normal = np.linalg.svd(mid - centre)[2][2]
    reflected = shape - 2.0 * ((shape - centre) @ normal)[:, None] * normal[None]
    cost = ((shape[:, None, :] - reflected[None, :, :]) ** 2).sum(-1)
    partner = linear_sum_assignment(cost)[1]
    if not np.array_equal(partner[partner], np.arange(len(shape))):
        raise ValueError("mirror assignment is not symmetric; the input meshes are too asymmetric")
    return partner


def derive_canonical_478(meshes: Sequence[np.ndarray], iterations: int = 10) -> np.ndarray:
    """Build a canonical face (478, 3) from MediaPipe meshes of real faces (see mesh_topology's doc).

    Mirror copies make the mean symmetric whatever the poses of the inputs."""
    shapes = [np.asarray(m, dtype=np.float64)[:478, :3] for m in meshes]
    if not shapes:
        raise ValueError("derive_canonical_478 needs at least one mesh")
    rigid = list(RIGID_MESH)

    def procrustes_mean(items: list[np.ndarray]) -> np.ndarray:
        mean = items[0]
        for _ in range(iterations):
            mean = np.mean([umeyama(x[rigid], mean[rigid]).apply(x) for x in items], axis=0)
            mean = mean / np.linalg.norm(mean[rigid] - mean[rigid].mean(axis=0))
        return mean

    partner = _mirror_permutation(procrustes_mean(shapes))
    flip = np.diag([-1.0, 1.0, 1.0])
    mean = procrustes_mean(shapes + [x[partner] @ flip for x in shapes])

    # Exact symmetry about the fitted midline plane, then axes: x = plane normal, y from the
    # eye-corner midpoint towards the mouth-corner midpoint (within the plane), z = x cross y.
    mid = mean[list(MIDLINE)]
    centre = mid.mean(axis=0)
    normal = np.linalg.svd(mid - centre)[2][2]
    reflected = mean - 2.0 * ((mean - centre) @ normal)[:, None] * normal[None]
    sym = (mean + reflected[partner]) / 2.0
    ibug = mesh_to_points70(sym)
    x_axis = normal if (ibug[45] - ibug[36]) @ normal > 0 else -normal
    down = (ibug[48] + ibug[54]) / 2.0 - eye_centres(ibug).mean(axis=0)
    down -= x_axis * (down @ x_axis)
    y_axis = down / np.linalg.norm(down)
    axes = np.stack([x_axis, y_axis, np.cross(x_axis, y_axis)])
    model = (sym - sym[rigid].mean(axis=0)) @ axes.T
    model /= interocular(mesh_to_points70(model))
    if model[IBUG68_FROM_MESH[30], 2] >= eye_centres(mesh_to_points70(model))[:, 2].mean():
        raise ValueError("derived canonical face has its nose behind its eyes; check the z convention")
    return model.astype(np.float32)


def main() -> int:
    from faceadapter_suite.face.analysis import load_analyzer

    analyzer = load_analyzer("mediapipe", min_score=0.5, max_faces=10)
    faces = sample_faces(analyzer)
    model = derive_canonical_478([faces[n].landmarks for n in CANONICAL_SOURCES])
    shipped = np.load(CANONICAL_FILE)
    dev = np.linalg.norm(model - shipped, axis=1)
    print(f"rebuild vs {CANONICAL_FILE.name}: max {dev.max():.4f} IOD, mean {dev.mean():.4f} IOD")
    if "--write" in sys.argv:
        np.save(CANONICAL_FILE, model)
        print(f"wrote {CANONICAL_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
