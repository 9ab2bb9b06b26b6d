"""Licence-clean 3D landmark projector: source identity + target expression and pose -> 70 points.

Face-Adapter's projector (D3DFR + BFM, reference notes section 1.2 item 5) swaps the
identity coefficients of the target for the source's and projects 68 model keypoints plus
two gaze points into the target's 256 aligned crop. This module makes the same 70-point
output from the MediaPipe 478-point meshes of the two faces, with no learned face model:

1. Pose. Each mesh is fitted to the canonical face (``mesh_topology``) by a similarity
   (Umeyama) on skull-fixed points only (forehead, nose, eye corners), which gives each
   face in a pose- and scale-free canonical frame, and the target's pose.
2. Identity / expression split, region by region in the canonical frame. The output starts
   as the source's 70 points; expression is carried over as region-local measurements of
   the target, in inter-ocular (IOD) or eye-width units so that face size does not leak:
   - eyelids and gaze: the target's lid points and iris centre in its eye's frame (corner
     to corner, in eye widths) placed in the source's eye frame: openness, squint and
     gaze from the target; eye position, width and tilt stay the source's;
   - brows: mean height above the eye corners and tilt, in IOD; the brow's shape stays
     the source's;
   - mouth: the inner lip contour and the mouth corners relative to the upper inner lip
     centre (opening, width, smile), placed at the source's upper inner lip; the outer
     lips are the target's lip outline re-scaled to the source's upper and lower lip
     thickness;
   - jaw: the chin and lower jaw follow the lower lip's displacement with weights that
     fade towards the ears (jaw drop);
   Every quantity is "take the target's value", so source == target returns the target
   exactly (up to float rounding).
3. Re-pose the output with the target's similarity, keep x, y (target frame pixels) and
   map them into the target's crop with the given 2x3 frame -> crop matrix.

Known limits (measured on the sample photos; tests/test_projector_mesh.py prints its numbers):
- Expression is read as an absolute state, not relative to each person's neutral face,
  so traits that look like expression travel with it: the target's eyelid curve, mouth
  width and brow height. Lip thickness and everything outside the eyelids, brows, mouth
  and jaw (face outline, nose, eye corners and spacing) stay the source's.
- Region-local edits, no muscle model: cheeks, nose wings and the jaw outline do not
  bulge with a smile; jaw drop is a weighted follow of the lower lip, not a hinge.
- "Same pose" for two different faces means the same similarity onto the canonical
  face's rigid points. Read back from 2D points with a generic face, identity shows up
  as pose (up to ~11 degrees on the sample pairs); against the face's own 3D shape the
  output reads within ~1.2 degrees of the target.
- MediaPipe's mesh itself moves 1-2 % of the IOD on average (up to ~7 % on the jaw)
  between detections of the same face at another scale; the output inherits that.
- Weak perspective like MediaPipe's z (no perspective); the jaw outline is fixed mesh
  vertices, not the silhouette, on turned heads. Past ~50 degrees of yaw the mesh and
  the far eye degrade (its openness in the crop is off by up to 0.25 eye widths).
- The points differ from BFM-projected ones (the ControlNet was trained on BFM points):
  the iBUG mapping is our own (``mesh_topology``), not BFM's keypoints.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..face.records import MEDIAPIPE_478, Face, transform_points
from .mesh_topology import BROWS, EYE_CORNERS, EYES, GAZE, interocular, mesh_to_points70
from .pose import HeadPose, mesh_pose

__all__ = ["MeshProjection", "project_landmarks_mesh", "transfer_expression", "canonical_points", "eye_gaze",
           "with_gaze"]

# Lower-jaw points that follow the lower lip, and how much (1 at the chin, fading to the ears).
JAW_FOLLOW = {3: 0.1, 4: 0.3, 5: 0.55, 6: 0.8, 7: 0.95, 8: 1.0, 9: 0.95, 10: 0.8, 11: 0.55, 12: 0.3, 13: 0.1}
# Inner-lip contour and mouth corners: moved as one shape, relative to the upper inner lip centre.
INNER_MOUTH = tuple(range(60, 68))
MOUTH_ANCHOR = 62
# Outer lip point -> the inner lip point it is measured from (its lip's thickness).
UPPER_LIP = {48: 60, 49: 61, 50: 61, 51: 62, 52: 63, 53: 63, 54: 64}
LOWER_LIP = {55: 65, 56: 65, 57: 66, 58: 67, 59: 67}
THICKNESS_RATIO_LIMITS = (0.5, 2.0)  # guards against a mis-fitted lip on either face
_DOWN = np.array([0.0, 1.0, 0.0])  # canonical y (down the face); eye frames are built around it


@dataclass(frozen=True)
class MeshProjection:
    """The projector's result: the 70 points and the poses that made them."""

    points: np.ndarray  # (70, 2) float32 in the target's crop frame (68 iBUG + 2 gaze)
    points_frame: np.ndarray  # (70, 3) float64 in the target's frame pixels (z like x)
    canonical: np.ndarray  # (70, 3) the output face in the canonical frame
    source_pose: HeadPose
    target_pose: HeadPose


def _mesh(face: Face, role: str) -> np.ndarray:
    lm = face.landmarks
    if lm is None or (face.landmark_format not in (None, MEDIAPIPE_478)):
        raise ValueError(f"the {role} face has no MediaPipe 478-point mesh (landmark format "
                         f"{face.landmark_format!r}); analyse it with the MediaPipe backend")
    lm = np.asarray(lm, np.float64)
    if lm.ndim != 2 or lm.shape[0] < 478 or lm.shape[1] != 3:
        raise ValueError(f"the {role} face's mesh has shape {lm.shape}; the mesh projector needs (478, 3) "
                         "with iris points (MediaPipe refine_landmarks=True) and z")
    return lm


def canonical_points(mesh: np.ndarray) -> tuple[np.ndarray, HeadPose]:
    """A (478, 3) frame-pixel mesh -> its 70 points in the canonical frame, and its pose."""
    pose = mesh_pose(mesh)
    return mesh_to_points70(pose.similarity.invert(mesh)), pose


def _eye_frame(points: np.ndarray, eye: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(origin, axes rows x/y/z, eye width) of an eye: x along the corners (towards the
    image's right), y the canonical down made orthogonal to x, z = x cross y."""
    a, b = points[EYE_CORNERS[eye][0]], points[EYE_CORNERS[eye][1]]
    width = float(np.linalg.norm(b - a))
    x = (b - a) / width
    y = _DOWN - x * (_DOWN @ x)
    y /= np.linalg.norm(y)
    return (a + b) / 2.0, np.stack([x, y, np.cross(x, y)]), width


def _to_local(points: np.ndarray, frame: tuple[np.ndarray, np.ndarray, float], unit: float) -> np.ndarray:
    origin, axes, _ = frame
    return (points - origin) @ axes.T / unit


def _to_world(local: np.ndarray, frame: tuple[np.ndarray, np.ndarray, float], unit: float) -> np.ndarray:
    origin, axes, _ = frame
    return origin + unit * local @ axes


def _lip_thickness(points: np.ndarray, outer: int, inner: int, iod: float) -> float:
    return float(np.linalg.norm(points[outer] - points[inner])) / iod


def transfer_expression(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Source (70, 3) with the target's expression, both in the canonical frame (module doc, step 2)."""
    src = np.asarray(source, np.float64)
    tgt = np.asarray(target, np.float64)
    out = src.copy()
    iod_s, iod_t = interocular(src), interocular(tgt)
    k = iod_s / iod_t  # target IOD units -> source canonical units

    for eye in (0, 1):
        fs, ft = _eye_frame(src, eye), _eye_frame(tgt, eye)
        lids = [i for i in EYES[eye] if i not in EYE_CORNERS[eye]] + [GAZE[eye]]
        out[lids] = _to_world(_to_local(tgt[lids], ft, ft[2]), fs, fs[2])

        brow = list(BROWS[eye])
        ls, lt = _to_local(src[brow], fs, iod_s), _to_local(tgt[brow], ft, iod_t)
        line_s = np.polyfit(ls[:, 0], ls[:, 1], 1)
        line_t = np.polyfit(lt[:, 0], lt[:, 1], 1)
        lift = np.polyval(line_t - line_s, ls[:, 0])  # change of height and tilt, IOD units
        out[brow] = src[brow] + (lift * iod_s)[:, None] * fs[1][1]

    inner = list(INNER_MOUTH)
    out[inner] = src[MOUTH_ANCHOR] + k * (tgt[inner] - tgt[MOUTH_ANCHOR])
    lo, hi = THICKNESS_RATIO_LIMITS
    for lip, (o, i) in ((UPPER_LIP, (51, 62)), (LOWER_LIP, (57, 66))):
        ratio = _lip_thickness(src, o, i, iod_s) / max(_lip_thickness(tgt, o, i, iod_t), 1e-6)
        ratio = float(np.clip(ratio, lo, hi))
        for outer_pt, inner_pt in lip.items():
            scale = 1.0 if outer_pt in (48, 54) else ratio  # corners: no thickness to scale
            out[outer_pt] = out[inner_pt] + scale * k * (tgt[outer_pt] - tgt[inner_pt])

    drop = out[57] - src[57]
    for j, weight in JAW_FOLLOW.items():
        out[j] = src[j] + weight * drop
    return out


def eye_gaze(points: np.ndarray) -> np.ndarray:
    """(2, 3) each iris centre in its own eye's frame (eye widths; x along the corners, y down), the
    quantity :func:`transfer_expression` carries over for gaze. FaceX keeps it as the gaze field."""
    pts = np.asarray(points, np.float64)
    return np.stack([_to_local(pts[GAZE[eye]][None], frame, frame[2])[0]
                     for eye, frame in ((e, _eye_frame(pts, e)) for e in (0, 1))])


def with_gaze(points: np.ndarray, gaze: np.ndarray) -> np.ndarray:
    """A copy of canonical (70, 3) points whose two gaze points are ``gaze`` (see :func:`eye_gaze`)
    placed in the points' own eye frames; nothing else moves."""
    out = np.array(points, np.float64, copy=True)
    gaze = np.asarray(gaze, np.float64)
    for eye in (0, 1):
        frame = _eye_frame(out, eye)
        out[GAZE[eye]] = _to_world(gaze[eye][None], frame, frame[2])[0]
    return out


def source_canonical(source: Face) -> tuple[np.ndarray, HeadPose]:
    """The source's canonical points and pose: computed once per source image, reused per frame."""
    return canonical_points(_mesh(source, "source"))


def project_landmarks_mesh(source: Face, target: Face, matrix: np.ndarray,
                           source_fit: Optional[tuple[np.ndarray, HeadPose]] = None) -> MeshProjection:
    """70 landmarks (68 iBUG + 2 gaze) with the source's identity and the target's expression
    and pose, in the crop that ``matrix`` (2x3, target frame -> crop, e.g. the 256 aligned
    crop) defines. Both faces need MediaPipe 478-point meshes in frame pixels.
    ``source_fit`` is :func:`source_canonical` of ``source`` when the caller already has it."""
    src_c, src_pose = source_fit if source_fit is not None else source_canonical(source)
    tgt_c, tgt_pose = canonical_points(_mesh(target, "target"))
    out_c = transfer_expression(src_c, tgt_c)
    frame = tgt_pose.similarity.apply(out_c)
    m = np.asarray(matrix, np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"the crop matrix must be 2x3 (frame -> crop), got shape {m.shape}")
    crop = transform_points(frame[:, :2], m)
    return MeshProjection(crop.astype(np.float32), frame, out_c, src_pose, tgt_pose)
