"""Detect Faces' 478-point mesh against mediapipe's own full-image pipeline, on the sample photos.

The reference is the legacy ``FaceMesh(static_image_mode=True, refine_landmarks=True)`` run on the
whole photo. Distances are in % of the inter-ocular distance (iris centres of the reference mesh);
the lip gap (inner lips 13-14 / inter-ocular) shows whether a closed mouth stays closed.

The reference pipeline's short-range detector finds none of t1's small faces. For those the
reference is the same pipeline on sub-images cut around the face at five framings from 2.5x to 6x
the detection box, all but the backend's own 4x; a face's figure is the mean over them. mediapipe's
landmark model itself moves by 1-2.7 % between such framings on these ~45 px eye distances (its ROI
comes from a detector that sees the face at another scale each time), so t1 cannot read much lower.
Run with ``-s`` to see the table.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from test_face_support import detected, mediapipe_available, photo

from faceadapter_suite.face import sample_photos
from faceadapter_suite.face.analysis import box_iou, load_analyzer
from faceadapter_suite.face.backend_mediapipe import MESH_CONTEXT, context_window, landmark_box


def _has_legacy_solutions() -> bool:
    try:
        import mediapipe as mp
    except ImportError:
        return False
    return hasattr(getattr(mp, "solutions", None), "face_mesh")


# The reference is mediapipe's legacy FaceMesh; Tasks-only mediapipe (>= 0.10.30) does not have it.
pytestmark = [mediapipe_available, pytest.mark.skipif(not _has_legacy_solutions(),
                                                      reason="this mediapipe has no legacy FaceMesh")]

IRIS = (468, 473)
INNER_LIPS = (13, 14)
REFERENCE_FRAMINGS = (2.5, 3.0, 3.5, 5.0, 6.0)  # sub-image side / box side, for faces the full-image pass misses
GOAL_PERCENT = 1.5


@pytest.fixture(scope="module")
def reference_mesher():
    import mediapipe as mp

    mesher = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True)
    yield mesher
    mesher.close()


def _meshes(mesher, rgb: np.ndarray, offset=(0, 0)) -> list[np.ndarray]:
    h, w = rgb.shape[:2]
    found = mesher.process(np.ascontiguousarray(rgb)).multi_face_landmarks or []
    return [np.array([[p.x * w + offset[0], p.y * h + offset[1]] for p in m.landmark]) for m in found]


def _on_face(meshes: list[np.ndarray], bbox: np.ndarray) -> np.ndarray | None:
    hits = [m for m in meshes if box_iou(landmark_box(m), bbox)[0, 0] > 0.3]
    return hits[0] if hits else None


def references(mesher, rgb: np.ndarray, bbox: np.ndarray) -> tuple[str, list[np.ndarray]]:
    """('full', [mesh]) from the whole image, else ('sub-image', meshes at REFERENCE_FRAMINGS)."""
    whole = _on_face(_meshes(mesher, rgb), bbox)
    if whole is not None:
        return "full", [whole]
    refs = []
    for framing in REFERENCE_FRAMINGS:
        x0, y0, x1, y1 = context_window(bbox, framing, rgb.shape[:2])
        mesh = _on_face(_meshes(mesher, rgb[y0:y1, x0:x1], (x0, y0)), bbox)
        if mesh is not None:
            refs.append(mesh)
    return "sub-image", refs


def gaps(ours: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Per-point distance in % of the reference's eye distance, and both lip-gap ratios."""
    iod = float(np.linalg.norm(ref[IRIS[0]] - ref[IRIS[1]]))
    dist = np.linalg.norm(np.asarray(ours)[:, :2] - ref, axis=1) / iod * 100.0
    lips = [float(np.linalg.norm(m[INNER_LIPS[0], :2] - m[INNER_LIPS[1], :2]) / iod) for m in (ours, ref)]
    return dist, lips[0], lips[1]


def test_detect_faces_mesh_agrees_with_mediapipe_full_image_pipeline(reference_mesher):
    assert MESH_CONTEXT not in REFERENCE_FRAMINGS, "t1's reference must not be framed like the backend's pass"
    lines, photo_means = [], {}
    for name in sample_photos.SAMPLE_NAMES:
        rgb = photo(name)
        means, worst = [], 0.0
        for face in detected(name).faces:
            assert face.landmarks is not None, f"{name}: a face has no mesh"
            kind, refs = references(reference_mesher, rgb, face.bbox)
            assert refs, f"{name}: mediapipe's pipeline finds no mesh for the face at {face.bbox.round()}"
            rows = [gaps(face.landmarks, ref) for ref in refs]
            face_mean = float(np.mean([dist.mean() for dist, _, _ in rows]))
            face_worst = max(float(dist.max()) for dist, _, _ in rows)
            means.append(face_mean)
            worst = max(worst, face_worst)
            lines.append(f"{name:12s} {kind:9s} x{len(refs)}  mean {face_mean:5.2f} %  worst {face_worst:5.2f} %  "
                         f"lip gap ours {rows[0][1]:.3f} ref {np.mean([r[2] for r in rows]):.3f}")
            if kind == "full":  # the faces the full-image pass finds carry exactly mediapipe's mesh
                assert face_mean < 0.01, f"{name}: the mesh is not mediapipe's full-image one"
        photo_means[name] = float(np.mean(means))
        lines.append(f"{name:12s} photo mean {photo_means[name]:.2f} %, worst point {worst:.2f} %")
    overall = float(np.mean(list(photo_means.values())))
    lines.append(f"mean over the sample photos: {overall:.2f} % of the inter-ocular distance (goal <= {GOAL_PERCENT})")
    print("\n" + "\n".join(lines))
    assert overall <= GOAL_PERCENT, "\n".join(lines)


def test_frames_above_detect_max_side_stay_close_to_the_full_resolution_pipeline(reference_mesher):
    """Frames larger than detect_max_side get the full-frame pass on the detection copy (cheap);
    it must stay within 1 % of the eye distance of mediapipe's full-resolution pass."""
    big = cv2.resize(photo("grace_hopper"), None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)  # 1536x1800
    analyzer = load_analyzer("mediapipe", max_faces=1, detect_max_side=1280)
    try:
        faces = analyzer.detect(big).faces
    finally:
        analyzer.close()
    ref = _on_face(_meshes(reference_mesher, big), faces[0].bbox)
    assert ref is not None
    dist, lip_ours, lip_ref = gaps(faces[0].landmarks, ref)
    assert dist.mean() < 1.0 and abs(lip_ours - lip_ref) < 0.01, (dist.mean(), lip_ours, lip_ref)
