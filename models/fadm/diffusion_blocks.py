"""Layers shared by FADM's denoiser and its conditioning network (key names as in ``diffusion.pth``)."""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Swish", "TimeEmbedding", "Block"]


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding [sin(t f), cos(t f)] with f = 10000^(-2i/dim); ``inv_freq`` is a stored buffer."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000) / dim))
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = torch.outer(t.reshape(-1).float(), self.inv_freq)
        return torch.cat([angles.sin(), angles.cos()], dim=-1).view(*t.shape, self.dim)


class Block(nn.Module):
    """GroupNorm -> Swish -> conv3x3 (keys ``block.0`` norm, ``block.3`` conv; dropout is 0 at inference)."""

    def __init__(self, dim: int, dim_out: int, groups: int = 32):
        super().__init__()
        self.block = nn.Sequential(nn.GroupNorm(groups, dim), Swish(), nn.Identity(),
                                   nn.Conv2d(dim, dim_out, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm, swish, _, conv = self.block
        h = norm(x)
        if torch.is_grad_enabled():  # autograd keeps Swish's own graph
            return conv(swish(h))
        # Inference: σ(h)·h into σ's buffer, the same products as Swish's h·σ(h) with one full-size temporary
        # fewer (at 256² a fresh temporary is page-faulted and zeroed by the kernel: ~10 % of a CPU step).
        return conv(torch.sigmoid(h).mul_(h))
