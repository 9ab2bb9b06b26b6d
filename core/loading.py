"""Safe weight loading: safetensors, diffusers folders, and torch.load(weights_only=True).

A checkpoint is data. Pickles that need code to unpickle are refused; a file of the
wrong network fails with the missing/unexpected keys named, before any weights are
touched.
"""
from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from .errors import CorruptModelFileError, UnsafeModelFileError, WrongModelFileError

SAFETENSORS_SUFFIXES = {".safetensors", ".sft"}
PICKLE_SUFFIXES = {".pth", ".pt", ".tar", ".ckpt", ".bin"}
DIFFUSERS_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors",
                          "diffusion_pytorch_model.bin", "pytorch_model.bin")


def read_checkpoint(path: str | Path) -> Any:
    """Read a weights file without running code; returns whatever tensors/containers it holds."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FaceAdapter: no file at {path}")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CorruptModelFileError(str(path), f"safetensors: {exc}") from exc
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses any global that is not a plain tensor/container type.
        raise UnsafeModelFileError(str(path), str(exc).splitlines()[0][:300]) from exc
    except (EOFError, zipfile.BadZipFile) as exc:
        raise CorruptModelFileError(str(path), f"{type(exc).__name__}: {exc}") from exc
    except RuntimeError as exc:
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text:
            raise UnsafeModelFileError(str(path), text.splitlines()[0][:300]) from exc
        raise CorruptModelFileError(str(path), text.splitlines()[0][:300]) from exc


def flatten_state(obj: Any, source: str, sub_key: Optional[str] = None) -> dict[str, torch.Tensor]:
    """Pick the tensor dict out of a checkpoint (optionally ``obj[sub_key]``; also 'state_dict')."""
    if sub_key is not None:
        if not isinstance(obj, Mapping) or sub_key not in obj:
            keys = ", ".join(list(obj)[:8]) if isinstance(obj, Mapping) else type(obj).__name__
            raise WrongModelFileError(source, f"checkpoint with a '{sub_key}' entry", [sub_key], [keys])
        obj = obj[sub_key]
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise WrongModelFileError(source, "state dict", ["<tensor mapping>"], [type(obj).__name__])
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def strip_prefix(state: dict[str, torch.Tensor], prefixes: Sequence[str]) -> dict[str, torch.Tensor]:
    """Drop a wrapper prefix such as DataParallel's ``module.`` when every key has it."""
    for prefix in prefixes:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_state_dict(path: str | Path, *, sub_key: Optional[str] = None,
                    strip_prefixes: Sequence[str] = ("module.",)) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors/.pth/.tar file as a flat state dict."""
    obj = read_checkpoint(path)
    return strip_prefix(flatten_state(obj, str(path), sub_key), strip_prefixes)


def load_diffusers_folder(folder: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """config.json + weights of a diffusers/transformers model folder."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"FaceAdapter: {folder} is not a diffusers folder (no config.json)")
    for name in DIFFUSERS_WEIGHT_NAMES:
        if (folder / name).is_file():
            return json.loads(config_path.read_text()), load_state_dict(folder / name, strip_prefixes=())
    raise FileNotFoundError(f"FaceAdapter: no weights in {folder}; expected one of {', '.join(DIFFUSERS_WEIGHT_NAMES)}")


def check_keys(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise WrongModelFileError unless ``state`` has exactly the module's keys and shapes."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or mismatched:
        raise WrongModelFileError(source, type(module).__name__, missing, unexpected, mismatched)


def load_network(build: Callable[[], torch.nn.Module], path: str | Path, *, dtype: Optional[torch.dtype] = None,
                 strip_prefixes: Sequence[str] = ("module.",)) -> torch.nn.Module:
    """Build a network and strictly load a checkpoint file into it (eval mode)."""
    state = load_state_dict(path, strip_prefixes=strip_prefixes)
    return load_weights_into(build(), state, source=str(path), dtype=dtype)


def load_weights_into(module: torch.nn.Module, state: Mapping[str, torch.Tensor], *, source: str,
                      dtype: Optional[torch.dtype] = None) -> torch.nn.Module:
    """Strictly load ``state`` into ``module`` and cast floating tensors to ``dtype``.

    bf16 files (e.g. net_id2token.pth) load into whatever dtype is asked for.
    """
    check_keys(module, state, source)
    target = dtype or next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    converted = {k: (v.to(target) if v.is_floating_point() else v) for k, v in state.items()}
    module.load_state_dict(converted, strict=True)
    return module.to(dtype=target).eval()
