"""One box-centred square framing (face.align.box_square) behind every box-driven crop."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import PACK  # noqa: F401

from faceadapter_suite.face import align, backend_mediapipe
from faceadapter_suite.face.records import invert_affine, transform_points


@pytest.mark.parametrize("bbox", [(10.0, 20.0, 110.0, 80.0), (300.5, 40.0, 340.5, 200.0)])
def test_square_is_centred_on_the_box_and_sized_by_its_longer_side(bbox):
    cx, cy, side = align.box_square(np.array(bbox), 1.5)
    x1, y1, x2, y2 = bbox
    assert (cx, cy) == ((x1 + x2) / 2, (y1 + y2) / 2)
    assert side == pytest.approx(1.5 * max(x2 - x1, y2 - y1))


def test_matrix_puts_the_square_onto_the_whole_crop_and_inverts():
    bbox = np.array([300.5, 40.0, 340.5, 200.0])
    m = align.box_square_matrix(bbox, 2.0, 192)
    cx, cy, side = align.box_square(bbox, 2.0)
    corners = np.array([[cx - side / 2, cy - side / 2], [cx + side / 2, cy + side / 2], [cx, cy]])
    np.testing.assert_allclose(transform_points(corners, m), [[0, 0], [192, 192], [96, 96]], atol=1e-9)
    np.testing.assert_allclose(transform_points(transform_points(corners, m), invert_affine(m)), corners, atol=1e-9)


def test_the_crop_shows_the_square_cut_from_the_frame():
    """At an exact 2x zoom every second crop pixel is a frame pixel of the square, unchanged."""
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), np.uint8), (0, 0), 3)
    bbox = np.array([150.0, 100.0, 210.0, 160.0])  # square side 60 at context 1: an exact 2x zoom
    crop = align.warp_to_crop(frame, align.box_square_matrix(bbox, 1.0, 120), 120)
    np.testing.assert_array_equal(crop[::2, ::2], frame[100:160, 150:210])


def test_mesh_sub_image_window_is_the_square_rounded_and_clipped():
    """(The insightface landmark crop uses box_square_matrix; tests/test_face_insightface.py
    checks where its 106 points land.)"""
    bbox = np.array([400.2, 350.7, 480.9, 450.1])
    cx, cy, side = align.box_square(bbox, backend_mediapipe.MESH_CONTEXT)
    x0, y0, x1, y1 = backend_mediapipe.context_window(bbox, backend_mediapipe.MESH_CONTEXT, (1000, 1000))
    assert (x0, y0, x1, y1) == tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    edge = np.array([50.0, 60.0, 130.0, 160.0])  # square of side 400 around (90, 110)
    assert backend_mediapipe.context_window(edge, 4.0, (300, 200)) == (0, 0, 200, 300), "clipped to the frame"
