"""Mesh landmark projector (spatial/projector_mesh.py) on real photos with real MediaPipe meshes.

Faces: astronaut, grace_hopper, tom_hanks and the six faces of t1 (each detected on a 400 px
sub-image around it: at min_score 0.5 the full frame yields only three of them). Every criterion is
measured on the 70 output points in the target's 256 aligned crop (face/align.py) and
printed (run with -s to see the numbers).
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import PACK, REPO  # noqa: F401  (imports the pack as faceadapter_suite)

from faceadapter_suite.face import analysis
from faceadapter_suite.face.align import aligned_matrix
from faceadapter_suite.face.records import Face
from faceadapter_suite.spatial import mesh_topology as mt
from faceadapter_suite.spatial import pose as ps
from faceadapter_suite.spatial.projector_mesh import canonical_points, project_landmarks_mesh

# The offline canonical-face derivation lives in scripts/ (the runtime never imports it).
_spec = importlib.util.spec_from_file_location("derive_canonical_face", REPO / "scripts" / "derive_canonical_face.py")
derive = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(derive)
CANONICAL_SOURCES = derive.CANONICAL_SOURCES

pytestmark = pytest.mark.skipif("mediapipe" not in analysis.available_backends(), reason="mediapipe not installed")

# source -> target: mouth opening or closing, large pose changes (yaw, pitch, roll), both ways.
PAIRS = [("astronaut", "grace_hopper"), ("grace_hopper", "matthew"), ("lisa", "david"),
         ("jennifer", "astronaut"), ("david", "courteney"), ("matthew", "lisa")]
# Points a pose read-back trusts: upper jaw, brows, nose, eyes (mouth and chin are expression).
UPPER_FACE = tuple(range(0, 3)) + tuple(range(14, 48))
# iBUG left/right partners and midline points.
MIRROR_PAIRS = ([(i, 16 - i) for i in range(8)] + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (31, 35),
                (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46), (48, 54), (49, 53),
                (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67), (68, 69)])
MIDLINE = (8, 27, 28, 29, 30, 33, 51, 57, 62, 66)


@pytest.fixture(scope="session")
def faces() -> dict[str, Face]:
    """name -> Face with a (478, 3) mesh in frame pixels, from the pack's MediaPipe backend."""
    analyzer = analysis.load_analyzer("mediapipe", min_score=0.5, max_faces=10)
    out = derive.sample_faces(analyzer)
    getattr(analyzer, "close", lambda: None)()
    return out


def own70(face: Face) -> np.ndarray:
    """The face's own 70 points (68 + iris centres) in its 256 aligned crop."""
    m = aligned_matrix(face.kps5, 256)
    return mt.mesh_to_points70(face.landmarks)[:, :2] @ m[:, :2].T + m[:, 2]


def project(faces: dict[str, Face], source: str, target: str):
    return project_landmarks_mesh(faces[source], faces[target], aligned_matrix(faces[target].kps5, 256))


def lip_gap(points: np.ndarray) -> float:
    """Inner-lip opening (62 -> 66) in IOD units."""
    return float(np.linalg.norm(points[66] - points[62])) / mt.interocular(points)


def eye_openness(points: np.ndarray) -> np.ndarray:
    """Per eye: mean upper-to-lower lid distance (37-41, 38-40 / 43-47, 44-46) over the eye width."""
    lids = (((37, 41), (38, 40)), ((43, 47), (44, 46)))
    return np.array([np.mean([np.linalg.norm(points[u] - points[d]) for u, d in pairs])
                     / np.linalg.norm(points[a] - points[b]) for pairs, (a, b) in zip(lids, mt.EYE_CORNERS)])


def shape_ratios(points: np.ndarray) -> np.ndarray:
    """Face width (0-16), jaw width (2-14), nose length (27-30), nose width (31-35), over the IOD."""
    iod = mt.interocular(points)
    return np.array([np.linalg.norm(points[a] - points[b]) for a, b in ((0, 16), (2, 14), (27, 30), (31, 35))]) / iod


# ---------------------------------------------------------------- topology, canonical face, pose maths
def test_ibug_mapping_is_mirror_symmetric_and_ordered():
    assert len(mt.IBUG68_FROM_MESH) == 68 and len(set(mt.IBUG68_FROM_MESH)) == 68
    assert max(mt.IBUG68_FROM_MESH) < 468 and set(mt.IRIS_CENTRES) == {468, 473}
    p = mt.canonical_points70()
    flip = np.array([-1.0, 1.0, 1.0])
    worst = max(float(np.abs(p[a] * flip - p[b]).max()) for a, b in MIRROR_PAIRS)
    assert worst < 1e-5, "each iBUG pair maps to mesh mirror partners"
    assert np.abs(p[list(MIDLINE), 0]).max() < 1e-5
    x, y = p[:, 0], p[:, 1]
    assert np.all(np.diff(x[0:9]) > 0) and np.all(np.diff(y[0:9]) > 0), "jaw runs from the first ear to the chin"
    assert np.all(np.diff(x[17:22]) > 0) and np.all(np.diff(y[27:31]) > 0) and np.all(np.diff(x[31:36]) > 0)
    assert x[36] < x[39] < x[42] < x[45]
    assert y[37] < y[41] and y[38] < y[40] and y[43] < y[47] and y[44] < y[46], "upper lids above lower lids"
    assert y[51] < y[62] <= y[66] < y[57] and x[48] < x[60] < x[64] < x[54]
    assert y[21] < y[39] and y[30] < y[33] < y[51], "brows above eyes, nose above mouth"


def test_canonical_face_is_the_documented_frame(faces):
    model = mt.canonical_face_478()
    p = mt.canonical_points70()
    assert model.shape == (478, 3) and not model.flags.writeable
    assert mt.interocular(p) == pytest.approx(1.0, abs=1e-5)
    assert p[30, 2] < p[36, 2] and p[30, 2] < p[39, 2], "nose tip nearer the camera than the eyes (z away)"
    eyes, mouth = mt.eye_centres(p).mean(axis=0), (p[48] + p[54]) / 2
    assert eyes[2] == pytest.approx(mouth[2], abs=1e-5), "zero pitch: eye and mouth corners at one depth"
    # The shipped file is what derive_canonical_478 makes from these faces (loose: mesh updates move it a bit).
    rebuilt = derive.derive_canonical_478([faces[n].landmarks for n in CANONICAL_SOURCES])
    dev = np.linalg.norm(rebuilt - model, axis=1)
    print(f"\ncanonical rebuild: max {dev.max():.4f} IOD, mean {dev.mean():.4f} IOD")
    assert dev.max() < 0.05 and dev.mean() < 0.02


@pytest.mark.parametrize("angles", [(20.0, 0.0, 0.0), (0.0, 15.0, 0.0), (0.0, 0.0, 10.0), (-35.0, -12.0, 25.0)])
def test_pose_angles_round_trip_through_mesh_and_2d_fits(angles):
    rot = ps.rotation_from_angles(*angles)
    assert np.allclose(rot @ rot.T, np.eye(3)) and np.linalg.det(rot) == pytest.approx(1.0)
    np.testing.assert_allclose(ps.angles_from_rotation(rot), angles, atol=1e-9)
    mesh = ps.Similarity(80.0, rot, np.array([300.0, 200.0, 5.0])).apply(mt.canonical_face_478())
    np.testing.assert_allclose(ps.mesh_pose(mesh).angles, angles, atol=1e-6)
    np.testing.assert_allclose(ps.landmarks_pose(mt.mesh_to_points70(mesh)[:, :2]).angles, angles, atol=1e-4)


def test_pose_angle_signs_match_the_documented_convention():
    p = mt.canonical_points70()
    nose = p[30] - mt.eye_centres(p).mean(axis=0)  # nose tip relative to the eyes' midpoint
    first_eye = mt.eye_centres(p)[0] - mt.eye_centres(p)[1]
    assert (ps.rotation_from_angles(20, 0, 0) @ nose)[0] > 0, "yaw > 0: nose towards the image's right"
    assert (ps.rotation_from_angles(0, 15, 0) @ nose)[1] < nose[1], "pitch > 0: nose up the image"
    assert (ps.rotation_from_angles(0, 0, 10) @ first_eye)[1] < 0, "roll > 0: first eye moves up"


def test_frontalize_undoes_a_weak_perspective_pose():
    p = mt.canonical_points70()
    sim = ps.Similarity(50.0, ps.rotation_from_angles(25.0, -10.0, 8.0), np.array([128.0, 140.0, 0.0]))
    flat = sim.apply(p)[:, :2]
    np.testing.assert_allclose(ps.frontalize(flat, ps.landmarks_pose(flat)), p, atol=1e-4)


# ---------------------------------------------------------------- the projector on real faces
def test_self_reenactment_returns_the_target(faces):
    for name, face in faces.items():
        own = own70(face)
        out = project(faces, name, name)
        assert out.points.shape == (70, 2) and out.points.dtype == np.float32
        err = float(np.linalg.norm(out.points - own, axis=1).max()) / mt.interocular(own)
        print(f"\nself {name}: max error {100 * err:.2e} % IOD")
        assert err < 0.01


@pytest.mark.parametrize("source,target", PAIRS)
def test_cross_reenactment_keeps_target_pose_and_mouth_and_source_shape(faces, source, target):
    out = project(faces, source, target)
    tgt, src = own70(faces[target]), own70(faces[source])
    src_c, src_pose = canonical_points(faces[source].landmarks)
    tgt_c, tgt_pose = canonical_points(faces[target].landmarks)

    # Pose read back from the output's 2D points, each set against the 3D shape it should carry
    # (a generic face reads identity as pose: printed for reference, several degrees).
    pose_out = ps.landmarks_pose(out.points, UPPER_FACE, model=src_c).angles
    pose_tgt = ps.landmarks_pose(tgt, UPPER_FACE, model=tgt_c).angles
    pose_err = np.abs(ps.angle_difference(pose_out, pose_tgt))
    generic = np.abs(ps.angle_difference(ps.landmarks_pose(out.points).angles, ps.landmarks_pose(tgt).angles))
    moved = np.abs(ps.angle_difference(src_pose.angles, tgt_pose.angles))

    gap_err = abs(lip_gap(out.points) - lip_gap(tgt))
    eye_err = np.abs(eye_openness(out.points) - eye_openness(tgt))
    # Shape: 3D ratios of the output (pose-free), and 2D ratios after undoing each set's pose.
    ratio3d = shape_ratios(out.points_frame) / shape_ratios(mt.mesh_to_points70(faces[source].landmarks)) - 1
    front = lambda pts: ps.frontalize(pts[:68], ps.landmarks_pose(pts))  # noqa: E731
    ratio2d = shape_ratios(front(out.points)) / shape_ratios(front(src)) - 1
    target_vs_source = shape_ratios(front(tgt)) / shape_ratios(front(src)) - 1
    print(f"\n{source} -> {target}: pose error {np.round(pose_err, 2)} deg (generic face {np.round(generic, 1)}, "
          f"source vs target {np.round(moved, 1)}); lip gap {lip_gap(src):.3f} -> {lip_gap(tgt):.3f}, "
          f"output error {gap_err:.4f}; eye openness {np.round(eye_openness(src), 3)} -> "
          f"{np.round(eye_openness(tgt), 3)}, output error {np.round(eye_err, 3)}; shape ratio errors 3D {np.round(100 * ratio3d, 2)} %, "
          f"2D frontalised {np.round(100 * ratio2d, 1)} % (target differs by {np.round(100 * target_vs_source, 1)} %)")

    assert moved.max() > 3.0, "the pair must differ in pose for the pose check to mean anything"
    assert np.abs(target_vs_source).max() > 0.03, "the pair must differ in shape for the shape check to mean anything"
    assert pose_err.max() < 3.0
    assert gap_err < 0.03
    assert eye_err.max() < 0.05, "eyelid openness (eye widths) follows the target"
    assert np.abs(ratio3d).max() < 0.03
    assert np.abs(ratio2d[:2]).max() < 0.03, "face and jaw width read back from the 2D output"
    gaze = out.points[68:70]
    for eye, g in zip(mt.EYE_CORNERS, gaze):
        a, b = out.points[eye[0]], out.points[eye[1]]
        t = float((g - a) @ (b - a)) / float((b - a) @ (b - a))
        assert 0.0 < t < 1.0, "gaze point between its eye's corners"


def test_mouth_opening_follows_the_target_not_the_source(faces):
    """A closed-mouth source driven by the laughing target opens, and the reverse closes."""
    opened = project(faces, "grace_hopper", "matthew").points
    closed = project(faces, "matthew", "grace_hopper").points
    assert lip_gap(own70(faces["grace_hopper"])) < 0.02 < 0.15 < lip_gap(own70(faces["matthew"]))
    assert lip_gap(opened) > 0.15 and lip_gap(closed) < 0.02


def test_rejects_faces_without_a_478_mesh(faces):
    face = faces["astronaut"]
    m = aligned_matrix(face.kps5, 256)
    bare = Face(bbox=face.bbox, score=face.score, kps5=face.kps5)
    no_iris = Face(bbox=face.bbox, score=face.score, kps5=face.kps5, landmarks=face.landmarks[:468],
                   landmark_format=face.landmark_format)
    for bad in (bare, no_iris):
        with pytest.raises(ValueError, match="mesh"):
            project_landmarks_mesh(bad, face, m)
    with pytest.raises(ValueError, match="2x3"):
        project_landmarks_mesh(face, face, np.eye(3))
