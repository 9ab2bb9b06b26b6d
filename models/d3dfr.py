"""D3DFR coefficient regressor (Face-Adapter's ``ResNet50_nofc``).

A torchvision-layout ResNet-50 on the 256x256 aligned crop ([-1, 1] RGB), global
average pooling, then eight 1x1 conv heads on the pooled 2048-d feature. The head
list keeps the official attribute name ``fianl_layers`` (sic) so the released
``d3dfr_res50_nofc.pth`` loads key-for-key (layout ``faceadapter.d3dfr_resnet50``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..core.loading import load_network
from .resnet import ResNetTrunk, fold_batchnorm, resnet50_trunk

__all__ = ["D3DFR", "COEFF_SLICES", "NUM_COEFFS", "HEAD_SIZES", "load_d3dfr"]

# Head order and sizes of the released checkpoint: id, exp, tex, angle, gamma, txy, tz, pupil.
HEAD_SIZES: tuple[int, ...] = (80, 64, 80, 3, 27, 2, 1, 4)
NUM_COEFFS = sum(HEAD_SIZES)  # 261

# Where each quantity sits in the concatenated 261-vector (BFM's split uses the same layout;
# translation is txy + tz contiguous at 254:257).
COEFF_SLICES: dict[str, slice] = {
    "id": slice(0, 80),
    "exp": slice(80, 144),
    "tex": slice(144, 224),
    "angle": slice(224, 227),
    "gamma": slice(227, 254),
    "trans": slice(254, 257),
    "pupil": slice(257, 261),
}


class D3DFR(nn.Module):
    """ResNet-50 -> 261 BFM coefficients (id80 exp64 tex80 angle3 gamma27 txy2 tz1 pupil4)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone: ResNetTrunk = resnet50_trunk()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        width = self.backbone.out_channels
        self.fianl_layers = nn.ModuleList(nn.Conv2d(width, n, kernel_size=1, bias=True) for n in HEAD_SIZES)
        self._fused = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [-1,1] (256x256 for the official weights) -> (B,261)."""
        pooled = self.avgpool(self.backbone(x))
        return torch.cat([head(pooled) for head in self.fianl_layers], dim=1).flatten(1)

    @property
    def is_fused(self) -> bool:
        return self._fused

    def fuse_for_inference(self) -> "D3DFR":
        """Fold BatchNorm into the backbone convs (as upstream does after loading).

        Faster on CPU, same outputs up to float rounding. Call after loading weights:
        the fused module's state_dict no longer matches the checkpoint layout.
        """
        if not self._fused:
            fold_batchnorm(self.backbone)
            self._fused = True
        return self.eval()

    @staticmethod
    def split(coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named views into a (B,261) coefficient tensor."""
        return {name: coeffs[:, s] for name, s in COEFF_SLICES.items()}


def load_d3dfr(path: str | Path, *, fuse: bool = True, dtype: Optional[torch.dtype] = None) -> D3DFR:
    """Build D3DFR from a checkpoint (``module.`` prefix stripped), optionally BN-fused, eval mode."""
    net = load_network(D3DFR, path, dtype=dtype)
    return net.fuse_for_inference() if fuse else net.eval()
