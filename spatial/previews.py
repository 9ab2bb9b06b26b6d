"""Preview pictures for the spatial stage (what users look at in ComfyUI).

Integer maths on uint8 frames: previews are shown, not computed on, and float
round trips of whole 512x512 batches cost more than the masks they show.
"""
from __future__ import annotations

import numpy as np

MASK_TINT = np.array([255, 64, 160], dtype=np.uint16)
DIM = 154  # /256 ~ 0.6: how bright the crop stays under the landmark dots


def landmark_overlay(crops: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """Landmark dots over a dimmed crop: (B,H,W,3) uint8 each -> uint8."""
    dots = (drawn[..., 0] | drawn[..., 1] | drawn[..., 2]) > 0
    dimmed = ((crops.astype(np.uint16) * DIM) >> 8).astype(np.uint8)
    dimmed[dots] = drawn[dots]
    return dimmed


def mask_overlay(crops: np.ndarray, masks: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Tint the masked region of each crop: (B,H,W,3) uint8 + (B,H,W) 0..1 -> uint8."""
    weight = np.rint(np.clip(masks, 0.0, 1.0) * (alpha * 256)).astype(np.uint16)[..., None]
    out = crops.astype(np.uint16) * (256 - weight) + MASK_TINT * weight
    return (out >> 8).astype(np.uint8)
