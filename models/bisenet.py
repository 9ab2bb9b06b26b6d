"""BiSeNet face parser, 19 CelebAMask-HQ classes (``79999_iter.pth``, layout
``faceparsing.bisenet19``).

This is the face-parsing variant whose spatial path is replaced by the ResNet-18
1/8 feature. Construction never reads an ImageNet ResNet-18 file: the released
checkpoint contains every weight (``cp.resnet.*`` included), so the upstream
``resnet18-5c106cde.pth`` download is unnecessary.

Label ids: 0 bg, 1 skin, 2/3 brows, 4/5 eyes, 6 glasses, 7/8 ears, 9 earring,
10 nose, 11 mouth, 12/13 lips, 14 neck, 15 necklace, 16 cloth, 17 hair, 18 hat.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import ResNetTrunk, resnet18_trunk

__all__ = ["BiSeNet", "NUM_CLASSES"]

NUM_CLASSES = 19


def _global_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, x.size()[2:])


class ConvBNReLU(nn.Module):
    """conv (no bias) -> BN -> ReLU with the checkpoint's ``conv``/``bn`` names."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, 1, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class OutputHead(nn.Module):
    """3x3 ConvBNReLU then 1x1 class logits (``BiSeNetOutput`` upstream)."""

    def __init__(self, in_ch: int, mid_ch: int, n_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(in_ch, mid_ch, 3)
        self.conv_out = nn.Conv2d(mid_ch, n_classes, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class AttentionRefinement(nn.Module):
    """Features re-weighted per channel by a sigmoid of their global average."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = ConvBNReLU(in_ch, out_ch, 3)
        self.conv_atten = nn.Conv2d(out_ch, out_ch, kernel_size=1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        return feat * torch.sigmoid(self.bn_atten(self.conv_atten(_global_pool(feat))))


class ContextPath(nn.Module):
    """ResNet-18 + attention refinement of the 1/16 and 1/32 maps, fused top-down."""

    def __init__(self) -> None:
        super().__init__()
        self.resnet: ResNetTrunk = resnet18_trunk()
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, 3)
        self.conv_head16 = ConvBNReLU(128, 128, 3)
        self.conv_avg = ConvBNReLU(512, 128, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (resnet 1/8 feature, context 1/8, context 1/16)."""
        _, _, feat8, feat16, feat32 = self.resnet.forward_features(x)
        context = self.conv_avg(_global_pool(feat32))
        feat32_sum = self.arm32(feat32) + F.interpolate(context, feat32.shape[2:], mode="nearest")
        feat32_up = self.conv_head32(F.interpolate(feat32_sum, feat16.shape[2:], mode="nearest"))
        feat16_sum = self.arm16(feat16) + feat32_up
        feat16_up = self.conv_head16(F.interpolate(feat16_sum, feat8.shape[2:], mode="nearest"))
        return feat8, feat16_up, feat32_up


class FeatureFusion(nn.Module):
    """Concatenate spatial and context features, 1x1 ConvBNReLU, add channel attention."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.convblk = ConvBNReLU(in_ch, out_ch, 1)
        self.conv1 = nn.Conv2d(out_ch, out_ch // 4, kernel_size=1, bias=False)
        self.conv2 = nn.Conv2d(out_ch // 4, out_ch, kernel_size=1, bias=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        atten = torch.sigmoid(self.conv2(F.relu(self.conv1(_global_pool(feat)))))
        return feat * atten + feat


class BiSeNet(nn.Module):
    """RGB (B,3,H,W), normalised as the caller's checkpoint expects -> logits (B,19,H,W).

    ``forward`` returns only the main head (what the pipeline uses); ``forward_all``
    also returns the two auxiliary heads.
    """

    def __init__(self, n_classes: int = NUM_CLASSES):
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = OutputHead(256, 256, n_classes)
        self.conv_out16 = OutputHead(128, 64, n_classes)
        self.conv_out32 = OutputHead(128, 64, n_classes)

    def _upsample(self, logits: torch.Tensor, size: torch.Size) -> torch.Tensor:
        return F.interpolate(logits, size, mode="bilinear", align_corners=True)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = x.shape[2:]
        feat8, context8, context16 = self.cp(x)
        main = self.conv_out(self.ffm(feat8, context8))
        return (self._upsample(main, size), self._upsample(self.conv_out16(context8), size),
                self._upsample(self.conv_out32(context16), size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        feat8, context8, _ = self.cp(x)
        return self._upsample(self.conv_out(self.ffm(feat8, context8)), size)
