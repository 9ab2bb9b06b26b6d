"""FADM's socket types: which files to use, fetched from the one model cache at each use.

Like FACEADAPTER_MODEL, a handle names files, not networks, so ComfyUI's cached loader output holds no
network, the Model Cache node's unload really frees memory, and the next use reloads. Every FADM network
runs in float32, as upstream does (its renderer was never run in half precision).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..core import comfy_bridge as bridge
from ..core.cache import MODEL_CACHE
from ..models.fadm.animate import FacevidNets, load_facevid
from ..models.fadm.deca import EFlame, load_e_flame
from ..models.fadm.facevid import FacevidConfig
from ..models.fadm.fomm import FOMMConfig, FOMMNets, load_fomm
from ..models.fadm.renderer import FADMDiffusion, RendererConfig, load_fadm_diffusion

FADM_DTYPE = torch.float32
COARSE_KINDS = ("face-vid2vid", "fomm")
VOX_SIZE = 256  # upstream's demo resizes every source and driving frame to 256x256


def _cached(label: str, path: Path, config: Any, device: Optional[torch.device],
            builder: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    item = MODEL_CACHE.get(label, [path], builder, dtype=FADM_DTYPE, device=device or bridge.torch_device(),
                           extra_key=config)
    return item.ready()


def network_device(module: torch.nn.Module) -> torch.device:
    """Where a cached network's weights are now (ComfyUI may have moved it)."""
    return next(module.parameters()).device


@dataclass(frozen=True)
class CoarseGenerator:
    """FACEADAPTER_COARSE_GENERATOR socket: face-vid2vid (``Facevid.pth``) or FOMM (``FOMM.pth``)."""

    kind: str
    path: Path
    facevid_config: FacevidConfig = field(default_factory=FacevidConfig)
    fomm_config: FOMMConfig = field(default_factory=FOMMConfig)
    image_size: int = VOX_SIZE  # frames are resized to this before the generator (256: the released nets)
    device: Optional[torch.device] = None

    def __post_init__(self) -> None:
        if self.kind not in COARSE_KINDS:
            raise ValueError(f"FaceAdapter: coarse generator must be one of {COARSE_KINDS}, got {self.kind!r}")

    def nets(self) -> FacevidNets | FOMMNets:
        path = self.path
        if self.kind == "fomm":
            config = self.fomm_config
            return _cached("fadm_fomm", path, config, self.device, lambda: load_fomm(path, config, dtype=FADM_DTYPE))
        config = self.facevid_config
        return _cached("fadm_facevid", path, config, self.device,
                       lambda: load_facevid(path, config, dtype=FADM_DTYPE))


@dataclass(frozen=True)
class FadmRenderer:
    """FACEADAPTER_FADM socket: the diffusion renderer with its conditioning network (``diffusion.pth``)."""

    path: Path
    config: RendererConfig = field(default_factory=RendererConfig)
    device: Optional[torch.device] = None

    def model(self) -> FADMDiffusion:
        path, config = self.path, self.config
        return _cached("fadm_diffusion", path, config, self.device,
                       lambda: load_fadm_diffusion(path, config, dtype=FADM_DTYPE))


@dataclass(frozen=True)
class DecaEncoder:
    """FACEADAPTER_DECA socket: DECA's E_flame (``deca_model.tar``), FADM's motion encoder."""

    path: Path
    device: Optional[torch.device] = None

    def model(self) -> EFlame:
        path = self.path
        return _cached("fadm_deca_e_flame", path, None, self.device, lambda: load_e_flame(path, dtype=FADM_DTYPE))
