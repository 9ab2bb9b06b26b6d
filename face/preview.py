"""Preview drawing: boxes, face indices / track ids, five points and dense landmarks.

Previews are drawn on a copy scaled to at most ``max_side`` pixels so a batch of
large frames does not double the memory of the workflow.
"""
from __future__ import annotations

from typing import Callable, Optional

import cv2
import numpy as np
import torch

from ..core.images import frame_to_uint8
from .records import FaceBatch, FrameFaces

BOX = (0, 255, 0)
KPS = ((255, 64, 64), (64, 64, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255))  # eyes, nose, mouth corners
LANDMARK = (255, 255, 255)
MISSING = (255, 0, 0)


def draw_faces(rgb: np.ndarray, frame: FrameFaces, missing: bool = False) -> np.ndarray:
    """Draw one frame's faces on a copy of ``rgb`` (uint8 HxWx3, any size)."""
    out = np.ascontiguousarray(rgb.copy())
    h, w = out.shape[:2]
    scale_x, scale_y = w / max(frame.width, 1), h / max(frame.height, 1)
    thick = max(1, round(max(h, w) / 400))
    for i, face in enumerate(frame.faces):
        x1, y1, x2, y2 = face.bbox
        p1 = (round(float(x1) * scale_x), round(float(y1) * scale_y))
        p2 = (round(float(x2) * scale_x), round(float(y2) * scale_y))
        cv2.rectangle(out, p1, p2, BOX, thick, cv2.LINE_AA)
        label = f"{i}" if face.track_id is None else f"{i} #{face.track_id}"
        label += f" {face.score:.2f}"
        cv2.putText(out, label, (p1[0], max(p1[1] - 4 * thick, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick,
                    BOX, thick, cv2.LINE_AA)
        if face.landmarks is not None:
            for x, y in np.asarray(face.landmarks)[:, :2]:
                cv2.circle(out, (round(float(x) * scale_x), round(float(y) * scale_y)), max(thick // 2, 1),
                           LANDMARK, -1)
        for (x, y), colour in zip(np.asarray(face.kps5), KPS):
            cv2.circle(out, (round(float(x) * scale_x), round(float(y) * scale_y)), thick + 1, colour, -1,
                       cv2.LINE_AA)
    if missing:
        cv2.putText(out, "no face", (8, 8 + 20 * thick), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * thick, MISSING, thick,
                    cv2.LINE_AA)
    return out


def preview_batch(image: torch.Tensor, faces: FaceBatch, max_side: int = 1024,
                  step: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """IMAGE of annotated frames, each at most ``max_side`` pixels on its longer side; a frame
    without faces is labelled "no face"."""
    if image.ndim == 3:
        image = image.unsqueeze(0)
    h, w = image.shape[1], image.shape[2]
    scale = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = torch.empty((image.shape[0], size[1], size[0], 3), dtype=torch.float32)
    for i in range(image.shape[0]):
        rgb = frame_to_uint8(image, i)
        if scale < 1.0:
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        frame = faces.frames[i] if i < len(faces) else FrameFaces(height=h, width=w)
        out[i] = torch.from_numpy(draw_faces(rgb, frame, missing=not frame.faces)).float().div_(255.0)
        if step is not None:
            step()
    return out
