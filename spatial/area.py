"""Adapting area: where the generator may change pixels (MASK in the 512 crop).

- reenact: Face-Adapter's seg-UNet on concat[source512, landmarks512] in [-1,1], > 0.5;
- swap: BiSeNet parsing of the target 512 crop grouped as upstream (spatial/masks.py);
- hull: no model at all - the landmark hull fallback (documented in masks.landmark_hull_mask).
One mask per face pair (see ProjectedLandmarks); faceless frames are skipped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np
import torch

from ..core import comfy_bridge as bridge
from ..core.cache import MODEL_CACHE, CachedModel
from ..core.loading import load_network
from ..models.adapting_area import AdaptingAreaPredictor
from ..models.bisenet import BiSeNet
from ..face.records import MEDIAPIPE_478, transform_points
from .condition import CROP, FaceView, ProjectedLandmarks, nchw_unit
from .mesh_topology import mesh_to_points70
from .masks import adapting_area_mask, blend_mask, landmark_hull_mask, parsing_labels, swap_mask_from_labels

METHODS = ("auto", "adapting_area_net", "face_parsing", "landmark_hull")


def load_area_net(path: Path, device: Optional[torch.device] = None) -> CachedModel:
    return MODEL_CACHE.get("adapting_area_predictor", [path], lambda: load_network(AdaptingAreaPredictor, path, dtype=torch.float32),
                           dtype=torch.float32, device=device or bridge.torch_device())


def load_parsing_net(path: Path, device: Optional[torch.device] = None) -> CachedModel:
    return MODEL_CACHE.get("bisenet19", [path], lambda: load_network(BiSeNet, path, dtype=torch.float32),
                           dtype=torch.float32, device=device or bridge.torch_device())


def _run_chunks(landmarks: ProjectedLandmarks, chunk: int, fn: Callable[[list[int], list[int]], torch.Tensor],
                step: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    """(N,512,512) float mask for the N face pairs, computed in chunks.

    ``fn(rows, rows)`` gets the pairs' rows (of the record's crop/drawing arrays, and of
    ``targets`` / ``sources`` / ``pts70``) twice, for callers written either way."""
    frames = list(range(len(landmarks)))
    out = torch.zeros((len(frames), CROP, CROP), dtype=torch.float32)
    for start in range(0, len(frames), chunk):
        bridge.check_interrupt()
        rows = list(range(start, min(start + chunk, len(frames))))
        out[rows] = fn(rows, [frames[r] for r in rows]).reshape(len(rows), CROP, CROP).float().cpu()
        if step is not None:
            step(len(rows))
    return out


@torch.no_grad()
def reenact_area(net: CachedModel, landmarks: ProjectedLandmarks, chunk: int = 8,
                 step: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    model, drawn = net.ready(), landmarks.landmark_images()
    sources = landmarks.crops("source")

    def run(rows: list[int], _frames: list[int]) -> torch.Tensor:
        x = torch.cat([nchw_unit(sources[rows], net.device, torch.float32),
                       nchw_unit(drawn[rows], net.device, torch.float32)], dim=1)
        return adapting_area_mask(model(x))

    return _run_chunks(landmarks, chunk, run, step)


@torch.no_grad()
def swap_area(net: CachedModel, landmarks: ProjectedLandmarks, chunk: int = 8,
              step: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    model, targets = net.ready(), landmarks.crops("target")

    def run(rows: list[int], _frames: list[int]) -> torch.Tensor:
        logits = model(nchw_unit(targets[rows], net.device, torch.float32))
        return swap_mask_from_labels(parsing_labels(logits, CROP))

    return _run_chunks(landmarks, chunk, run, step)


def source_face_points(view: FaceView) -> np.ndarray:
    """(N,2) outline points of the source's own face in its 512 crop: the 68 iBUG points from the
    mediapipe mesh when present, else the box corners (D3DFR path faces may carry no mesh)."""
    face = view.face
    if face.landmark_format == MEDIAPIPE_478 and face.landmarks is not None:
        points = mesh_to_points70(face.landmarks)[:68, :2]
    else:
        x1, y1, x2, y2 = face.bbox
        points = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64)
    return transform_points(points, view.matrix512)


def hull_area(landmarks: ProjectedLandmarks, task: str = "swap",
              step: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    """Landmark-hull fallback. For reenactment the source's own face region is added, so the
    source face does not survive next to the re-posed one (the seg-UNet learns that union)."""
    def run(_rows: list[int], frames: list[int]) -> torch.Tensor:
        warps = np.stack([landmarks.targets[i].warp256 for i in frames])
        mask = landmark_hull_mask(landmarks.pts70[frames], CROP, warp_mat256=warps)
        if task == "reenact":
            for row, i in enumerate(frames):
                own = source_face_points(landmarks.sources[i])
                if len(own) == 68:
                    extra = landmark_hull_mask(own[None], CROP)
                else:
                    extra = _polygon_mask(own)
                mask[row] = torch.maximum(mask[row], extra[0])
        return mask

    return _run_chunks(landmarks, 16, run, step)


def _polygon_mask(points: np.ndarray) -> torch.Tensor:
    canvas = np.zeros((CROP, CROP), np.uint8)
    cv2.fillConvexPoly(canvas, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    return torch.from_numpy(canvas).float()[None, None]


def paste_blend_mask(area: torch.Tensor) -> torch.Tensor:
    """Upstream's soft blend (pad 16, maxpool 17, avgpool 17) of a (B,H,W) area mask."""
    return blend_mask(area.unsqueeze(1)).squeeze(1)
