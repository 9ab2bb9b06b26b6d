"""ArcFace IResNet (arcface_torch layout; ``third_party/insightface_glint360k.pth`` is r100).

Face-Adapter does not use the 512-d ArcFace embedding for generation: it runs the
trunk on the 256 aligned crop bilinearly resized to 128x128 (no antialiasing, as
``F.interpolate(..., mode='bilinear')`` in upstream's infer.py) and takes the layer4
map *before* bn2/fc, flattened to 8x8 = 64 tokens of 512 channels: ID2Token's memory.
The full forward (bn2 -> flatten -> fc -> BatchNorm1d ``features``) on a 112x112 input
gives the usual 512-d identity embedding, kept here for similarity and metrics.
Inputs are RGB in [-1, 1] (ToTensor then Normalize(0.5, 0.5)). Layout id:
``faceadapter.arcface_iresnet100``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core.loading import load_state_dict, load_weights_into

__all__ = ["IBasicBlock", "IResNet", "iresnet100", "load_arcface", "TOKEN_INPUT_SIZE", "EMBED_INPUT_SIZE",
           "embedding_input_from_crop256"]

TOKEN_INPUT_SIZE = 128  # 256 crop -> 128: layer4 is 8x8 = 64 identity tokens
EMBED_INPUT_SIZE = 112  # the size the fc layer (512*7*7 inputs) was trained for
R100_LAYERS = (3, 13, 30, 3)
WIDTHS = (64, 128, 256, 512)


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation block: BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, plus shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample: Optional[nn.Sequential] = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes, eps=1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class IResNet(nn.Module):
    """ArcFace trunk + embedding head. Every stage halves the resolution (stem keeps it).

    ``forward(x)`` returns the layer4 map as tokens (B, h*w, C), upstream's default;
    ``forward(x, return_embedding=True)`` the 512-d embedding (input must be 112x112
    for the official fc). Both go through ``__call__`` so forward hooks see every encode.
    """

    def __init__(self, layers: Sequence[int] = R100_LAYERS, widths: Sequence[int] = WIDTHS,
                 num_features: int = 512, embed_grid: int = EMBED_INPUT_SIZE // 16):
        super().__init__()
        self.conv1 = _conv3x3(3, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0], eps=1e-5)
        self.prelu = nn.PReLU(widths[0])
        inplanes = widths[0]
        for index, (count, planes) in enumerate(zip(layers, widths), start=1):
            blocks = [IBasicBlock(inplanes, planes, stride=2)]
            blocks += [IBasicBlock(planes, planes) for _ in range(count - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
            inplanes = planes
        self.out_channels = inplanes
        self.embed_grid = embed_grid
        self.bn2 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.fc = nn.Linear(inplanes * embed_grid * embed_grid, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)

    def layer4_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [-1,1] -> (B,C,H/16,W/16), before bn2."""
        x = self.prelu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor, return_embedding: bool = False) -> torch.Tensor:
        fmap = self.layer4_map(x)
        if not return_embedding:
            return fmap.flatten(2).transpose(1, 2).contiguous()
        if fmap.shape[-2:] != (self.embed_grid, self.embed_grid):
            size = self.embed_grid * 16
            raise ValueError(f"FaceAdapter: ArcFace embedding needs a {size}x{size} input, got "
                             f"{tuple(x.shape[-2:])}")
        return self.features(self.fc(torch.flatten(self.bn2(fmap), 1)))

    def embed(self, x112: torch.Tensor) -> torch.Tensor:
        """(B,3,112,112) in [-1,1] -> (B,512) identity embedding (full forward)."""
        return self(x112, return_embedding=True)

    def identity_tokens(self, crop256: torch.Tensor) -> torch.Tensor:
        """Face-Adapter's ID2Token memory: 256 aligned crop (B,3,256,256) in [-1,1] -> (B,64,512).

        The crop is resized to 128x128 bilinearly without antialiasing, exactly as upstream.
        """
        return self(_resize128(crop256))


def _resize128(crop256: torch.Tensor) -> torch.Tensor:
    return F.interpolate(crop256, size=(TOKEN_INPUT_SIZE, TOKEN_INPUT_SIZE), mode="bilinear",
                         align_corners=False, antialias=False)


def embedding_input_from_crop256(crop256: torch.Tensor) -> torch.Tensor:
    """(B,3,256,256) aligned crop -> (B,3,112,112) ArcFace input: resize to 128, rows 0:112, cols 8:120.

    The 256 template is the 112 ArcFace template mapped by x' = 2x+16, y' = 2y, so at 128 it is
    the 112 template shifted by 8 px in x: this crop is exactly ArcFace's own alignment (the same
    recipe is in upstream's insightface_backbone_conv.py, commented out).
    """
    return _resize128(crop256)[..., 0:EMBED_INPUT_SIZE, 8:8 + EMBED_INPUT_SIZE].contiguous()


def iresnet100() -> IResNet:
    """The glint360k r100 network, official shapes."""
    return IResNet(R100_LAYERS, WIDTHS)


def config_from_state(state: Mapping[str, torch.Tensor]) -> dict:
    """IResNet constructor arguments read off a state dict (official r100 when keys are absent)."""
    counts = {}
    for key in state:
        match = re.match(r"layer([1-4])\.(\d+)\.conv1\.weight$", key)
        if match:
            stage, index = int(match.group(1)), int(match.group(2))
            counts[stage] = max(counts.get(stage, 0), index + 1)
    if sorted(counts) != [1, 2, 3, 4] or "fc.weight" not in state:
        return {}
    widths = [int(state[f"layer{s}.0.conv1.weight"].shape[0]) for s in (1, 2, 3, 4)]
    grid2 = int(state["fc.weight"].shape[1]) // widths[-1]
    grid = int(round(grid2 ** 0.5))
    return {"layers": [counts[s] for s in (1, 2, 3, 4)], "widths": widths,
            "num_features": int(state["fc.weight"].shape[0]), "embed_grid": grid}


def load_arcface(path: str | Path, *, dtype: Optional[torch.dtype] = None) -> IResNet:
    """IResNet from an arcface_torch checkpoint (r100 or a smaller random test file), eval mode.

    A ``module.`` prefix is stripped; a file of another network fails naming its keys.
    """
    state = load_state_dict(path)
    return load_weights_into(IResNet(**config_from_state(state)), state, source=str(path), dtype=dtype)
