"""Temporal flicker of a frame batch: how much pixels and landmarks move from frame to frame.

- Pixel change: mean |frame[t+1] - frame[t]| in 8-bit levels (0..255), inside the face mask and
  outside it, over each consecutive pair (the mask of a pair is the union of both frames' masks).
  A static batch gives 0; shared-noise renders of identical conditions give 0.
- Landmark motion: mean distance a landmark moves per frame (px); landmark jitter: mean distance
  from constant-velocity motion, |p[t+1] - 2 p[t] + p[t-1]| (px per frame), which keeps smooth
  head motion out of the number and counts the shake.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from ..core.images import frame_float

__all__ = ["FLICKER_COLUMNS", "pixel_change", "landmark_motion", "face_mask"]

FLICKER_COLUMNS = ("change_in", "change_out", "landmark_motion_px", "landmark_jitter_px")


def pixel_change(image: torch.Tensor, masks: Optional[np.ndarray]) -> list[tuple[float, float]]:
    """Per consecutive pair (N-1 entries): mean absolute change inside and outside the mask (8-bit levels).

    ``masks`` (N,H,W) in [0,1] (>= 0.5 is inside), or None (everything is outside). A side with no pixel
    gives NaN. One frame pair in memory at a time."""
    out = []
    prev = frame_float(image, 0, writable=False) if image.shape[0] else None
    for t in range(1, image.shape[0]):
        cur = frame_float(image, t, writable=False)
        change = np.abs(cur - prev).mean(axis=2) * 255.0
        inside = np.zeros(change.shape, bool) if masks is None else (masks[t - 1] >= 0.5) | (masks[t] >= 0.5)
        mean_in = float(change[inside].mean()) if inside.any() else float("nan")
        mean_out = float(change[~inside].mean()) if (~inside).any() else float("nan")
        out.append((mean_in, mean_out))
        prev = cur
    return out


def landmark_motion(points: Sequence[Optional[np.ndarray]]) -> tuple[list[float], list[float]]:
    """Per frame t >= 1: mean landmark displacement from t-1 (px) and, for t >= 2, the mean
    second difference (jitter, px). NaN where a face is missing in a frame used."""
    motion, jitter = [], []
    for t in range(1, len(points)):
        a, b = points[t - 1], points[t]
        motion.append(float("nan") if a is None or b is None else float(np.linalg.norm(b - a, axis=1).mean()))
        if t >= 2 and points[t - 2] is not None and a is not None and b is not None:
            jitter.append(float(np.linalg.norm(b - 2 * a + points[t - 2], axis=1).mean()))
        else:
            jitter.append(float("nan"))
    return motion, jitter


def face_mask(height: int, width: int, points: Optional[np.ndarray]) -> np.ndarray:
    """(H,W) float32 mask: the convex hull of a face's landmarks (zeros without a face)."""
    import cv2

    mask = np.zeros((height, width), np.uint8)
    if points is not None and len(points) >= 3:
        hull = cv2.convexHull(np.round(np.asarray(points)[:, :2]).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(np.float32)
