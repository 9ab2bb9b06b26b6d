"""Face-analysis backends behind one interface (records.FaceAnalyzer) and the batch loop.

Backends are imported lazily: the node module must import even when neither
mediapipe nor onnxruntime is installed, and the loader lists only the backends
whose package is importable.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import Any, Callable, Optional

import numpy as np
import torch

from ..core.images import frame_to_uint8
from .records import Face, FaceAnalyzer, FaceBatch, FrameFaces

log = logging.getLogger("FaceAdapter")

# backend name -> (package that must be importable, module in face/, class name)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "mediapipe": ("mediapipe", "backend_mediapipe", "MediaPipeAnalyzer"),
    "insightface": ("onnxruntime", "backend_insightface", "InsightFaceAnalyzer"),
}


def available_backends() -> list[str]:
    """Backends whose package can be imported here (the loader node's dropdown)."""
    return [name for name, (package, _, _) in BACKENDS.items() if importlib.util.find_spec(package) is not None]


def load_analyzer(backend: str, **options: Any) -> FaceAnalyzer:
    """Construct a backend by name; options go to its constructor."""
    try:
        package, module_name, class_name = BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown face-analysis backend {backend!r}; choose one of {', '.join(BACKENDS)}") from None
    if importlib.util.find_spec(package) is None:
        raise ImportError(f"the {backend} backend needs the '{package}' package (pip install {package})")
    module = importlib.import_module(f".{module_name}", __package__)
    analyzer = getattr(module, class_name)(**options)
    log.info("FaceAdapter: face analysis '%s' ready (%s)", backend, describe(analyzer))
    return analyzer


def describe(analyzer: FaceAnalyzer) -> str:
    """One line for the log and the loader's info output: backend, what ran it, models."""
    custom = getattr(analyzer, "describe", None)
    return custom() if callable(custom) else f"{analyzer.name} on {analyzer.provider}"


def detect_batch(analyzer: FaceAnalyzer, image: torch.Tensor,
                 per_frame: Optional[Callable[[int, FrameFaces], FrameFaces]] = None,
                 step: Optional[Callable[[], None]] = None) -> FaceBatch:
    """Detect faces in every frame of an IMAGE batch, one frame in memory at a time.

    ``per_frame`` (e.g. a tracker's update) sees each frame's result in order;
    ``step`` runs after each frame (progress bar, interrupt check).
    """
    if image.ndim == 3:
        image = image.unsqueeze(0)
    frames: list[FrameFaces] = []
    for i in range(image.shape[0]):
        found = analyzer.detect(frame_to_uint8(image, i))
        if per_frame is not None:
            found = per_frame(i, found)
        frames.append(found)
        if step is not None:
            step()
    return FaceBatch(frames=tuple(frames), backend=analyzer.name)


# ---------------------------------------------------------------- box helpers shared by backends and tracking
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between boxes a (N, 4) and b (M, 4), x1 y1 x2 y2."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression; indices kept, best score first."""
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    keep: list[int] = []
    boxes = np.asarray(boxes, np.float64)
    while order:
        best = order.pop(0)
        keep.append(int(best))
        if order:
            ious = box_iou(boxes[best], boxes[order])[0]
            order = [o for o, iou in zip(order, ious) if iou <= iou_threshold]
    return keep


MIN_FACE_SIZE = 16.0  # px: smaller boxes cannot be aligned or cropped meaningfully


def strongest(faces: list[Face], max_faces: int, min_size: float = MIN_FACE_SIZE) -> tuple[Face, ...]:
    """Faces by descending score, at most ``max_faces`` (0 = all), none narrower than ``min_size`` px."""
    faces = sorted((f for f in faces if float(f.bbox[2] - f.bbox[0]) >= min_size), key=lambda f: -f.score)
    return tuple(faces[:max_faces] if max_faces > 0 else faces)
