"""Tier 2: a real ComfyUI, started once per session, when COMFYUI_PATH and COMFYUI_PYTHON are set."""
from __future__ import annotations

import json
import os
import shutil
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


def write_random_faceadapter_models(root: Path) -> Path:
    """Full-size stage-1 networks with seeded random weights in the official file names and formats
    (tools/random_models.py); returns the ``faceadapter`` folder.

    It is registered through extra_model_paths.yaml (the user-configured path the pack must keep),
    not in ComfyUI's own models/ tree."""
    from faceadapter_suite.tools.random_models import ensure_random_models

    return ensure_random_models(root, only=["stage1"]) / "faceadapter"


@pytest.fixture(scope="session")
def configured_faceadapter_dir(tmp_path_factory) -> Path:
    return write_random_faceadapter_models(tmp_path_factory.mktemp("user_faceadapter_models"))


@pytest.fixture(scope="session")
def comfy(tmp_path_factory, configured_faceadapter_dir, random_models_dir):
    """The session's ComfyUI: the user-configured stage-1 folder first, then the maker's full-size random
    Face-Adapter files, SD1.5 checkpoint, VAE and a random LoRA, so every template runs."""
    workdir = tmp_path_factory.mktemp("comfyui")
    paths = template_models_paths(random_models_dir, tmp_path_factory.mktemp("template_models"))
    server = ComfyServer(Path(os.environ["COMFYUI_PATH"]), os.environ["COMFYUI_PYTHON"], workdir,
                         models={**paths, "faceadapter": [configured_faceadapter_dir, paths["faceadapter"]]})
    server.start()
    yield server
    server.stop()



RANDOM_MODELS_CACHE = Path(os.environ.get("FACEADAPTER_RANDOM_MODELS_CACHE",
                                          Path.home() / ".cache" / "faceadapter-suite" / "random-models"))


@pytest.fixture(scope="session")
def random_models_dir() -> Path:
    """Full-size random Face-Adapter files + SD1.5 checkpoint + VAE (tools/random_models.py, fp16, seed 0).

    Written once into a cache outside the test's tmp dir (6.7 GB; FACEADAPTER_RANDOM_MODELS_CACHE moves it)
    and reused by later sessions: the manifest check makes this cheap when nothing changed, and a new
    maker version rewrites the files in place instead of leaving old copies behind."""
    from faceadapter_suite.tools.random_models import ensure_random_models

    return ensure_random_models(RANDOM_MODELS_CACHE / "fp16", dtype="fp16")


RANDOM_LORA = "faceadapter_random_lora.safetensors"


def write_random_lora(path: Path) -> None:
    """A kohya-format SD1.5 LoRA on the first down block's and the middle block's attention (rank 4)."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(5)
    state = {}
    for block, width in (("down_blocks_0_attentions_0", 320), ("mid_block_attentions_0", 1280)):
        for proj, fan_in in (("attn1_to_q", width), ("attn1_to_v", width), ("attn2_to_k", 768), ("attn2_to_v", 768)):
            key = f"lora_unet_{block}_transformer_blocks_0_{proj}"
            state[f"{key}.lora_down.weight"] = torch.randn(4, fan_in, generator=g).half() * 0.2
            state[f"{key}.lora_up.weight"] = torch.randn(width, 4, generator=g).half() * 0.2
            state[f"{key}.alpha"] = torch.tensor(4.0).half()
    save_file(state, str(path))


def template_models_paths(models: Path, folder: Path) -> dict[str, Path | list[Path]]:
    """random_models_paths plus a random LoRA (RANDOM_LORA), and links under every checkpoint and LoRA file name
    the templates use (SD1.5's usual v1-5-pruned-emaonly.safetensors, a stand-in LoRA name) to the maker's
    checkpoint and that LoRA, so the templates run unchanged."""
    from faceadapter_suite.tools.random_models import CHECKPOINT_FILE

    paths: dict[str, Path | list[Path]] = dict(random_models_paths(models))
    loras, checkpoints = folder / "loras", folder / "checkpoints"
    loras.mkdir(parents=True, exist_ok=True)
    checkpoints.mkdir(parents=True, exist_ok=True)
    write_random_lora(loras / RANDOM_LORA)
    maker_checkpoint = models / CHECKPOINT_FILE
    for api in sorted((Path(__file__).resolve().parents[2] / "workflows" / "api").glob("*.json")):
        for node in json.loads(api.read_text()).values():
            for key, folder_, target in (("ckpt_name", checkpoints, maker_checkpoint),
                                         ("lora_name", loras, loras / RANDOM_LORA)):
                name = node["inputs"].get(key)
                if isinstance(name, str) and not (folder_ / name).exists() and not (models / "checkpoints" / name).exists():
                    (folder_ / name).symlink_to(target)
    paths["checkpoints"] = [models / "checkpoints", checkpoints]
    paths["loras"] = loras
    return paths


def quick(prompt: dict, steps: int = 1) -> dict:
    """The prompt with every sampler's steps set to ``steps``: templates keep upstream's 25, a CPU test
    runs full-size random models at 512² with 1."""
    for node in prompt.values():
        if isinstance(node["inputs"].get("steps"), int):
            node["inputs"]["steps"] = steps
    return prompt


def random_models_paths(models: Path) -> dict[str, Path]:
    """extra_model_paths.yaml entries that show the maker's folder to the stock loaders and the pack."""
    fa = models / "faceadapter"
    return {"faceadapter": fa, "checkpoints": models / "checkpoints", "vae": models / "vae",
            "diffusion_models": fa, "controlnet": fa, "clip_vision": fa / "vision_encoder", "fadm": models / "fadm"}


@pytest.fixture(scope="session")
def random_models_comfy(tmp_path_factory, random_models_dir):
    """A ComfyUI whose stock loaders and the pack see the random full-size models, plus a test-only
    probe node (tests/integration/comfy_probe.py) that reports what a loader produced."""
    workdir = tmp_path_factory.mktemp("comfyui_random_models")
    (workdir / "packs").mkdir()
    shutil.copy(Path(__file__).with_name("comfy_probe.py"), workdir / "packs" / "faceadapter_test_probe.py")
    server = ComfyServer(Path(os.environ["COMFYUI_PATH"]), os.environ["COMFYUI_PYTHON"], workdir,
                         models=random_models_paths(random_models_dir))
    server.start()
    yield server
    server.stop()
