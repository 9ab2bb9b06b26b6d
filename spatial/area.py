"""Adapting area: where the generator may change pixels (MASK in the 512 crop).

- reenact: Face-Adapter's seg-UNet on concat[source512, landmarks512] in [-1,1], > 0.5;
- swap: BiSeNet parsing of the target 512 crop grouped as upstream (spatial/masks.py);
- hull: no model at all - the landmark hull fallback (documented in masks.landmark_hull_mask).
Frames without a face get an all-zero mask (nothing changes there).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..core import comfy_bridge as bridge
from ..core.cache import MODEL_CACHE, CachedModel
from ..core.loading import load_state_dict, load_weights_into
from ..models.adapting_area import AdaptingAreaPredictor
from ..models.bisenet import BiSeNet
from .condition import CROP, ProjectedLandmarks, nchw_unit
from .masks import adapting_area_mask, blend_mask, landmark_hull_mask, parsing_labels, swap_mask_from_labels

METHODS = ("auto", "adapting_area_net", "face_parsing", "landmark_hull")


def _load(network: Callable[[], torch.nn.Module], path: Path) -> torch.nn.Module:
    return load_weights_into(network(), load_state_dict(path), source=str(path), dtype=torch.float32)


def load_area_net(path: Path, device: Optional[torch.device] = None) -> CachedModel:
    return MODEL_CACHE.get("adapting_area_predictor", [path], lambda: _load(AdaptingAreaPredictor, path),
                           dtype=torch.float32, device=device or bridge.torch_device())


def load_parsing_net(path: Path, device: Optional[torch.device] = None) -> CachedModel:
    return MODEL_CACHE.get("bisenet19", [path], lambda: _load(BiSeNet, path),
                           dtype=torch.float32, device=device or bridge.torch_device())


def _run_chunks(landmarks: ProjectedLandmarks, chunk: int, fn: Callable[[list[int]], torch.Tensor],
                step: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    """Apply ``fn`` to found frames in chunks; (B,512,512) float mask, zeros where missing."""
    out = torch.zeros((len(landmarks), CROP, CROP), dtype=torch.float32)
    idx = landmarks.found_indices()
    for start in range(0, len(idx), chunk):
        bridge.check_interrupt()
        part = idx[start:start + chunk]
        out[part] = fn(part).reshape(len(part), CROP, CROP).float().cpu()
        if step is not None:
            step(len(part))
    return out


@torch.no_grad()
def reenact_area(net: CachedModel, landmarks: ProjectedLandmarks, chunk: int = 8,
                 step: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    model, drawn = net.ready(), landmarks.landmark_images()
    sources = landmarks.crops("source")

    def run(part: list[int]) -> torch.Tensor:
        x = torch.cat([nchw_unit(sources[part], net.device, torch.float32),
                       nchw_unit(drawn[part], net.device, torch.float32)], dim=1)
        return adapting_area_mask(model(x))

    return _run_chunks(landmarks, chunk, run, step)


@torch.no_grad()
def swap_area(net: CachedModel, landmarks: ProjectedLandmarks, chunk: int = 8,
              step: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    model, targets = net.ready(), landmarks.crops("target")

    def run(part: list[int]) -> torch.Tensor:
        logits = model(nchw_unit(targets[part], net.device, torch.float32))
        return swap_mask_from_labels(parsing_labels(logits, CROP))

    return _run_chunks(landmarks, chunk, run, step)


def hull_area(landmarks: ProjectedLandmarks, step: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    def run(part: list[int]) -> torch.Tensor:
        warps = np.stack([landmarks.targets[i].warp256 for i in part])
        return landmark_hull_mask(landmarks.pts70[part], CROP, warp_mat256=warps)

    return _run_chunks(landmarks, 16, run, step)


def paste_blend_mask(area: torch.Tensor) -> torch.Tensor:
    """Upstream's soft blend (pad 16, maxpool 17, avgpool 17) of a (B,H,W) area mask."""
    return blend_mask(area.unsqueeze(1)).squeeze(1)
