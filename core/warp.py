"""Bilinear affine warp that reproduces OpenCV 4.x ``cv2.warpAffine`` bit for bit.

Why: upstream Face-Adapter only runs on OpenCV 4.x, and the stage-1 images (landmark
drawing, crops) must match it exactly, but ``cv2.warpAffine``'s uint8 bilinear output
changed in OpenCV 5.x (4.11 and 4.12 still give 4.10's values; 5.0 and 5.1 do not). Users
run whatever OpenCV their ComfyUI env has, so the pack does the maths itself.

The OpenCV 4.x algorithm for ``INTER_LINEAR`` + ``BORDER_CONSTANT``, re-derived here:

* A forward matrix is inverted in float64 (``WARP_INVERSE_MAP`` skips that), so each
  destination pixel (x, y) samples the source at ``(M00 x + M01 y + M02, M10 x + ...)``.
* Coordinates are fixed point with ``AB_BITS = 10`` fractional bits: per column
  ``round(M00 x * 1024)``, per row ``round((M01 y + M02) * 1024)`` (round half to even,
  like ``cvRound``), summed as int32 plus half a table step (16), then shifted right by
  5 to ``INTER_BITS = 5`` fractional bits (1/32 pixel). The integer part is the top-left
  tap; the 5-bit fractions ``fx, fy`` pick one of 32x32 weight sets.
* uint8: weights are ``(32-fy)(32-fx)``, ``(32-fy)fx``, ``fy(32-fx)``, ``fy fx`` times 32,
  i.e. bilinear weights scaled to ``INTER_REMAP_COEF_SCALE = 32768``; they sum to exactly
  32768. The output is ``(sum(tap * weight) + 16384) >> 15`` in integer arithmetic.
  (The table is int16, which cannot hold the all-in-one weight 32768 at fx = fy = 0; whether
  that entry ends up 32767 or 32768, ``(p*32767 + 16384) >> 15 == p`` for 8-bit ``p``, so a
  uint8 result cannot depend on it. The float path has no such limit.)
* float32: the same table as float32 (every entry is exact), products and sums in
  float32 in the order ``((t00 w00 + t01 w01) + t10 w10) + t11 w11``.
* Taps outside the source read the border value; a pixel whose four taps are all
  outside is the border value itself.

OpenCV processes the destination in blocks, but every pixel's coordinates are computed
from absolute (x, y), so blocks do not change any value and are not reproduced.

Fast path: the fixed-point coordinates above are exactly what ``cv2.remap`` takes as a CV_16SC2 tap
map plus a CV_16UC1 table index (``fy * 32 + fx``), and its bilinear kernel applies the same weight
table. So the coordinates are computed here and the sampling is handed to cv2.remap (a 512 crop of a
float frame: ~11 ms -> ~2 ms on one core). That it gives the numpy path's values bit for bit is not
assumed: on first use each image dtype is checked against the numpy path on a probe warp (fractions,
borders, partly outside), and an OpenCV that differs keeps the numpy path (logged once).
tests/test_warp_exact.py runs the OpenCV 4.10 fixture through both paths.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from typing import Sequence

import numpy as np

log = logging.getLogger("FaceAdapter")

__all__ = ["warp_affine", "invert_affine"]

AB_BITS = 10
AB_SCALE = 1 << AB_BITS
INTER_BITS = 5
INTER_TAB_SIZE = 1 << INTER_BITS
ROUND_DELTA = AB_SCALE // INTER_TAB_SIZE // 2  # 16: rounds to the nearest 1/32 pixel
COEF_BITS = 15
COEF_SCALE = 1 << COEF_BITS
_PAD = 2  # source padding so clipped tap positions always land on border values


def _float_weight_table() -> np.ndarray:
    """(1024, 4) float32 bilinear weights indexed by ``fy * 32 + fx``: (1-y)(1-x), (1-y)x, y(1-x), yx, all exact."""
    f = np.arange(INTER_TAB_SIZE, dtype=np.float64)
    fy, fx = (g.ravel() for g in np.meshgrid(f, f, indexing="ij"))
    parts = np.stack([(32 - fy) * (32 - fx), (32 - fy) * fx, fy * (32 - fx), fy * fx], axis=1)
    return (parts / (INTER_TAB_SIZE * INTER_TAB_SIZE)).astype(np.float32)


_FTAB = _float_weight_table()


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix, computed in float64 with OpenCV 4.x's operation order."""
    m = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    m00, m01, m02 = (float(v) for v in m[0])
    m10, m11, m12 = (float(v) for v in m[1])
    det = m00 * m11 - m01 * m10
    d = 1.0 / det if det != 0 else 0.0
    a00, a11 = m11 * d, m00 * d
    a01, a10 = m01 * -d, m10 * -d
    b0 = -a00 * m02 - a01 * m12
    b1 = -a10 * m02 - a11 * m12
    return np.array([[a00, a01, b0], [a10, a11, b1]], dtype=np.float64)


def _round_to_int32(values: np.ndarray) -> np.ndarray:
    """``cvRound`` on x86: half to even; out of int32 range gives INT_MIN (SSE2 'indefinite')."""
    r = np.rint(values)
    r[~((r >= -2.0**31) & (r <= 2.0**31 - 1))] = -2.0**31
    return r.astype(np.int32)


def _source_coords(m: np.ndarray, width: int, height: int, left: int = 0, top: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point source coordinates X, Y (1/32 pixel units, int32) of the destination pixels
    [top, top + height) x [left, left + width), (height, width).

    The top-left tap is ``X >> 5`` and the table fraction ``X & 31``; int32 sums wrap as in C. Every value
    depends on the pixel's absolute (x, y) only, so a window's coordinates are the full grid's, cut.
    """
    xs = np.arange(left, left + width, dtype=np.float64)
    ys = np.arange(top, top + height, dtype=np.float64)
    adelta = _round_to_int32(m[0, 0] * xs * AB_SCALE)
    bdelta = _round_to_int32(m[1, 0] * xs * AB_SCALE)
    x0 = _round_to_int32((m[0, 1] * ys + m[0, 2]) * AB_SCALE) + np.int32(ROUND_DELTA)
    y0 = _round_to_int32((m[1, 1] * ys + m[1, 2]) * AB_SCALE) + np.int32(ROUND_DELTA)
    with np.errstate(over="ignore"):
        x = np.add(x0[:, None], adelta[None, :], dtype=np.int32)
        y = np.add(y0[:, None], bdelta[None, :], dtype=np.int32)
    x >>= AB_BITS - INTER_BITS
    y >>= AB_BITS - INTER_BITS
    return x, y


_SAFE_COORD = 2.0**20  # |source coordinate| below this: fixed point (x 1024) stays far from int32 wrap-around
_REACH = 3.0  # source pixels beyond the image edge a tap pair can reach from, with the fixed point's rounding


def _destination_window(m: np.ndarray, width: int, height: int, src_w: int, src_h: int
                        ) -> tuple[int, int, int, int] | None:
    """x0, y0, x1, y1 of the destination pixels whose taps may read the source; every pixel outside it
    has all four taps outside, so it is the border value. None: no bound worth using (the window is the
    whole output, the matrix is singular, or coordinates are large enough for int32 wrap-around, whose
    pixels OpenCV 4.x samples wherever the wrapped taps land).

    A face crop of a small or off-frame face (a 112 px photo cropped to 512) is mostly border: only the
    window is sampled."""
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], np.float64)
    reached = corners @ m.T
    det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    if det == 0 or not np.all(np.abs(reached) < _SAFE_COORD):
        return None
    # The source rectangle grown by _REACH, mapped to the destination: outside its bounding box a pixel's
    # source point lies more than _REACH pixels off the image (the map is affine, so this is exact).
    lo_x, lo_y, hi_x, hi_y = -_REACH, -_REACH, src_w - 1 + _REACH, src_h - 1 + _REACH
    source = np.array([[lo_x, lo_y, 1], [hi_x, lo_y, 1], [lo_x, hi_y, 1], [hi_x, hi_y, 1]], np.float64)
    dest = source @ invert_affine(m).T
    x0, y0 = (max(0, int(np.floor(v)) - 1) for v in dest.min(axis=0))
    x1, y1 = min(width, int(np.ceil(dest[:, 0].max())) + 2), min(height, int(np.ceil(dest[:, 1].max())) + 2)
    if (x0, y0, x1, y1) == (0, 0, width, height):
        return None
    return (x0, y0, max(x0, x1), max(y0, y1))


def _tap_window(tap: np.ndarray, n: int) -> tuple[int, int]:
    """[lo, hi) of source rows/columns that any tap ``tap`` or ``tap + 1`` reads inside [0, n)."""
    lo, hi = max(int(tap.min()), 0), min(int(tap.max()) + 2, n)
    return lo, max(hi, lo)


def _padded_index(tap: np.ndarray, lo: int, n: int) -> np.ndarray:
    """Tap position in the window [lo, lo + n) padded by 2, clipped to [-2, n] before the shift.

    Clipping keeps both taps of an outside pixel on border values and leaves every tap that
    touches the window where it is.
    """
    return np.clip(tap - lo, -_PAD, n) + _PAD


def _border_array(border_value: float | Sequence[float], channels: int, dtype: np.dtype) -> np.ndarray:
    """Per-channel border value, saturated to the image dtype like OpenCV's ``scalarToRawData``."""
    vals = np.atleast_1d(np.asarray(border_value, dtype=np.float64)).ravel()
    if vals.size == 1:
        vals = np.repeat(vals, channels)
    elif vals.size < channels:
        vals = np.concatenate([vals, np.zeros(channels - vals.size)])  # cv::Scalar pads with 0
    vals = vals[:channels]
    if dtype == np.uint8:
        return np.clip(np.rint(vals), 0, 255).astype(np.uint8)
    return vals.astype(dtype)


def warp_affine(src: np.ndarray, matrix: np.ndarray, size: tuple[int, int], inverse_map: bool = False,
                border_value: float | Sequence[float] = 0, fast: bool = True,
                out: np.ndarray | None = None) -> np.ndarray:
    """``cv2.warpAffine(src, matrix, size, flags=INTER_LINEAR [| WARP_INVERSE_MAP], borderMode=BORDER_CONSTANT,
    borderValue=border_value)`` as OpenCV 4.x computes it.

    ``src``: (H, W) or (H, W, C) uint8 (bit exact) or float32. ``size``: (width, height) like cv2's dsize.
    ``matrix``: 2x3 forward map src -> dst, or dst -> src when ``inverse_map``.
    ``fast``: sample with cv2.remap where it was checked to give the same values (module doc).
    ``out``: an array of the result's shape and dtype to write into (cv2.remap fills it directly, saving a copy).
    """
    src = np.asarray(src)
    if src.dtype not in (np.uint8, np.float32):
        raise TypeError(f"warp_affine supports uint8 and float32 images, got {src.dtype}")
    if src.ndim not in (2, 3) or src.shape[0] == 0 or src.shape[1] == 0:
        raise ValueError(f"warp_affine expects a non-empty (H, W) or (H, W, C) image, got shape {src.shape}")
    width, height = (int(v) for v in size)
    if width <= 0 or height <= 0:
        raise ValueError(f"warp_affine output size must be positive (width, height), got {size}")
    m = np.asarray(matrix, dtype=np.float64)
    if m.size != 6:
        raise ValueError(f"warp_affine expects a 2x3 matrix, got shape {m.shape}")
    m = m.reshape(2, 3) if inverse_map else invert_affine(m)

    squeeze = src.ndim == 2
    img = src[:, :, None] if squeeze else src
    c = img.shape[2]
    border = _border_array(border_value, c, img.dtype)

    fits = c <= 4 and max(*img.shape[:2], width, height) < 2**15 - 1  # cv2.remap's limits
    use_remap = fast and fits and remap_is_exact(img.dtype.str)

    def sample(left: int, top: int, w: int, h: int, dst: np.ndarray | None = None) -> np.ndarray:
        x, y = _source_coords(m, w, h, left, top)
        return _remap(src, x, y, border, dst) if use_remap else _sample_numpy(img, x, y, border, w, h, squeeze)

    window = _destination_window(m, width, height, img.shape[1], img.shape[0])
    if window is None:
        result = sample(0, 0, width, height, out)
    else:
        x0, y0, x1, y1 = window
        shape = (height, width) + src.shape[2:]
        result = out if out is not None and out.shape == shape and out.dtype == src.dtype else np.empty(shape, src.dtype)
        result[...] = border[0] if squeeze else border
        if x1 > x0 and y1 > y0:
            result[y0:y1, x0:x1] = sample(x0, y0, x1 - x0, y1 - y0)
    if out is not None and result is not out:
        out[...] = result
        return out
    return result


def _remap(src: np.ndarray, x: np.ndarray, y: np.ndarray, border: np.ndarray,
           out: np.ndarray | None = None) -> np.ndarray:
    """cv2.remap with the fixed-point coordinates: int16 taps and the 5+5-bit table index (x, y are consumed).

    A C-contiguous ``out`` of the result's shape and dtype is written in place."""
    import cv2

    height, width = x.shape
    table = (y & (INTER_TAB_SIZE - 1)).astype(np.uint16)
    table <<= INTER_BITS
    table |= (x & (INTER_TAB_SIZE - 1)).astype(np.uint16)
    taps = np.empty((height, width, 2), np.int16)
    for k, coord in enumerate((x, y)):
        coord >>= INTER_BITS
        if coord.min() < -(2**15) or coord.max() > 2**15 - 1:  # saturated as OpenCV stores them
            np.clip(coord, -(2**15), 2**15 - 1, out=coord)
        taps[..., k] = coord
    value = tuple(float(v) for v in border) + (0.0,) * (4 - len(border))
    shape = (height, width) + src.shape[2:]
    dst = out if out is not None and out.shape == shape and out.dtype == src.dtype and out.flags.c_contiguous else None
    result = cv2.remap(np.ascontiguousarray(src), taps, table, cv2.INTER_LINEAR, dst=dst,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=value)
    return result if result.shape == shape else result.reshape(shape)


@lru_cache(maxsize=None)
def remap_is_exact(dtype: str) -> bool:
    """Does this OpenCV's remap give the numpy path's values for ``dtype`` (probe warps, 1 and 3 channels)?"""
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    rng = np.random.default_rng(0)
    matrices = (np.array([[0.83, -0.31, 7.37], [0.29, 0.91, -5.61]]), np.array([[1.7, 0.2, -20.3], [-0.1, 1.6, -9.9]]))
    for shape in ((37, 53, 3), (41, 29)):
        src = rng.integers(0, 256, shape).astype(np.uint8)
        if np.dtype(dtype) == np.float32:
            src = src.astype(np.float32) / 255.0
        for m in matrices:
            for border in (0, 17):
                slow = warp_affine(src, m, (61, 47), border_value=border, fast=False)
                try:
                    quick = warp_affine_remap_probe(src, m, (61, 47), border)
                except Exception as exc:  # an OpenCV without this remap mode: keep the numpy path
                    log.info("FaceAdapter: cv2.remap fast path off (%s): %s", dtype, exc)
                    return False
                if quick.shape != slow.shape or not np.array_equal(quick, slow):
                    log.info("FaceAdapter: cv2.remap differs from OpenCV 4.x's warp on %s; using the numpy warp", dtype)
                    return False
    return True


def warp_affine_remap_probe(src: np.ndarray, matrix: np.ndarray, size: tuple[int, int], border: float,
                            inverse_map: bool = False) -> np.ndarray:
    """The remap path alone (for the probe and the tests)."""
    img = src[:, :, None] if src.ndim == 2 else src
    m = np.asarray(matrix, np.float64).reshape(2, 3)
    x, y = _source_coords(m if inverse_map else invert_affine(m), *size)
    return _remap(src, x, y, _border_array(border, img.shape[2], img.dtype))


def _sample_numpy(img: np.ndarray, x: np.ndarray, y: np.ndarray, border: np.ndarray, width: int, height: int,
                  squeeze: bool) -> np.ndarray:
    """The reference sampler in numpy (see the module doc)."""
    h, w, c = img.shape
    # integer taps, saturated to int16 as OpenCV stores them
    tap_x = np.clip(x >> INTER_BITS, -(2**15), 2**15 - 1).ravel()
    tap_y = np.clip(y >> INTER_BITS, -(2**15), 2**15 - 1).ravel()
    # only the source window the taps reach is copied (a face crop reads a small part of a frame)
    (x_lo, x_hi), (y_lo, y_hi) = _tap_window(tap_x, w), _tap_window(tap_y, h)
    win = img[y_lo:y_hi, x_lo:x_hi]
    wh, ww = win.shape[:2]

    # channel planes padded by 2 with the border value (planar keeps the per-pixel maths contiguous);
    # uint8 is widened to int16 once here, so the gathered taps are ready for the integer blend
    work_dtype = np.int16 if img.dtype == np.uint8 else np.float32
    padded = np.empty((c, wh + 2 * _PAD, ww + 2 * _PAD), dtype=work_dtype)
    padded[...] = border[:, None, None]
    padded[:, _PAD:_PAD + wh, _PAD:_PAD + ww] = win.transpose(2, 0, 1)
    pw = ww + 2 * _PAD
    planes = padded.reshape(c, -1)

    sx = _padded_index(tap_x, x_lo, ww)
    sy = _padded_index(tap_y, y_lo, wh)
    idx = (sy * pw + sx).astype(np.intp)
    taps = [np.take(planes, idx + off, axis=1) for off in (0, 1, pw, pw + 1)]  # each (C, N)
    x, y = x.ravel(), y.ravel()
    if img.dtype == np.uint8:
        out = _blend_uint8(*taps, x & (INTER_TAB_SIZE - 1), y & (INTER_TAB_SIZE - 1))
    else:
        out = _blend_float32(*taps, (y & (INTER_TAB_SIZE - 1)) * INTER_TAB_SIZE + (x & (INTER_TAB_SIZE - 1)))
        outside = (sx == 0) | (sx == ww + _PAD) | (sy == 0) | (sy == wh + _PAD)
        out[:, outside] = border[:, None]
    out = out.reshape(c, height, width)
    return out[0] if squeeze else np.ascontiguousarray(out.transpose(1, 2, 0))


def _blend_uint8(p00: np.ndarray, p01: np.ndarray, p10: np.ndarray, p11: np.ndarray, fx: np.ndarray,
                 fy: np.ndarray) -> np.ndarray:
    """OpenCV's ``(sum(tap * weight) + 16384) >> 15`` on int16 taps (C, N) with 5-bit fractions (N,).

    With weights ``32 (32-fy)(32-fx)`` etc. the sum equals ``32 v``, ``v = 32 top + fy (bottom - top)``,
    ``top = 32 p00 + fx (p01 - p00)``; so the result is ``(v + 512) >> 10`` exactly. ``top`` and
    ``bottom`` fit int16 (<= 8160), ``v`` needs int32. The taps are overwritten.
    """
    fx16 = fx.astype(np.int16)
    p01 -= p00
    p01 *= fx16
    p00 <<= INTER_BITS
    p00 += p01  # top
    p11 -= p10
    p11 *= fx16
    p10 <<= INTER_BITS
    p10 += p11  # bottom
    p10 -= p00
    v = p10.astype(np.int32)
    v *= fy.astype(np.int32)
    top = p00.astype(np.int32)
    top <<= INTER_BITS
    v += top
    v += 1 << (2 * INTER_BITS - 1)
    v >>= 2 * INTER_BITS
    return v.astype(np.uint8)  # within 0..255: a convex combination of 8-bit values


def _blend_float32(p00: np.ndarray, p01: np.ndarray, p10: np.ndarray, p11: np.ndarray,
                   alpha: np.ndarray) -> np.ndarray:
    """``((p00 w00 + p01 w01) + p10 w10) + p11 w11`` in float32, OpenCV 4.x's order; taps (C, N)."""
    wt = _FTAB[alpha].T  # (4, N)
    out = p00 * wt[0]
    out += p01 * wt[1]
    out += p10 * wt[2]
    out += p11 * wt[3]
    return out
