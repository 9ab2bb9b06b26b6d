"""Preview pictures for the spatial stage (what users look at in ComfyUI)."""
from __future__ import annotations

import numpy as np

MASK_TINT = np.array([255, 64, 160], dtype=np.float32)


def landmark_overlay(crops: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """Landmark dots over a dimmed crop: (B,H,W,3) uint8 each -> uint8."""
    dots = drawn.max(axis=-1, keepdims=True) > 0
    dimmed = (crops.astype(np.float32) * 0.6).astype(np.uint8)
    return np.where(dots, drawn, dimmed)


def mask_overlay(crops: np.ndarray, masks: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Tint the masked region of each crop: (B,H,W,3) uint8 + (B,H,W) 0..1 -> uint8."""
    weight = np.clip(masks, 0.0, 1.0)[..., None].astype(np.float32) * alpha
    out = crops.astype(np.float32) * (1.0 - weight) + MASK_TINT * weight
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
