"""Building blocks shared by face-vid2vid and FOMM (BatchNorm conv blocks, hourglasses, keypoint maths).

Attribute names follow the released checkpoints (``conv``/``norm``/``pool``, ``conv1``..``norm4``) so
``Facevid.pth`` and ``FOMM.pth`` load key for key. Upsampling is nearest and ``grid_sample`` /
``interpolate`` keep torch's defaults (align_corners=False, zeros padding), as the networks were trained.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "coordinate_grid", "coordinate_grid_2d", "gaussian_heatmaps", "AntiAliasDownsample", "ResBottleneck",
    "ResBlock2d", "ResBlock3d", "UpBlock2d", "UpBlock3d", "DownBlock2d", "DownBlock3d", "SameBlock2d",
    "Hourglass", "KPHourglass", "relative_keypoints",
]


def _axis(n: int, like: torch.Tensor) -> torch.Tensor:
    """n points spread over [-1, 1] (the centres of the first and last cell are -1 and 1)."""
    return 2 * (torch.arange(n, dtype=like.dtype, device=like.device) / (n - 1)) - 1


def coordinate_grid(size: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """(d, h, w, 3) grid of (x, y, z) in [-1, 1], the layout grid_sample expects for 3-D inputs."""
    d, h, w = size
    z, y, x = torch.meshgrid(_axis(d, like), _axis(h, like), _axis(w, like), indexing="ij")
    return torch.stack([x, y, z], dim=-1)


def coordinate_grid_2d(size: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """(h, w, 2) grid of (x, y) in [-1, 1]."""
    h, w = size
    y, x = torch.meshgrid(_axis(h, like), _axis(w, like), indexing="ij")
    return torch.stack([x, y], dim=-1)


def gaussian_heatmaps(kp: torch.Tensor, size: Sequence[int], variance: float) -> torch.Tensor:
    """(B, K, *size) unnormalised Gaussians exp(-|grid - kp|^2 / (2 variance)) around each keypoint.

    ``kp`` is (B, K, 2) for 2-D sizes (FOMM) or (B, K, 3) for 3-D sizes (face-vid2vid)."""
    grid = coordinate_grid(size, kp) if len(size) == 3 else coordinate_grid_2d(size, kp)
    mean = kp.reshape(*kp.shape[:2], *([1] * len(size)), kp.shape[-1])
    return torch.exp(-0.5 * ((grid - mean) ** 2).sum(-1) / variance)


def relative_keypoints(kp_source: torch.Tensor, kp_driving: torch.Tensor, kp_reference: torch.Tensor) -> torch.Tensor:
    """Relative driving: the source's keypoints moved by the driving keypoints' change since the reference
    frame (FOMM's relative mode, movement scale 1)."""
    return kp_source + (kp_driving - kp_reference)


class AntiAliasDownsample(nn.Module):
    """Gaussian blur then stride (the keypoint detectors' band-limited input downsampling).

    sigma = (1/scale - 1)/2, kernel 2*round(4 sigma)+1, normalised; stored as the buffer ``weight``
    (it is in the checkpoints)."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        self.ka = size // 2
        self.kb = self.ka - 1 if size % 2 == 0 else self.ka
        coords = torch.arange(size, dtype=torch.float32)
        g = torch.exp(-(coords - (size - 1) / 2) ** 2 / (2 * sigma**2))
        kernel = g[:, None] * g[None, :]
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.expand(channels, 1, size, size).clone())
        self.groups = channels
        self.step = int(1 / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        x = F.conv2d(x, self.weight, groups=self.groups)
        return x[:, :, ::self.step, ::self.step]


class ResBottleneck(nn.Module):
    """1x1-3x3-1x1 bottleneck (width/4) with BatchNorm; a strided 1x1 skip when stride > 1."""

    def __init__(self, in_features: int, stride: int):
        super().__init__()
        mid = in_features // 4
        self.conv1 = nn.Conv2d(in_features, mid, 1)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(mid, in_features, 1)
        self.norm1 = nn.BatchNorm2d(mid)
        self.norm2 = nn.BatchNorm2d(mid)
        self.norm3 = nn.BatchNorm2d(in_features)
        self.stride = stride
        if stride != 1:
            self.skip = nn.Conv2d(in_features, in_features, 1, stride=stride)
            self.norm4 = nn.BatchNorm2d(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        if self.stride != 1:
            x = self.norm4(self.skip(x))
        return F.relu(out + x)


class _PreActRes(nn.Module):
    """norm-relu-conv twice plus identity (the generators' resolution-preserving residual block)."""

    conv_type: type[nn.Module] = nn.Conv2d
    norm_type: type[nn.Module] = nn.BatchNorm2d

    def __init__(self, in_features: int, kernel_size: int | tuple, padding: int | tuple):
        super().__init__()
        self.conv1 = self.conv_type(in_features, in_features, kernel_size, padding=padding)
        self.conv2 = self.conv_type(in_features, in_features, kernel_size, padding=padding)
        self.norm1 = self.norm_type(in_features)
        self.norm2 = self.norm_type(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class ResBlock2d(_PreActRes):
    pass


class ResBlock3d(_PreActRes):
    conv_type = nn.Conv3d
    norm_type = nn.BatchNorm3d


class _ConvNormAct(nn.Module):
    """conv + BatchNorm + ReLU, optionally preceded by nearest upsampling or followed by average pooling."""

    conv_type: type[nn.Module] = nn.Conv2d
    norm_type: type[nn.Module] = nn.BatchNorm2d

    def __init__(self, in_features: int, out_features: int, kernel_size: int | tuple = 3,
                 padding: int | tuple = 1, groups: int = 1):
        super().__init__()
        self.conv = self.conv_type(in_features, out_features, kernel_size, padding=padding, groups=groups)
        self.norm = self.norm_type(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class UpBlock2d(_ConvNormAct):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=2))


class UpBlock3d(_ConvNormAct):
    conv_type = nn.Conv3d
    norm_type = nn.BatchNorm3d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=(1, 2, 2)))


class DownBlock2d(_ConvNormAct):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(super().forward(x))


class DownBlock3d(_ConvNormAct):
    conv_type = nn.Conv3d
    norm_type = nn.BatchNorm3d

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool = nn.AvgPool3d(kernel_size=(1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(super().forward(x))


class SameBlock2d(nn.Module):
    """conv + BatchNorm + ReLU (or LeakyReLU 0.01) at the same resolution."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int | tuple = 3,
                 padding: int | tuple = 1, lrelu: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features)
        self.ac = nn.LeakyReLU() if lrelu else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ac(self.norm(self.conv(x)))


def _width(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * 2**level)


class _HourglassEncoder(nn.Module):
    def __init__(self, down: type[nn.Module], block_expansion: int, in_features: int, num_blocks: int,
                 max_features: int):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            down(in_features if i == 0 else _width(block_expansion, max_features, i),
                 _width(block_expansion, max_features, i + 1), kernel_size=3, padding=1)
            for i in range(num_blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class _HourglassDecoder(nn.Module):
    """Upsampling with skip concatenation; ``final`` adds face-vid2vid's conv + BatchNorm + ReLU after
    the last concatenation (FOMM's decoder has none)."""

    def __init__(self, up: type[nn.Module], block_expansion: int, in_features: int, num_blocks: int,
                 max_features: int, final: bool):
        super().__init__()
        self.up_blocks = nn.ModuleList(
            up((1 if i == num_blocks - 1 else 2) * _width(block_expansion, max_features, i + 1),
               _width(block_expansion, max_features, i), kernel_size=3, padding=1)
            for i in reversed(range(num_blocks)))
        self.out_filters = block_expansion + in_features
        self.final = final
        if final:
            self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
            self.norm = nn.BatchNorm3d(self.out_filters)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        if self.final:
            out = F.relu(self.norm(self.conv(out)))
        return out


class Hourglass(nn.Module):
    """U-Net style hourglass: 3-D (face-vid2vid's dense motion) or 2-D (FOMM)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256,
                 dims: int = 3):
        super().__init__()
        down, up = (DownBlock3d, UpBlock3d) if dims == 3 else (DownBlock2d, UpBlock2d)
        self.encoder = _HourglassEncoder(down, block_expansion, in_features, num_blocks, max_features)
        self.decoder = _HourglassDecoder(up, block_expansion, in_features, num_blocks, max_features,
                                         final=dims == 3)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class KPHourglass(nn.Module):
    """face-vid2vid's keypoint trunk: 2-D encoder, 1x1 conv, reshape to a 3-D volume, 3-D decoder (no skips)."""

    def __init__(self, block_expansion: int, in_features: int, reshape_features: int, reshape_depth: int,
                 num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        self.down_blocks = nn.Sequential()
        for i in range(num_blocks):
            self.down_blocks.add_module(f"down{i}", DownBlock2d(
                in_features if i == 0 else _width(block_expansion, max_features, i),
                _width(block_expansion, max_features, i + 1), kernel_size=3, padding=1))
        self.conv = nn.Conv2d(_width(block_expansion, max_features, num_blocks), reshape_features, 1)
        self.up_blocks = nn.Sequential()
        for i in range(num_blocks):
            self.up_blocks.add_module(f"up{i}", UpBlock3d(
                _width(block_expansion, max_features, num_blocks - i),
                _width(block_expansion, max_features, num_blocks - i - 1), kernel_size=3, padding=1))
        self.reshape_depth = reshape_depth
        self.out_filters = _width(block_expansion, max_features, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(self.down_blocks(x))
        b, c, h, w = out.shape
        return self.up_blocks(out.view(b, c // self.reshape_depth, self.reshape_depth, h, w))
