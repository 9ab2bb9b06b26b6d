"""DECA's coarse encoder E_flame (layout ``fadm.deca.e_flame``; ``deca_model.tar["E_flame"]``), FADM's
motion encoder.

ResNet-50 (torchvision layout under ``encoder.``, 7x7 average pool) -> Linear 2048->1024 -> ReLU ->
Linear 1024->236 FLAME parameters: shape 100, tex 50, exp 50, pose 6, cam 3, light 27. Only E_flame is
needed: FLAME itself, E_detail and D_detail are never called by FADM.

Frames are resized to 224 with bilinear interpolation *without* antialiasing, as torchvision's Resize
did on tensors in FADM's torch 1.8 era (upstream.md §2.5; newer torchvision antialiases by default).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...core.loading import load_state_dict, load_weights_into
from ..resnet import ResNetTrunk, resnet50_trunk

__all__ = ["EFlame", "FLAME_SLICES", "NUM_FLAME_PARAMS", "ATTRIBUTE_DIM", "attribute_vector", "load_e_flame"]

FLAME_SIZES = {"shape": 100, "tex": 50, "exp": 50, "pose": 6, "cam": 3, "light": 27}
FLAME_SLICES: dict[str, slice] = {}
_start = 0
for _name, _n in FLAME_SIZES.items():
    FLAME_SLICES[_name] = slice(_start, _start + _n)
    _start += _n
NUM_FLAME_PARAMS = _start  # 236
ATTRIBUTE_DIM = FLAME_SIZES["exp"] + FLAME_SIZES["pose"]  # 56
INPUT_SIZE = 224


class EFlame(nn.Module):
    """(B,3,H,W) frames in [0,1] -> (B,236) FLAME coefficients."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder: ResNetTrunk = resnet50_trunk()
        self.layers = nn.Sequential(nn.Linear(2048, 1024), nn.ReLU(), nn.Linear(1024, NUM_FLAME_PARAMS))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            frames = F.interpolate(frames, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        features = F.avg_pool2d(self.encoder(frames), kernel_size=7, stride=1).flatten(1)
        return self.layers(features)

    @staticmethod
    def split(params: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named views into (B,236) parameters."""
        return {name: params[:, s] for name, s in FLAME_SLICES.items()}


def _exp_pose(params: torch.Tensor) -> torch.Tensor:
    return params[:, FLAME_SLICES["exp"].start:FLAME_SLICES["pose"].stop]


def attribute_vector(source_params: torch.Tensor, frame_params: torch.Tensor) -> torch.Tensor:
    """FADM's attribute: [exp, pose] of the source minus that of each frame, (B,56).

    ``source_params`` may have batch 1 for a batch of frames."""
    return _exp_pose(source_params) - _exp_pose(frame_params)


def load_e_flame(path: str | Path, *, dtype: Optional[torch.dtype] = None) -> EFlame:
    """``deca_model.tar`` (its ``E_flame`` entry) -> EFlame in eval mode, strictly checked."""
    state = load_state_dict(path, sub_key="E_flame")
    return load_weights_into(EFlame(), state, source=f"{path} ['E_flame']", dtype=dtype)
