"""FADM's diffusion renderer (layout ``fadm.diffusion``; ``diffusion.pth``, strict, upstream.md §2.4).

Pixel-space DDPM at 256x256, images in [0,1], T = 100, linear betas scaled by 1000/T (0.001 -> 0.2) computed
in float64 and stored as float32 buffers. Sampling is upstream's ``generalized_steps`` (DDIM with η = 1,
c1 = sqrt(posterior variance), no x0 clamp): from step T−1 down to 0 with one fixed initial noise and one
fixed noise per step, the same for every frame of a video (frames then differ only by their condition,
which keeps the video temporally consistent). ``steps`` < T runs the same update on an evenly spaced
subset of the schedule (DDIM-style skipping, ᾱ_prev taken from the previous kept step) for previews; the
per-step noise is still indexed by the schedule step, so a preview uses a subset of the full run's noises.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from ...core.loading import load_state_dict, load_weights_into
from .condition import PreparedCondition, coarse_levels
from .unet import UNet, UNetConfig

__all__ = ["RendererConfig", "GaussianDiffusion", "FADMDiffusion", "RendererNoise", "schedule", "make_noise",
           "step_timesteps", "sample", "render", "load_fadm_diffusion", "SCHEDULE_BUFFERS"]

SCHEDULE_BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                    "posterior_mean_coef1", "posterior_mean_coef2", "ddim_c1")


@dataclass(frozen=True)
class RendererConfig:
    timesteps: int = 100
    unet: UNetConfig = field(default_factory=UNetConfig)


def schedule(timesteps: int) -> dict[str, torch.Tensor]:
    """The 13 schedule tables in float64 (stored as float32 buffers): upstream's linear schedule."""
    scale = 1000 / timesteps
    betas = torch.linspace(scale * 0.0001, scale * 0.02, timesteps, dtype=torch.float64)
    alphas = 1.0 - betas
    ac = torch.cumprod(alphas, dim=0)
    ac_prev = torch.cat([ac.new_ones(1), ac[:-1]])
    posterior_variance = betas * (1.0 - ac_prev) / (1.0 - ac)
    return {
        "betas": betas, "alphas_cumprod": ac, "alphas_cumprod_prev": ac_prev,
        "sqrt_alphas_cumprod": ac.sqrt(), "sqrt_one_minus_alphas_cumprod": (1.0 - ac).sqrt(),
        "log_one_minus_alphas_cumprod": (1.0 - ac).log(), "sqrt_recip_alphas_cumprod": (1.0 / ac).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / ac - 1).sqrt(), "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": posterior_variance.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * ac_prev.sqrt() / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - ac_prev) * alphas.sqrt() / (1.0 - ac),
        "ddim_c1": ((1.0 - ac / ac_prev) * (1 - ac_prev) / (1 - ac)).sqrt(),
    }


class GaussianDiffusion(nn.Module):
    """Schedule buffers + the denoiser (``denoise_fn``), as the released file nests them."""

    def __init__(self, denoise_fn: UNet, timesteps: int = 100):
        super().__init__()
        self.denoise_fn = denoise_fn
        self.num_timesteps = timesteps
        for name, table in schedule(timesteps).items():
            self.register_buffer(name, table.to(torch.float32))


class FADMDiffusion(nn.Module):
    """The released module (``DiffusionGenerator``): everything under ``diffusion.``."""

    def __init__(self, config: RendererConfig = RendererConfig()):
        super().__init__()
        self.config = config
        self.diffusion = GaussianDiffusion(UNet(config.unet), config.timesteps)

    @property
    def denoiser(self) -> UNet:
        return self.diffusion.denoise_fn

    @property
    def image_size(self) -> int:
        return self.config.unet.image_size


@dataclass(frozen=True)
class RendererNoise:
    """One initial noise (1,3,S,S) and one noise per schedule step (T,1,3,S,S), shared by all frames."""

    initial: torch.Tensor
    per_step: torch.Tensor


def make_noise(seed: int, image_size: int, timesteps: int, *, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> RendererNoise:
    """Seeded noise drawn on the CPU (the same numbers on every device), initial first then step 0..T−1."""
    gen = torch.Generator().manual_seed(int(seed))
    initial = torch.randn(1, 3, image_size, image_size, generator=gen)
    per_step = torch.stack([torch.randn(1, 3, image_size, image_size, generator=gen) for _ in range(timesteps)])
    return RendererNoise(initial.to(device, dtype), per_step.to(device, dtype))


def step_timesteps(timesteps: int, steps: Optional[int] = None) -> list[int]:
    """The schedule steps visited, descending: all of them (T−1 … 0) or ``steps`` evenly spaced ones
    that keep both ends."""
    if steps is None or steps >= timesteps:
        return list(range(timesteps - 1, -1, -1))
    if steps < 1:
        raise ValueError(f"FADM renderer: steps must be at least 1, got {steps}")
    kept = np.unique(np.round(np.linspace(0, timesteps - 1, steps)).astype(int))
    return [int(t) for t in kept[::-1]]


Coefficients = tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]


def _coefficients(diff: GaussianDiffusion, visited: list[int]) -> list[Coefficients]:
    """(t, ᾱ_t, ᾱ_next, c1) per visited step; consecutive steps use the stored buffers (upstream exactly)."""
    ac = diff.alphas_cumprod.float()
    out = []
    for i, t in enumerate(visited):
        nxt = visited[i + 1] if i + 1 < len(visited) else -1
        at = ac[t]
        if nxt == t - 1:
            at_next, c1 = diff.alphas_cumprod_prev.float()[t], diff.ddim_c1.float()[t]
        else:
            at_next = ac[nxt] if nxt >= 0 else torch.ones_like(at)
            c1 = ((1 - at / at_next) * (1 - at_next) / (1 - at)).sqrt()
        out.append((t, at, at_next, c1))
    return out


@torch.no_grad()
def sample(model: FADMDiffusion, condition: PreparedCondition, noise: RendererNoise, *,
           steps: Optional[int] = None, callback: Optional[Callable[[int, int], None]] = None,
           trajectory: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    """Denoise a batch of frames (batch = the condition's) -> (B,3,S,S) clamped to [0,1].

    ``callback(done, total)`` runs after every step (progress, interrupt). ``trajectory`` also returns
    upstream's snapshots: the start and the state after every step t with t % (1 | T//10) == 0, unclamped."""
    diff = model.diffusion
    batch = condition.attribute.shape[0]
    img = noise.initial.expand(batch, *noise.initial.shape[1:])
    every = 1 | (diff.num_timesteps // 10)
    snapshots = [img] if trajectory else []
    coefficients = _coefficients(diff, step_timesteps(diff.num_timesteps, steps))
    for done, (t, at, at_next, c1) in enumerate(coefficients, start=1):
        tt = torch.full((batch,), t, device=img.device, dtype=torch.long)
        at, at_next, c1 = (v.to(img.dtype) for v in (at, at_next, c1))
        et = diff.denoise_fn(img, tt, condition)
        x0 = (img - et * (1 - at).sqrt()) / at.sqrt()
        c2 = ((1 - at_next) - c1**2).sqrt()
        img = at_next.sqrt() * x0 + c1 * noise.per_step[t] + c2 * et
        if trajectory and t % every == 0:
            snapshots.append(img)
        if callback is not None:
            callback(done, len(coefficients))
    out = img.clamp(0, 1)
    return (out, snapshots) if trajectory else out


def render(model: FADMDiffusion, coarse: torch.Tensor, attribute: torch.Tensor, noise: RendererNoise, *,
           steps: Optional[int] = None, callback: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
    """Refine coarse frames (B,3,S,S) in [0,1] given their attribute vectors (B,56) -> (B,3,S,S) in [0,1]."""
    levels, blurred = coarse_levels(coarse)
    condition = model.denoiser.condition_conv.prepare(levels, blurred, blurred, attribute)
    return sample(model, condition, noise, steps=steps, callback=callback)


def load_fadm_diffusion(path: str | Path, config: RendererConfig = RendererConfig(), *,
                        dtype: Optional[torch.dtype] = None) -> FADMDiffusion:
    """``diffusion.pth`` -> FADMDiffusion in eval mode (strict keys); the schedule stays float32 in any dtype."""
    state = load_state_dict(path)
    model = load_weights_into(FADMDiffusion(config), state, source=str(path), dtype=dtype)
    for name in SCHEDULE_BUFFERS:
        setattr(model.diffusion, name, state[f"diffusion.{name}"].to(torch.float32))
    return model
