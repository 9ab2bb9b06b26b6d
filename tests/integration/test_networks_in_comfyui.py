"""Torch networks inside a real ComfyUI: found in a user-configured folder, loaded once through the
shared cache under ComfyUI's model management, reused across prompts, freed by the unload node."""
from __future__ import annotations

import copy
import json

import cv2
import numpy as np
import pytest

from .comfy_server import upload_samples
from .test_generation_in_comfyui import D3DFR_PROJECTOR, face_inputs, spatial_nodes


def graph(source: str, target: str, task: str, area_method: str) -> dict:
    return {
        **face_inputs(source, target, D3DFR_PROJECTOR),
        **spatial_nodes(task, area_method),
        "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 1], "filename_prefix": "fa_networks"}},
        "11": {"class_type": "FaceAdapterModelCache", "inputs": {"action": "report", "after": ["9", 1]}},
    }


@pytest.fixture(scope="module")
def uploaded(comfy, tmp_path_factory):
    return upload_samples(comfy, tmp_path_factory.mktemp("upload"), "fa_net_")


def report(comfy, result) -> dict:
    return json.loads(comfy.history(result.prompt_id)["outputs"]["11"]["text"][0])


def test_networks_load_once_and_unload(comfy, uploaded):
    source, target = uploaded
    prompt = graph(source, target, "reenact", "adapting_area_net")
    first = comfy.run(prompt, timeout=300)
    assert first.succeeded, (first.error(), comfy.log()[-3000:])
    r1 = report(comfy, first)
    assert {"d3dfr_resnet50", "bfm_front", "adapting_area_predictor"} <= set(r1["models_loaded"])
    saved = comfy.history(first.prompt_id)["outputs"]["10"]["images"][0]
    control = cv2.imdecode(np.frombuffer(comfy.view(saved), np.uint8), cv2.IMREAD_COLOR)
    assert control.shape == (512, 512, 3) and control.std() > 1

    second = comfy.run(prompt, timeout=300)
    assert second.succeeded
    assert {"6", "7", "8", "9"} <= second.cached_nodes
    assert report(comfy, second)["loads"] == r1["loads"], "the same prompt again loads no model"

    # a changed widget re-runs projection and area: networks come from the shared cache
    changed = copy.deepcopy(prompt)
    changed["7"]["inputs"]["on_missing"] = "error"
    third = comfy.run(changed, timeout=300)
    assert third.succeeded and "8" in third.executed_nodes
    r3 = report(comfy, third)
    assert r3["loads"] == r1["loads"] and r3["hits"] > r1["hits"]

    # swap with BiSeNet parsing from the user-configured folder: one more network
    swap = comfy.run(graph(source, target, "swap", "face_parsing"), timeout=300)
    assert swap.succeeded, swap.error()
    assert "bisenet19" in report(comfy, swap)["models_loaded"]

    freed = comfy.run({"1": {"class_type": "FaceAdapterModelCache", "inputs": {"action": "unload"}}}, timeout=60)
    assert freed.succeeded
    out = json.loads(comfy.history(freed.prompt_id)["outputs"]["1"]["text"][0])
    assert out["freed"] >= 4 and out["cached"] == 0
