"""Conversions between ComfyUI's IMAGE/MASK tensors and OpenCV-friendly arrays."""
from __future__ import annotations

import numpy as np
import torch


def image_to_uint8(image: torch.Tensor) -> np.ndarray:
    """IMAGE [B,H,W,C] float 0..1 -> uint8 [B,H,W,3] RGB (gray expanded, alpha dropped)."""
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4:
        raise ValueError(f"expected an IMAGE tensor [B,H,W,C], got shape {tuple(image.shape)}")
    channels = image.shape[-1]
    if channels == 1:
        image = image.expand(-1, -1, -1, 3)
    elif channels == 4:
        image = image[..., :3]
    elif channels != 3:
        raise ValueError(f"IMAGE must have 1, 3 or 4 channels, got {channels}")
    array = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
    return np.ascontiguousarray(array)


def frame_to_uint8(image: torch.Tensor, index: int) -> np.ndarray:
    """One frame of an IMAGE batch as uint8 RGB, without converting the whole batch."""
    return image_to_uint8(image[index : index + 1])[0]


def uint8_to_image(frames: np.ndarray) -> torch.Tensor:
    """uint8 [B,H,W,3] or [H,W,3] -> IMAGE float32 [B,H,W,3] 0..1."""
    if frames.ndim == 3:
        frames = frames[None]
    return torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)


def float_to_image(frames: np.ndarray) -> torch.Tensor:
    """float [B,H,W,3] 0..1 -> IMAGE tensor (float32, clamped)."""
    if frames.ndim == 3:
        frames = frames[None]
    return torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).clamp_(0, 1)


def masks_to_tensor(masks: np.ndarray) -> torch.Tensor:
    """float/uint8 [B,H,W] or [H,W] -> MASK float32 0..1."""
    if masks.ndim == 2:
        masks = masks[None]
    tensor = torch.from_numpy(np.ascontiguousarray(masks)).float()
    if masks.dtype == np.uint8:
        tensor = tensor / 255.0
    return tensor.clamp_(0, 1)
