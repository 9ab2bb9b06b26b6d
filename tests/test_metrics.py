"""Metrics maths and nodes on real photos (mediapipe), identity with the maker's tiny random ArcFace.

What "self similarity = 1" proves with random weights: not that ArcFace recognises people (random
weights cannot), but that the node measures what it says: the same face is detected, aligned and
embedded identically on both sides, through the same crop and network Encode Identity uses, and the
pairing and normalisation are right. The shifted-copy and different-person checks show the score
moves with the input, so the test can fail.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import PACK
from faceadapter_suite.core import comfy_bridge
from faceadapter_suite.core.cache import MODEL_CACHE
from faceadapter_suite.core.errors import FaceAdapterError
from faceadapter_suite.core.images import uint8_to_image
from faceadapter_suite.face.analysis import load_analyzer
from faceadapter_suite.face.sample_photos import load_sample
from faceadapter_suite.generate.identity import encode_identity
from faceadapter_suite.generate.nets import FaceAdapterNets, cached_arcface
from faceadapter_suite.metrics.flicker import landmark_motion, pixel_change
from faceadapter_suite.metrics.geometry import eye_openness, face_geometry, mouth_openness
from faceadapter_suite.metrics.measure import largest_faces
from faceadapter_suite.metrics.report import MetricsReport, table_image

NODES = PACK.NODE_CLASS_MAPPINGS
ARCFACE = "third_party/insightface_glint360k.pth"


@pytest.fixture(scope="module")
def analyzer():
    return load_analyzer("mediapipe")


@pytest.fixture(scope="module")
def photos():
    return {name: load_sample(name) for name in ("astronaut", "grace_hopper", "tom_hanks")}


def image(*frames: np.ndarray) -> torch.Tensor:
    return uint8_to_image(np.stack(frames))


def shifted(rgb: np.ndarray, dx: int, dy: int = 0) -> np.ndarray:
    """The photo moved by whole pixels on a black canvas of the same size (no wrap-around)."""
    out = np.zeros_like(rgb)
    h, w = rgb.shape[:2]
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = rgb[max(-dy, 0):h - max(dy, 0),
                                                                    max(-dx, 0):w - max(dx, 0)]
    return out


# ---------------------------------------------------------------- expression and pose
def test_pose_error_of_a_face_against_itself_is_zero(analyzer, photos):
    for name, rgb in photos.items():
        report, table, pose_err, nme = NODES["FaceAdapterExpressionPoseError"]().measure(image(rgb), image(rgb),
                                                                                         analyzer)
        assert report.missing == () and pose_err == pytest.approx(0, abs=1e-6), name
        assert nme == pytest.approx(0, abs=1e-9) and max(report.rows[0]) < 1e-6, name
        assert table.shape[0] == 1 and table.shape[-1] == 3


def test_pose_error_of_two_different_faces_is_not_zero(analyzer, photos):
    """Tom Hanks (turned, tilted) against Grace Hopper (frontal): measured ~13 deg mean, NME ~0.08 IOD."""
    report, _, pose_err, nme = NODES["FaceAdapterExpressionPoseError"]().measure(
        image(photos["tom_hanks"]), image(photos["grace_hopper"]), analyzer)
    yaw, pitch, roll = report.rows[0][:3]
    assert pose_err > 5.0 and max(yaw, pitch) > 10.0, report.rows
    assert nme > 0.03, nme
    g_tom = face_geometry(largest_faces(analyzer, image(photos["tom_hanks"])).frames[0].faces[0])
    g_grace = face_geometry(largest_faces(analyzer, image(photos["grace_hopper"])).frames[0].faces[0])
    assert abs(g_tom.yaw - g_grace.yaw) == pytest.approx(yaw, abs=1e-9)


def test_pose_is_kept_under_a_shift_and_read_from_the_mesh(analyzer, photos):
    """Moving the photo does not change pose or expression (tolerance: mediapipe's own re-detection noise)."""
    rgb = photos["astronaut"]
    report, _, pose_err, nme = NODES["FaceAdapterExpressionPoseError"]().measure(
        image(shifted(rgb, 17, 9)), image(rgb), analyzer)
    assert pose_err < 1.5 and nme < 0.02, report.rows


def test_openness_measures_follow_the_points():
    """Mouth and eye openness on the canonical face, then with the mouth opened and the eyes shut."""
    from faceadapter_suite.spatial.mesh_topology import canonical_points70

    pts = np.array(canonical_points70())
    mouth, eyes = mouth_openness(pts), eye_openness(pts)
    opened = pts.copy()
    opened[[65, 66, 67], 1] += 0.3  # lower inner lip down by 0.3 IOD
    assert mouth_openness(opened) == pytest.approx(mouth + 0.3, abs=0.05)
    shut = pts.copy()
    for eye in ((37, 41), (38, 40), (43, 47), (44, 46)):
        shut[list(eye)] = pts[list(eye)].mean(axis=0)  # upper and lower lid meet
    assert eyes > 0.1 and eye_openness(shut) == pytest.approx(0, abs=1e-9)


def test_frames_without_a_face_are_flagged_not_fatal(analyzer, photos):
    rgb = photos["grace_hopper"]
    report, _, pose_err, _ = NODES["FaceAdapterExpressionPoseError"]().measure(
        image(rgb, np.zeros_like(rgb), rgb), image(rgb), analyzer)
    assert report.missing == (1,) and np.isnan(report.rows[1]).all() and pose_err == pytest.approx(0, abs=1e-6)


# ---------------------------------------------------------------- flicker
def test_static_batch_has_zero_flicker(analyzer, photos):
    frames = image(*[photos["astronaut"]] * 4)
    report, _, change_in, change_out, jitter = NODES["FaceAdapterTemporalFlicker"]().measure(frames, analyzer)
    assert (change_in, change_out, jitter) == (0.0, 0.0, 0.0)
    assert report.summary["landmark_motion_px"] == 0.0 and len(report.rows) == 3 and report.first_frame == 1


def test_flicker_sees_a_moving_face_and_a_flashing_background(analyzer, photos):
    rgb = photos["astronaut"]
    moving = image(*[shifted(rgb, 3 * k) for k in range(5)])  # 3 px per frame, constant speed
    report = NODES["FaceAdapterTemporalFlicker"]().measure(moving, analyzer)[0]
    assert report.summary["landmark_motion_px"] == pytest.approx(3.0, abs=0.6)
    assert report.summary["landmark_jitter_px"] < 1.5 < report.summary["change_in"]
    # the same frame, but the outside of a given mask flashes: only change_out moves
    frames = image(rgb, rgb, rgb).clone()
    mask = torch.zeros(3, rgb.shape[0], rgb.shape[1])
    mask[:, 100:300, 150:350] = 1.0
    frames[1][mask[1] < 0.5] = 0.0
    _, _, change_in, change_out, _ = NODES["FaceAdapterTemporalFlicker"]().measure(frames, analyzer, mask)
    assert change_in == 0.0 and change_out > 50.0


def test_pixel_change_and_jitter_maths():
    frames = torch.zeros(3, 4, 4, 3)
    frames[1] += 10 / 255.0
    masks = np.zeros((3, 4, 4), np.float32)
    masks[:, :2] = 1
    assert pixel_change(frames, masks) == [pytest.approx((10.0, 10.0)), pytest.approx((10.0, 10.0))]
    pts = [np.zeros((2, 2)), np.ones((2, 2)), 2 * np.ones((2, 2)), None]
    motion, jitter = landmark_motion(pts)
    assert motion[:2] == pytest.approx([2 ** 0.5] * 2) and np.isnan(motion[2])
    assert np.isnan(jitter[0]) and jitter[1] == pytest.approx(0.0) and np.isnan(jitter[2])


# ---------------------------------------------------------------- identity
@pytest.fixture(scope="module")
def tiny_models(tiny_models_dir):
    comfy_bridge.set_models_dir(tiny_models_dir)
    yield tiny_models_dir
    comfy_bridge.set_models_dir(None)
    MODEL_CACHE.clear()


def test_identity_of_a_photo_with_itself_is_one(analyzer, photos, tiny_models):
    node = NODES["FaceAdapterIdentitySimilarity"]()
    a, g, t = (image(photos[n]) for n in ("astronaut", "grace_hopper", "tom_hanks"))
    for x in (a, g, t):
        report, table, sim, low = node.measure(x, x, analyzer, ARCFACE)
        assert sim == pytest.approx(1.0, abs=1e-5) and low == pytest.approx(1.0, abs=1e-5), report.rows
    report, _, sim, _ = node.measure(torch.cat([a, a]), a, analyzer, ARCFACE)  # one frame against a batch
    assert len(report.rows) == 2 and sim == pytest.approx(1.0, abs=1e-5)
    shift = node.measure(image(shifted(photos["grace_hopper"], 11, 5)), g, analyzer, ARCFACE)[2]
    others = [node.measure(x, g, analyzer, ARCFACE)[2] for x in (a, t)]
    assert max(others) < shift < 1.0, (others, shift)


def test_identity_uses_the_shared_recognizer_and_encode_identity_numbers(analyzer, photos, tiny_models):
    """The node's embedding is Encode Identity's for the same face, from the one cached network."""
    from faceadapter_suite.nodes import spatial_condition as spatial_nodes

    fa = tiny_models / "faceadapter"
    nets = FaceAdapterNets(fa / "net_id2token.pth", fa / "net_image2token.pth", fa / ARCFACE)
    assert cached_arcface(fa / ARCFACE) is nets.arcface(), "one cache entry for both"
    g = image(photos["grace_hopper"])
    faces = largest_faces(analyzer, g)
    recon = spatial_nodes.FaceAdapterLoad3DReconstructor().load(spatial_nodes.MESH, "x", "y")[0]
    landmarks = spatial_nodes.FaceAdapterProject3DLandmarks().project(recon, g, faces, g, faces, "reenact",
                                                                      "pass_through", 0.81, None)[0]
    encoded = encode_identity(landmarks.sources, nets).normalized_embeddings()[0].numpy()
    from faceadapter_suite.metrics.identity import arcface_embeddings

    ours = arcface_embeddings(g, faces, nets.arcface())[0]
    # Encode Identity aligns from the 512 crop (two resamplings), the metric from the frame (one): near, not equal
    assert float(np.dot(ours, encoded)) > 0.98


def test_identity_without_a_recognizer_names_the_file_and_folder(analyzer, photos, tmp_path):
    comfy_bridge.set_models_dir(tmp_path)  # a mediapipe-only install: no ArcFace anywhere
    try:
        choices = NODES["FaceAdapterIdentitySimilarity"].INPUT_TYPES()["required"]["recognizer"]
        assert choices[1]["default"].startswith("(not installed: insightface_glint360k.pth")
        with pytest.raises(FaceAdapterError) as info:
            NODES["FaceAdapterIdentitySimilarity"]().measure(image(photos["astronaut"]), image(photos["astronaut"]),
                                                             analyzer, choices[1]["default"])
    finally:
        comfy_bridge.set_models_dir(None)
    text = str(info.value)
    assert "needs a face recognition model" in text and ARCFACE in text
    assert str(tmp_path / "faceadapter" / "third_party" / "insightface_glint360k.pth") in text
    with pytest.raises(ValueError, match="carries no recognition embedding"):  # mediapipe computes none
        NODES["FaceAdapterIdentitySimilarity"]().measure(image(photos["astronaut"]), image(photos["astronaut"]),
                                                         analyzer, "analysis embeddings (insightface recognition)")


# ---------------------------------------------------------------- report and grid
def test_report_serialises_and_the_grid_prints_the_numbers(analyzer, photos):
    rgb = photos["astronaut"]
    pose = NODES["FaceAdapterExpressionPoseError"]().measure(image(rgb, rgb), image(rgb), analyzer)[0]
    flicker = NODES["FaceAdapterTemporalFlicker"]().measure(image(rgb, rgb), analyzer)[0]
    doc = json.loads(pose.to_json())
    assert doc["kind"] == "expression_pose" and doc["rows"][0] == [0.0] * 6 and doc["summary"]["nme"] == 0.0
    assert list(pose.column("nme")) == [0.0, 0.0]
    with pytest.raises(KeyError, match="has no column 'x'"):
        pose.column("x")
    mask = torch.ones(2, 64, 64)
    grid = NODES["FaceAdapterBeforeAfterGrid"]().grid(image(rgb, rgb), 128, image(photos["grace_hopper"]),
                                                      image(rgb), mask, pose, flicker)[0]
    plain = NODES["FaceAdapterBeforeAfterGrid"]().grid(image(rgb, rgb), 128, image(photos["grace_hopper"]),
                                                       image(rgb), mask)[0]
    assert grid.shape[0] == 1 and grid.shape[2] >= 4 * 128
    assert grid.shape[1] > plain.shape[1], "the numbers take rows of text"
    assert isinstance(table_image([MetricsReport("x", ("a",), ((1.0,),))]), np.ndarray)
