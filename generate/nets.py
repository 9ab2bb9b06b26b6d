"""FACEADAPTER_MODEL: which Face-Adapter helper networks to use, fetched from the one model cache.

A handle names files, not networks, like the spatial stage's projector handle: ComfyUI's cached
node output then holds no network, the Model Cache node's unload really frees memory, and the next
use reloads transparently. Helper networks run in fp32 as upstream runs them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..core import comfy_bridge as bridge
from ..core.cache import MODEL_CACHE, CachedModel
from ..core.loading import read_checkpoint
from ..models.arcface import load_arcface
from ..models.token_nets import load_id2token, load_image2token

HELPER_DTYPE = torch.float32


@dataclass(frozen=True)
class FaceAdapterNets:
    """FACEADAPTER_MODEL socket: token networks, ArcFace, and optionally the vision encoder and negative."""

    id2token_path: Path
    image2token_path: Path
    arcface_path: Path
    vision_encoder_path: Optional[Path] = None  # Face-Adapter's vision_encoder/ (None: a CLIP_VISION is connected)
    empty_prompt_path: Optional[Path] = None
    device: Optional[torch.device] = None

    @classmethod
    def found(cls, device: Optional[torch.device] = None) -> "FaceAdapterNets":
        """Every file under its official name in the model folders, vision encoder and empty prompt included
        (the standalone path; the Load node picks them from dropdowns). MissingModelError names the first
        missing file, where it was looked for and where it comes from."""
        from ..core.model_paths import require_model

        ids = ("id2token", "image2token", "arcface_iresnet100", "vision_encoder", "empty_prompt_embedding")
        return cls(*(require_model(f"faceadapter.{name}") for name in ids), device=device)

    def _get(self, label: str, path: Path, builder) -> CachedModel:
        return MODEL_CACHE.get(label, [path], builder, dtype=HELPER_DTYPE,
                               device=self.device or bridge.torch_device())

    def id2token(self) -> CachedModel:
        path = self.id2token_path
        return self._get("faceadapter_id2token", path, lambda: load_id2token(path, dtype=HELPER_DTYPE))

    def image2token(self) -> CachedModel:
        path = self.image2token_path
        return self._get("faceadapter_image2token", path, lambda: load_image2token(path, dtype=HELPER_DTYPE))

    def arcface(self) -> CachedModel:
        return cached_arcface(self.arcface_path, self.device)

    def vision_encoder(self) -> CachedModel:
        if self.vision_encoder_path is None:
            raise ValueError("FaceAdapter: no vision encoder was loaded; connect a CLIP_VISION (ViT-H/14) to "
                             "Encode Attribute Template or load Face-Adapter's vision_encoder/ folder")
        from ..models.clip_vision import load_clip_vision

        path = self.vision_encoder_path
        return self._get("faceadapter_vision_encoder", path, lambda: load_clip_vision(path, dtype=HELPER_DTYPE))

    def negative(self) -> Optional[torch.Tensor]:
        """The (1,77,768) empty-prompt embedding, or None when the file was not found."""
        if self.empty_prompt_path is None:
            return None
        return load_empty_prompt(self.empty_prompt_path)

    def load_all(self) -> None:
        """Load every named network now, so a wrong file fails at the loader node, not mid-render."""
        self.id2token()
        self.image2token()
        self.arcface()
        if self.vision_encoder_path is not None:
            self.vision_encoder()


def cached_arcface(path: Path, device: Optional[torch.device] = None) -> CachedModel:
    """The one ArcFace IResNet in the model cache: Encode Identity and the metrics nodes share it."""
    return MODEL_CACHE.get("arcface_iresnet100", [path], lambda: load_arcface(path, dtype=HELPER_DTYPE),
                           dtype=HELPER_DTYPE, device=device or bridge.torch_device())


def load_empty_prompt(path: Path) -> torch.Tensor:
    """``empty_prompt_embedding.pth``: a bare fp16 tensor of 77x768 (any leading 1s), as fp32 (1,77,768).
    (Random test sets may be narrower than 768; the width is checked against the tokens later.)"""
    value = read_checkpoint(path)
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    if not isinstance(value, torch.Tensor) or value.ndim < 2 or value.shape[-2] != 77 or value.numel() != 77 * value.shape[-1]:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"FaceAdapter: {path} is not an empty-prompt embedding (expected a 1x77x768 tensor, "
                         f"found {shape}); get it from https://github.com/FaceAdapter/Face-Adapter/raw/main/"
                         "empty_prompt_embedding.pth or connect CLIPTextEncode with an empty text instead")
    return value.reshape(1, 77, value.shape[-1]).to(torch.float32)


def negative_embedding(nets: FaceAdapterNets, conditioning: Optional[list] = None) -> torch.Tensor:
    """The negative for UNet and ControlNet: a connected CONDITIONING (CLIPTextEncode of "") wins,
    else Face-Adapter's ``empty_prompt_embedding.pth``; neither is a clear error."""
    if conditioning:
        tokens = conditioning[0][0]
        if len(conditioning) != 1 or tokens.shape[0] != 1:
            raise ValueError("FaceAdapter: the negative CONDITIONING must be one prompt (CLIPTextEncode of an empty "
                             f"text); got {len(conditioning)} entries of batch {tokens.shape[0]}")
        return tokens.to(torch.float32).cpu()
    found = nets.negative()
    if found is None:
        from ..core.errors import MissingModelError
        from ..core.model_paths import candidate_paths
        from ..core.manifest import entry

        e = entry("faceadapter.empty_prompt_embedding")
        raise MissingModelError(e.path, candidate_paths(e), e.kind, f"{e.source} - or connect CLIPTextEncode "
                                "with an empty text (SD1.5 CLIP) to Apply Face-Adapter's 'negative' input")
    return found
