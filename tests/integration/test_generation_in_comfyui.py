"""Tier 2: Face-Adapter generation in a real ComfyUI with the maker's full-size random models (CPU, 512², 1 step).

The native graph (stock checkpoint loader + our nodes + KSampler + VAEDecode + Blend + Paste), the same with a
stock LoraLoader in front, and the Render node reach execution_success; queuing an unchanged graph again loads
no model; Cancel during sampling stops within one step and the next prompt runs; bad inputs fail clearly.
"""
from __future__ import annotations

import copy
import json

import cv2
import numpy as np
import pytest

from .comfy_server import upload_samples
from .conftest import RANDOM_LORA as LORA

CHECKPOINT = "faceadapter_random_sd15.safetensors"
MESH_OPTS = {"backend": "mediapipe", "min_score": 0.5, "max_faces": 10, "landmarks": "auto", "recognition": False,
             "insightface_model": "antelopev2", "det_size": 640, "mediapipe_detector": "full_range",
             "device": "auto"}
DETECT_OPTS = {"tracking": False, "smoothing": "off", "min_cutoff": 1.0, "beta": 0.5, "preview": False}
LOAD_FA = {"id2token_file": "net_id2token.pth", "image2token_file": "net_image2token.pth",
           "arcface_file": "third_party/insightface_glint360k.pth", "controlnet": "controlnet",
           "vision_encoder": "vision_encoder", "empty_prompt": "empty_prompt_embedding.pth"}
CONTROL = {"strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}


MESH_PROJECTOR = "mediapipe_mesh (licence-clean)"
D3DFR_PROJECTOR = "d3dfr_bfm (upstream, non-commercial)"


def face_inputs(source: str, target: str, method: str = MESH_PROJECTOR) -> dict:
    """Nodes 1-6: both photos, mediapipe analysis, faces detected on each, the 3D reconstructor (``method``:
    the licence-clean mesh projector, or upstream's D3DFR + BFM)."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": source}},
        "2": {"class_type": "LoadImage", "inputs": {"image": target}},
        "3": {"class_type": "FaceAdapterLoadFaceAnalysis", "inputs": MESH_OPTS},
        "4": {"class_type": "FaceAdapterDetectFaces", "inputs": {"image": ["1", 0], "analysis": ["3", 0], **DETECT_OPTS}},
        "5": {"class_type": "FaceAdapterDetectFaces", "inputs": {"image": ["2", 0], "analysis": ["3", 0], **DETECT_OPTS}},
        "6": {"class_type": "FaceAdapterLoad3DReconstructor", "inputs": {
            "method": method, "d3dfr_file": "third_party/d3dfr_res50_nofc.pth",
            "bfm_file": "third_party/BFM_model_front.mat"}},
    }


def spatial_nodes(task: str, area_method: str = "auto") -> dict:
    """Nodes 7-9 on face_inputs: project landmarks for ``task``, predict the adapting area, compose the control."""
    return {
        "7": {"class_type": "FaceAdapterProject3DLandmarks", "inputs": {
            "reconstructor": ["6", 0], "source_image": ["1", 0], "source_faces": ["4", 0],
            "target_image": ["2", 0], "target_faces": ["5", 0], "task": task, "on_missing": "pass_through",
            "crop_ratio": 0.81}},
        "8": {"class_type": "FaceAdapterPredictAdaptingArea", "inputs": {
            "landmarks": ["7", 0], "method": area_method, "area_model": "net_seg_res18.pth",
            "parsing_model": "third_party/79999_iter.pth"}},
        "9": {"class_type": "FaceAdapterComposeSpatialControl", "inputs": {"landmarks": ["7", 0], "area": ["8", 0]}},
    }


def spatial_graph(source: str, target: str, task: str) -> dict:
    """Nodes 1-9: the licence-clean spatial stage (mediapipe mesh projector, mesh/parsing-free area)."""
    return {
        **face_inputs(source, target),
        **spatial_nodes(task),
        "20": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "21": {"class_type": "FaceAdapterLoad", "inputs": dict(LOAD_FA)},
        "22": {"class_type": "FaceAdapterEncodeIdentity", "inputs": {"spatial": ["9", 0], "face_adapter": ["21", 0],
                                                                      "side": "source"}},
        "23": {"class_type": "FaceAdapterEncodeAttributes", "inputs": {"spatial": ["9", 0], "face_adapter": ["21", 0],
                                                                        "side": "task"}},
        "90": {"class_type": "FaceAdapterModelCache", "inputs": {"action": "report", "after": ["22", 1]}},
    }


def native_graph(source: str, target: str, task: str, steps: int = 1, seed: int = 0) -> dict:
    paste_into = "1" if task == "reenact" else "2"
    return {**spatial_graph(source, target, task),
            "24": {"class_type": "FaceAdapterApply", "inputs": {
                "spatial": ["9", 0], "identity": ["22", 0], "attributes": ["23", 0], "control_net": ["21", 1],
                "face_adapter": ["21", 0], **CONTROL}},
            "25": {"class_type": "KSampler", "inputs": {
                "model": ["20", 0], "seed": seed, "steps": steps, "cfg": 5.0, "sampler_name": "euler",
                "scheduler": "normal", "positive": ["24", 0], "negative": ["24", 1], "latent_image": ["24", 2],
                "denoise": 1.0}},
            "26": {"class_type": "VAEDecode", "inputs": {"samples": ["25", 0], "vae": ["20", 2]}},
            "27": {"class_type": "FaceAdapterBlendFaces", "inputs": {"spatial": ["9", 0], "images": ["26", 0]}},
            "28": {"class_type": "FaceAdapterPasteGenerated", "inputs": {
                "spatial": ["9", 0], "image": [paste_into, 0], "crops": ["27", 0], "feather": 0,
                "color_match": "off", "preserve_unchanged": True, "mask": ["27", 1]}},
            "29": {"class_type": "SaveImage", "inputs": {"images": ["28", 0], "filename_prefix": f"fa_gen_{task}"}},
            "30": {"class_type": "SaveImage", "inputs": {"images": ["27", 0], "filename_prefix": f"fa_crop_{task}"}}}


def render_graph(source: str, target: str, task: str, steps: int = 1, seed: int = 0) -> dict:
    paste_into = "1" if task == "reenact" else "2"
    return {**spatial_graph(source, target, task),
            "24": {"class_type": "FaceAdapterRender", "inputs": {
                "spatial": ["9", 0], "identity": ["22", 0], "attributes": ["23", 0], "control_net": ["21", 1],
                "face_adapter": ["21", 0], "image": [paste_into, 0], "model": ["20", 0], "vae": ["20", 2],
                "seed": seed, "steps": steps, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
                "frames_per_batch": 8, "shared_noise": True, **CONTROL}},
            "29": {"class_type": "SaveImage", "inputs": {"images": ["24", 0], "filename_prefix": f"fa_render_{task}"}}}


@pytest.fixture(scope="module")
def uploaded(comfy, tmp_path_factory):
    return upload_samples(comfy, tmp_path_factory.mktemp("upload"), "fa_gen_")


def saved(comfy, result, node: str) -> list[np.ndarray]:
    images = comfy.history(result.prompt_id)["outputs"][node]["images"]
    return [cv2.imdecode(np.frombuffer(comfy.view(i), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1] for i in images]


def cache_report(comfy, result) -> dict:
    return json.loads(comfy.history(result.prompt_id)["outputs"]["90"]["text"][0])


def ok(comfy, result):
    assert result.succeeded, (result.error(), comfy.log()[-4000:])
    return result


def test_native_graph_reenact_then_cached_requeue_loads_nothing(comfy, uploaded):
    source, target = uploaded
    prompt = native_graph(source, target, "reenact")
    first = ok(comfy, comfy.run(prompt, timeout=900))
    pasted = saved(comfy, first, "29")
    frame = cv2.imread(str(comfy.workdir / "input" / source))[:, :, ::-1]
    assert len(pasted) == 1 and pasted[0].shape == frame.shape, "pasted back into the source at its own size"
    crop = saved(comfy, first, "30")[0]
    assert crop.shape == (512, 512, 3)
    changed = np.abs(pasted[0].astype(int) - frame.astype(int)).max(axis=2) > 8
    assert 0 < changed.mean() < 0.5, "the face changed, the rest of the frame did not"
    loads = cache_report(comfy, first)["loads"]

    again = ok(comfy, comfy.run(prompt, timeout=300))
    assert {"20", "21", "22", "23", "25", "26"} <= again.cached_nodes
    assert not ({"20", "21", "25"} & again.executed_nodes)
    assert "90" not in again.executed_nodes or cache_report(comfy, again)["loads"] == loads, "no model loads again"


def test_render_node_swap_and_stock_lora(comfy, uploaded):
    source, target = uploaded
    render = ok(comfy, comfy.run(render_graph(source, target, "swap"), timeout=900))
    out = saved(comfy, render, "29")
    frame = cv2.imread(str(comfy.workdir / "input" / target))[:, :, ::-1]
    assert len(out) == 1 and out[0].shape == frame.shape, "swap results go back into the target frame"

    with_lora = render_graph(source, target, "swap")
    with_lora["31"] = {"class_type": "LoraLoader", "inputs": {"model": ["20", 0], "clip": ["20", 1],
                                                               "lora_name": LORA, "strength_model": 1.0,
                                                               "strength_clip": 1.0}}
    with_lora["24"]["inputs"]["model"] = ["31", 0]
    lora = ok(comfy, comfy.run(with_lora, timeout=900))
    assert "lora key not loaded" not in comfy.log()
    assert np.abs(saved(comfy, lora, "29")[0].astype(int) - out[0].astype(int)).max() > 0, "the LoRA acts"


def test_cancel_during_sampling_stops_within_one_step_and_the_next_prompt_runs(comfy, uploaded):
    source, target = uploaded
    prompt = render_graph(source, target, "reenact", steps=6, seed=3)
    at_cancel: list[int] = []

    def cancel_after_first_step(msg: dict) -> None:
        data = msg.get("data", {})
        if msg["type"] == "progress" and data.get("node") == "24" and not at_cancel:
            at_cancel.append(data["value"])
            comfy.post("/interrupt", {})

    result = comfy.run(prompt, timeout=900, on_message=cancel_after_first_step)
    assert result.of_type("execution_interrupted"), result.messages[-3:]
    seen = [m["value"] for m in result.of_type("progress") if m.get("node") == "24"]
    assert at_cancel and max(seen) <= at_cancel[0] + 1, f"cancel at step {at_cancel}, steps seen {seen}"
    ok(comfy, comfy.run(native_graph(source, target, "swap"), timeout=900))
