"""Seeded random weights for the parity fixtures: stage 1 (D3DFR, seg-UNet, BiSeNet), FADM's networks and the
sampling pipeline (SD UNet, ControlNet, VAE; scripts/make_pipeline_parity.py).

Why: the parity fixture (scripts/make_stage1_parity.py) runs upstream's modules and the test
runs the pack's on the *same* weights without committing ~200 MB of them, and the random model
maker (tools/random_models.py) writes these same values as the official stage-1 files. This file
imports only numpy and torch, so the parity script loads it by path in upstream's venv. Each tensor is drawn
from numpy's RandomState seeded by (network seed, crc32 of its key), so it depends only on its
upstream key name and shape: both sides regenerate identical float32 tensors whatever order or
module class they come from. Magnitudes keep activations O(1) through the deep trunks, and
D3DFR's coefficient heads are small so the synthetic face stays inside the crop.
"""
from __future__ import annotations

import zlib
from typing import Mapping

import numpy as np
import torch

# A seed is per network name; two fixtures were made on their own branches with overlapping numbers (FADM's
# 21-23 and the pipeline's 21-23). Different networks draw different tensors, and changing a number would
# invalidate a stored fixture, so they stay as made.
SEEDS = {"d3dfr": 11, "seg_unet": 12, "bisenet": 13,
         "fadm_kp_detector": 21, "fadm_he_estimator": 22, "fadm_generator": 23, "fadm_e_flame": 24,
         "fadm_diffusion": 25, "fadm_fomm_kp_detector": 26, "fadm_fomm_generator": 27,
         "unet": 21, "controlnet": 22, "vae": 23}
SEG_BIAS = -0.1
BISENET_ROWS = {0: 0.045, 17: 0.035}
HEAD_STD = 0.005  # D3DFR's coefficient heads (fianl_layers.*): small pose/shape coefficients
# Heads drawn with a small std instead of 1/sqrt(fan_in): face-vid2vid's translation and expression offsets
# (keypoints stay inside the volume, so the warp moves the face rather than emptying the frame).
# FOMM's jacobian head likewise (plus the identity below: its jacobians are inverted).
SMALL_HEADS = {"d3dfr": ("fianl_layers.",), "fadm_he_estimator": ("fc_t.", "fc_exp."),
               "fadm_fomm_kp_detector": ("jacobian.",)}
# Fixed buffers that are part of the architecture, not learned: they keep the template's value.
FIXED = {"fadm_kp_detector": ("down.weight",), "fadm_fomm_kp_detector": ("down.weight",),
         "fadm_fomm_generator": ("dense_motion_network.down.weight",),
         "fadm_diffusion": ("diffusion.betas", "diffusion.alphas_cumprod", "diffusion.sqrt_", "diffusion.log_",
                            "diffusion.posterior_", "diffusion.ddim_c1", "diffusion.denoise_fn.time_mlp.0.inv_freq")}
# Output layers whose rows are centred (zero mean over inputs) and scaled, so the mask decisions vary
# across the crop instead of following the features' common (post-ReLU, positive) mean: a seg-UNet
# probability on both sides of 0.5, several BiSeNet labels.
CENTRED = {"seg_unet": {"final_conv.weight": 10.0, "final_conv.bias": 0.0},
           "bisenet": {"conv_out.conv_out.weight": 3.0},
           # face-vid2vid's / FOMM's output spans ~0.2..0.8, not a flat 0.5
           "fadm_generator": {"final.weight": 20.0}, "fadm_fomm_generator": {"final.weight": 20.0}}
# Then added: the seg-UNet's output bias, and BiSeNet's background / hair rows (labels 0, 17), so the
# areas cover part of the crop, not all of it. FOMM's jacobians: identity (upstream's initialisation) plus small noise.
OFFSETS = {"seg_unet": {"final_conv.bias": SEG_BIAS}, "bisenet": {"conv_out.conv_out.weight": BISENET_ROWS},
           "fadm_fomm_kp_detector": {"jacobian.bias": lambda a: a + np.tile([1.0, 0.0, 0.0, 1.0], a.size // 4)}}


def _tensor(name: str, shape: tuple[int, ...], seed: int, head_std: float | None) -> np.ndarray:
    rng = np.random.RandomState((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**32))
    if name.endswith("running_var"):
        return rng.uniform(0.5, 1.5, shape)
    if name.endswith("running_mean"):
        return rng.normal(0.0, 0.1, shape)
    if len(shape) == 1 and name.endswith("weight"):  # norm scales
        return rng.uniform(0.4, 0.8, shape)
    if name.endswith("bias"):
        return rng.normal(0.0, 0.05 if head_std is None else head_std, shape)
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    std = head_std if head_std is not None else 1.0 / np.sqrt(fan_in)
    return rng.normal(0.0, std, shape)


def seeded_state_dict(template: Mapping[str, torch.Tensor], network: str) -> dict[str, torch.Tensor]:
    """Fill every floating tensor of ``template`` (a state_dict in upstream's key layout) with the
    deterministic values for ``network`` (a SEEDS key); integer buffers keep their value."""
    seed = SEEDS[network]
    out = {}
    for name, value in template.items():
        if not torch.is_floating_point(value) or name.startswith(FIXED.get(network, ())):
            out[name] = value.clone()
            continue
        head = HEAD_STD if name.startswith(SMALL_HEADS.get(network, ())) else None
        array = _tensor(name, tuple(value.shape), seed, head)
        gain = CENTRED.get(network, {}).get(name)
        if gain is not None:
            rows = array.reshape(array.shape[0], -1)
            array = gain * (rows - rows.mean(axis=1, keepdims=True)).reshape(array.shape) if array.ndim > 1 else array * gain
        offset = OFFSETS.get(network, {}).get(name)
        if callable(offset):
            array = offset(array)
        elif isinstance(offset, dict):
            for row, value in offset.items():
                array[row] += value
        elif offset is not None:
            array = array + offset
        out[name] = torch.from_numpy(array.astype(np.float32))
    return out


def seeded_noise(seed: int, shape: tuple[int, ...], count: int) -> np.ndarray:
    """(count, *shape) float32 standard normal draws from numpy's RandomState(seed), one draw per item:
    the renderer's shared noises for the FADM parity fixture, regenerated identically on both sides."""
    rng = np.random.RandomState(seed)
    return np.stack([rng.standard_normal(shape) for _ in range(count)]).astype(np.float32)


def seeded_safetensors(src: str, dst: str, network: str) -> None:
    """Copy a safetensors file (keys, shapes, header metadata) with every floating tensor replaced by the
    seeded values for ``network``. The maker's tiny UNet / ControlNet / VAE are drawn at a fixed std, which
    lets the hint and the ControlNet's context fade out of the image; fan-in scaling keeps every condition
    visible, so a parity bound on the pipeline's image can tell them apart."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), "pt") as handle:
        metadata = handle.metadata()
    save_file(seeded_state_dict(load_file(str(src)), network), str(dst), metadata=metadata)


# The maker's layout of the three diffusion networks (relative to a models folder) -> SEEDS name.
DIFFUSION_FILES = {"faceadapter/pretrained_unet/diffusion_pytorch_model.safetensors": "unet",
                   "faceadapter/controlnet/diffusion_pytorch_model.safetensors": "controlnet",
                   "vae/vae-ft-mse-840000-ema-pruned.safetensors": "vae"}


def seeded_diffusion_set(models: str, out: str) -> None:
    """The maker's (tiny) UNet, ControlNet and VAE under ``models`` re-drawn with seeded weights into the
    same layout under ``out`` (config.json files copied), for the pipeline parity fixture and its test."""
    import shutil
    from pathlib import Path

    for rel, network in DIFFUSION_FILES.items():
        src, dst = Path(models) / rel, Path(out) / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if (src.parent / "config.json").is_file():
            shutil.copyfile(src.parent / "config.json", dst.parent / "config.json")
        seeded_safetensors(str(src), str(dst), network)
