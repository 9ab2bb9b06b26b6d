"""pytest only: keep the repo root out of the collection tree as a *package*.

The root holds ComfyUI's entry ``__init__.py``. pytest would otherwise wrap the root in a
``Package`` node and import that file as a module named after the clone's folder; for a
folder such as ``comfyui-faceadapter-suite`` (not a Python identifier) that import has no
parent package and every test errors on the pack's relative imports. Tests import the pack
by file path instead (standalone.load_pack, as ComfyUI does). ComfyUI never reads this file.
"""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


class _RootIsAPlainDirectory:
    """Global plugin: a conftest's own hooks do not apply to its directory's collector."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        if Path(path).resolve() == ROOT:
            return pytest.Dir.from_parent(parent, path=Path(path))
        return None


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("faceadapter-root-dir"):
        config.pluginmanager.register(_RootIsAPlainDirectory(), "faceadapter-root-dir")
