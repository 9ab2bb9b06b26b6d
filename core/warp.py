"""Bilinear affine warp that reproduces OpenCV 4.x ``cv2.warpAffine`` bit for bit.

Why: upstream Face-Adapter only runs on OpenCV 4.x, and the stage-1 images (landmark
drawing, crops) must match it exactly, but ``cv2.warpAffine``'s uint8 bilinear output
changed in OpenCV 4.11/5.x (coordinates are no longer quantised the same way). Users
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
  (OpenCV stores the weight table as int16, so the all-in-one weight 32768 is held as
  32767; for 8-bit values ``(p*32767 + 16384) >> 15 == p``, so the result is the same.)
* float32: the same table as float32 (every entry is exact), products and sums in
  float32 in the order ``((t00 w00 + t01 w01) + t10 w10) + t11 w11``.
* Taps outside the source read the border value; a pixel whose four taps are all
  outside is the border value itself.

OpenCV processes the destination in blocks, but every pixel's coordinates are computed
from absolute (x, y), so blocks do not change any value and are not reproduced.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["warp_affine", "invert_affine"]

AB_BITS = 10
AB_SCALE = 1 << AB_BITS
INTER_BITS = 5
INTER_TAB_SIZE = 1 << INTER_BITS
ROUND_DELTA = AB_SCALE // INTER_TAB_SIZE // 2  # 16: rounds to the nearest 1/32 pixel
COEF_BITS = 15
COEF_SCALE = 1 << COEF_BITS
_PAD = 2  # source padding so clipped tap positions always land on border values


def _weight_tables() -> tuple[np.ndarray, np.ndarray]:
    """(1024, 4) int32 and float32 bilinear weights indexed by ``fy * 32 + fx``."""
    f = np.arange(INTER_TAB_SIZE, dtype=np.int64)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    fy, fx = fy.ravel(), fx.ravel()
    parts = np.stack([(32 - fy) * (32 - fx), (32 - fy) * fx, fy * (32 - fx), fy * fx], axis=1)
    itab = (parts * (COEF_SCALE // (INTER_TAB_SIZE * INTER_TAB_SIZE))).astype(np.int32)
    # float table: (1 - y)(1 - x) etc. with y, x multiples of 1/32; exact in float32
    ftab = (parts.astype(np.float64) / (INTER_TAB_SIZE * INTER_TAB_SIZE)).astype(np.float32)
    return itab, ftab


_ITAB, _FTAB = _weight_tables()


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
    bad = ~((r >= -2.0**31) & (r <= 2.0**31 - 1))
    r[bad] = -2.0**31
    return r.astype(np.int64)


def _wrap_int32(values: np.ndarray) -> np.ndarray:
    return values.astype(np.int32).astype(np.int64) if values.size and (
        values.max() > 2**31 - 1 or values.min() < -(2**31)) else values


def _source_coords(m: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-left tap (sx, sy) and table index ``fy*32+fx`` for every destination pixel, (H, W)."""
    xs = np.arange(width, dtype=np.float64)
    ys = np.arange(height, dtype=np.float64)
    adelta = _round_to_int32(m[0, 0] * xs * AB_SCALE)
    bdelta = _round_to_int32(m[1, 0] * xs * AB_SCALE)
    x0 = _round_to_int32((m[0, 1] * ys + m[0, 2]) * AB_SCALE) + ROUND_DELTA
    y0 = _round_to_int32((m[1, 1] * ys + m[1, 2]) * AB_SCALE) + ROUND_DELTA
    x = _wrap_int32(x0[:, None] + adelta[None, :]) >> (AB_BITS - INTER_BITS)
    y = _wrap_int32(y0[:, None] + bdelta[None, :]) >> (AB_BITS - INTER_BITS)
    alpha = (y & (INTER_TAB_SIZE - 1)) * INTER_TAB_SIZE + (x & (INTER_TAB_SIZE - 1))
    # OpenCV keeps the integer part as int16 (saturated)
    sx = np.clip(x >> INTER_BITS, -(2**15), 2**15 - 1)
    sy = np.clip(y >> INTER_BITS, -(2**15), 2**15 - 1)
    return sx, sy, alpha


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
                border_value: float | Sequence[float] = 0) -> np.ndarray:
    """``cv2.warpAffine(src, matrix, size, flags=INTER_LINEAR [| WARP_INVERSE_MAP], borderMode=BORDER_CONSTANT,
    borderValue=border_value)`` as OpenCV 4.x computes it.

    ``src``: (H, W) or (H, W, C) uint8 (bit exact) or float32. ``size``: (width, height) like cv2's dsize.
    ``matrix``: 2x3 forward map src -> dst, or dst -> src when ``inverse_map``.
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
    h, w, c = img.shape
    border = _border_array(border_value, c, img.dtype)

    # pad by 2 with the border value; clipping sx to [-2, w] keeps both taps of a fully
    # outside pixel outside, and leaves inside/edge taps where they are
    padded = np.empty((h + 2 * _PAD, w + 2 * _PAD, c), dtype=img.dtype)
    padded[...] = border
    padded[_PAD:_PAD + h, _PAD:_PAD + w] = img
    pw = w + 2 * _PAD
    flat = padded.reshape(-1, c)

    sx, sy, alpha = _source_coords(m, width, height)
    sxc = np.clip(sx, -_PAD, w) + _PAD
    syc = np.clip(sy, -_PAD, h) + _PAD
    idx = (syc * pw + sxc).ravel()
    alpha = alpha.ravel()

    if img.dtype == np.uint8:
        wt = _ITAB[alpha]
        acc = flat[idx].astype(np.int32) * wt[:, 0:1]
        acc += flat[idx + 1] * wt[:, 1:2]
        acc += flat[idx + pw] * wt[:, 2:3]
        acc += flat[idx + pw + 1] * wt[:, 3:4]
        acc += COEF_SCALE // 2
        acc >>= COEF_BITS
        out = acc.astype(np.uint8)  # already within 0..255: weights are >= 0 and sum to 32768
    else:
        wt = _FTAB[alpha]
        out = flat[idx] * wt[:, 0:1]
        out += flat[idx + 1] * wt[:, 1:2]
        out += flat[idx + pw] * wt[:, 2:3]
        out += flat[idx + pw + 1] * wt[:, 3:4]
        outside = ((sx >= w) | (sx + 1 < 0) | (sy >= h) | (sy + 1 < 0)).ravel()
        out[outside] = border
    out = out.reshape(height, width, c)
    return out[:, :, 0] if squeeze else out
