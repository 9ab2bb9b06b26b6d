"""CLIP ViT vision tower for Face-Adapter's attribute template (``vision_encoder/``, ViT-H/14).

Face-Adapter feeds Image2Token the vision tower's ``last_hidden_state`` (B,257,1280):
the output of the last encoder layer, *before* ``post_layernorm``. State-dict keys are
exactly transformers 4.x ``CLIPVisionModel``'s (``vision_model.embeddings.*``,
``vision_model.pre_layrnorm.*`` (sic), ``vision_model.encoder.layers.{i}.*``,
``vision_model.post_layernorm.*``), so the official folder, a Hugging Face ViT-H/14 and
anything the pack writes for ComfyUI's CLIPVisionLoader share one layout.
transformers 5.x saves the same tensors without the ``vision_model.`` prefix; the loader
accepts both. ``post_layernorm`` is kept (its weights are in every file) but not applied.

Pixels: :func:`clip_image_processor_pixels` reproduces default ``CLIPImageProcessor()``
of transformers 4.37.1 (upstream's pin) bit for bit; ComfyUI's ``clip_preprocess``
resizes with torch's antialiased bicubic and rounds the long edge differently, which
moves the hidden states (mean token difference ~0.02), so the pack never uses it here.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import FaceAdapterError
from ..core.loading import load_diffusers_folder, load_state_dict, load_weights_into

__all__ = ["VisionConfig", "VIT_H14", "VIT_L14", "CLIPVisionTower", "load_clip_vision", "is_vit_h",
           "require_vit_h", "WrongVisionEncoderError", "clip_image_processor_pixels", "CLIP_MEAN", "CLIP_STD",
           "normalise_vision_state", "LAYOUT_PREFIX"]

LAYOUT_PREFIX = "vision_model."  # transformers 4.x CLIPVisionModel / CLIPModel
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP, CLIPImageProcessor's defaults
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_SIZE = 224

# Keys of a full CLIPModel (or a projection head) that the vision tower does not use.
_FOREIGN = re.compile(r"^(text_model\.|visual_projection\.|text_projection\.|logit_scale$)")
# Older transformers saved the position ids (an arange) as a persistent buffer.
_POSITION_IDS = "embeddings.position_ids"
_TOWER_PARTS = ("embeddings.", "pre_layrnorm.", "encoder.", "post_layernorm.")  # 5.x keys start so


@dataclass(frozen=True)
class VisionConfig:
    """The fields of a transformers ``CLIPVisionConfig`` that shape the network."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    image_size: int = 224
    patch_size: int = 14
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    num_channels: int = 3

    @property
    def num_positions(self) -> int:
        return (self.image_size // self.patch_size) ** 2 + 1

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], source: str = "config") -> "VisionConfig":
        """Read a transformers config.json (CLIPVisionModel, or CLIPModel's ``vision_config``)."""
        if "vision_config" in config and isinstance(config["vision_config"], Mapping):
            config = config["vision_config"]
        required = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
        absent = [k for k in required if k not in config]
        if absent:
            raise ValueError(f"FaceAdapter: {source} is not a CLIP vision config (no {', '.join(absent)})")
        known = {f for f in cls.__dataclass_fields__}
        values = {k: config[k] for k in known if k in config}
        if values.get("hidden_act", "quick_gelu") not in _ACTIVATIONS:
            raise ValueError(f"FaceAdapter: {source}: hidden_act {values['hidden_act']!r} is not one of "
                             f"{', '.join(_ACTIVATIONS)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model_type": "clip_vision_model"}


# laion/CLIP-ViT-H-14-laion2B-s32B-b79K, the tower Face-Adapter's vision_encoder/ is built on.
VIT_H14 = VisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                       image_size=224, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-5)
# openai/clip-vit-large-patch14 (ComfyUI's "ViT-L" CLIP_VISION), for messages and tests.
VIT_L14 = VisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                       image_size=224, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5)
# Heads and activation are not readable from weights: the known CLIP widths (OpenAI / LAION).
_KNOWN_WIDTHS = {768: (12, "quick_gelu"), 1024: (16, "quick_gelu"), 1280: (16, "gelu"), 1664: (16, "gelu")}


def is_vit_h(config: VisionConfig) -> bool:
    """True for the ViT-H/14 at 224 px that Image2Token was trained on (257 tokens x 1280)."""
    return (config.hidden_size, config.num_hidden_layers, config.intermediate_size, config.num_attention_heads,
            config.patch_size, config.image_size) == (1280, 32, 5120, 16, 14, 224)


class WrongVisionEncoderError(FaceAdapterError, ValueError):
    """A CLIP vision encoder that is not the ViT-H/14 Face-Adapter's Image2Token reads."""


def require_vit_h(width: int, layers: int, what: str = "CLIP_VISION") -> None:
    """Refuse an encoder by the two numbers any CLIP vision object exposes (width, depth)."""
    if (width, layers) == (VIT_H14.hidden_size, VIT_H14.num_hidden_layers):
        return
    name = {(1024, 24): "ViT-L/14", (768, 12): "ViT-B", (1664, 48): "ViT-bigG/14"}.get((width, layers), "a CLIP ViT")
    raise WrongVisionEncoderError(
        f"FaceAdapter: {what} is {name} ({width} wide, {layers} layers); Face-Adapter's attribute template needs "
        f"ViT-H/14 ({VIT_H14.hidden_size} wide, {VIT_H14.num_hidden_layers} layers): load CLIP-ViT-H-14 "
        "(laion/CLIP-ViT-H-14-laion2B-s32B-b79K, e.g. ComfyUI's clip_vision_h.safetensors) with the CLIP Vision "
        "loader, or leave clip_vision unconnected to use Face-Adapter's vision_encoder/.")


# ---------------------------------------------------------------- network
def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


_ACTIVATIONS = {"gelu": F.gelu, "quick_gelu": _quick_gelu,
                "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
                "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh")}


class _Embeddings(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.zeros(c.hidden_size))
        self.patch_embedding = nn.Conv2d(c.num_channels, c.hidden_size, kernel_size=c.patch_size,
                                         stride=c.patch_size, bias=False)
        self.position_embedding = nn.Embedding(c.num_positions, c.hidden_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
        return torch.cat([cls, patches], dim=1) + self.position_embedding.weight.to(patches.dtype)


class _Attention(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.heads = c.num_attention_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(c.hidden_size, c.hidden_size)
                                                                for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (p(x).view(b, n, self.heads, d // self.heads).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class _MLP(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.act = _ACTIVATIONS[c.hidden_act]
        self.fc1 = nn.Linear(c.hidden_size, c.intermediate_size)
        self.fc2 = nn.Linear(c.intermediate_size, c.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Layer(nn.Module):
    """Pre-norm transformer block (CLIP)."""

    def __init__(self, c: VisionConfig):
        super().__init__()
        self.self_attn = _Attention(c)
        self.layer_norm1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp = _MLP(c)
        self.layer_norm2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class _Encoder(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.layers = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))


class _VisionTransformer(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.embeddings = _Embeddings(c)
        self.pre_layrnorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)  # sic, as transformers
        self.encoder = _Encoder(c)
        self.post_layernorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)


class CLIPVisionTower(nn.Module):
    """transformers' ``CLIPVisionModel`` (4.x keys); ``forward`` returns last_hidden_state."""

    def __init__(self, config: VisionConfig = VIT_H14):
        super().__init__()
        self.config = config
        self.vision_model = _VisionTransformer(config)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B,3,S,S) normalised pixels -> (B,1+(S/P)^2,width), before post_layernorm."""
        c = self.config
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (c.num_channels, c.image_size, c.image_size):
            raise ValueError(f"FaceAdapter: the CLIP vision tower expects (B,{c.num_channels},{c.image_size},"
                             f"{c.image_size}) pixel values, got {tuple(pixel_values.shape)}")
        vm = self.vision_model
        weight = vm.embeddings.patch_embedding.weight
        x = vm.pre_layrnorm(vm.embeddings(pixel_values.to(device=weight.device, dtype=weight.dtype)))
        for layer in vm.encoder.layers:
            x = layer(x)
        return x


# ---------------------------------------------------------------- loading
def normalise_vision_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """4.x keys from a 4.x or 5.x (no ``vision_model.`` prefix) vision or full-CLIP state dict.

    The text tower, projections and logit scale of a full CLIPModel are dropped, as is the
    ``position_ids`` arange older transformers saved; anything else is kept so a wrong file
    still fails the strict key check with its keys named.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if _FOREIGN.match(key):
            continue
        name = key[len(LAYOUT_PREFIX):] if key.startswith(LAYOUT_PREFIX) else key
        if name == _POSITION_IDS:
            continue
        out[LAYOUT_PREFIX + name if name.startswith(_TOWER_PARTS) else key] = value
    return out


def config_from_state(state: Mapping[str, torch.Tensor], source: str = "state dict") -> VisionConfig:
    """Architecture read off 4.x-layout weights; heads and activation from the known CLIP widths."""
    p = LAYOUT_PREFIX
    try:
        patch = state[p + "embeddings.patch_embedding.weight"]
        positions = state[p + "embeddings.position_embedding.weight"]
        fc1 = state[p + "encoder.layers.0.mlp.fc1.weight"]
    except KeyError as exc:
        raise ValueError(f"FaceAdapter: {source} holds no CLIP vision tower (no {exc.args[0]})") from None
    width, patch_size = int(patch.shape[0]), int(patch.shape[-1])
    if width not in _KNOWN_WIDTHS:
        raise ValueError(f"FaceAdapter: {source}: a {width}-wide CLIP vision tower has no known head count; "
                         "load it from a transformers folder with its config.json")
    heads, act = _KNOWN_WIDTHS[width]
    layers = {int(m.group(1)) for k in state if (m := re.match(re.escape(p) + r"encoder\.layers\.(\d+)\.", k))}
    grid = math.isqrt(int(positions.shape[0]) - 1)
    return VisionConfig(hidden_size=width, intermediate_size=int(fc1.shape[0]), num_hidden_layers=len(layers),
                        num_attention_heads=heads, image_size=grid * patch_size, patch_size=patch_size,
                        hidden_act=act, num_channels=int(patch.shape[1]))


def load_clip_vision(path: str | Path, dtype: torch.dtype = torch.float32,
                     config: Optional[VisionConfig] = None) -> CLIPVisionTower:
    """Strictly load a CLIP vision tower (eval mode) from a transformers folder or one weights file.

    A folder's config.json gives the architecture; a single file uses ``config`` or, for the
    known CLIP widths, the architecture read off its weights. The weights are cast to ``dtype``.
    """
    path = Path(path)
    raw_config, raw_state = (load_diffusers_folder(path) if path.is_dir()
                             else (None, load_state_dict(path, strip_prefixes=())))
    state, source = normalise_vision_state(raw_state), str(path)
    if config is None:
        config = (VisionConfig.from_dict(raw_config, str(path / "config.json")) if raw_config is not None
                  else config_from_state(state, source))
    with torch.device("meta"):
        tower = CLIPVisionTower(config)
    tower = tower.to_empty(device="cpu").to(dtype)  # no random init of ~630M parameters
    return load_weights_into(tower, state, source=source, dtype=dtype)


# ---------------------------------------------------------------- pixels
def _resize_shortest_edge(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) with the short edge = size and the long edge truncated, as transformers 4.37 rounds it."""
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    return (new_long, size) if width <= height else (size, new_long)


def clip_image_processor_pixels(images: np.ndarray) -> torch.Tensor:
    """(N,H,W,3) uint8 RGB -> (N,3,224,224) float32, as default ``CLIPImageProcessor()`` (4.37.1).

    Short edge to 224 with Pillow's BICUBIC on the uint8 image (long edge ``int()``-truncated),
    centre crop 224 with floor offsets, x (1/255) in float64 then float32, (x - mean) / std in float32.
    """
    from PIL import Image

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"FaceAdapter: CLIP pixels need (N,H,W,3) uint8 RGB images, got {images.shape} "
                         f"{images.dtype}")
    mean, std = np.array(CLIP_MEAN, dtype=np.float32), np.array(CLIP_STD, dtype=np.float32)
    out = np.empty((len(images), 3, CLIP_SIZE, CLIP_SIZE), dtype=np.float32)
    for i, image in enumerate(images):
        h, w = _resize_shortest_edge(image.shape[0], image.shape[1], CLIP_SIZE)
        pil = Image.fromarray(np.ascontiguousarray(image))
        resized = np.asarray(pil.resize((w, h), resample=Image.Resampling.BICUBIC))
        top, left = (h - CLIP_SIZE) // 2, (w - CLIP_SIZE) // 2
        crop = resized[top:top + CLIP_SIZE, left:left + CLIP_SIZE]
        scaled = (crop * (1 / 255)).astype(np.float32)
        out[i] = ((scaled - mean) / std).transpose(2, 0, 1)
    return torch.from_numpy(out)

