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
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, root / "__init__.py", submodule_search_locations=[str(root)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the pack from {root}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_installer(name: str = "faceadapter_install", root: Path = PACK_ROOT) -> ModuleType:
    """Import install.py (a script ComfyUI-Manager runs, not part of the package) for tests and tools."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, root / "install.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {root / 'install.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
