"""Exhaustive check behind core/images.frame_to_uint8: OpenCV's one-pass float32 -> uint8 conversion
(``cv2.multiply(x, 255, dtype=CV_8U)``) against the formula ``rint(clip(x * 255, 0, 255))`` for every float32
bit pattern in (-2, 2) (2**31 values; ~30 s). Prints the count of values that differ (0 expected) and exits 1
if any does. Run it after an OpenCV upgrade:

    python scripts/check_uint8_conversion.py
"""
from __future__ import annotations

import sys

import cv2
import numpy as np


def formula(values: np.ndarray) -> np.ndarray:
    scaled = np.multiply(values, np.float32(255.0), dtype=np.float32)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint8)


def main() -> int:
    step, differ, total = 1 << 24, 0, 0
    for sign in (0, 0x80000000):  # positive, then negative values of the same magnitudes
        for start in range(0, 0x40000000, step):  # bit patterns of [0, 2)
            bits = np.arange(start, start + step, dtype=np.uint32) | np.uint32(sign)
            values = np.repeat(bits.view(np.float32).reshape(-1, 1, 1), 3, axis=2)
            ours = cv2.multiply(values, 255.0, dtype=cv2.CV_8U).reshape(values.shape)
            differ += int(np.count_nonzero(ours != formula(values)))
            total += values.size
    print(f"OpenCV {cv2.__version__}: {differ} of {total} values differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
