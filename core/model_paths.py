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
    "faces": {".safetensors"},  # FaceX face representations saved by the pack (facex/storage.py)
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


def _insightface_source(name: str) -> str:
    return next((e.source.rsplit("/", 1)[0] for e in entries().values() if e.id.startswith(f"insightface.{name}")), "")


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
    source = _insightface_source(name)
    raise MissingModelError(f"insightface '{name}' (*.onnx)", tried, "insightface", source,
                            "insightface model zoo: non-commercial research use")


# ---------------------------------------------------------------- dropdowns of model files
WEIGHT_SUFFIXES = {".pth", ".pt", ".tar", ".ckpt", ".bin", ".safetensors", ".sft"}
NOT_INSTALLED = "(not installed: "


def list_model_files(kind: str, suffixes: Iterable[str]) -> list[str]:
    """Files under every folder configured for ``kind`` (relative, '/'-separated), sorted, no duplicates."""
    suffixes = {s.lower() for s in suffixes}
    found: set[str] = set()
    for root in bridge.folder_paths_for(kind):
        if root.is_dir():
            found.update(p.relative_to(root).as_posix() for p in root.rglob("*")
                         if p.is_file() and p.suffix.lower() in suffixes)
    return sorted(found)


def not_installed_label(model: ModelEntry | str) -> str:
    """The dropdown entry shown when a manifest file is absent; it says how to get it."""
    model = entry(model) if isinstance(model, str) else model
    how = f"python install.py --models {model.id}" if model.downloadable else f"see {model.source}"
    return f"{NOT_INSTALLED}{Path(model.path).name} - {how})"


def model_choices(model: ModelEntry | str) -> tuple[list[str], str]:
    """(dropdown entries, default) for a model input of this manifest entry.

    The manifest path is always first, so saved workflows validate whether or not the
    file is installed; when it is absent the 'not installed' entry is the default.
    """
    model = entry(model) if isinstance(model, str) else model
    suffix = Path(model.path).suffix.lower()
    others = [] if model.folder else [f for f in list_model_files(
        model.kind, WEIGHT_SUFFIXES if suffix in WEIGHT_SUFFIXES else {suffix}) if f != model.path]
    if find_model(model) is not None:
        return [model.path, *others], model.path
    label = not_installed_label(model)
    return [model.path, label, *others], label


def _chosen_name(model: ModelEntry, value: Optional[str]) -> str:
    """The file a dropdown value names: the 'not installed' entry (or nothing) means the manifest path."""
    return model.path if not value or value.startswith(NOT_INSTALLED) else value


def choice_candidates(model: ModelEntry | str, value: Optional[str]) -> list[Path]:
    """Where a dropdown value (or the 'not installed' entry, meaning the manifest path) is searched."""
    model = entry(model) if isinstance(model, str) else model
    return user_file_candidates(model.kind, _chosen_name(model, value))


def find_model_choice(model: ModelEntry | str, value: Optional[str]) -> Optional[Path]:
    return next((p for p in choice_candidates(model, value) if p.exists()), None)


def resolve_model_choice(model: ModelEntry | str, value: Optional[str]) -> Path:
    """The file a dropdown value names, or the pack's MissingModelError (paths searched, kind, source)."""
    model = entry(model) if isinstance(model, str) else model
    path = find_model_choice(model, value)
    if path is None:
        raise MissingModelError(_chosen_name(model, value), choice_candidates(model, value), model.kind,
                                f"{model.source} (or: python install.py --models {model.id})", model.licence)
    return path


def choices_fingerprint(*choices: tuple[str, Optional[str]]) -> str:
    """IS_CHANGED for nodes with model dropdowns: ``(manifest id, chosen value)`` pairs."""
    return model_fingerprint(*(choice_candidates(model_id, value) for model_id, value in choices))


def insightface_model_choices(default: str = "antelopev2") -> tuple[list[str], str]:
    """(dropdown entries, default) of insightface model folders; ``default`` is always listed first."""
    names = sorted({c.parent.name if c.parent.name == c.name else c.name
                    for root in bridge.folder_paths_for("insightface") if (root / "models").is_dir()
                    for c in (root / "models").rglob("*") if _has_onnx(c)} - {default})
    if any(_has_onnx(c) for c in insightface_dir_candidates(default)):
        return [default, *names], default
    label = f"{NOT_INSTALLED}{default} - see {_insightface_source(default) or 'README'})"
    return [default, label, *names], label


def insightface_choice(value: Optional[str], default: str = "antelopev2") -> str:
    """The model folder name a dropdown value means (the 'not installed' entry means the default)."""
    return default if not value or value.startswith(NOT_INSTALLED) else value


DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                     "model.safetensors", "diffusion_pytorch_model.bin", "pytorch_model.bin")


def diffusers_weights(folder: Path) -> Path:
    """The weights file of a diffusers/transformers model folder (a file is returned as it is)."""
    if folder.is_file():
        return folder
    for name in DIFFUSERS_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    raise MissingModelError(f"{folder.name}/{DIFFUSERS_WEIGHTS[0]}", [folder / n for n in DIFFUSERS_WEIGHTS],
                            "faceadapter", "the same Hugging Face folder (config.json alone is not enough)")
