"""Preview pictures: dots replace pixels, masks tint only where they are set."""
from __future__ import annotations

import numpy as np

from faceadapter_suite.spatial.previews import MASK_TINT, landmark_overlay, mask_overlay


def test_landmark_overlay_keeps_dots_and_dims_the_rest():
    crops = np.full((2, 8, 8, 3), 200, np.uint8)
    drawn = np.zeros_like(crops)
    drawn[1, 3, 4] = (0, 0, 9)
    out = landmark_overlay(crops, drawn)
    assert tuple(out[1, 3, 4]) == (0, 0, 9)
    assert out[0].max() == out[0].min() == 120  # 200 * 0.6
    assert crops.max() == 200, "inputs are not modified"


def test_mask_overlay_tints_inside_only():
    crops = np.full((1, 4, 4, 3), 100, np.uint8)
    masks = np.zeros((1, 4, 4), np.float32)
    masks[0, 1, 1] = 1.0
    out = mask_overlay(crops, masks)
    assert np.array_equal(out[0, 0, 0], [100, 100, 100])
    expected = np.rint(100 * (1 - 115 / 256) + MASK_TINT * 115 / 256 - 0.5)
    assert np.abs(out[0, 1, 1].astype(float) - expected).max() <= 1
