"""Spatial-stage framing: re-detection on the 512 crop (upstream's step 2) as an option, crop_ratio honoured.

Measured here on the sample photos with the mediapipe backend (the numbers the README quotes): the
aligned 256 crop moves by at most ~2.6 px (corner shift, 256-crop pixels) between the frame's mapped
five points and the five points detected again on the 512 crop.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest

from test_face_support import mediapipe_available

from faceadapter_suite.face.analysis import load_analyzer
from faceadapter_suite.face.records import FrameFaces, transform_points
from faceadapter_suite.face.sample_photos import load_sample
from faceadapter_suite.spatial.condition import make_view

pytestmark = mediapipe_available
CORNERS = np.array([[0, 0], [256, 0], [256, 256], [0, 256]], np.float64)
PHOTOS = ("astronaut", "grace_hopper", "t1", "tom_hanks")


def corner_shift(a, b) -> float:
    """Largest displacement (256-crop px) of the aligned crop's corners between two views of a face."""
    from faceadapter_suite.face.records import invert_affine

    frame_corners = transform_points(CORNERS, invert_affine(a.frame_to_256))
    return float(np.abs(transform_points(frame_corners, b.frame_to_256) - CORNERS).max())


@pytest.fixture(scope="module")
def analyzer():
    return load_analyzer("mediapipe")


def test_redetection_on_the_512_crop_moves_the_aligned_crop_a_little(analyzer):
    shifts = []
    for name in PHOTOS:
        rgb = load_sample(name)
        for face in analyzer.detect(rgb).faces:
            mapped = make_view(rgb, face, 0)
            again = make_view(rgb, face, 0, analyzer=analyzer)
            assert again.redetected and not mapped.redetected
            assert np.array_equal(again.crop512, mapped.crop512), "the 512 crop is framed by the frame's box"
            shifts.append(corner_shift(mapped, again))
    assert len(shifts) == 6, "astronaut, grace_hopper, tom_hanks and t1's three faces"
    assert 0.1 < max(shifts) < 4.0 and np.mean(shifts) < 2.0, shifts


def test_redetection_without_a_face_keeps_the_mapped_points_and_says_so(analyzer, caplog):
    class NoFace:
        name, provider = "none", "cpu"

        def detect(self, image_rgb):
            return FrameFaces(image_rgb.shape[0], image_rgb.shape[1])

    rgb = load_sample("astronaut")
    face = analyzer.detect(rgb).faces[0]
    with caplog.at_level(logging.WARNING, logger="FaceAdapter"):
        view = make_view(rgb, face, 3, analyzer=NoFace(), side="target")
    assert not view.redetected
    assert np.allclose(view.kps512, transform_points(face.kps5, view.matrix512))
    assert "target frame 3" in caplog.text


@pytest.mark.parametrize("ratio", [0.6, 1.2])
def test_crop_ratio_frames_the_512_crop_like_crop_faces(analyzer, ratio):
    """The spatial stage's 512 crop follows crop_ratio exactly as Crop Faces' faceadapter_512 does; the
    aligned 256 crop is fitted to the five points inside it, so it barely depends on the framing."""
    import torch

    from faceadapter_suite.face import align
    from faceadapter_suite.face.records import FaceBatch

    rgb = load_sample("grace_hopper")
    face = analyzer.detect(rgb).faces[0]
    view = make_view(rgb, face, 0, crop_ratio=ratio)
    _, crops = align.crop_batch(torch.from_numpy(rgb)[None].float() / 255, FaceBatch(frames=(analyzer.detect(rgb),)),
                                "faceadapter_512", crop_ratio=ratio)
    np.testing.assert_allclose(view.matrix512, crops.crops[0].matrix)
    default = make_view(rgb, face, 0)
    assert view.matrix512[0, 0] == pytest.approx(default.matrix512[0, 0] * 0.81 / ratio)
    assert corner_shift(default, view) < 1e-3  # upstream fits the 256 warp from float32 keypoints
