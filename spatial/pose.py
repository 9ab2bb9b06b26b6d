"""Head pose from face landmarks: similarity fits to the canonical face and Euler angles.

Used by the mesh landmark projector (to move faces in and out of the canonical frame)
and by tests and previews (to read a pose off any 68-point landmark set).

Frames: x right, y down, z away from the camera, as in ``mesh_topology``. A pose is the
similarity that carries canonical-face coordinates into frame pixels,
``frame = scale * R @ canonical + translation``; MediaPipe's z is scaled like x, so a
mesh is fitted in 3D, while 2D landmarks are fitted with a scaled orthographic
(weak-perspective) camera.

Angles (degrees), with R = Rz(roll) @ Ry(-yaw) @ Rx(-pitch):
    yaw > 0   the face turns towards the image's right (the nose tip moves right);
    pitch > 0 the face tilts up (the nose tip moves up the image);
    roll > 0  the face turns clockwise on screen (its first eye, on the image's left, moves up).
Zero is the canonical face: symmetric, eye and mouth corners at one depth.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .mesh_topology import EYE_CORNERS, NOSE, RIGID_MESH, canonical_face_478, canonical_points70

__all__ = ["Similarity", "HeadPose", "umeyama", "rotation_from_angles", "angles_from_rotation", "mesh_pose",
           "landmarks_pose", "frontalize", "POSE_POINTS_68", "angle_difference"]

# 68-layout points a 2D pose fit trusts: nose ridge and base, eye corners (skull-fixed, see RIGID_MESH).
POSE_POINTS_68: tuple[int, ...] = NOSE + tuple(i for pair in EYE_CORNERS for i in pair)


@dataclass(frozen=True)
class Similarity:
    """x -> scale * R @ x + translation for row-vector point arrays."""

    scale: float
    rotation: np.ndarray  # (3, 3), det +1
    translation: np.ndarray  # (3,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(points, np.float64) @ self.rotation.T + self.translation

    def invert(self, points: np.ndarray) -> np.ndarray:
        """The inverse map: frame -> canonical."""
        return (np.asarray(points, np.float64) - self.translation) @ self.rotation / self.scale


@dataclass(frozen=True)
class HeadPose:
    """A face's pose: Euler angles (degrees) and the canonical -> frame similarity."""

    yaw: float
    pitch: float
    roll: float
    similarity: Similarity

    @classmethod
    def from_similarity(cls, similarity: Similarity) -> "HeadPose":
        yaw, pitch, roll = angles_from_rotation(similarity.rotation)
        return cls(yaw, pitch, roll, similarity)

    @property
    def angles(self) -> np.ndarray:
        """(yaw, pitch, roll) in degrees."""
        return np.array([self.yaw, self.pitch, self.roll])


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> Similarity:
    """Least-squares similarity (proper rotation, no reflection) carrying src (N,3) onto dst (N,3).

    Umeyama's closed form: SVD of the cross-covariance, sign-corrected so det R = +1.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 3:
        raise ValueError(f"umeyama needs two matching (N>=3, 3) arrays, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    u, sing, vt = np.linalg.svd(b.T @ a / len(a))
    d = np.array([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ np.diag(d) @ vt
    var = (a**2).sum() / len(a)
    scale = float((sing * d).sum() / var) if with_scale else 1.0
    return Similarity(scale, rotation, mu_d - scale * rotation @ mu_s)


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation matrix for (yaw, pitch, roll) in degrees (module-doc convention)."""
    y, p, r = np.radians([yaw, pitch, roll])
    return _rz(r) @ _ry(-y) @ _rx(-p)


def angles_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a rotation matrix (inverse of ``rotation_from_angles``)."""
    m = np.asarray(rotation, np.float64)
    beta = np.arcsin(np.clip(-m[2, 0], -1.0, 1.0))
    alpha = np.arctan2(m[2, 1], m[2, 2])
    gamma = np.arctan2(m[1, 0], m[0, 0])
    return float(np.degrees(-beta)), float(np.degrees(-alpha)), float(np.degrees(gamma))


def angle_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-angle difference a - b wrapped to [-180, 180)."""
    return (np.asarray(a, np.float64) - np.asarray(b, np.float64) + 180.0) % 360.0 - 180.0


def mesh_pose(mesh: np.ndarray, model: Optional[np.ndarray] = None) -> HeadPose:
    """Pose of a (478, 3) MediaPipe mesh (frame pixels): Umeyama of the canonical rigid
    points onto the mesh's."""
    mesh = np.asarray(mesh, np.float64)
    if mesh.ndim != 2 or mesh.shape[0] < 478 or mesh.shape[1] != 3:
        raise ValueError(f"mesh_pose needs a (478, 3) mesh with z, got shape {mesh.shape}")
    model = canonical_face_478() if model is None else np.asarray(model, np.float64)
    rigid = list(RIGID_MESH)
    return HeadPose.from_similarity(umeyama(model[rigid], mesh[rigid]))


def landmarks_pose(points: np.ndarray, indices: tuple[int, ...] = POSE_POINTS_68,
                   model: Optional[np.ndarray] = None) -> HeadPose:
    """Pose of 2D landmarks in the 68/70 iBUG layout by a weak-perspective fit of the
    canonical face's same points (affine start, then Gauss-Newton on rotation, scale, shift).

    2D only pins the rotation through the canonical face's depth, so a face whose nose
    or eye depth differs from the canonical one reads a few degrees off; differences
    between two faces of the same identity largely cancel. The similarity's z shift is 0.
    """
    from scipy.optimize import least_squares
    from scipy.spatial.transform import Rotation

    pts = np.asarray(points, np.float64)[list(indices), :2]
    ref = (canonical_points70() if model is None else np.asarray(model, np.float64))[list(indices)]
    mu_p, mu_r = pts.mean(axis=0), ref.mean(axis=0)
    affine = np.linalg.lstsq(ref - mu_r, pts - mu_p, rcond=None)[0].T  # (2, 3)
    u, sing, vt = np.linalg.svd(affine, full_matrices=False)
    rows = u @ vt
    start = Rotation.from_matrix(np.vstack([rows, np.cross(rows[0], rows[1])]))

    def residual(params: np.ndarray) -> np.ndarray:
        rot = Rotation.from_rotvec(params[:3]).as_matrix()
        return (np.exp(params[3]) * (ref @ rot.T)[:, :2] + params[4:6] - pts).ravel()

    x0 = np.concatenate([start.as_rotvec(), [np.log(sing.mean())], mu_p - sing.mean() * (rows @ mu_r)])
    fit = least_squares(residual, x0, method="lm")
    rotation = Rotation.from_rotvec(fit.x[:3]).as_matrix()
    return HeadPose.from_similarity(Similarity(float(np.exp(fit.x[3])), rotation, np.append(fit.x[4:6], 0.0)))


def frontalize(points: np.ndarray, pose: HeadPose, depth: Optional[np.ndarray] = None) -> np.ndarray:
    """2D landmarks (N, 2) -> (N, 3) canonical-frame points, undoing a weak-perspective pose.

    2D loses depth, so each point takes its canonical z from ``depth`` (default: the
    canonical face's 70 points) and its x, y are solved exactly from the camera's two
    rows. For previews and pose-free shape measurements; errors grow with yaw/pitch
    when the face's real depth differs from ``depth``.
    """
    pts = np.asarray(points, np.float64)[:, :2]
    z = (canonical_points70()[: len(pts), 2] if depth is None else np.asarray(depth, np.float64)).reshape(-1)
    sim = pose.similarity
    rows = sim.scale * sim.rotation[:2]  # (2, 3) camera rows
    rhs = pts - sim.translation[:2] - z[:, None] * rows[:, 2]
    xy = np.linalg.solve(rows[:, :2], rhs.T).T
    return np.column_stack([xy, z])
