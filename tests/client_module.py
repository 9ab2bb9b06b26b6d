"""The headless client package (``<pack>/client``) imported by file path as ``faceadapter_client``.

By file path because the bare name ``client`` is not safe under pytest: the pack root has an
``__init__.py``, so pytest may import the root as a package named after the checkout folder (a
folder called ``client`` then shadows this one). The client's own imports are relative, so any
package name works.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

CLIENT_DIR = Path(__file__).resolve().parents[1] / "client"
NAME = "faceadapter_client"


def load_client() -> ModuleType:
    """The client package with its submodules imported (api_convert, overrides, ws, follow, ...)."""
    if NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(NAME, CLIENT_DIR / "__init__.py",
                                                      submodule_search_locations=[str(CLIENT_DIR)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[NAME] = module
        spec.loader.exec_module(module)
    package = sys.modules[NAME]
    for sub in ("api_convert", "overrides", "ws", "comfy_api", "follow", "runner", "cli"):
        importlib.import_module(f"{NAME}.{sub}")
    return package


CLIENT = load_client()
