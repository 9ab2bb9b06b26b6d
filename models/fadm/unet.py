"""FADM's pixel-space denoiser (SR3-style UNet) and the blocks it shares with the conditioning network.

Input: the 3-channel condition c concatenated with x_t (6 channels); output: predicted noise (3).
Released config: inner 64, channel mults (1,2,4,4,8,8), 3 res-blocks per level, GroupNorm 32, one-head
self-attention at 16x16 and in the mid block, sinusoidal time embedding 64 -> 256 -> 64 (upstream.md §2.4).
``UNetConfig`` shrinks it for tests; the layout keys (``downs.N``, ``ups.N``, ``res_block``, ``attn``)
follow the released ``diffusion.pth``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .condition import ConditionNet, PreparedCondition
from .diffusion_blocks import Block, Swish, TimeEmbedding

__all__ = ["UNetConfig", "UNet"]


@dataclass(frozen=True)
class UNetConfig:
    in_channel: int = 6
    out_channel: int = 3
    inner_channel: int = 64
    norm_groups: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 4, 4, 8, 8)
    attn_res: tuple[int, ...] = (16,)
    res_blocks: int = 3
    image_size: int = 256


class ResnetBlock(nn.Module):
    """Two Blocks with the time embedding added between them, plus a (1x1 when widths differ) shortcut."""

    def __init__(self, dim: int, dim_out: int, time_emb_dim: int, norm_groups: int):
        super().__init__()
        self.mlp = nn.Sequential(Swish(), nn.Linear(time_emb_dim, dim_out))
        self.block1 = Block(dim, dim_out, groups=norm_groups)
        self.block2 = Block(dim_out, dim_out, groups=norm_groups)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor) -> torch.Tensor:
        h = self.block1(x)
        h += self.mlp(time_emb)[:, :, None, None]  # in place on the conv's fresh output: one temporary fewer
        out = self.block2(h)
        out += self.res_conv(x)
        return out


class SelfAttention(nn.Module):
    """One-head spatial self-attention with a residual; scale 1/sqrt(channels)."""

    def __init__(self, channels: int, norm_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, channels)
        self.qkv = nn.Conv2d(channels, channels * 3, 1, bias=False)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, 3, c, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        out = self.out(out.transpose(1, 2).reshape(b, c, h, w))
        out += x
        return out


class ResnetBlocWithAttn(nn.Module):
    def __init__(self, dim: int, dim_out: int, time_emb_dim: int, norm_groups: int, with_attn: bool):
        super().__init__()
        self.res_block = ResnetBlock(dim, dim_out, time_emb_dim, norm_groups)
        if with_attn:
            self.attn = SelfAttention(dim_out, norm_groups)

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor) -> torch.Tensor:
        x = self.res_block(x, time_emb)
        return self.attn(x) if hasattr(self, "attn") else x


class Downsample(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UNet(nn.Module):
    """ε-prediction UNet with the Attribute-Guided Conditioning Network as ``condition_conv``."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        c = config
        dim, groups = c.inner_channel, c.norm_groups
        self.time_mlp = nn.Sequential(TimeEmbedding(dim), nn.Linear(dim, dim * 4), Swish(), nn.Linear(dim * 4, dim))
        self.condition_conv = ConditionNet(time_dim=dim)
        pre, res = dim, c.image_size
        skips = [pre]
        downs: list[nn.Module] = [nn.Conv2d(c.in_channel, dim, kernel_size=3, padding=1)]
        for level, mult in enumerate(c.channel_mults):
            for _ in range(c.res_blocks):
                downs.append(ResnetBlocWithAttn(pre, dim * mult, dim, groups, res in c.attn_res))
                pre = dim * mult
                skips.append(pre)
            if level != len(c.channel_mults) - 1:
                downs.append(Downsample(pre))
                skips.append(pre)
                res //= 2
        self.downs = nn.ModuleList(downs)
        self.mid = nn.ModuleList([ResnetBlocWithAttn(pre, pre, dim, groups, True),
                                  ResnetBlocWithAttn(pre, pre, dim, groups, False)])
        ups: list[nn.Module] = []
        for level in reversed(range(len(c.channel_mults))):
            mult = c.channel_mults[level]
            for _ in range(c.res_blocks + 1):
                ups.append(ResnetBlocWithAttn(pre + skips.pop(), dim * mult, dim, groups, res in c.attn_res))
                pre = dim * mult
            if level > 0:
                ups.append(Upsample(pre))
                res *= 2
        self.ups = nn.ModuleList(ups)
        self.final_conv = Block(pre, c.out_channel, groups=groups)

    def forward(self, x: torch.Tensor, t: torch.Tensor, condition: PreparedCondition) -> torch.Tensor:
        """x_t (B,3,H,W), integer steps t (B,), prepared condition -> predicted noise (B,3,H,W)."""
        emb = self.time_mlp(t)
        h = torch.cat((self.condition_conv(condition, emb), x), dim=1)
        feats = []
        for layer in self.downs:
            h = layer(h, emb) if isinstance(layer, ResnetBlocWithAttn) else layer(h)
            feats.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.ups:
            h = layer(torch.cat((h, feats.pop()), dim=1), emb) if isinstance(layer, ResnetBlocWithAttn) else layer(h)
        return self.final_conv(h)
