"""FOMM (First Order Motion Model), FADM's second coarse generator (layouts ``fadm.fomm.kp_detector`` /
``.generator``; ``FOMM.pth`` = {"kp_detector", "generator"}, the vox-cpk layout; config
FADM config/vox-256_fomm.yaml: 10 keypoints with 2x2 jacobians, block 64, 6 bottleneck blocks).

Driving: ``relative=False`` uses the driving frames' keypoints and jacobians as they are; ``relative=True``
moves the source's keypoints by the driving ones' change since a reference frame and composes the jacobians
(J_d · J_ref⁻¹ · J_s), FOMM's relative mode without movement-scale adaptation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...core.loading import flatten_state, load_weights_into, read_checkpoint
from .blocks import (AntiAliasDownsample, DownBlock2d, Hourglass, ResBlock2d, SameBlock2d, UpBlock2d,
                     coordinate_grid_2d, gaussian_heatmaps, relative_keypoints)

__all__ = ["FOMMConfig", "FOMMKPDetector", "FOMMDenseMotion", "FOMMGenerator", "FOMMNets", "Keypoints",
           "fomm_animate", "load_fomm", "FOMM_PARTS"]

FOMM_PARTS = ("kp_detector", "generator")


@dataclass(frozen=True)
class FOMMConfig:
    num_kp: int = 10
    num_channels: int = 3
    temperature: float = 0.1
    kp_block_expansion: int = 32
    kp_max_features: int = 1024
    kp_num_blocks: int = 5
    kp_scale_factor: float = 0.25
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 6
    estimate_occlusion_map: bool = True
    dm_block_expansion: int = 64
    dm_max_features: int = 1024
    dm_num_blocks: int = 5
    dm_scale_factor: float = 0.25


@dataclass(frozen=True)
class Keypoints:
    value: torch.Tensor  # (B, K, 2) in [-1, 1]
    jacobian: torch.Tensor  # (B, K, 2, 2)

    def expand(self, batch: int) -> "Keypoints":
        return Keypoints(self.value.expand(batch, *self.value.shape[1:]),
                         self.jacobian.expand(batch, *self.jacobian.shape[1:]))


class FOMMKPDetector(nn.Module):
    """Image -> K 2-D keypoints (soft-argmax) and a 2x2 jacobian per keypoint (heatmap-weighted)."""

    def __init__(self, config: FOMMConfig = FOMMConfig()):
        super().__init__()
        c = config
        self.predictor = Hourglass(c.kp_block_expansion, c.num_channels, c.kp_num_blocks, c.kp_max_features, dims=2)
        self.kp = nn.Conv2d(self.predictor.out_filters, c.num_kp, kernel_size=(7, 7), padding=0)
        self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * c.num_kp, kernel_size=(7, 7), padding=0)
        self.temperature = c.temperature
        if c.kp_scale_factor != 1:
            self.down = AntiAliasDownsample(c.num_channels, c.kp_scale_factor)

    def forward(self, x: torch.Tensor) -> Keypoints:
        if hasattr(self, "down"):
            x = self.down(x)
        features = self.predictor(x)
        logits = self.kp(features)
        b, k, h, w = logits.shape
        heat = F.softmax(logits.view(b, k, -1) / self.temperature, dim=2).view(b, k, h, w)
        value = (heat.unsqueeze(-1) * coordinate_grid_2d((h, w), heat)).sum(dim=(2, 3))
        jac = self.jacobian(features).reshape(b, k, 4, h, w)
        jacobian = (heat.unsqueeze(2) * jac).view(b, k, 4, -1).sum(dim=-1).view(b, k, 2, 2)
        return Keypoints(value, jacobian)


class FOMMDenseMotion(nn.Module):
    """Source image + keypoints -> backward deformation (B,h,w,2) and occlusion map at 1/4 resolution."""

    def __init__(self, config: FOMMConfig = FOMMConfig()):
        super().__init__()
        c = config
        self.hourglass = Hourglass(c.dm_block_expansion, (c.num_kp + 1) * (c.num_channels + 1), c.dm_num_blocks,
                                   c.dm_max_features, dims=2)
        self.mask = nn.Conv2d(self.hourglass.out_filters, c.num_kp + 1, kernel_size=(7, 7), padding=(3, 3))
        if c.estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=(7, 7), padding=(3, 3))
        self.num_kp = c.num_kp
        if c.dm_scale_factor != 1:
            self.down = AntiAliasDownsample(c.num_channels, c.dm_scale_factor)

    def forward(self, source: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> dict[str, torch.Tensor]:
        if hasattr(self, "down"):
            source = self.down(source)
        b, _, h, w = source.shape
        k1 = self.num_kp + 1
        heat = gaussian_heatmaps(kp_driving.value, (h, w), 0.01) - gaussian_heatmaps(kp_source.value, (h, w), 0.01)
        heat = torch.cat([heat.new_zeros(b, 1, h, w), heat], dim=1).unsqueeze(2)
        identity = coordinate_grid_2d((h, w), source).view(1, 1, h, w, 2)
        offset = identity - kp_driving.value.view(b, self.num_kp, 1, 1, 2)
        jac = torch.matmul(kp_source.jacobian, torch.inverse(kp_driving.jacobian))
        offset = torch.matmul(jac.view(b, self.num_kp, 1, 1, 2, 2), offset.unsqueeze(-1)).squeeze(-1)
        motions = torch.cat([identity.expand(b, 1, h, w, 2), offset + kp_source.value.view(b, self.num_kp, 1, 1, 2)],
                            dim=1)
        repeated = source.unsqueeze(1).expand(b, k1, *source.shape[1:]).reshape(b * k1, -1, h, w)
        deformed = F.grid_sample(repeated, motions.reshape(b * k1, h, w, 2), align_corners=False).view(b, k1, -1, h, w)
        prediction = self.hourglass(torch.cat([heat, deformed], dim=2).view(b, -1, h, w))
        mask = F.softmax(self.mask(prediction), dim=1)
        deformation = (motions.permute(0, 1, 4, 2, 3) * mask.unsqueeze(2)).sum(dim=1).permute(0, 2, 3, 1)
        out = {"mask": mask, "deformation": deformation}
        if hasattr(self, "occlusion"):
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction))
        return out


class FOMMGenerator(nn.Module):
    """Source image + keypoints -> driven image in [0,1] (2-D feature warp, occlusion, decoder)."""

    def __init__(self, config: FOMMConfig = FOMMConfig()):
        super().__init__()
        c = config
        self.dense_motion_network = FOMMDenseMotion(c)
        self.first = SameBlock2d(c.num_channels, c.block_expansion, kernel_size=(7, 7), padding=(3, 3))
        width = lambda i: min(c.max_features, c.block_expansion * 2**i)  # noqa: E731
        self.down_blocks = nn.ModuleList(DownBlock2d(width(i), width(i + 1), kernel_size=(3, 3), padding=(1, 1))
                                         for i in range(c.num_down_blocks))
        self.up_blocks = nn.ModuleList(
            UpBlock2d(width(c.num_down_blocks - i), width(c.num_down_blocks - i - 1), kernel_size=(3, 3),
                      padding=(1, 1)) for i in range(c.num_down_blocks))
        self.bottleneck = nn.Sequential()
        for i in range(c.num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(width(c.num_down_blocks), kernel_size=(3, 3),
                                                           padding=(1, 1)))
        self.final = nn.Conv2d(c.block_expansion, c.num_channels, kernel_size=(7, 7), padding=(3, 3))

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        out = self.first(source)
        for block in self.down_blocks:
            out = block(out)
        return out

    def decode(self, source: torch.Tensor, features: torch.Tensor, kp_driving: Keypoints,
               kp_source: Keypoints) -> torch.Tensor:
        """``source``/``features``/``kp_source`` may have batch 1 for a batch of driving keypoints."""
        b = kp_driving.value.shape[0]
        source = source.expand(b, *source.shape[1:])
        features = features.expand(b, *features.shape[1:])
        motion = self.dense_motion_network(source, kp_driving, kp_source.expand(b))
        deformation = motion["deformation"]
        if deformation.shape[1:3] != features.shape[2:]:
            deformation = F.interpolate(deformation.permute(0, 3, 1, 2), size=features.shape[2:], mode="bilinear",
                                        align_corners=False).permute(0, 2, 3, 1)
        out = F.grid_sample(features, deformation, align_corners=False)
        occlusion = motion.get("occlusion_map")
        if occlusion is not None:
            if occlusion.shape[2:] != out.shape[2:]:
                occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear", align_corners=False)
            out = out * occlusion
        out = self.bottleneck(out)
        for block in self.up_blocks:
            out = block(out)
        return torch.sigmoid(self.final(out))

    def forward(self, source: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> torch.Tensor:
        return self.decode(source, self.encode(source), kp_driving, kp_source)


class FOMMNets(nn.Module):
    def __init__(self, config: FOMMConfig = FOMMConfig()):
        super().__init__()
        self.config = config
        self.kp_detector = FOMMKPDetector(config)
        self.generator = FOMMGenerator(config)


@torch.no_grad()
def fomm_animate(nets: FOMMNets, source: torch.Tensor, driving: torch.Tensor, *, relative: bool = False,
                 reference: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Coarse frames (N,3,H,W) in [0,1] from a (1,3,H,W) source and (N,3,H,W) driving frames in [0,1]."""
    kp_source = nets.kp_detector(source)
    kp_driving = nets.kp_detector(driving)
    if relative:
        kp_ref = nets.kp_detector(driving[:1] if reference is None else reference)
        jacobian = torch.matmul(torch.matmul(kp_driving.jacobian, torch.inverse(kp_ref.jacobian)), kp_source.jacobian)
        kp_driving = Keypoints(relative_keypoints(kp_source.value, kp_driving.value, kp_ref.value), jacobian)
    return nets.generator.decode(source, nets.generator.encode(source), kp_driving, kp_source)


def load_fomm(path: str | Path, config: FOMMConfig = FOMMConfig(), *, dtype: Optional[torch.dtype] = None) -> FOMMNets:
    """``FOMM.pth`` -> FOMMNets in eval mode, each part strictly checked."""
    checkpoint = read_checkpoint(path)
    nets = FOMMNets(config)
    for part in FOMM_PARTS:
        state = flatten_state(checkpoint, str(path), sub_key=part)
        load_weights_into(getattr(nets, part), state, source=f"{path} ['{part}']", dtype=dtype)
    return nets.eval()
