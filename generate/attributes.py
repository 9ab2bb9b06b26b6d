"""FACEADAPTER_ATTRIBUTES: the attribute template (upstream step 9, ControlNet prompt).

Per distinct attribute crop (the source 512 crop for reenactment, the target's for swapping):
pixels prepared exactly as ``CLIPImageProcessor()`` -> CLIP ViT-H/14 ``last_hidden_state`` before
the post-layernorm (257 x 1280) -> Image2Token -> (77,768). The vision tower is Face-Adapter's
``vision_encoder/`` or a stock CLIP_VISION (through the bridge); only the hidden-state call differs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ..core import comfy_bridge as bridge
from ..spatial.condition import FaceView, distinct_views
from .conditioning import per_pair
from .nets import FaceAdapterNets

CHUNK = 8
HiddenStates = Callable[[torch.Tensor], torch.Tensor]  # CLIP pixels (B,3,224,224) -> (B,257,1280)


@dataclass(frozen=True, eq=False)
class FaceAttributes:
    """Attribute tokens of M distinct crops and, per face pair, which row it uses."""

    tokens: torch.Tensor  # (M,77,768) fp32, Image2Token output
    index: tuple[int, ...]
    crops: np.ndarray  # (M,512,512,3) uint8, the crops CLIP saw (before its resize)
    encoder: str  # "vision_encoder" (Face-Adapter's folder) or "clip_vision" (a stock CLIP_VISION)

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def for_pairs(self, pairs: int) -> torch.Tensor:
        return per_pair(self.tokens, self.index, "the attribute template", pairs)


def own_tower_hidden_states(nets: FaceAdapterNets) -> HiddenStates:
    """Hidden states from Face-Adapter's own vision_encoder/ (fp32, the model cache)."""
    item = nets.vision_encoder()
    tower = item.ready()

    def hidden(pixels: torch.Tensor) -> torch.Tensor:
        return tower(pixels.to(item.device, torch.float32))

    return hidden


def choose_hidden_states(nets: FaceAdapterNets, clip_vision=None) -> tuple[HiddenStates, str]:
    """(hidden-state function, encoder name): a connected stock CLIP_VISION (checked to be ViT-H/14) wins,
    else Face-Adapter's own vision_encoder/ (a clear error when neither was loaded)."""
    if clip_vision is None:
        return own_tower_hidden_states(nets), "vision_encoder"
    from ..models.clip_vision import require_vit_h

    require_vit_h(*bridge.clip_vision_width_layers(clip_vision))
    return (lambda pixels: bridge.clip_vision_hidden_states(clip_vision, pixels)), "clip_vision"


@torch.no_grad()
def encode_attributes(views: Sequence[FaceView], nets: FaceAdapterNets, hidden_states: HiddenStates,
                      encoder: str) -> FaceAttributes:
    """Encode each distinct view's 512 crop once (in chunks, honouring Cancel)."""
    from ..models.clip_vision import clip_image_processor_pixels

    unique, index = distinct_views(views)
    item = nets.image2token()
    image2token = item.ready()
    crops = np.stack([v.crop512 for v in unique]) if unique else np.zeros((0, 512, 512, 3), np.uint8)
    tokens = []
    for start in range(0, len(unique), CHUNK):
        bridge.check_interrupt()
        pixels = clip_image_processor_pixels(crops[start:start + CHUNK])
        memory = hidden_states(pixels).to(item.device, torch.float32)
        tokens.append(image2token(memory).float().cpu())
    crops.setflags(write=False)
    return FaceAttributes(torch.cat(tokens) if tokens else torch.zeros(0, 77, 768), tuple(index), crops, encoder)
