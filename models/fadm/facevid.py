"""face-vid2vid, FADM's coarse generator: canonical keypoint detector, head-pose/expression estimator and
the occlusion-aware 3-D-feature generator (layouts ``fadm.facevid.kp_detector`` / ``.he_estimator`` /
``.generator``; ``Facevid.pth`` holds the three under those names).

The defaults are the released config (FADM config/vox-256.yaml, upstream.md §2.2). ``FacevidConfig``
exists so tests can build the same architecture at a few kilobytes; the generator's dense-motion network
is fixed in upstream's code (block 32, max 1024, 5 blocks, depth 16, compress 4), which the defaults keep.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import (AntiAliasDownsample, DownBlock2d, Hourglass, KPHourglass, ResBlock2d, ResBlock3d,
                     ResBottleneck, SameBlock2d, UpBlock2d, coordinate_grid, gaussian_heatmaps)

__all__ = ["DenseMotionConfig", "FacevidConfig", "KPDetector", "HEEstimator", "DenseMotionNetwork",
           "OcclusionAwareGenerator"]


@dataclass(frozen=True)
class DenseMotionConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    reshape_depth: int = 16
    compress: int = 4


@dataclass(frozen=True)
class FacevidConfig:
    """Hyper-parameters of the three networks (released values by default)."""

    num_kp: int = 15
    image_channel: int = 3
    feature_channel: int = 32
    # keypoint detector
    kp_block_expansion: int = 32
    kp_max_features: int = 1024
    kp_num_blocks: int = 5
    kp_reshape_channel: int = 16384
    kp_reshape_depth: int = 16
    kp_scale_factor: float = 0.25
    temperature: float = 0.1
    # head-pose / expression estimator
    he_block_expansion: int = 64
    num_bins: int = 66
    # generator
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    reshape_channel: int = 32
    reshape_depth: int = 16
    num_resblocks: int = 6
    estimate_occlusion_map: bool = True
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)


class KPDetector(nn.Module):
    """Image -> K canonical 3-D keypoints (soft-argmax over a 3-D heatmap volume), in [-1, 1]."""

    def __init__(self, config: FacevidConfig = FacevidConfig()):
        super().__init__()
        c = config
        self.predictor = KPHourglass(c.kp_block_expansion, c.image_channel, c.kp_reshape_channel,
                                     c.kp_reshape_depth, c.kp_num_blocks, c.kp_max_features)
        self.kp = nn.Conv3d(self.predictor.out_filters, c.num_kp, kernel_size=3, padding=1)
        self.temperature = c.temperature
        if c.kp_scale_factor != 1:
            self.down = AntiAliasDownsample(c.image_channel, c.kp_scale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [0,1] -> (B,K,3) keypoints (x, y, z)."""
        if hasattr(self, "down"):
            x = self.down(x)
        logits = self.kp(self.predictor(x))
        b, k, *size = logits.shape
        heat = F.softmax(logits.view(b, k, -1) / self.temperature, dim=2).view(b, k, *size, 1)
        return (heat * coordinate_grid(size, heat)).sum(dim=(2, 3, 4))


class HEEstimator(nn.Module):
    """Image -> head-pose bin logits, translation and per-keypoint expression offsets.

    The released heads are crossed: the output named yaw comes from ``fc_roll`` and roll from ``fc_yaw``
    (upstream's forward); the names here are the outputs' meaning as the keypoint transform uses them."""

    def __init__(self, config: FacevidConfig = FacevidConfig()):
        super().__init__()
        c = config
        self.conv1 = nn.Conv2d(c.image_channel, c.he_block_expansion, kernel_size=7, padding=3, stride=2)
        self.norm1 = nn.BatchNorm2d(c.he_block_expansion)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c.he_block_expansion, 256, kernel_size=1)
        self.norm2 = nn.BatchNorm2d(256)
        self.block1 = self._stage("b1_", 256, 3)
        self.conv3 = nn.Conv2d(256, 512, kernel_size=1)
        self.norm3 = nn.BatchNorm2d(512)
        self.block2 = ResBottleneck(512, stride=2)
        self.block3 = self._stage("b3_", 512, 3)
        self.conv4 = nn.Conv2d(512, 1024, kernel_size=1)
        self.norm4 = nn.BatchNorm2d(1024)
        self.block4 = ResBottleneck(1024, stride=2)
        self.block5 = self._stage("b5_", 1024, 5)
        self.conv5 = nn.Conv2d(1024, 2048, kernel_size=1)
        self.norm5 = nn.BatchNorm2d(2048)
        self.block6 = ResBottleneck(2048, stride=2)
        self.block7 = self._stage("b7_", 2048, 2)
        self.fc_roll = nn.Linear(2048, c.num_bins)
        self.fc_pitch = nn.Linear(2048, c.num_bins)
        self.fc_yaw = nn.Linear(2048, c.num_bins)
        self.fc_t = nn.Linear(2048, 3)
        self.fc_exp = nn.Linear(2048, 3 * c.num_kp)

    @staticmethod
    def _stage(prefix: str, width: int, count: int) -> nn.Sequential:
        stage = nn.Sequential()
        for i in range(count):
            stage.add_module(f"{prefix}{i}", ResBottleneck(width, stride=1))
        return stage

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B,3,H,W) in [0,1] -> {'yaw','pitch','roll': (B,bins) logits, 't': (B,3), 'exp': (B,3K)}."""
        out = self.maxpool(F.relu(self.norm1(self.conv1(x))))
        out = self.block1(F.relu(self.norm2(self.conv2(out))))
        out = self.block3(self.block2(F.relu(self.norm3(self.conv3(out)))))
        out = self.block5(self.block4(F.relu(self.norm4(self.conv4(out)))))
        out = self.block7(self.block6(F.relu(self.norm5(self.conv5(out)))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return {"yaw": self.fc_roll(out), "pitch": self.fc_pitch(out), "roll": self.fc_yaw(out),
                "t": self.fc_t(out), "exp": self.fc_exp(out)}


class DenseMotionNetwork(nn.Module):
    """Source/driving keypoints + compressed source volume -> backward deformation field and occlusion."""

    def __init__(self, num_kp: int, feature_channel: int, config: DenseMotionConfig, occlusion: bool):
        super().__init__()
        c = config
        self.hourglass = Hourglass(c.block_expansion, (num_kp + 1) * (c.compress + 1), c.num_blocks,
                                   c.max_features, dims=3)
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, c.compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(c.compress)
        if occlusion:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters * c.reshape_depth, 1, kernel_size=7, padding=3)
        self.num_kp = num_kp

    def sparse_motions(self, size: tuple[int, int, int], kp_driving: torch.Tensor,
                       kp_source: torch.Tensor) -> torch.Tensor:
        """(B, K+1, d, h, w, 3): identity (background) then one translation per keypoint (no jacobians)."""
        b = kp_driving.shape[0]
        identity = coordinate_grid(size, kp_source).view(1, 1, *size, 3)
        per_kp = identity - kp_driving.view(b, self.num_kp, 1, 1, 1, 3) + kp_source.view(b, self.num_kp, 1, 1, 1, 3)
        return torch.cat([identity.expand(b, 1, *size, 3), per_kp], dim=1)

    def forward(self, feature: torch.Tensor, kp_driving: torch.Tensor,
                kp_source: torch.Tensor) -> dict[str, torch.Tensor]:
        b, _, d, h, w = feature.shape
        k1 = self.num_kp + 1
        feature = F.relu(self.norm(self.compress(feature)))
        motions = self.sparse_motions((d, h, w), kp_driving, kp_source)
        repeated = feature.unsqueeze(1).expand(b, k1, *feature.shape[1:]).reshape(b * k1, -1, d, h, w)
        deformed = F.grid_sample(repeated, motions.reshape(b * k1, d, h, w, 3), align_corners=False)
        deformed = deformed.view(b, k1, -1, d, h, w)
        heat = (gaussian_heatmaps(kp_driving, (d, h, w), 0.01) - gaussian_heatmaps(kp_source, (d, h, w), 0.01))
        heat = torch.cat([heat.new_zeros(b, 1, d, h, w), heat], dim=1).unsqueeze(2)
        prediction = self.hourglass(torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w))
        mask = F.softmax(self.mask(prediction), dim=1)
        deformation = (motions.permute(0, 1, 5, 2, 3, 4) * mask.unsqueeze(2)).sum(dim=1).permute(0, 2, 3, 4, 1)
        out = {"mask": mask, "deformation": deformation}
        if hasattr(self, "occlusion"):
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction.reshape(b, -1, h, w)))
        return out


class OcclusionAwareGenerator(nn.Module):
    """Source image + source/driving keypoints -> driven image in [0,1].

    ``encode`` (the source's 3-D feature volume) depends on the source only, so a video computes it once
    and calls ``decode`` per chunk of driving frames."""

    def __init__(self, config: FacevidConfig = FacevidConfig()):
        super().__init__()
        c = config
        self.dense_motion_network = DenseMotionNetwork(c.num_kp, c.feature_channel, c.dense_motion,
                                                       c.estimate_occlusion_map)
        self.first = SameBlock2d(c.image_channel, c.block_expansion, kernel_size=(7, 7), padding=(3, 3))
        width = lambda i: min(c.max_features, c.block_expansion * 2**i)  # noqa: E731
        self.down_blocks = nn.ModuleList(DownBlock2d(width(i), width(i + 1), kernel_size=(3, 3), padding=(1, 1))
                                         for i in range(c.num_down_blocks))
        down_out = min(c.max_features, c.block_expansion * 2**c.num_down_blocks)
        self.second = nn.Conv2d(down_out, c.max_features, kernel_size=1)
        self.reshape_channel, self.reshape_depth = c.reshape_channel, c.reshape_depth
        self.resblocks_3d = nn.Sequential()
        for i in range(c.num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(c.reshape_channel, kernel_size=3, padding=1))
        width = c.block_expansion * 2**c.num_down_blocks
        self.third = SameBlock2d(c.max_features, width, kernel_size=(3, 3), padding=(1, 1), lrelu=True)
        self.fourth = nn.Conv2d(width, width, kernel_size=1)
        self.resblocks_2d = nn.Sequential()
        for i in range(c.num_resblocks):
            self.resblocks_2d.add_module(f"2dr{i}", ResBlock2d(width, kernel_size=3, padding=1))
        self.up_blocks = nn.ModuleList(
            UpBlock2d(max(c.block_expansion, c.block_expansion * 2**(c.num_down_blocks - i)),
                      max(c.block_expansion, c.block_expansion * 2**(c.num_down_blocks - i - 1)),
                      kernel_size=(3, 3), padding=(1, 1)) for i in range(c.num_down_blocks))
        self.final = nn.Conv2d(c.block_expansion, c.image_channel, kernel_size=(7, 7), padding=(3, 3))

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) -> (B, reshape_channel, reshape_depth, H/4, W/4) appearance volume."""
        out = self.first(source)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        b, _, h, w = out.shape
        return self.resblocks_3d(out.view(b, self.reshape_channel, self.reshape_depth, h, w))

    def decode(self, volume: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> torch.Tensor:
        """Warp the volume from source to driving keypoints, mask occlusions, decode -> (B,3,H,W) in [0,1].

        ``volume`` and ``kp_source`` may have batch 1 for a batch of driving keypoints."""
        b = kp_driving.shape[0]
        volume = volume.expand(b, *volume.shape[1:])
        kp_source = kp_source.expand(b, *kp_source.shape[1:])
        motion = self.dense_motion_network(volume, kp_driving, kp_source)
        deformation = motion["deformation"]
        if deformation.shape[1:4] != volume.shape[2:]:
            deformation = F.interpolate(deformation.permute(0, 4, 1, 2, 3), size=volume.shape[2:],
                                        mode="trilinear", align_corners=False).permute(0, 2, 3, 4, 1)
        out = F.grid_sample(volume, deformation, align_corners=False)
        _, c, d, h, w = out.shape
        out = self.fourth(self.third(out.reshape(b, c * d, h, w)))
        occlusion = motion.get("occlusion_map")
        if occlusion is not None:
            if occlusion.shape[2:] != out.shape[2:]:
                occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear", align_corners=False)
            out = out * occlusion
        out = self.resblocks_2d(out)
        for block in self.up_blocks:
            out = block(out)
        return torch.sigmoid(self.final(out))

    def forward(self, source: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(source), kp_driving, kp_source)
