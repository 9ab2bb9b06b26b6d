"""Face-Adapter's Adapting Area Predictor (``net_seg_res18.pth``, layout
``faceadapter.adapting_area_predictor``).

A UNet over a ResNet-18 encoder whose stem takes 6 channels: the source 512 crop and
the 70-point landmark image, both in [-1, 1]. It predicts where the generator may
change pixels during reenactment; ``spatial.masks.adapting_area_mask`` thresholds it
at 0.5 as the official pipeline does.
Decoder stage i upsamples the deeper map x2 (bilinear, align_corners=False), puts the
encoder skip *first* in the concatenation, then runs conv-BN-ReLU twice.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import ResNetTrunk, resnet18_trunk

__all__ = ["AdaptingAreaPredictor"]

# Encoder channels: stem, layer1..layer4. Decoder outputs, deepest first, then the full-res stage.
_SKIP_CHANNELS = (64, 64, 128, 256, 512)
_DECODER_CHANNELS = (256, 128, 64, 32, 16)


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    """conv3x3-BN-ReLU x2; indices 0,1,3,4 carry the checkpoint weights."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
    )


def _upsample2x(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class AdaptingAreaPredictor(nn.Module):
    """concat[source512, landmarks512] (B,6,H,W) in [-1,1] -> sigmoid mask (B,1,H,W).

    H and W must be multiples of 32 (512 for the official weights).
    """

    def __init__(self, in_channels: int = 6, num_classes: int = 1,
                 decoder_channels: Sequence[int] = _DECODER_CHANNELS):
        super().__init__()
        self.backbone: ResNetTrunk = resnet18_trunk(in_channels=in_channels)
        d1, d2, d3, d4, d5 = decoder_channels
        s0, s1, s2, s3, s4 = _SKIP_CHANNELS
        self.decoder1 = _double_conv(s3 + s4, d1)
        self.decoder2 = _double_conv(s2 + d1, d2)
        self.decoder3 = _double_conv(s1 + d2, d3)
        self.decoder4 = _double_conv(s0 + d3, d4)
        self.decoder5 = _double_conv(d4, d5)
        self.final_conv = nn.Conv2d(d5, num_classes, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem, c1, c2, c3, c4 = self.backbone.forward_features(x)
        y = c4
        for skip, decoder in ((c3, self.decoder1), (c2, self.decoder2), (c1, self.decoder3), (stem, self.decoder4)):
            y = decoder(torch.cat([skip, _upsample2x(y)], dim=1))
        y = self.decoder5(_upsample2x(y))
        return torch.sigmoid(self.final_conv(y))
