"""The bridge's diffusion half: ComfyUI's ControlNet, conditioning, KSampler and VAE for Face-Adapter.

With core/comfy_bridge.py this is the only code that touches ``comfy.*``. Everything that decides
what the model sees (tokens, hint range, contexts) is computed in generate/ and arrives here as a
:class:`~..generate.conditioning.FaceConditions`; this module only packs it into ComfyUI's
CONDITIONING and runs ComfyUI's own sampler, so LoRAs, model patches, samplers, schedulers and
VRAM management all apply.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from .comfy_bridge import _comfy


def _require(name: str):
    module = _comfy(name)
    if module is None:
        raise RuntimeError(f"FaceAdapter: '{name}' is only available inside ComfyUI; outside it use the "
                           "standalone diffusers path (generate/standalone.py)")
    return module


def load_controlnet(path: Path) -> Any:
    """A stock CONTROL_NET from Face-Adapter's diffusers ControlNet file (ComfyUI converts the keys)."""
    return _require("comfy.controlnet").load_controlnet(str(path))


def load_unet(path: Path) -> Any:
    """A stock MODEL from a diffusers UNet file (what the stock UNETLoader does with it)."""
    return _require("comfy.sd").load_diffusion_model(str(path))


def face_adapter_conditioning(unet_positive: torch.Tensor, controlnet_positive: torch.Tensor,
                              negative: torch.Tensor, hint: torch.Tensor, control_net: Any, strength: float,
                              start: float, end: float, vae: Any = None) -> tuple[list, list]:
    """(positive, negative) CONDITIONING, both carrying one ControlNet with its own context.

    The ControlNet reads ``cross_attn_controlnet`` instead of the UNet's prompt: attribute tokens on
    the positive, the empty prompt on the negative, as upstream runs it on both CFG halves. Setting
    the key on the negative too keeps cond and uncond in one batched forward per step. The hint is
    already in [-1,1] (Face-Adapter's range) and given to the ControlNet directly, not as an IMAGE.
    """
    control = control_net.copy().set_cond_hint(hint, strength, (start, end), vae=vae)
    positive = [[unet_positive, {"cross_attn_controlnet": controlnet_positive, "control": control,
                                 "control_apply_to_uncond": False}]]
    negative_out = [[negative, {"cross_attn_controlnet": negative, "control": control,
                                "control_apply_to_uncond": False}]]
    return positive, negative_out


def sample(model: Any, noise: torch.Tensor, positive: list, negative: list, steps: int, cfg: float,
           sampler_name: str, scheduler: str, seed: int, on_step: Callable[[], None]) -> torch.Tensor:
    """ComfyUI's KSampler from unit ``noise`` at full denoise; ``on_step`` after each step (progress +
    Cancel). Returns latents on ComfyUI's intermediate device."""
    sample_mod = _require("comfy.sample")
    latent = torch.zeros_like(noise)
    latent = sample_mod.fix_empty_latent_channels(model, latent)

    def callback(_step: int, _x0: Any, _x: Any, _total: int) -> None:
        on_step()

    return sample_mod.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                             denoise=1.0, callback=callback, disable_pbar=True, seed=seed)


def decode(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """Stock VAE decode to IMAGE (B,H,W,3) in [0,1]."""
    return vae.decode(latents)


def sampler_names() -> list[str]:
    samplers = _comfy("comfy.samplers")
    return list(samplers.KSampler.SAMPLERS) if samplers is not None else ["euler"]


def scheduler_names() -> list[str]:
    samplers = _comfy("comfy.samplers")
    return list(samplers.KSampler.SCHEDULERS) if samplers is not None else ["normal"]
