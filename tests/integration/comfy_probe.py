"""Test-only ComfyUI custom node: reports what stock loaders produced (classes, detected model config,
per-tensor digests, finite forwards) as JSON text, so tier-2 tests can check it from outside.

Copied into the test server's custom_nodes folder by tests/integration/conftest.py; never part of the pack.
"""
import hashlib
import json

import torch


def _digests(state):
    """Key -> digest of the float32 values: two loaders that produce the same network agree key for key."""
    return {k: hashlib.sha1(v.detach().to(torch.float32).contiguous().cpu().numpy().tobytes()).hexdigest()[:16]
            for k, v in state.items()}


def _finite(t):
    return bool(torch.isfinite(t).all())


class FaceAdapterTestProbe:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"label": ("STRING", {"default": ""})},
                "optional": {"model": ("MODEL",), "clip": ("CLIP",), "vae": ("VAE",),
                             "control_net": ("CONTROL_NET",), "clip_vision": ("CLIP_VISION",)}}

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "probe"
    CATEGORY = "testing"

    def probe(self, label, model=None, clip=None, vae=None, control_net=None, clip_vision=None):
        info = {"label": label}
        with torch.no_grad():
            if model is not None:
                base = model.model
                info["model_config"] = type(base.model_config).__name__
                info["unet_digests"] = _digests(base.diffusion_model.state_dict())
            if clip is not None:
                cond = clip.encode_from_tokens(clip.tokenize("a face"))
                info["clip_class"] = type(clip.cond_stage_model).__name__
                info["text_shape"], info["text_finite"] = list(cond.shape), _finite(cond)
            if vae is not None:
                info["vae_digests"] = _digests(vae.first_stage_model.state_dict())
                image = vae.decode(torch.zeros(1, 4, 8, 8))
                info["vae_image_shape"], info["vae_finite"] = list(image.shape), _finite(image)
            if control_net is not None:
                info["control_class"] = type(control_net).__name__
                info["control_parameters"] = sum(p.numel() for p in control_net.control_model.state_dict().values())
            if clip_vision is not None:
                hidden = clip_vision.encode_image(torch.rand(1, 224, 224, 3))["last_hidden_state"]
                info["vision_shape"], info["vision_finite"] = list(hidden.shape), _finite(hidden)
        return {"ui": {"text": [json.dumps(info)]}}


NODE_CLASS_MAPPINGS = {"FaceAdapterTestProbe": FaceAdapterTestProbe}
