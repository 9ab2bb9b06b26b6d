"""FADM nodes: load the three model files, animate a face coarsely, refine with the diffusion renderer.

Sockets (handles that name files; networks come from the one model cache at each use):
- FACEADAPTER_COARSE_GENERATOR: animate.models.CoarseGenerator (face-vid2vid or FOMM);
- FACEADAPTER_FADM: animate.models.FadmRenderer (diffusion.pth);
- FACEADAPTER_DECA: animate.models.DecaEncoder (deca_model.tar, E_flame).
Thin: the frame loop lives in animate/video.py, the networks in models/fadm/.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from ..animate.models import COARSE_KINDS, CoarseGenerator, DecaEncoder, FadmRenderer
from ..animate.video import (ATTRIBUTE_SOURCES, RefineSettings, as_batch, chunk_slices, coarse_animate, image_count,
                             refine, refine_steps)
from ..core import comfy_bridge as bridge
from ..core.model_paths import choices_fingerprint, resolve_model_choice
from ..face.records import CropBatch
from .common import model_input

REQUIRES: tuple[str, ...] = ()
CATEGORY = "FaceAdapter/FADM"
BATCH_TIP = ("Frames per forward pass. Frames are streamed in chunks of this size, so memory is bounded by it, "
             "not by the video's length; the result does not depend on it. On a GPU more is faster; on a CPU use "
             "1 (a CPU gains nothing per frame from batching 256² frames, and glibc's allocator makes big batches "
             "slower: bench/fadm.py measured batch 8 at 0.3-0.7x batch 1's frames/s).")
MOTIONS = ("absolute", "relative")


class FaceAdapterLoadFADM:
    DESCRIPTION = ("Loads FADM's diffusion renderer (diffusion.pth: the 256 pixel-space UNet with its "
                   "Attribute-Guided Conditioning Network, strict keys) for FADM Refine. Through the pack's one "
                   "model cache: two loaders share it and Model Cache's unload frees it.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("FACEADAPTER_FADM",)
    RETURN_NAMES = ("fadm",)
    OUTPUT_TOOLTIPS = ("The renderer (a file handle; the network is loaded from the model cache at each use).",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"diffusion_file": model_input("fadm.diffusion", "FADM's diffusion.pth.")}}

    @classmethod
    def IS_CHANGED(cls, diffusion_file=None):
        return choices_fingerprint(("fadm.diffusion", diffusion_file))

    def load(self, diffusion_file: str) -> tuple:
        renderer = FadmRenderer(resolve_model_choice("fadm.diffusion", diffusion_file))
        renderer.model()  # a wrong file fails here, not mid-video
        return (renderer,)


class FaceAdapterLoadCoarseGenerator:
    DESCRIPTION = ("Loads FADM's coarse generator: face-vid2vid (Facevid.pth: keypoint detector, head-pose / "
                   "expression estimator, occlusion-aware generator; what upstream's demo uses) or FOMM "
                   "(FOMM.pth: keypoints with jacobians). A fast GAN reenactment on its own, and FADM Refine's input.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("FACEADAPTER_COARSE_GENERATOR",)
    RETURN_NAMES = ("coarse_generator",)
    OUTPUT_TOOLTIPS = ("The generator (a file handle; networks come from the model cache), for Coarse Animate.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "generator": (list(COARSE_KINDS), {"default": "face-vid2vid", "tooltip": "face-vid2vid: upstream's "
                          "demo (3-D keypoints, head pose). fomm: First Order Motion Model (2-D keypoints)."}),
            "facevid_file": model_input("fadm.facevid", "Facevid.pth (used when generator = face-vid2vid)."),
            "fomm_file": model_input("fadm.fomm", "FOMM.pth (used when generator = fomm)."),
        }}

    @classmethod
    def IS_CHANGED(cls, generator=None, facevid_file=None, fomm_file=None):
        chosen = ("fadm.fomm", fomm_file) if generator == "fomm" else ("fadm.facevid", facevid_file)
        return choices_fingerprint(chosen)

    def load(self, generator: str, facevid_file: str, fomm_file: str) -> tuple:
        model_id, value = ("fadm.fomm", fomm_file) if generator == "fomm" else ("fadm.facevid", facevid_file)
        handle = CoarseGenerator(generator, resolve_model_choice(model_id, value))
        handle.nets()
        return (handle,)


class FaceAdapterLoadDECA:
    DESCRIPTION = ("Loads DECA's coarse encoder E_flame from deca_model.tar (FADM's motion encoder: expression "
                   "and head pose of a frame). FLAME itself, E_detail and D_detail are not needed. DECA and FLAME "
                   "are MPI non-commercial.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("FACEADAPTER_DECA",)
    RETURN_NAMES = ("deca",)
    OUTPUT_TOOLTIPS = ("E_flame (a file handle; the network comes from the model cache), for FADM Refine.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"deca_file": model_input("fadm.deca", "DECA's deca_model.tar (from FADM's data.zip).")}}

    @classmethod
    def IS_CHANGED(cls, deca_file=None):
        return choices_fingerprint(("fadm.deca", deca_file))

    def load(self, deca_file: str) -> tuple:
        handle = DecaEncoder(resolve_model_choice("fadm.deca", deca_file))
        handle.model()
        return (handle,)


class FaceAdapterCoarseAnimate:
    DESCRIPTION = ("Moves the source face like the driving video (face-vid2vid or FOMM): one 256 coarse frame per "
                   "driving frame. Give it VoxCeleb-framed crops (Crop Faces, voxceleb_256 / voxceleb_256_shot); "
                   "other images are resized to 256. absolute = upstream's demo (the driving head pose and "
                   "expression); relative = motion since the first driving frame, for a source whose pose differs.")
    CATEGORY = CATEGORY
    FUNCTION = "animate"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("coarse",)
    OUTPUT_TOOLTIPS = ("Coarse frames (256), one per driving frame, for FADM Refine or Paste Faces.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "coarse_generator": ("FACEADAPTER_COARSE_GENERATOR", {"tooltip": "From Load Face-Vid2Vid / FOMM."}),
            "source": ("IMAGE", {"tooltip": "One image of the face to animate (its VoxCeleb crop)."}),
            "driving": ("IMAGE", {"tooltip": "The driving frames (their VoxCeleb crops, voxceleb_256_shot for a "
                                  "steady video)."}),
            "motion": (list(MOTIONS), {"default": "absolute", "tooltip": "absolute: every frame's own head pose "
                       "and expression (upstream). relative: the source's keypoints moved by the change since the "
                       "first driving frame (keeps the source's pose and face shape)."}),
            "frames_per_batch": ("INT", {"default": 8, "min": 1, "max": 256, "tooltip": BATCH_TIP}),
        }}

    def animate(self, coarse_generator: CoarseGenerator, source: torch.Tensor, driving: torch.Tensor, motion: str,
                frames_per_batch: int) -> tuple:
        chunks = len(list(chunk_slices(image_count(driving), frames_per_batch)))
        bar = bridge.progress(chunks, "Coarse Animate")
        return (coarse_animate(coarse_generator, source, driving, relative=motion == "relative",
                               frames_per_batch=frames_per_batch, step=bar.update),)


class FaceAdapterFADMRefine:
    DESCRIPTION = ("FADM's diffusion renderer: removes the coarse generator's distortions frame by frame. Each "
                   "coarse frame conditions the UNet through the Attribute-Guided Conditioning Network with its "
                   "DECA expression and pose relative to the source. One initial noise and one per-step noise list "
                   "are shared by every frame (upstream), so a batch of frames is one forward per step and the "
                   "video stays consistent. Without a source the first coarse frame is the source: upstream's "
                   "'direct' mode, to refine an animation made by another tool. Progress per step; Cancel stops "
                   "within one step.")
    CATEGORY = CATEGORY
    FUNCTION = "refine"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("refined",)
    OUTPUT_TOOLTIPS = ("Refined frames (256), one per coarse frame; paste them back with Paste Faces.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "fadm": ("FACEADAPTER_FADM", {"tooltip": "From Load FADM."}),
            "deca": ("FACEADAPTER_DECA", {"tooltip": "From Load DECA Encoder."}),
            "coarse": ("IMAGE", {"tooltip": "Coarse frames: Coarse Animate's output, or any animation's VoxCeleb "
                                 "crops (then leave 'source' unconnected)."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                             "tooltip": "Noise seed (the same seed gives the same video)."}),
            "steps": ("INT", {"default": 100, "min": 1, "max": 100, "tooltip": "Denoising steps: 100 = upstream's "
                              "full schedule; fewer visit an evenly spaced subset (DDIM-style) for previews."}),
            "shared_noise": ("BOOLEAN", {"default": True, "tooltip": "One noise for every frame (upstream; temporal "
                                         "consistency). Off: frame k draws its own noise from seed + k."}),
            "frames_per_batch": ("INT", {"default": 8, "min": 1, "max": 256, "tooltip": BATCH_TIP}),
            "attribute_from": (list(ATTRIBUTE_SOURCES), {"default": "coarse", "tooltip": "Whose expression and pose "
                               "the attribute vector measures against the source: coarse = each coarse frame "
                               "(upstream's inference); driving = each real driving frame (as in training)."}),
        }, "optional": {
            "source": ("IMAGE", {"tooltip": "The source image Coarse Animate used. Unconnected: the first coarse "
                                 "frame (refine an existing animation)."}),
            "driving": ("IMAGE", {"tooltip": "The driving frames; only read with attribute_from = driving."}),
        }}

    def refine(self, fadm: FadmRenderer, deca: DecaEncoder, coarse: torch.Tensor, seed: int, steps: int,
               shared_noise: bool, frames_per_batch: int, attribute_from: str, source: Optional[torch.Tensor] = None,
               driving: Optional[torch.Tensor] = None) -> tuple:
        settings = RefineSettings(seed, steps, shared_noise, frames_per_batch, attribute_from)
        chunks = len(list(chunk_slices(image_count(coarse), frames_per_batch)))
        bar = bridge.progress(chunks * refine_steps(fadm, steps), "FADM Refine")  # each update honours Cancel
        return (refine(fadm, deca, coarse, settings, source=source, driving=driving, step=bar.update),)


class FaceAdapterRepeatSourceForFrames:
    DESCRIPTION = ("For pasting an animation of one photo back into that photo: repeats the photo and its Crop "
                   "Faces transforms once per animation frame (the photo is not copied in memory), so Paste Faces "
                   "puts frame k's face into copy k of the photo.")
    CATEGORY = CATEGORY
    FUNCTION = "repeat"
    RETURN_TYPES = ("IMAGE", "FACEADAPTER_CROP_TRANSFORMS")
    RETURN_NAMES = ("image", "transforms")
    OUTPUT_TOOLTIPS = ("The source photo, once per frame: Paste Faces' image.",
                       "Its crop transforms, once per frame: Paste Faces' transforms.")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "image": ("IMAGE", {"tooltip": "The source photo (one image) that Crop Faces cut the source from."}),
            "transforms": ("FACEADAPTER_CROP_TRANSFORMS", {"tooltip": "Crop Faces' transforms of that photo."}),
            "frames": ("IMAGE", {"tooltip": "The animation (Coarse Animate or FADM Refine); only its frame count "
                                 "is read."}),
        }}

    def repeat(self, image: torch.Tensor, transforms: CropBatch, frames: torch.Tensor) -> tuple:
        image = as_batch(image)
        if image.shape[0] != 1:
            raise ValueError(f"FaceAdapter: Repeat Source For Frames needs one source image, got {image.shape[0]}")
        count = image_count(frames)
        return (image.expand(count, *image.shape[1:]), transforms.repeated(count))


_NODES = {
    "FaceAdapterLoadFADM": (FaceAdapterLoadFADM, "Load FADM (FaceAdapter)"),
    "FaceAdapterLoadCoarseGenerator": (FaceAdapterLoadCoarseGenerator, "Load Face-Vid2Vid / FOMM (FaceAdapter)"),
    "FaceAdapterLoadDECA": (FaceAdapterLoadDECA, "Load DECA Encoder (FaceAdapter)"),
    "FaceAdapterCoarseAnimate": (FaceAdapterCoarseAnimate, "Coarse Animate (FaceAdapter)"),
    "FaceAdapterFADMRefine": (FaceAdapterFADMRefine, "FADM Refine (FaceAdapter)"),
    "FaceAdapterRepeatSourceForFrames": (FaceAdapterRepeatSourceForFrames, "Repeat Source For Frames (FaceAdapter)"),
}
NODE_CLASS_MAPPINGS = {k: v[0] for k, v in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {k: v[1] for k, v in _NODES.items()}
