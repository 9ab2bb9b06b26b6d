"""The one module that talks to ComfyUI (``comfy.*`` and ``folder_paths``).

Everything else in the pack asks this module for devices, dtypes, progress,
interrupts and model folders, so the pack also runs without ComfyUI (tests,
the demo, benches): then devices come from torch, progress from tqdm, and
model folders from ``FACEADAPTER_MODELS_DIR`` (or :func:`set_models_dir`).
"""
from __future__ import annotations

import importlib
import logging
import os
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import torch

from .errors import FaceAdapterError

log = logging.getLogger("FaceAdapter")

MODELS_DIR_ENV = "FACEADAPTER_MODELS_DIR"
_standalone_models_dir: Optional[Path] = None


@lru_cache(maxsize=None)
def _comfy(name: str) -> Optional[ModuleType]:
    """A ComfyUI module when we run inside ComfyUI; None when standalone (no ``folder_paths``).

    A ComfyUI that is there but fails to import (``folder_paths`` raising, or a ``comfy.*`` module
    raising once ``folder_paths`` imported) is reported, never mistaken for standalone mode: that
    would silently move model folders and devices away from what ComfyUI set up."""
    if os.environ.get("FACEADAPTER_STANDALONE") == "1":
        return None
    if name != "folder_paths" and _comfy("folder_paths") is None:
        return None  # standalone: a stray 'comfy' package elsewhere is not ComfyUI
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if name == "folder_paths" and exc.name == "folder_paths":
            return None
        raise BrokenComfyUIError(name, exc) from exc
    except Exception as exc:
        raise BrokenComfyUIError(name, exc) from exc


class BrokenComfyUIError(FaceAdapterError):
    """ComfyUI is present but one of its modules raises on import."""

    def __init__(self, module: str, exc: BaseException) -> None:
        super().__init__(f"FaceAdapter: ComfyUI is present but importing '{module}' failed: "
                         f"{type(exc).__name__}: {exc}. Fix the ComfyUI install (its requirements.txt) or set "
                         "FACEADAPTER_STANDALONE=1 to run the pack without ComfyUI.")


def in_comfyui() -> bool:
    return _comfy("folder_paths") is not None and _comfy("comfy.model_management") is not None


# ---------------------------------------------------------------- devices
def torch_device() -> torch.device:
    mm = _comfy("comfy.model_management")
    if mm is not None:
        return mm.get_torch_device()
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def offload_device() -> torch.device:
    mm = _comfy("comfy.model_management")
    return mm.unet_offload_device() if mm is not None else torch.device("cpu")


def preferred_dtype(device: Optional[torch.device] = None, allow_half: bool = True) -> torch.dtype:
    """fp16/bf16 where the device runs them fast, fp32 on CPU."""
    device = device or torch_device()
    if not allow_half or device.type == "cpu":
        return torch.float32
    mm = _comfy("comfy.model_management")
    if mm is not None:
        if mm.should_use_fp16(device):
            return torch.float16
        if mm.should_use_bf16(device):
            return torch.bfloat16
        return torch.float32
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if device.type == "mps" else torch.float32


def soft_empty_cache() -> None:
    mm = _comfy("comfy.model_management")
    if mm is not None:
        mm.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- progress / interrupt
class Progress:
    """Progress over ``total`` steps: ComfyUI's bar inside ComfyUI, tqdm outside.

    Every update also honours Cancel, so a per-frame loop that reports progress is
    interruptible without checking separately."""

    def __init__(self, total: int, desc: str = "FaceAdapter"):
        self.total = max(int(total), 1)
        self.done = 0
        utils = _comfy("comfy.utils")
        self._bar: Any = utils.ProgressBar(self.total) if utils is not None else None
        self._tqdm: Any = None
        if self._bar is None and os.environ.get("FACEADAPTER_PROGRESS", "1") != "0":
            try:
                from tqdm import tqdm

                self._tqdm = tqdm(total=self.total, desc=desc, leave=False, disable=None)
            except ImportError:
                self._tqdm = None

    def update(self, n: int = 1) -> None:
        check_interrupt()
        self.done = min(self.done + n, self.total)
        if self._bar is not None:
            self._bar.update_absolute(self.done, self.total)
        elif self._tqdm is not None:
            self._tqdm.update(n)
            if self.done >= self.total:
                self._tqdm.close()

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()


def progress(total: int, desc: str = "FaceAdapter") -> Progress:
    """A new bar; checks for Cancel first so a node stops before starting work."""
    check_interrupt()
    return Progress(total, desc)


def check_interrupt() -> None:
    """Raise ComfyUI's interrupt exception if the user pressed Cancel."""
    mm = _comfy("comfy.model_management")
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()


# ---------------------------------------------------------------- model folders
def set_models_dir(path: Optional[os.PathLike | str]) -> None:
    """Standalone only: the folder that plays ComfyUI's ``models/``."""
    global _standalone_models_dir
    _standalone_models_dir = Path(path).expanduser().resolve() if path else None


def models_dir() -> Path:
    fp = _comfy("folder_paths")
    if fp is not None:
        return Path(fp.models_dir)
    if _standalone_models_dir is not None:
        return _standalone_models_dir
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path.cwd() / "models"


def register_folder(kind: str, extensions: set[str]) -> None:
    """Register our folder kind in ComfyUI, keeping paths users configured."""
    fp = _comfy("folder_paths")
    if fp is None:
        return
    default = os.path.join(fp.models_dir, kind)
    existing = fp.folder_names_and_paths.get(kind)
    paths = list(existing[0]) if existing else []
    if default not in paths:
        paths.append(default)
    exts = set(existing[1]) if existing and existing[1] else set()
    fp.folder_names_and_paths[kind] = (paths, exts | set(extensions) | set(fp.supported_pt_extensions))


def folder_paths_for(kind: str) -> list[Path]:
    """Every folder configured for ``kind`` (ComfyUI's list, or <models_dir>/<kind>)."""
    fp = _comfy("folder_paths")
    if fp is not None:
        try:
            return [Path(p) for p in fp.get_folder_paths(kind)]
        except KeyError:
            return [Path(fp.models_dir) / kind]
    return [models_dir() / kind]


# ---------------------------------------------------------------- memory management
def manage(module: torch.nn.Module, load_device: torch.device, offload: torch.device) -> Any:
    """Wrap a network so ComfyUI can load/offload it with its own models (None outside)."""
    patcher_mod = _comfy("comfy.model_patcher")
    if patcher_mod is None:
        return None
    return patcher_mod.ModelPatcher(module, load_device=load_device, offload_device=offload)


def load_managed(patcher: Any) -> None:
    mm = _comfy("comfy.model_management")
    if mm is not None and patcher is not None:
        mm.load_models_gpu([patcher])


def unload_managed(patchers: list[Any]) -> None:
    """Drop ComfyUI's references to our patchers so their memory can go."""
    mm = _comfy("comfy.model_management")
    if mm is None:
        return
    for loaded in list(getattr(mm, "current_loaded_models", [])):
        if any(loaded.model is p for p in patchers):
            try:
                loaded.model_unload()
            except Exception:  # already gone
                pass
            mm.current_loaded_models.remove(loaded)
    mm.soft_empty_cache()


# ---------------------------------------------------------------- CLIP vision (a stock CLIP_VISION input)
def _clip_vision_tower(clip_vision: Any) -> Any:
    """The ViT inside a stock CLIP_VISION (comfy.clip_vision.ClipVisionModel), or a clear error."""
    tower = getattr(getattr(clip_vision, "model", None), "vision_model", None)
    if tower is None or not hasattr(tower, "encoder") or not hasattr(tower, "embeddings"):
        held = type(getattr(clip_vision, "model", clip_vision)).__name__
        raise FaceAdapterError(f"FaceAdapter: the CLIP_VISION input holds {held}, not a CLIP ViT; connect a "
                               "CLIP Vision loader with CLIP-ViT-H-14, or leave clip_vision unconnected to use "
                               "Face-Adapter's vision_encoder/.")
    return tower


def clip_vision_width_layers(clip_vision: Any) -> tuple[int, int]:
    """(hidden width, encoder layers) of a stock CLIP_VISION, so callers can refuse a non-ViT-H encoder."""
    tower = _clip_vision_tower(clip_vision)
    return int(tower.embeddings.patch_embedding.weight.shape[0]), len(tower.encoder.layers)


def clip_vision_hidden_states(clip_vision: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    """(B,1+patches,width) last_hidden_state, before post_layernorm, of a stock CLIP_VISION on our own pixels.

    ``encode_image`` would re-preprocess with ComfyUI's clip_preprocess (not CLIPImageProcessor's
    pixels), so the model is called directly as encode_image does: loaded through model management,
    fp32 pixels (its manual-cast layers compute in the input's dtype), output [0] = the last encoder
    layer's output ([1] is the penultimate layer, [2] the pooled, post-layernormed token).
    """
    _clip_vision_tower(clip_vision)
    mm = _comfy("comfy.model_management")
    if mm is None:
        raise FaceAdapterError("FaceAdapter: a CLIP_VISION object can only be run inside ComfyUI")
    mm.load_model_gpu(clip_vision.patcher)
    with torch.no_grad():
        out = clip_vision.model(pixel_values=pixel_values.to(clip_vision.load_device, torch.float32),
                                intermediate_output=-2)
    return out[0].to(mm.intermediate_device())
