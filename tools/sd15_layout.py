"""Stable Diffusion 1.5 architecture facts for the random model maker: configs, key layouts, and the
diffusers -> original (LDM) key names a single-file SD1.5 checkpoint uses.

Why here: the maker, the standalone pipeline and the tests must share ONE definition of the full-size
and tiny configs. Diffusers configs are plain dicts (diffusers is imported lazily, only to enumerate
keys on the meta device and to write config.json). The CLIP key layouts are written out from the
architecture facts because transformers 5.x saves without the ``text_model.`` / ``vision_model.``
prefixes that ComfyUI and Face-Adapter's ``vision_encoder/`` (transformers 4.x) use.

LDM naming facts used by ``unet_ldm_key`` / ``vae_ldm_key`` (the original CompVis/Stability code):
- UNet: ``input_blocks.N.M`` numbers conv_in, then each down block's layers, its downsampler last
  (``.0.op``); ``middle_block.0/1/2`` = resnet, attention, resnet; ``output_blocks.N`` numbers each
  up block's layers, the upsampler sits after the layer's attention (``.2.conv``) or resnet (``.1.conv``);
  ``time_embed.0/2``, ``out.0/2``. ResBlocks name their parts in_layers.0/2, emb_layers.1,
  out_layers.0/3, skip_connection; transformer blocks keep diffusers' names.
- VAE: ``encoder.down.I.block.J`` / ``.downsample``, ``decoder.up.I`` numbered from the *lowest*
  resolution up (the reverse of diffusers' up_blocks), ``mid.block_1/attn_1/block_2``,
  ``norm_out``, ``nin_shortcut``; the mid attention uses 1x1 convs ``q k v proj_out`` and ``norm``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

__all__ = ["SD15_UNET_CONFIG", "SD15_CONTROLNET_CONFIG", "SD_VAE_CONFIG", "CLIP_L_TEXT", "VIT_H14_VISION",
           "TINY_UNET_CONFIG", "TINY_CONTROLNET_CONFIG", "TINY_VAE_CONFIG", "TINY_VISION",
           "TINY_ARCFACE", "TINY_ID2TOKEN", "TINY_IMAGE2TOKEN", "unet_config", "controlnet_config",
           "vae_config", "vae_config_of", "VAE_CONFIG_METADATA", "vision_config", "vision_config_json",
           "clip_text_layout", "clip_vision_layout", "diffusers_layout", "diffusers_model_on_meta", "unet_ldm_key",
           "vae_ldm_key", "CHECKPOINT_PREFIXES"]

Shape = tuple[int, ...]

# ------------------------------------------------------------------ full size (SD1.5 / Face-Adapter)
SD15_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "center_input_sample": False,
    "flip_sin_to_cos": True, "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2, "downsample_padding": 1,
    "mid_block_scale_factor": 1, "act_fn": "silu", "norm_num_groups": 32, "norm_eps": 1e-5,
    "cross_attention_dim": 768, "attention_head_dim": 8, "use_linear_projection": False,
}
_CONTROLNET_ONLY = ("sample_size", "out_channels", "up_block_types", "center_input_sample")
SD15_CONTROLNET_CONFIG: dict[str, Any] = {
    **{k: v for k, v in SD15_UNET_CONFIG.items() if k not in _CONTROLNET_ONLY},
    "conditioning_channels": 3, "conditioning_embedding_out_channels": [16, 32, 96, 256],
    "controlnet_conditioning_channel_order": "rgb",
}
SD_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "sample_size": 512,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "act_fn": "silu",
    "norm_num_groups": 32, "scaling_factor": 0.18215,
}
# SD1.5's text encoder (OpenAI CLIP ViT-L/14 text tower) and Face-Adapter's ViT-H/14 vision tower.
CLIP_L_TEXT: dict[str, Any] = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
                               "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 77}
VIT_H14_VISION: dict[str, Any] = {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
                                  "num_attention_heads": 16, "patch_size": 14, "image_size": 224,
                                  "hidden_act": "gelu", "projection_dim": 1024}

# ------------------------------------------------------------------ tiny (tier 1): same structure, small widths
# 77x768 token contexts still fit (cross_attention_dim 768); the VAE keeps 4 levels (8x latents).
TINY_UNET_CONFIG: dict[str, Any] = {
    **SD15_UNET_CONFIG, "sample_size": 8,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [32, 64], "layers_per_block": 1, "norm_num_groups": 8, "attention_head_dim": 2,
}
TINY_CONTROLNET_CONFIG: dict[str, Any] = {
    **{k: v for k, v in TINY_UNET_CONFIG.items() if k not in _CONTROLNET_ONLY},
    "conditioning_channels": 3, "conditioning_embedding_out_channels": [8, 16, 16, 32],
    "controlnet_conditioning_channel_order": "rgb",
}
TINY_VAE_CONFIG: dict[str, Any] = {**SD_VAE_CONFIG, "block_out_channels": [16, 32, 32, 32], "layers_per_block": 1,
                                   "norm_num_groups": 8, "sample_size": 64}
TINY_VISION: dict[str, Any] = {**VIT_H14_VISION, "hidden_size": 64, "intermediate_size": 128,
                               "num_hidden_layers": 2, "num_attention_heads": 2, "projection_dim": 64}
# Constructor arguments of the pack's networks (the loaders infer them back from the state dicts).
TINY_ARCFACE: dict[str, Any] = {"layers": (1, 1, 1, 1), "widths": (8, 16, 32, 64), "num_features": 64}
TINY_ID2TOKEN: dict[str, Any] = {"in_dim": TINY_ARCFACE["widths"][-1], "hidden": 768, "num_layers": 1, "ffn_dim": 64}
TINY_IMAGE2TOKEN: dict[str, Any] = {"in_dim": TINY_VISION["hidden_size"], "hidden": 768, "num_layers": 1,
                                    "ffn_dim": 64}


def unet_config(tiny: bool = False) -> dict[str, Any]:
    return dict(TINY_UNET_CONFIG if tiny else SD15_UNET_CONFIG)


def controlnet_config(tiny: bool = False) -> dict[str, Any]:
    return dict(TINY_CONTROLNET_CONFIG if tiny else SD15_CONTROLNET_CONFIG)


def vae_config(tiny: bool = False) -> dict[str, Any]:
    return dict(TINY_VAE_CONFIG if tiny else SD_VAE_CONFIG)


VAE_CONFIG_METADATA = "diffusers_config"  # safetensors header entry of the maker's VAE file


def vae_config_of(path: str | Path) -> dict[str, Any]:
    """AutoencoderKL config for a diffusers-key VAE file: the one in its safetensors header (the maker's
    files, tiny or full), else SD's (every SD1.5 VAE has that architecture)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        stored = (f.metadata() or {}).get(VAE_CONFIG_METADATA)
    return json.loads(stored) if stored else dict(SD_VAE_CONFIG)


def vision_config(tiny: bool = False) -> dict[str, Any]:
    return dict(TINY_VISION if tiny else VIT_H14_VISION)


def vision_config_json(vision: Mapping[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    """config.json of a transformers CLIPVisionModel folder (what Face-Adapter's vision_encoder/ holds)."""
    return {"architectures": ["CLIPVisionModel"], "model_type": "clip_vision_model", **vision,
            "num_channels": 3, "layer_norm_eps": 1e-5, "attention_dropout": 0.0, "dropout": 0.0,
            "initializer_range": 0.02, "initializer_factor": 1.0,
            "torch_dtype": str(dtype).removeprefix("torch."), "transformers_version": "4.37.1"}


# ------------------------------------------------------------------ key layouts (name -> shape)
def _encoder_layers(prefix: str, hidden: int, inner: int, layers: int) -> dict[str, Shape]:
    out: dict[str, Shape] = {}
    for i in range(layers):
        p = f"{prefix}encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            out[f"{p}self_attn.{proj}.weight"], out[f"{p}self_attn.{proj}.bias"] = (hidden, hidden), (hidden,)
        out[f"{p}layer_norm1.weight"], out[f"{p}layer_norm1.bias"] = (hidden,), (hidden,)
        out[f"{p}mlp.fc1.weight"], out[f"{p}mlp.fc1.bias"] = (inner, hidden), (inner,)
        out[f"{p}mlp.fc2.weight"], out[f"{p}mlp.fc2.bias"] = (hidden, inner), (hidden,)
        out[f"{p}layer_norm2.weight"], out[f"{p}layer_norm2.bias"] = (hidden,), (hidden,)
    return out


def clip_text_layout(text: Mapping[str, Any] = CLIP_L_TEXT) -> dict[str, Shape]:
    """CLIPTextModel keys in the transformers 4.x layout (``text_model.*``)."""
    h, p = text["hidden_size"], "text_model."
    out: dict[str, Shape] = {f"{p}embeddings.token_embedding.weight": (text["vocab_size"], h),
                             f"{p}embeddings.position_embedding.weight": (text["max_position_embeddings"], h)}
    out.update(_encoder_layers(p, h, text["intermediate_size"], text["num_hidden_layers"]))
    out[f"{p}final_layer_norm.weight"], out[f"{p}final_layer_norm.bias"] = (h,), (h,)
    return out


def clip_vision_layout(vision: Mapping[str, Any] = VIT_H14_VISION) -> dict[str, Shape]:
    """CLIPVisionModel keys in the transformers 4.x layout (``vision_model.*``); no projection."""
    h, p, patch = vision["hidden_size"], "vision_model.", vision["patch_size"]
    positions = (vision["image_size"] // patch) ** 2 + 1
    out: dict[str, Shape] = {f"{p}embeddings.class_embedding": (h,),
                             f"{p}embeddings.patch_embedding.weight": (h, 3, patch, patch),
                             f"{p}embeddings.position_embedding.weight": (positions, h),
                             f"{p}pre_layrnorm.weight": (h,), f"{p}pre_layrnorm.bias": (h,)}
    out.update(_encoder_layers(p, h, vision["intermediate_size"], vision["num_hidden_layers"]))
    out[f"{p}post_layernorm.weight"], out[f"{p}post_layernorm.bias"] = (h,), (h,)
    return out


def _diffusers_class(kind: str):
    if kind == "unet":
        from diffusers import UNet2DConditionModel as cls
    elif kind == "controlnet":
        from diffusers import ControlNetModel as cls
    elif kind == "vae":
        from diffusers import AutoencoderKL as cls
    else:
        raise ValueError(f"FaceAdapter: unknown diffusers model kind {kind!r}")
    return cls


def diffusers_model_on_meta(kind: str, config: Mapping[str, Any]) -> torch.nn.Module:
    """The diffusers model for ``config`` on the meta device: its keys and shapes, no memory."""
    with torch.device("meta"):
        return _diffusers_class(kind).from_config(dict(config))


def diffusers_layout(kind: str, config: Mapping[str, Any]) -> dict[str, Shape]:
    """Diffusers key -> shape for a UNet / ControlNet / VAE config (computed on the meta device)."""
    return {k: tuple(v.shape) for k, v in diffusers_model_on_meta(kind, config).state_dict().items()}


# ------------------------------------------------------------------ diffusers -> LDM names
CHECKPOINT_PREFIXES = {"unet": "model.diffusion_model.", "vae": "first_stage_model.",
                       "text": "cond_stage_model.transformer."}
_RESNET_PARTS = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                 "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def _resnet(rest: str) -> str:
    part, _, tail = rest.partition(".")
    if part not in _RESNET_PARTS:
        raise KeyError(f"FaceAdapter: unknown diffusers resnet part {rest!r}")
    return f"{_RESNET_PARTS[part]}.{tail}"


def unet_ldm_key(key: str, layers_per_block: int, up_attention: Sequence[bool]) -> str:
    """One diffusers UNet key -> its name in an original SD checkpoint (without the model prefix).

    ``up_attention[i]`` says whether up block i has cross-attention (its upsampler then comes third).
    """
    per = layers_per_block + 1
    fixed = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
             "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2."}
    for old, new in fixed.items():
        if key.startswith(old):
            return new + key[len(old):]
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$", key):
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = 1 + block * per + layer
        return f"input_blocks.{index}.0.{_resnet(rest)}" if kind == "resnets" else f"input_blocks.{index}.1.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$", key):
        return f"input_blocks.{(int(m[1]) + 1) * per}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.+)$", key):
        return f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
    if m := re.match(r"mid_block\.attentions\.0\.(.+)$", key):
        return f"middle_block.1.{m[1]}"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$", key):
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = block * per + layer
        return f"output_blocks.{index}.0.{_resnet(rest)}" if kind == "resnets" else f"output_blocks.{index}.1.{rest}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$", key):
        block = int(m[1])
        return f"output_blocks.{block * per + layers_per_block}.{2 if up_attention[block] else 1}.conv.{m[2]}"
    raise KeyError(f"FaceAdapter: no SD checkpoint name for diffusers UNet key {key!r}")


_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_ldm_key(key: str, levels: int) -> tuple[str, bool]:
    """One diffusers AutoencoderKL key -> (SD checkpoint name, whether a Linear weight becomes a 1x1 conv)."""
    def block(rest: str) -> str:
        return rest.replace("conv_shortcut.", "nin_shortcut.", 1)

    if m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)$", key):
        part = _VAE_ATTENTION.get(m[2])
        if part is None:
            raise KeyError(f"FaceAdapter: unknown VAE attention part in {key!r}")
        return f"{m[1]}.mid.attn_1.{part}.{m[3]}", m[3] == "weight" and part != "norm"
    if m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.+)$", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{block(m[3])}", False
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{block(m[3])}", False
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$", key):
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}", False
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$", key):
        return f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}.{block(m[3])}", False
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$", key):
        return f"decoder.up.{levels - 1 - int(m[1])}.upsample.conv.{m[2]}", False
    if m := re.match(r"(encoder|decoder)\.conv_norm_out\.(.+)$", key):
        return f"{m[1]}.norm_out.{m[2]}", False
    if re.match(r"((encoder|decoder)\.conv_(in|out)|quant_conv|post_quant_conv)\.", key):
        return key, False
    raise KeyError(f"FaceAdapter: no SD checkpoint name for diffusers VAE key {key!r}")
