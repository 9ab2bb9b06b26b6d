"""FADM's Attribute-Guided Conditioning Network (``condition_conv`` inside the denoiser; upstream.md §2.3).

From a coarse frame it builds the 3-channel condition c that the denoiser sees beside x_t:

- P_conv (``pre_conv_color``): conv7x7 3->16, 2 ResnetBlocks(16, GN16), Swish, on the coarse frame
  nearest-downsampled to 1/8 and back ("generated", also "driving" at inference);
- f_θ (``motion_cond``): from the time embedding and the 56-d attribute vector, a 16-d w;
- motion weights w_i = (K−i)/K·exp(w−α) + i/K·exp(α−w), α = 0.3, K = 2, for the coarse frame at 1/8, 1/4
  and 1/2 of the image size (32/64/128 at 256);
- P_motion (``deal_cond``): each level bilinearly resized to full size, conv3x3 + Block(GN16), plus
  0.4·P_conv(driving); weighted by w_i and summed;
- P_cond (``resnet``): concat(that, P_conv(gen) + 0.2·P_conv(drv)) -> 3 ResnetBlocks(32) -> conv7x7 -> 3,
  Sigmoid.

Only f_θ depends on the step, so ``prepare`` runs everything else once per frame batch and ``forward``
(per step) is the weighted sum and P_cond: the same operations in the same order as upstream's forward.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .deca import ATTRIBUTE_DIM
from .diffusion_blocks import Block, Swish

__all__ = ["ALPHA", "LEVEL_DIVISORS", "ConditionNet", "PreparedCondition", "motion_weight", "coarse_levels"]

ALPHA = 0.3  # hard-coded in upstream's motion_weight
LEVEL_DIVISORS = (8, 4, 2)  # coarse levels at 1/8, 1/4, 1/2 of the image size (32/64/128 at 256)


def motion_weight(w: torch.Tensor, level: int, K: int) -> torch.Tensor:
    """w_level = (K − level)/K · exp(w − α) + level/K · exp(α − w)."""
    return (K - level) / K * torch.exp(w - ALPHA) + level / K * torch.exp(-w + ALPHA)


def coarse_levels(coarse: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Upstream's inference inputs from coarse frames (B,3,S,S) in [0,1]: the three nearest-downsampled
    levels, and the frame nearest-downsampled to S/8 and back to S (used as both "generated" and "driving")."""
    size = coarse.shape[-1]
    levels = [F.interpolate(coarse, size=(size // d, size // d)) for d in LEVEL_DIVISORS]
    blurred = F.interpolate(levels[0], size=(size, size))
    return levels, blurred


class _PlainResnetBlock(nn.Module):
    def __init__(self, dim: int, norm_groups: int):
        super().__init__()
        self.block1 = Block(dim, dim, groups=norm_groups)
        self.block2 = Block(dim, dim, groups=norm_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(x)) + x


class _LevelBlock(nn.Module):
    """P_motion for one level: resize to the driving features' size, conv + Block, plus 0.4 · driving."""

    def __init__(self, dim: int, dim_out: int, norm_groups: int = 16):
        super().__init__()
        self.block1 = nn.Conv2d(dim, dim_out, 3, padding=1)
        self.block2 = Block(dim_out, dim_out, groups=norm_groups)

    def forward(self, driving_features: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        if level.shape[-2:] != driving_features.shape[-2:]:
            level = F.interpolate(level, size=driving_features.shape[-2:], mode="bilinear", align_corners=False)
        return self.block2(self.block1(level)) + 0.4 * driving_features


class _MotionMLP(nn.Module):
    """f_θ: sigmoid MLP of [attribute, time features] plus 0.4 · adaptive max-pool of the attribute."""

    def __init__(self, time_dim: int, condition_dim: int, inner_dim: int):
        super().__init__()
        self.time_mlp = nn.Sequential(Swish(), nn.Linear(time_dim, inner_dim))
        self.condition = nn.Sequential(Swish(), nn.Linear(condition_dim + inner_dim, inner_dim), nn.ReLU(),
                                       nn.Linear(inner_dim, inner_dim), nn.Sigmoid())
        self.inner_dim = inner_dim

    def forward(self, time_emb: torch.Tensor, attribute: torch.Tensor) -> torch.Tensor:
        mixed = self.condition(torch.cat((attribute, self.time_mlp(time_emb)), dim=1))
        return mixed + 0.4 * F.adaptive_max_pool1d(attribute.unsqueeze(1), self.inner_dim).squeeze(1)


@dataclass(frozen=True)
class PreparedCondition:
    """The step-independent part of the condition for a batch of frames."""

    levels: tuple[torch.Tensor, ...]  # P_motion per level before the motion weight, (B,16,S,S) each
    color: torch.Tensor  # P_conv(gen) + 0.2 · P_conv(drv), (B,16,S,S)
    attribute: torch.Tensor  # (B,56)


class ConditionNet(nn.Module):
    def __init__(self, time_dim: int, condition_dim: int = ATTRIBUTE_DIM, inner_channel: int = 32):
        super().__init__()
        half = inner_channel // 2
        self.pre_conv_color = nn.Sequential(nn.Conv2d(3, half, 7, padding=3), nn.ReLU(), _PlainResnetBlock(half, 16),
                                            nn.ReLU(), _PlainResnetBlock(half, 16), Swish())
        self.deal_cond = _LevelBlock(3, half)
        self.motion_cond = _MotionMLP(time_dim, condition_dim, half)
        self.resnet = nn.Sequential(_PlainResnetBlock(inner_channel, 32), nn.ReLU(),
                                    _PlainResnetBlock(inner_channel, 32), nn.ReLU(),
                                    _PlainResnetBlock(inner_channel, 32), nn.ReLU(),
                                    nn.Conv2d(inner_channel, 3, 7, padding=3), nn.Sigmoid())

    def prepare(self, levels: list[torch.Tensor], generated: torch.Tensor, driving: torch.Tensor,
                attribute: torch.Tensor) -> PreparedCondition:
        """Step-independent features; pass the same tensor as ``generated`` and ``driving`` (inference) to
        compute P_conv once."""
        gen = self.pre_conv_color(generated)
        drv = gen if driving is generated else self.pre_conv_color(driving)
        return PreparedCondition(tuple(self.deal_cond(drv, level) for level in levels), gen + 0.2 * drv, attribute)

    def forward(self, prepared: PreparedCondition, time_emb: torch.Tensor) -> torch.Tensor:
        """The condition c (B,3,S,S) in (0,1) at the step whose embedding (B,time_dim) is given."""
        w = self.motion_cond(time_emb, prepared.attribute)
        K = len(prepared.levels) - 1
        cond = None
        for i, level in enumerate(prepared.levels):
            term = level * motion_weight(w, i, K)[:, :, None, None]
            cond = term if cond is None else cond + term
        return self.resnet(torch.cat((cond, prepared.color), dim=1))
