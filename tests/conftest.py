"""Shared fixtures. The pack is imported by file path, as ComfyUI does."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data" / "reference"  # upstream reference data, kept in the repo
sys.path.insert(0, str(REPO))

from standalone import load_pack  # noqa: E402

PACK = load_pack()


@pytest.fixture(scope="session")
def pack():
    return PACK


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return REFERENCE


@pytest.fixture(scope="session")
def official_keys(reference_dir):
    import json

    return json.loads((reference_dir / "official_state_dicts.json").read_text())
