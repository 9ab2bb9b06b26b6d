"""The native sampler: ComfyUI's KSampler and VAE behind the :class:`~.render.CropSampler` interface.

Used by the Render node; the node-by-node graph (Apply -> KSampler -> VAE Decode) runs the same
conditioning through the stock nodes instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from ..core import comfy_bridge_sampling as sampling
from .conditioning import FaceConditions


@dataclass(frozen=True)
class ControlSettings:
    """How strongly and over which part of the schedule the attribute controller acts (upstream: 1, 0..1)."""

    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0


def comfy_conditioning(conditions: FaceConditions, control_net: Any, control: ControlSettings,
                       vae: Any = None) -> tuple[list, list]:
    """(positive, negative) CONDITIONING for these face pairs (one ControlNet copy on both)."""
    return sampling.face_adapter_conditioning(conditions.unet_positive, conditions.controlnet_positive,
                                              conditions.negative, conditions.hint, control_net, control.strength,
                                              control.start, control.end, vae)


def empty_latent(conditions: FaceConditions) -> dict:
    """A LATENT of zeros with one entry per face pair, sized to the control images."""
    return {"samples": torch.zeros((len(conditions), *conditions.latent_shape))}


@dataclass
class NativeSampler:
    """Sample with ComfyUI's KSampler, decode with the stock VAE."""

    model: Any
    vae: Any
    control_net: Any
    control: ControlSettings
    steps: int = 25
    cfg: float = 5.0
    sampler_name: str = "euler"
    scheduler: str = "normal"
    seed: int = 0
    on_batch: Optional[Callable[[int], None]] = None

    def __call__(self, conditions: FaceConditions, noise: torch.Tensor, on_step: Callable[[], None]) -> torch.Tensor:
        positive, negative = comfy_conditioning(conditions, self.control_net, self.control, self.vae)
        latents = sampling.sample(self.model, noise, positive, negative, self.steps, self.cfg, self.sampler_name,
                                  self.scheduler, self.seed, on_step)
        return sampling.decode(self.vae, latents)
