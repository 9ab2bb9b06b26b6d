"""Errors the user sees. Each message says what went wrong and what to do."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence


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
    """A pickle that would run code when opened: refused, and nothing in it was executed."""

    def __init__(self, source: str, reason: str, download: str = ""):
        lines = [f"FaceAdapter: refused to load {source} for safety: it is a pickle that would run code when "
                 f"opened ({reason}). Nothing from it was executed. The pack loads only plain tensor files."]
        if download:
            lines.append(f"Use the official file instead: {download}")
        super().__init__("\n".join(lines))


class CorruptModelFileError(FaceAdapterError):
    """A truncated (half-downloaded) or garbled weights file."""

    def __init__(self, source: str, reason: str, size: Optional[int] = None, expected_size: Optional[int] = None,
                 download: str = ""):
        self.size = size
        lines = [f"FaceAdapter: {source} is corrupt (truncated or garbled): {reason}."]
        if size is not None:
            expect = f"; the manifest expects about {expected_size:,} bytes" if expected_size else ""
            lines.append(f"Size on disk: {size:,} bytes{expect}.")
        lines.append(f"Delete it and download it again from: {download}" if download
                     else "Delete it and download it again from where you got it.")
        super().__init__("\n".join(lines))


class NoFaceError(FaceAdapterError):
    """Raised when the user asked for an error on frames without the chosen face."""
