"""core/warp.py reproduces OpenCV 4.10's bilinear cv2.warpAffine bit for bit (upstream runs on OpenCV 4.x).

The expected outputs in tests/data/warp_cv4_10.npz were written by scripts/make_warp_fixture.py under
OpenCV 4.10; the tests never call cv2, so they hold whatever OpenCV the environment has.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceadapter_suite.core.warp import invert_affine, warp_affine

FIXTURE = Path(__file__).resolve().parent / "data" / "warp_cv4_10.npz"


def _cases() -> dict[str, dict]:
    data = np.load(FIXTURE)
    names = sorted(k[: -len("_out")] for k in data.files if k.endswith("_out"))
    return {n: {f: data[f"{n}_{f}"] for f in ("src", "matrix", "size", "inverse", "border", "out")} for n in names}


CASES = _cases()


def _warp(case: dict) -> np.ndarray:
    return warp_affine(case["src"], case["matrix"], tuple(int(v) for v in case["size"]),
                       inverse_map=bool(case["inverse"]), border_value=float(case["border"]))


def test_fixture_covers_the_crop_and_drawing_warps():
    assert str(np.load(FIXTURE)["opencv_version"]).startswith("4.10.")
    names = set(CASES)
    assert {"crop512_from_frame", "down512_to_256", "up256_to_512_inverse", "draw0", "draw1", "draw2"} <= names
    assert sum(n.startswith("small") for n in names) >= 40 and sum(n.startswith("float") for n in names) >= 6
    assert {CASES[n]["src"].ndim for n in names} == {2, 3}
    assert {bool(CASES[n]["inverse"]) for n in names} == {True, False}


@pytest.mark.parametrize("name", [n for n in CASES if not n.startswith("float")])
def test_uint8_bit_exact(name):
    case = CASES[name]
    out = _warp(case)
    ref = case["out"]
    assert out.dtype == np.uint8 and out.shape == ref.shape
    assert np.array_equal(out, ref), f"{name}: {int((out != ref).sum())} values differ from OpenCV 4.10"


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("float")])
def test_float32_bit_exact(name):
    case = CASES[name]
    out = _warp(case)
    assert out.dtype == np.float32 and out.shape == case["out"].shape
    assert np.array_equal(out, case["out"]), f"{name}: max diff {np.abs(out - case['out']).max()}"


def test_landmark_drawing_warp_matches_opencv_4_10():
    """The landmark canvases of the parity fixture land in the 512 crop exactly as OpenCV 4.10 puts them."""
    for b in range(3):
        case = CASES[f"draw{b}"]
        assert case["out"].any() and np.array_equal(_warp(case), case["out"])


def test_forward_map_is_the_inverse_map_of_the_inverted_matrix():
    case = CASES["crop512_from_frame"]
    size = tuple(int(v) for v in case["size"])
    inverted = warp_affine(case["src"], invert_affine(case["matrix"]), size, inverse_map=True)
    assert np.array_equal(inverted, case["out"])


def test_identity_and_integer_shift_copy_pixels():
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(warp_affine(img, np.eye(2, 3), (30, 20)), img)
    shifted = warp_affine(img, np.array([[1.0, 0, 3], [0, 1.0, -2]]), (30, 20), border_value=7)
    assert np.array_equal(shifted[:18, 3:], img[2:, :27])
    assert (shifted[18:] == 7).all() and (shifted[:, :3] == 7).all()


def test_grey_image_keeps_its_shape_and_float_border_fills_outside():
    img = np.ones((10, 10), np.float32)
    out = warp_affine(img, np.array([[1.0, 0, 100], [0, 1.0, 0]]), (12, 8), border_value=2.5)
    assert out.shape == (8, 12) and out.dtype == np.float32 and (out == 2.5).all()


def test_rejects_unsupported_input():
    with pytest.raises(TypeError):
        warp_affine(np.zeros((4, 4), np.uint16), np.eye(2, 3), (4, 4))
    with pytest.raises(ValueError):
        warp_affine(np.zeros((4, 4), np.uint8), np.eye(3), (4, 4))
    with pytest.raises(ValueError):
        warp_affine(np.zeros((4, 4), np.uint8), np.eye(2, 3), (0, 4))


def test_results_do_not_depend_on_the_installed_opencv(monkeypatch):
    """The point of the module. The reference sampler uses no cv2; cv2.remap is only a fast path, taken after a
    probe shows it gives the reference's values: an OpenCV whose remap differed keeps the numpy path."""
    import inspect

    from faceadapter_suite.core import warp

    assert "cv2" not in inspect.getsource(warp._sample_numpy) + inspect.getsource(warp._source_coords)
    real = warp._remap
    monkeypatch.setattr(warp, "_remap", lambda *a: real(*a) + np.asarray(1).astype(a[0].dtype))  # a "different" cv2
    warp.remap_is_exact.cache_clear()
    try:
        assert not warp.remap_is_exact("|u1") and not warp.remap_is_exact("<f4")
        for name in ("crop512_from_frame", "down512_to_256", "float0"):
            if name in CASES:
                assert np.array_equal(_warp(CASES[name]), CASES[name]["out"]), name
    finally:
        warp.remap_is_exact.cache_clear()


@pytest.mark.parametrize("name", sorted(CASES))
def test_cv2_remap_fast_path_gives_the_same_values(name):
    """The fast path (cv2.remap on our fixed-point coordinates) is the OpenCV 4.10 warp too, bit for bit,
    with whatever OpenCV is installed; warp_affine uses it only after its own probe agrees."""
    from faceadapter_suite.core import warp

    case = CASES[name]
    out = warp.warp_affine_remap_probe(case["src"], case["matrix"], tuple(int(v) for v in case["size"]),
                                       float(case["border"]), bool(case["inverse"]))
    assert out.dtype == case["out"].dtype and np.array_equal(out, case["out"]), name
    assert warp.remap_is_exact("|u1") and warp.remap_is_exact("<f4"), "the probe must agree where the fixture does"


def test_fast_and_numpy_paths_agree_on_a_real_face_crop():
    from faceadapter_suite.face.align import faceadapter512_matrix
    from faceadapter_suite.face.sample_photos import load_sample

    frame = load_sample("t1")
    m = faceadapter512_matrix(np.array([300.0, 200.0, 420.0, 360.0]))
    for src in (frame, frame.astype(np.float32) / 255.0):
        fast = warp_affine(src, m, (512, 512))
        assert np.array_equal(fast, warp_affine(src, m, (512, 512), fast=False))


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("shape", [(50, 60, 3), (50, 60), (50, 60, 1), (50, 60, 4)])
def test_out_receives_the_same_values(shape, fast):
    """``out=`` (crops written straight into the output tensor) gives the returned values, in that array."""
    rng = np.random.default_rng(1)
    m = np.array([[1.3, 0.2, -5.0], [-0.1, 1.2, 3.0]])
    for dtype in (np.uint8, np.float32):
        src = rng.integers(0, 256, shape).astype(dtype)
        expected = warp_affine(src, m, (40, 30), fast=False)
        out = np.full_like(expected, 7)
        assert warp_affine(src, m, (40, 30), fast=fast, out=out) is out
        assert np.array_equal(out, expected), (shape, dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("fast", [True, False])
def test_sampling_only_the_window_that_reaches_the_source_changes_no_value(dtype, fast):
    """Outputs that are mostly border (a small photo cropped large, a face at or past the frame edge, warps
    entirely off the source) are sampled in the window whose taps can reach the source; every value must
    equal the whole-grid computation's."""
    from faceadapter_suite.core import warp

    rng = np.random.default_rng(7)
    windowed = 0
    for case in range(60):
        channels = (1, 3, 4)[case % 3]
        src = rng.integers(0, 256, (int(rng.integers(20, 120)), int(rng.integers(20, 120)), channels)).astype(np.uint8)
        if dtype == np.float32:
            src = src.astype(np.float32) / 255
        angle, scale = rng.uniform(-np.pi, np.pi), rng.uniform(0.3, 6.0)
        shift = rng.uniform(-400, 400, 2)
        m = np.array([[scale * np.cos(angle), -scale * np.sin(angle), shift[0]],
                      [scale * np.sin(angle), scale * np.cos(angle), shift[1]]])
        size = (int(rng.integers(40, 300)), int(rng.integers(40, 300)))
        border = float(rng.uniform(0, 1)) if dtype == np.float32 else int(rng.integers(0, 256))
        inverse = warp.invert_affine(m)
        windowed += warp._destination_window(inverse, *size, src.shape[1], src.shape[0]) is not None
        x, y = warp._source_coords(inverse, *size)
        reference = warp._sample_numpy(src, x, y, warp._border_array(border, channels, src.dtype), *size, False)
        got = warp.warp_affine(src, m, size, border_value=border, fast=fast)
        np.testing.assert_array_equal(got, reference, err_msg=f"case {case}")
    assert windowed > 40, "most cases must exercise the window"
