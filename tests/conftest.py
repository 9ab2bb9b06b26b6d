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


def pytest_collection_modifyitems(config, items):
    """Tier 1 first, tier 2 (tests/integration, real ComfyUI) last: tier 1 gets the disk before tier 2's
    6.7 GB of full-size random models exists, and a tier-1 failure shows before the long tier-2 run."""
    items.sort(key=lambda item: "integration" in Path(str(item.fspath)).parts)


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """The maker's tiny set (tools/random_models.py --tiny, ~250 MB), written once per session and shared by
    every tier-1 module that needs Face-Adapter files."""
    from faceadapter_suite.tools.random_models import ensure_random_models

    return ensure_random_models(tmp_path_factory.mktemp("tiny_models"), tiny=True)
