"""The 70-point landmark image is pixel-identical to the official draw_pts70_batch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faceadapter_suite.models.bfm import add_gaze_points
from faceadapter_suite.spatial import landmark_drawing as ld


@pytest.fixture(scope="module")
def parity(reference_dir):
    return np.load(reference_dir / "parity" / "draw_pts70.npz")


def test_pixel_identical_to_official(parity):
    out = ld.draw_pts70_from_68(parity["pts68"], parity["gaze"], parity["warp_mat256"], int(parity["dst_size"]))
    ref = parity["images_rgb_uint8"]
    assert out.shape == ref.shape and out.dtype == np.uint8
    assert np.array_equal(out, ref), f"{int((out != ref).any(-1).sum())} pixels differ"


def test_torch_inputs_give_the_same_image(parity):
    pts70 = add_gaze_points(torch.from_numpy(parity["pts68"]), torch.from_numpy(parity["gaze"]))
    out = ld.draw_pts70(pts70, parity["warp_mat256"], 512)
    assert np.array_equal(out, parity["images_rgb_uint8"])


def test_truncating_coordinates_would_not_match(parity):
    """Guards the rounding: the official code rounds to nearest, truncation moves dots."""
    pts70 = add_gaze_points(torch.from_numpy(parity["pts68"]), torch.from_numpy(parity["gaze"])).numpy()
    wrong = ld.draw_pts70(np.trunc(pts70), parity["warp_mat256"], 512)
    assert not np.array_equal(wrong, parity["images_rgb_uint8"])


def test_colour_table_equals_matplotlib_rainbow():
    matplotlib = pytest.importorskip("matplotlib")
    expected = (255 * matplotlib.colormaps["rainbow"](np.linspace(0, 1, 70))).astype(int)[:, :3]
    np.testing.assert_array_equal(ld.rainbow_colors(70), expected)
    np.testing.assert_array_equal(ld.POINT_COLORS_RGB, expected[:, ::-1])  # R and B swapped
    for n in (2, 17, 68, 300):
        expected = (255 * matplotlib.colormaps["rainbow"](np.linspace(0, 1, n))).astype(int)[:, :3]
        np.testing.assert_array_equal(ld.rainbow_colors(n), expected)


def test_module_does_not_import_matplotlib():
    import inspect

    assert "import matplotlib" not in inspect.getsource(ld)


def test_rounding_is_half_to_even_like_numpy():
    np.testing.assert_array_equal(ld.round_points(np.array([0.5, 1.5, 2.49, -0.5])), [0, 2, 2, 0])


def test_single_point_lands_where_the_inverse_warp_puts_it():
    pts = np.full((1, 70, 2), -50.0)  # off canvas
    pts[0, 0] = (100, 60)
    warp = np.array([[[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]])  # 512 -> 256 halving
    img = ld.draw_pts70(pts, warp, 512)[0]
    ys, xs = np.nonzero(img.any(-1))
    assert abs(xs.mean() - 200) < 1 and abs(ys.mean() - 120) < 1
    assert tuple(img[120, 200]) == tuple(ld.POINT_COLORS_RGB[0])  # (255, 0, 127)


def test_rejects_mismatched_batch():
    with pytest.raises(ValueError):
        ld.draw_pts70(np.zeros((2, 70, 2)), np.zeros((1, 2, 3)), 512)
