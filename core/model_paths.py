"""Where model files live: folder kinds, lookup, and errors that name the expected path."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Optional

from . import comfy_bridge as bridge
from .errors import MissingModelError
from .manifest import ModelEntry, entries, entry

# Our own folder kinds (registered in ComfyUI); stock kinds we reuse are not listed here.
OWN_KINDS = {
    "faceadapter": {".pth", ".mat", ".safetensors", ".bin", ".json"},
    "fadm": {".pth", ".tar", ".safetensors"},
    "insightface": {".onnx"},
    "mediapipe": {".task"},
}


def register_model_folders() -> None:
    """Inside ComfyUI: add our kinds, keeping any extra_model_paths.yaml entries."""
    for kind, extensions in OWN_KINDS.items():
        bridge.register_folder(kind, extensions)


def candidate_paths(model: ModelEntry | str) -> list[Path]:
    """Every path the manifest entry could be at, in search order."""
    model = entry(model) if isinstance(model, str) else model
    return [root / model.path for root in bridge.folder_paths_for(model.kind)]


def find_model(model: ModelEntry | str) -> Optional[Path]:
    for path in candidate_paths(model):
        if path.exists():
            return path
    return None


def require_model(model: ModelEntry | str) -> Path:
    """Path of a manifest entry, or a MissingModelError naming where it should be."""
    model = entry(model) if isinstance(model, str) else model
    path = find_model(model)
    if path is None:
        raise MissingModelError(model.path, candidate_paths(model), model.kind, model.source, model.licence)
    return path


def user_file_candidates(kind: str, name: str) -> list[Path]:
    """Where a user-given name (relative to a folder of ``kind``, or absolute) may be."""
    as_path = Path(name).expanduser()
    return [as_path] if as_path.is_absolute() else [root / name for root in bridge.folder_paths_for(kind)]


def find_user_file(kind: str, name: str) -> Optional[Path]:
    return next((p for p in user_file_candidates(kind, name) if p.exists()), None)


def resolve_user_file(kind: str, name: str, source: str = "") -> Path:
    """A file picked by the user, or a MissingModelError naming every place looked at."""
    path = find_user_file(kind, name)
    if path is None:
        raise MissingModelError(name, user_file_candidates(kind, name), kind, source)
    return path


def file_identity(paths: Iterable[Path]) -> tuple:
    """(resolved path, size, mtime_ns) of each file; a folder contributes every file in it.

    A path that does not exist contributes (path, "absent"), so installing it changes the identity.
    """
    out: list[tuple] = []
    for path in paths:
        path = Path(path).expanduser().resolve()
        if not path.exists():
            out.append((str(path), "absent"))
            continue
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            st = f.stat()
            out.append((str(f), st.st_size, st.st_mtime_ns))
    return tuple(out)


def model_fingerprint(*searches: Iterable[Path]) -> str:
    """A node's IS_CHANGED value: a digest of every path its model lookup would try.

    Covers present files (size, mtime) and absent ones, so installing, replacing or
    removing a model file changes ComfyUI's cache key and the node runs again.
    """
    ident = file_identity(p for search in searches for p in search)
    return hashlib.sha256(repr(ident).encode()).hexdigest()


def _has_onnx(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*.onnx"))


def insightface_dir_candidates(name: str) -> list[Path]:
    """Where an insightface model folder may be, in search order."""
    return [c for root in bridge.folder_paths_for("insightface")
            for c in (root / "models" / name, root / "models" / name / name, root / name)]


def find_insightface_model_dir(name: str = "antelopev2") -> Path:
    """insightface model folder, tolerating the common extra nested folder.

    Conventional layout is ``models/insightface/models/<name>/*.onnx``; unzipping
    the release archive into that folder gives ``.../<name>/<name>/*.onnx``,
    which we accept too.
    """
    tried = insightface_dir_candidates(name)
    for candidate in tried:
        if _has_onnx(candidate):
            return candidate
    source = next((e.source.rsplit("/", 1)[0] for e in entries().values() if e.id.startswith(f"insightface.{name}")), "")
    raise MissingModelError(f"insightface '{name}' (*.onnx)", tried, "insightface", source,
                            "insightface model zoo: non-commercial research use")
