"""Tier 2: FADM in a real ComfyUI with the maker's full-size random FADM files (CPU, 256², a few steps).

The shipped template (source photo + driving frames -> VoxCeleb crops -> Coarse Animate -> FADM Refine ->
Repeat Source For Frames -> Paste Faces) reaches execution_success with one pasted frame per driving frame;
Cancel during refinement stops within one step and the next prompt runs. About 25 s on 2 idle CPU cores
(2 minutes when the cores are shared): the refinement is a full-size 256² UNet per frame and step.
"""
from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest

from test_workflows import API_DIR, SAMPLE_IMAGE, load_json

from .comfy_server import upload_samples

FRAMES = 2
STEPS = 1  # full-size 256² UNet on a CPU: seconds per frame and step


@pytest.fixture(scope="module")
def template(random_models_comfy, tmp_path_factory) -> dict:
    """The FADM template's API twin on uploaded sample photos, with FRAMES driving frames and STEPS steps."""
    prompt = load_json(API_DIR / "faceadapter_fadm_video.json")
    samples = [SAMPLE_IMAGE.match(n["inputs"]["image"])["sample"] for n in prompt.values()
               if n["class_type"] == "LoadImage"]
    names = dict(zip(samples, upload_samples(random_models_comfy, tmp_path_factory.mktemp("fadm_inputs"), "fadm_",
                                             tuple(samples))))
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "LoadImage":
            inputs["image"] = names[SAMPLE_IMAGE.match(inputs["image"])["sample"]]
        if node["class_type"] == "RepeatImageBatch":
            inputs["amount"] = FRAMES
        if node["class_type"] == "FaceAdapterFADMRefine":
            inputs["steps"] = STEPS
    return prompt


def node_of(prompt: dict, class_type: str) -> str:
    return next(nid for nid, n in prompt.items() if n["class_type"] == class_type)


def test_template_animates_refines_and_pastes_back(random_models_comfy, template):
    comfy = random_models_comfy
    result = comfy.run(template, timeout=900)
    assert result.succeeded, (result.error(), comfy.log()[-3000:])
    outputs = comfy.history(result.prompt_id)["outputs"]
    refine, coarse = node_of(template, "FaceAdapterFADMRefine"), node_of(template, "FaceAdapterCoarseAnimate")
    progress = [m["value"] for m in result.of_type("progress") if m.get("node") == refine]
    assert progress and max(progress) == STEPS, "one update per denoiser step (one chunk of FRAMES frames)"
    assert any(m.get("node") == coarse for m in result.of_type("progress"))
    saved = outputs[node_of(template, "SaveImage")]["images"]
    source = next(n["inputs"]["image"] for n in template.values() if n["class_type"] == "LoadImage"
                  and "grace_hopper" in n["inputs"]["image"])
    photo = cv2.imread(str(comfy.workdir / "input" / source))[:, :, ::-1]
    assert len(saved) == FRAMES
    for image in saved:
        got = cv2.imdecode(np.frombuffer(comfy.view(image), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        assert got.shape == photo.shape
        changed = np.abs(got.astype(np.int16) - photo.astype(np.int16)).max(axis=2) > 8
        assert 0.002 < changed.mean() < 0.5, "the face region is replaced, the rest of the photo kept"


def test_cancel_during_refine_stops_within_one_step_and_the_next_prompt_runs(random_models_comfy, template):
    comfy = random_models_comfy
    prompt = copy.deepcopy(template)
    refine = node_of(prompt, "FaceAdapterFADMRefine")
    prompt[refine]["inputs"].update(seed=1, steps=4, frames_per_batch=1)  # 2 chunks x 4 steps = 8 updates
    at_cancel: list[int] = []

    def cancel_after_first_step(msg: dict) -> None:
        data = msg.get("data", {})
        if msg["type"] == "progress" and data.get("node") == refine and not at_cancel:
            at_cancel.append(data["value"])
            comfy.post("/interrupt", {})

    result = comfy.run(prompt, timeout=900, on_message=cancel_after_first_step)
    assert result.of_type("execution_interrupted"), result.messages[-3:]
    seen = [m["value"] for m in result.of_type("progress") if m.get("node") == refine]
    assert at_cancel and max(seen) <= at_cancel[0] + 1 < 8, f"cancel at step {at_cancel}, steps seen {seen}"
    prompt[refine]["inputs"].update(seed=2, steps=1, frames_per_batch=FRAMES)
    after = comfy.run(prompt, timeout=900)
    assert after.succeeded, (after.error(), comfy.log()[-3000:])
