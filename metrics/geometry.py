"""Expression and pose of a face read from the pack's 3D path, and the error between two faces.

- Pose: with the mediapipe backend the 478-point mesh carries depth, so the head pose is the
  similarity onto the canonical face's skull-fixed points (``spatial.pose.mesh_pose``, the same
  fit the mesh projector uses); 68-point 2D landmarks (insightface) use the weak-perspective fit
  ``landmarks_pose``. Angles in degrees, the convention of spatial/pose.py.
- The 70 points (68 iBUG + 2 irises) are then taken into the pose-free canonical frame, where
  expression is measured in inter-ocular distances (IOD), so head turn and face size cancel:
  mouth openness = inner-lip gap / IOD, eye openness = mean lid gap / eye width (both eyes).
- NME between a result and its driving face: mean distance of the 68 points in the canonical
  frame (x, y) divided by the driving face's IOD there. A reenactment keeps the source's face
  shape, so identity shape is part of it; a face against itself gives 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..face.records import IBUG_68, MEDIAPIPE_478, Face
from ..spatial.mesh_topology import EYES, interocular, mesh_to_points70
from ..spatial.pose import HeadPose, angle_difference, frontalize, landmarks_pose, mesh_pose

__all__ = ["FaceGeometry", "face_geometry", "geometry_error", "ERROR_COLUMNS", "mouth_openness", "eye_openness"]

UPPER_INNER_LIP, LOWER_INNER_LIP = 62, 66
ERROR_COLUMNS = ("yaw_err", "pitch_err", "roll_err", "mouth_err", "eye_err", "nme")


@dataclass(frozen=True)
class FaceGeometry:
    """One face's pose (degrees) and expression, and its 70 points in the canonical frame."""

    yaw: float
    pitch: float
    roll: float
    mouth_open: float  # inner-lip gap in IOD
    eye_open: float  # mean eyelid gap in eye widths
    canonical: np.ndarray  # (70, 3) pose-free points (x, y used for NME)

    @property
    def angles(self) -> np.ndarray:
        return np.array([self.yaw, self.pitch, self.roll])


def _points70(face: Face) -> tuple[np.ndarray, HeadPose, bool]:
    """The face's 70 points (frame pixels), its pose, and whether the points carry the mesh's depth."""
    marks = None if face.landmarks is None else np.asarray(face.landmarks, np.float64)
    if face.landmark_format == MEDIAPIPE_478 and marks is not None and marks.shape[1] == 3:
        return mesh_to_points70(marks), mesh_pose(marks), True
    if face.landmark_format == IBUG_68 and marks is not None:
        pts = np.zeros((70, 2))
        pts[:68] = marks[:68, :2]
        pts[68:] = (pts[[36, 42]] + pts[[39, 45]]) / 2.0  # no irises: eye-corner midpoints
        return pts, landmarks_pose(pts), False
    raise ValueError(f"FaceAdapter: pose and expression need the mediapipe mesh or 68-point landmarks; this face "
                     f"carries {face.landmark_format or 'no landmarks'} (in Load Face Analysis choose the mediapipe "
                     "backend, or insightface with landmarks '3d68')")


def mouth_openness(canonical: np.ndarray) -> float:
    """Inner-lip gap (upper to lower inner-lip centre) in IOD."""
    gap = canonical[LOWER_INNER_LIP, :2] - canonical[UPPER_INNER_LIP, :2]
    return float(np.linalg.norm(gap) / interocular(canonical[:, :2]))


def eye_openness(canonical: np.ndarray) -> float:
    """Mean of both eyes' lid gaps (points 1-5 and 2-4 of each iBUG eye) over the eye's corner-to-corner width."""
    values = []
    for eye in EYES:
        p = canonical[list(eye), :2]
        gap = (np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / 2.0
        values.append(gap / max(np.linalg.norm(p[3] - p[0]), 1e-9))
    return float(np.mean(values))


def face_geometry(face: Face) -> FaceGeometry:
    """Pose and expression of one detected face (see the module doc for the method)."""
    points, pose, has_depth = _points70(face)
    canonical = pose.similarity.invert(points) if has_depth else frontalize(points, pose)
    return FaceGeometry(pose.yaw, pose.pitch, pose.roll, mouth_openness(canonical), eye_openness(canonical),
                        canonical)


def geometry_error(result: Optional[FaceGeometry], driving: Optional[FaceGeometry]) -> tuple[float, ...]:
    """Per ERROR_COLUMNS: |yaw|, |pitch|, |roll| differences (degrees), |mouth| (IOD), |eye| (eye widths) and
    NME (IOD of the driving face); NaN when either face is missing."""
    if result is None or driving is None:
        return (float("nan"),) * len(ERROR_COLUMNS)
    angles = np.abs(angle_difference(result.angles, driving.angles))
    nme = np.linalg.norm(result.canonical[:68, :2] - driving.canonical[:68, :2], axis=1).mean()
    nme /= interocular(driving.canonical[:, :2])
    return (*(float(a) for a in angles), abs(result.mouth_open - driving.mouth_open),
            abs(result.eye_open - driving.eye_open), float(nme))
