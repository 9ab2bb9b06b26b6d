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


def write_random_faceadapter_models(root: Path, reference: Path) -> Path:
    """Full-size networks with random weights in the official file names and formats.

    They go in a folder registered through extra_model_paths.yaml (the user-configured
    path the pack must keep), not in ComfyUI's own models/ tree."""
    import shutil

    import torch

    from faceadapter_suite.models.adapting_area import AdaptingAreaPredictor
    from faceadapter_suite.models.bisenet import BiSeNet
    from faceadapter_suite.models.d3dfr import D3DFR

    third = root / "third_party"
    third.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    d3dfr = D3DFR()
    for p in d3dfr.parameters():  # small coefficients keep the synthetic face inside the crop
        p.data.mul_(0.05)
    torch.save({"module." + k: v for k, v in d3dfr.state_dict().items()}, third / "d3dfr_res50_nofc.pth")
    shutil.copy(reference / "parity" / "bfm_synthetic_front.mat", third / "BFM_model_front.mat")
    torch.save(AdaptingAreaPredictor().state_dict(), root / "net_seg_res18.pth")
    torch.save(BiSeNet().state_dict(), third / "79999_iter.pth")
    return root


@pytest.fixture(scope="session")
def configured_faceadapter_dir(tmp_path_factory) -> Path:
    from conftest import REFERENCE

    return write_random_faceadapter_models(tmp_path_factory.mktemp("user_faceadapter_models"), REFERENCE)


@pytest.fixture(scope="session")
def comfy(tmp_path_factory, configured_faceadapter_dir):
    workdir = tmp_path_factory.mktemp("comfyui")
    server = ComfyServer(Path(os.environ["COMFYUI_PATH"]), os.environ["COMFYUI_PYTHON"], workdir,
                         models={"faceadapter": configured_faceadapter_dir})
    server.start()
    yield server
    server.stop()

