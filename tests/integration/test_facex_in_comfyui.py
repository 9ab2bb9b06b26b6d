"""Tier 2: FaceX in a real ComfyUI with the maker's full-size random models (CPU, 512², 1 step).

Two photos -> FaceX Decompose x2 -> Pose Offset on B -> FaceX Assemble (identity A, pose and expression B) ->
Face-Adapter Render reaches execution_success and pastes into A's photo; the edit node visibly moves the landmark
preview; a face saved with FaceX Save Face loads back with FaceX Load Face in the next prompt.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from .comfy_server import upload_samples
from .test_generation_in_comfyui import CHECKPOINT, CONTROL, LOAD_FA, face_inputs

RECIPE = {"identity": "A", "expression": "B", "pose": "B", "gaze": "B", "appearance": "A", "hair": "background",
          "background": "A"}


def facex_graph(source: str, target: str, yaw: float = 12.0) -> dict:
    decompose = {"reconstructor": ["6", 0], "frame": 0, "face_index": 0, "crop_ratio": 0.81,
                 "regions": "mesh regions (licence-clean)", "face_adapter": ["21", 0]}
    return {
        **face_inputs(source, target),
        "20": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "21": {"class_type": "FaceAdapterLoad", "inputs": dict(LOAD_FA)},
        "40": {"class_type": "FaceAdapterFaceXDecompose", "inputs": {"image": ["1", 0], "faces": ["4", 0], **decompose}},
        "41": {"class_type": "FaceAdapterFaceXDecompose", "inputs": {"image": ["2", 0], "faces": ["5", 0], **decompose}},
        "42": {"class_type": "FaceAdapterFaceXPoseOffset", "inputs": {"face": ["41", 0], "yaw": yaw, "pitch": 0.0,
                                                                       "roll": 0.0}},
        "43": {"class_type": "FaceAdapterFaceXAssemble", "inputs": {"face_a": ["40", 0], "face_b": ["42", 0],
                                                                     **RECIPE}},
        "44": {"class_type": "FaceAdapterRender", "inputs": {
            "spatial": ["43", 0], "identity": ["43", 1], "attributes": ["43", 2], "control_net": ["21", 1],
            "face_adapter": ["21", 0], "image": ["1", 0], "model": ["20", 0], "vae": ["20", 2], "seed": 0,
            "steps": 1, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "frames_per_batch": 8,
            "shared_noise": True, **CONTROL}},
        "45": {"class_type": "SaveImage", "inputs": {"images": ["44", 0], "filename_prefix": "fx_render"}},
        "46": {"class_type": "SaveImage", "inputs": {"images": ["41", 1], "filename_prefix": "fx_b_landmarks"}},
        "47": {"class_type": "SaveImage", "inputs": {"images": ["42", 1], "filename_prefix": "fx_b_turned"}},
        "48": {"class_type": "FaceAdapterFaceXSaveFace", "inputs": {"face": ["40", 0], "name": "tier2_hopper",
                                                                     "overwrite": True}},
    }


@pytest.fixture(scope="module")
def uploaded(comfy, tmp_path_factory):
    return upload_samples(comfy, tmp_path_factory.mktemp("upload"), "fx_")


def saved(comfy, result, node: str) -> list[np.ndarray]:
    images = comfy.history(result.prompt_id)["outputs"][node]["images"]
    return [cv2.imdecode(np.frombuffer(comfy.view(i), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1] for i in images]


def test_decompose_assemble_render_and_saved_face_in_comfyui(comfy, uploaded):
    source, target = uploaded
    result = comfy.run(facex_graph(source, target), timeout=900)
    assert result.succeeded, (result.error(), comfy.log()[-4000:])
    (pasted,) = saved(comfy, result, "45")
    frame = cv2.imread(str(comfy.workdir / "input" / source))[:, :, ::-1]
    assert pasted.shape == frame.shape, "identity A with B's pose goes back into A's photo"
    changed = np.abs(pasted.astype(int) - frame.astype(int)).max(axis=2) > 8
    assert 0 < changed.mean() < 0.5, "the face changed, the rest of the photo did not"
    (before,), (after,) = saved(comfy, result, "46"), saved(comfy, result, "47")
    assert np.abs(before.astype(int) - after.astype(int)).max() > 100, "the pose offset moves the landmark preview"
    assert (comfy.workdir / "models" / "faces" / "tier2_hopper.safetensors").is_file()

    reload = {key: node for key, node in facex_graph(source, target).items() if key not in ("44", "45", "48")}
    reload["49"] = {"class_type": "FaceAdapterFaceXLoadFace", "inputs": {"face_file": "tier2_hopper.safetensors"}}
    reload["43"]["inputs"]["face_a"] = ["49", 0]
    reload["50"] = {"class_type": "SaveImage", "inputs": {"images": ["43", 5], "filename_prefix": "fx_control"}}
    again = comfy.run(reload, timeout=600)
    assert again.succeeded, (again.error(), comfy.log()[-4000:])
    assert saved(comfy, again, "50")[0].shape == (512, 512, 3)
