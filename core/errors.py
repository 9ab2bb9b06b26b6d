"""Errors the user sees. Each message says what went wrong and what to do."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence


class FaceAdapterError(RuntimeError):
    """Base class so callers can catch the pack's own errors."""


class MissingModelError(FaceAdapterError, FileNotFoundError):
    """A model file or folder is not where the pack looked for it."""

    def __init__(self, what: str, expected: Sequence[Path], kind: str, source: str = "", licence: str = ""):
        self.expected = [Path(p) for p in expected]
        self.kind = kind
        lines = [f"FaceAdapter: missing model {what!r} (folder kind '{kind}'). Looked for:"]
        lines += [f"  - {p}" for p in self.expected] or ["  - (no folder is configured for this kind)"]
        if source:
            lines.append(f"Get it from: {source}")
        if licence:
            lines.append(f"Licence: {licence}")
        lines.append("Put the file at one of the paths above (or add a path for this kind in extra_model_paths.yaml).")
        super().__init__("\n".join(lines))


class WrongModelFileError(FaceAdapterError, ValueError):
    """A file loaded but does not hold the network we asked for."""

    def __init__(self, source: str, network: str, missing: Iterable[str], unexpected: Iterable[str],
                 mismatched: Iterable[str] = (), shown: int = 5):
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)

        def head(keys: list[str]) -> str:
            more = f", ... (+{len(keys) - shown} more)" if len(keys) > shown else ""
            return ", ".join(keys[:shown]) + more

        lines = [f"FaceAdapter: {source} is not a {network} checkpoint."]
        if self.missing:
            lines.append(f"  {len(self.missing)} missing keys: {head(self.missing)}")
        if self.unexpected:
            lines.append(f"  {len(self.unexpected)} unexpected keys: {head(self.unexpected)}")
        if self.mismatched:
            lines.append(f"  {len(self.mismatched)} keys with the wrong shape: {head(self.mismatched)}")
        lines.append("Check that the file is the one the model table in README.md names for this slot.")
        super().__init__("\n".join(lines))


class UnsafeModelFileError(FaceAdapterError):
    """A pickle that wants to run code (or is not a plain tensor archive)."""

    def __init__(self, source: str, reason: str):
        super().__init__(
            f"FaceAdapter: refused to load {source}: it is not a plain weights file ({reason}). "
            "The pack only loads tensors (torch.load(weights_only=True)) or safetensors; "
            "convert the checkpoint to .safetensors or get the official file."
        )


class CorruptModelFileError(FaceAdapterError):
    """Truncated or otherwise unreadable file."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"FaceAdapter: could not read {source}: {reason}. The file is probably truncated "
                         "or corrupt; download it again (install.py --models verifies sha256).")


class NoFaceError(FaceAdapterError):
    """Raised when the user asked for an error on frames without the chosen face."""
