"""The random model maker's full-size files in a real ComfyUI, through the stock loaders only.

CheckpointLoaderSimple detects the single-file checkpoint as SD15, encodes text and samples one step;
UNETLoader reads pretrained_unet/ and VAELoader the diffusers VAE, and both give tensors identical to
the checkpoint's, key for key: ComfyUI's own diffusers conversion agrees with the maker's LDM names.
ControlNetLoader and CLIPVisionLoader read Face-Adapter's controlnet/ and vision_encoder/ folders.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open

from faceadapter_suite.tools.random_models import CHECKPOINT_FILE, VAE_FILE

PROBE = "FaceAdapterTestProbe"


def probe_report(comfy, result, node: str) -> dict:
    assert result.succeeded, (result.error(), comfy.log()[-3000:])
    return json.loads(comfy.history(result.prompt_id)["outputs"][node]["text"][0])


@pytest.fixture(scope="module")
def checkpoint_run(random_models_comfy):
    comfy = random_models_comfy
    ckpt = CHECKPOINT_FILE.split("/", 1)[1]
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": PROBE, "inputs": {"label": "checkpoint", "model": ["1", 0], "clip": ["1", 1],
                                              "vae": ["1", 2]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a face", "clip": ["1", 1]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["3", 0], "negative": ["4", 0], "latent_image": ["5", 0], "seed": 0,
            "steps": 1, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "fa_random_sd15"}},
    }
    result = comfy.run(prompt, timeout=600)
    return result, probe_report(comfy, result, "2")


def test_checkpoint_is_detected_as_sd15_and_samples(random_models_comfy, checkpoint_run):
    comfy = random_models_comfy
    result, report = checkpoint_run
    assert report["model_config"] == "SD15"
    assert report["clip_class"] == "SD1ClipModel"
    assert report["text_shape"] == [1, 77, 768] and report["text_finite"], "every CLIP-L weight loaded"
    assert report["vae_image_shape"] == [1, 64, 64, 3] and report["vae_finite"]
    assert len(report["unet_digests"]) == 686 and len(report["vae_digests"]) == 248
    log = comfy.log()
    assert "clip missing" not in log, log[-3000:]
    saved = comfy.history(result.prompt_id)["outputs"]["8"]["images"]
    assert len(saved) == 1
    import cv2

    image = cv2.imdecode(np.frombuffer(comfy.view(saved[0]), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (64, 64, 3)


def test_unet_and_vae_loaders_give_the_checkpoints_tensors(random_models_comfy, checkpoint_run):
    """UNETLoader converts pretrained_unet/'s diffusers names with ComfyUI's own mapping; VAELoader the
    diffusers VAE. Equal digests for every key prove the checkpoint's LDM names are the same tensors."""
    comfy = random_models_comfy
    _, from_checkpoint = checkpoint_run
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {
            "unet_name": "pretrained_unet/diffusion_pytorch_model.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "VAELoader", "inputs": {"vae_name": VAE_FILE.split("/", 1)[1]}},
        "3": {"class_type": PROBE, "inputs": {"label": "folders", "model": ["1", 0], "vae": ["2", 0]}},
    }
    result = comfy.run(prompt, timeout=600)
    report = probe_report(comfy, result, "3")
    assert report["model_config"] == "SD15"
    assert report["unet_digests"] == from_checkpoint["unet_digests"]
    assert report["vae_digests"] == from_checkpoint["vae_digests"]
    assert report["vae_finite"]


def test_controlnet_and_clip_vision_loaders_read_face_adapter_folders(random_models_comfy, random_models_dir):
    comfy = random_models_comfy
    prompt = {
        "1": {"class_type": "ControlNetLoader", "inputs": {
            "control_net_name": "controlnet/diffusion_pytorch_model.safetensors"}},
        "2": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "model.safetensors"}},
        "3": {"class_type": PROBE, "inputs": {"label": "controls", "control_net": ["1", 0], "clip_vision": ["2", 0]}},
    }
    report = probe_report(comfy, comfy.run(prompt, timeout=600), "3")
    assert report["control_class"] == "ControlNet"
    path = random_models_dir / "faceadapter" / "controlnet" / "diffusion_pytorch_model.safetensors"
    with safe_open(str(path), "pt") as f:
        in_file = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
    assert report["control_parameters"] == in_file, "every ControlNet weight of the file is in ComfyUI's model"
    assert report["vision_shape"] == [1, 257, 1280] and report["vision_finite"]
