"""Load the pack outside ComfyUI exactly the way ComfyUI does: by file path.

ComfyUI imports ``<pack>/__init__.py`` with ``importlib.util.spec_from_file_location``,
so the pack only ever uses relative imports. Tests, the demo and the benches go
through this one function so they exercise the same import path.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PACKAGE_NAME = "faceadapter_suite"
PACK_ROOT = Path(__file__).resolve().parent


def load_pack(name: str = PACKAGE_NAME, root: Path = PACK_ROOT) -> ModuleType:
    """Import the pack under a fixed package name (idempotent)."""
    return _load_by_path(name, root / "__init__.py", [str(root)])


def load_installer(name: str = "faceadapter_install", root: Path = PACK_ROOT) -> ModuleType:
    """Import install.py (a script ComfyUI-Manager runs, not part of the package) for tests and tools."""
    return _load_by_path(name, root / "install.py", None)


def _load_by_path(name: str, path: Path, search_locations: list[str] | None) -> ModuleType:
    """Import one file as module ``name`` (idempotent); a failed import leaves nothing behind."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=search_locations)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
