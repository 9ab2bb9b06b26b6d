"""Read the model manifest (core/model_manifest.json): one place that knows every file."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

MANIFEST_PATH = Path(__file__).with_name("model_manifest.json")


@dataclass(frozen=True)
class ModelEntry:
    id: str
    kind: str
    path: str  # relative to a folder of `kind`
    source: str
    licence: str
    non_commercial: bool
    used_by: str
    size_bytes_approx: Optional[int] = None
    sha256: Optional[str] = None
    sha256_note: str = ""  # why sha256 is null (no checksum published / none verifiable)
    folder: bool = False
    note: str = ""

    @property
    def downloadable(self) -> bool:
        """Only single files with a direct URL can be fetched by install.py."""
        return not self.folder and self.source.startswith("https://") and " " not in self.source


@lru_cache(maxsize=1)
def entries() -> dict[str, ModelEntry]:
    doc = json.loads(MANIFEST_PATH.read_text())
    return {e["id"]: ModelEntry(**e) for e in doc["models"]}


def entry(model_id: str) -> ModelEntry:
    try:
        return entries()[model_id]
    except KeyError:
        raise KeyError(f"unknown model id {model_id!r}; the manifest lists: {', '.join(sorted(entries()))}") from None


def entry_for_file(path: str | Path) -> Optional[ModelEntry]:
    """The manifest entry a file on disk belongs to (its relative path, or a file inside a folder entry)."""
    posix = "/" + Path(path).as_posix()
    for e in entries().values():
        if posix.endswith("/" + e.path) or (e.folder and f"/{e.path}/" in posix):
            return e
    return None
