"""Tier 2 acceptance: LoadImage -> Load Face Analysis (mediapipe) -> Detect -> Select -> Crop -> Paste -> SaveImage
in a real ComfyUI, on a real photo, with no model download."""
from __future__ import annotations

import io

import numpy as np

from test_face_support import photo


def graph(image_name: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "2": {"class_type": "FaceAdapterLoadFaceAnalysis", "inputs": {
            "backend": "mediapipe", "min_score": 0.5, "max_faces": 10, "landmarks": "auto", "recognition": True,
            "insightface_model": "antelopev2", "det_size": 640, "mediapipe_detector": "full_range",
            "device": "auto"}},
        "3": {"class_type": "FaceAdapterDetectFaces", "inputs": {
            "image": ["1", 0], "analysis": ["2", 0], "tracking": True, "smoothing": "off", "min_cutoff": 1.0,
            "beta": 0.5, "preview": True}},
        "4": {"class_type": "FaceAdapterSelectFace", "inputs": {
            "faces": ["3", 0], "mode": "largest", "order": "left_to_right", "index": 0, "follow_track": True,
            "on_missing": "pass_through", "similarity_threshold": -1.0}},
        "5": {"class_type": "FaceAdapterCropFaces", "inputs": {
            "image": ["1", 0], "faces": ["4", 0], "crop": "faceadapter_512", "size": 512, "crop_ratio": 0.81}},
        "6": {"class_type": "FaceAdapterPasteFaces", "inputs": {
            "image": ["1", 0], "crops": ["5", 0], "transforms": ["5", 1], "feather": 16, "color_match": "off",
            "preserve_unchanged": True}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "face_roundtrip"}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "face_crop"}},
    }


def test_crop_paste_graph_on_a_real_photo(comfy, tmp_path):
    from PIL import Image

    rgb = photo("grace_hopper")
    source = tmp_path / "grace_hopper.png"
    Image.fromarray(rgb).save(source)
    name = comfy.upload_image(source)
    result = comfy.run(graph(name), timeout=300)
    assert result.succeeded, (result.error(), comfy.log()[-3000:])
    outputs = comfy.history(result.prompt_id)["outputs"]
    pasted = np.asarray(Image.open(io.BytesIO(comfy.view(outputs["7"]["images"][0]))).convert("RGB"))
    crop = np.asarray(Image.open(io.BytesIO(comfy.view(outputs["8"]["images"][0]))).convert("RGB"))
    assert crop.shape == (512, 512, 3)
    assert pasted.shape == rgb.shape
    assert np.abs(pasted.astype(int) - rgb.astype(int)).max() <= 2, "an unchanged crop pastes back to the photo"
