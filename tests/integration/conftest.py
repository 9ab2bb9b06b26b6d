"""Tier 2: a real ComfyUI, started once per session, when COMFYUI_PATH and COMFYUI_PYTHON are set."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from .comfy_server import ComfyServer

SKIP_REASON = ("tier-2 ComfyUI tests skipped: set COMFYUI_PATH (a ComfyUI tree) and COMFYUI_PYTHON "
               "(a Python with ComfyUI's requirements and this pack's requirements.txt) to run them")


def pytest_collection_modifyitems(config, items):
    path, python = os.environ.get("COMFYUI_PATH"), os.environ.get("COMFYUI_PYTHON")
    ready = bool(path and python and (Path(path) / "main.py").is_file())
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            if not ready:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("comfyui")
    server = ComfyServer(Path(os.environ["COMFYUI_PATH"]), os.environ["COMFYUI_PYTHON"], workdir)
    server.start()
    yield server
    server.stop()
