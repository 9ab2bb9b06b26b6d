"""Shared, cached helpers for the face tests: one mediapipe analyzer, one detection per photo.

Cached at module level so every test module reuses them (keeps the suite fast).
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import pytest
import torch

from conftest import PACK  # noqa: F401  (imports the pack as faceadapter_suite)

from faceadapter_suite.core.images import uint8_to_image
from faceadapter_suite.face import analysis, sample_photos
from faceadapter_suite.face.records import FrameFaces

mediapipe_available = pytest.mark.skipif("mediapipe" not in analysis.available_backends(),
                                         reason="mediapipe not installed")


@lru_cache(maxsize=1)
def mp_analyzer():
    return analysis.load_analyzer("mediapipe", min_score=0.5, max_faces=10)


@lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    return sample_photos.load_sample(name)


def photo_image(name: str) -> torch.Tensor:
    return uint8_to_image(photo(name))


@lru_cache(maxsize=None)
def detected(name: str) -> FrameFaces:
    return mp_analyzer().detect(photo(name))


def similarity_video(rgb: np.ndarray, frames: int = 8, shift: float = 6.0, zoom: float = 0.015) -> list[np.ndarray]:
    """Frames of a real photo drifting right/down and slowly zooming (a synthetic camera move)."""
    h, w = rgb.shape[:2]
    out = []
    for i in range(frames):
        s = 1.0 + zoom * i
        m = np.array([[s, 0.0, shift * i - (s - 1.0) * w / 2.0], [0.0, s, shift * 0.5 * i - (s - 1.0) * h / 2.0]])
        out.append(cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return out
