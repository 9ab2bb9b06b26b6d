"""Safe weight loading: safetensors, diffusers folders, and torch.load(weights_only=True).

A checkpoint is data. Pickles that need code to unpickle are refused; a file of the
wrong network fails with the missing/unexpected keys named, before any weights are
touched.
"""
from __future__ import annotations

import io
import json
import pickletools
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from .errors import CorruptModelFileError, UnsafeModelFileError, WrongModelFileError
from .manifest import entry_for_file

SAFETENSORS_SUFFIXES = {".safetensors", ".sft"}
PICKLE_SUFFIXES = {".pth", ".pt", ".tar", ".ckpt", ".bin"}
DIFFUSERS_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors",
                          "diffusion_pytorch_model.bin", "pytorch_model.bin")


def read_checkpoint(path: str | Path) -> Any:
    """Read a weights file without running code; returns whatever tensors/containers it holds.

    Truncated or garbled files raise CorruptModelFileError (path, size, where to download);
    a pickle that carries code raises UnsafeModelFileError. torch's own message is never
    passed on: it advises turning the safety check off.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FaceAdapter: no file at {path}")
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise _corrupt(path, f"safetensors: {_plain(exc)}") from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file breaks torch's reader in many ways
        code = pickle_globals_that_run_code(path)
        if code:
            raise UnsafeModelFileError(str(path), "it imports " + ", ".join(code[:4]),
                                       _download_hint(path)[1]) from None
        raise _corrupt(path, _plain(exc)) from None


# Globals a plain tensor checkpoint may name; anything else in a refused pickle is code.
_DATA_MODULES = ("torch", "collections", "numpy", "_codecs")
_DATA_BUILTINS = {"set", "frozenset", "bytearray", "slice", "complex", "bytes", "str", "int", "float", "bool"}


def pickle_globals_that_run_code(path: Path) -> list[str]:
    """Globals (module.name) that the pickles in ``path`` would import, other than tensor/container types.

    Reads opcodes with pickletools only, so nothing is imported or executed. A zip
    checkpoint's ``*/data.pkl`` and every pickle of a legacy file are scanned.
    """
    streams: list[bytes] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                streams = [zf.read(n) for n in zf.namelist() if n.endswith(".pkl")]
        else:
            streams = [path.read_bytes()]
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, zlib.error):
        return []
    found: list[str] = []
    for data in streams:
        buf = io.BytesIO(data)
        while buf.tell() < len(data):
            strings: list[str] = []
            try:
                for op, arg, _pos in pickletools.genops(buf):
                    if op.name == "GLOBAL":
                        found.append(str(arg).replace(" ", "."))
                    elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                        found.append(f"{strings[-2]}.{strings[-1]}")
                    elif isinstance(arg, str):
                        strings.append(arg)
            except Exception:  # garbled or cut off: stop scanning this stream
                break
    return [g for g in dict.fromkeys(found) if not _is_data_global(g)]


def _is_data_global(name: str) -> bool:
    """Tensor/container types torch's safe unpickler accepts (its own list when this torch exposes it)."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        return name in _get_allowed_globals()
    except (ImportError, AttributeError):  # only the wording of a refusal depends on this
        module, _, attr = name.rpartition(".")
        return attr in _DATA_BUILTINS if module == "builtins" else module.split(".")[0] in _DATA_MODULES


def _plain(exc: BaseException) -> str:
    """The first sentence of an error, without torch's advice about weights_only."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if "weights_only" in text or "Weights only load failed" in text:
        return "not a readable tensor archive"
    text = text.split(". ")[0].rstrip(".")
    return f"{type(exc).__name__}: {text[:200]}" if isinstance(exc, OSError) else text[:200]


def _download_hint(path: Path) -> tuple[Optional[int], str]:
    """(approximate size, where to download) from the manifest entry this file belongs to."""
    e = entry_for_file(path)
    if e is None:
        return None, ""
    how = f" (or: python install.py --models {e.id})" if e.downloadable else ""
    return (None if e.folder else e.size_bytes_approx), e.source + how


def _corrupt(path: Path, reason: str) -> CorruptModelFileError:
    expected, download = _download_hint(path)
    return CorruptModelFileError(str(path), reason, path.stat().st_size, expected, download)


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
