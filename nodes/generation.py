"""Face-Adapter generation nodes (stage 2): load, encode identity and attributes, apply, blend, render.

Thin: tokens, conditions and the render loop live in generate/, ComfyUI calls in the bridge.
"""
from __future__ import annotations

from ..core import comfy_bridge as bridge
from ..core import comfy_bridge_sampling as sampling
from ..core.cache import MODEL_CACHE
from ..core.images import uint8_to_image
from ..core.model_paths import choices_fingerprint, diffusers_weights, find_model_choice, resolve_model_choice
from ..generate.attributes import choose_hidden_states, encode_attributes
from ..generate.identity import encode_identity
from ..generate.native import ControlSettings, NativeSampler, comfy_conditioning, empty_latent
from ..generate.nets import FaceAdapterNets, negative_embedding
from ..generate.render import SIDES, blend_crops, conditions_for, sample_in_batches, side_views
from ..spatial.record import paste_generated
from .common import model_input

REQUIRES = ("cv2", "scipy")
CATEGORY = "FaceAdapter/Generate"
NONE_VISION = "none (connect a CLIP_VISION to Encode Attribute Template)"
SPATIAL_TIP = "From Compose Spatial Control: the face pairs, control images, crops and transforms."


MODEL_FILES = (("id2token_file", "faceadapter.id2token"), ("image2token_file", "faceadapter.image2token"),
               ("arcface_file", "faceadapter.arcface_iresnet100"), ("controlnet", "faceadapter.controlnet"),
               ("vision_encoder", "faceadapter.vision_encoder"),
               ("empty_prompt", "faceadapter.empty_prompt_embedding"))


class FaceAdapterLoad:
    DESCRIPTION = ("Loads Face-Adapter: the identity encoder (ArcFace IResNet-100 + ID2Token), the attribute "
                   "template network (Image2Token, with Face-Adapter's CLIP ViT-H vision_encoder/ unless you "
                   "connect a stock CLIP_VISION to Encode Attribute Template) and the attribute controller as a "
                   "stock CONTROL_NET. Networks go through the pack's one model cache, so two loaders share them. "
                   "The negative prompt is empty_prompt_embedding.pth when present, else connect CLIPTextEncode "
                   "with an empty text to Apply Face-Adapter.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("FACEADAPTER_MODEL", "CONTROL_NET")
    RETURN_NAMES = ("face_adapter", "control_net")
    OUTPUT_TOOLTIPS = ("Token networks and ArcFace (files, loaded from the model cache at each use).",
                       "Face-Adapter's ControlNet (diffusers folder), for Apply Face-Adapter or any ControlNet node.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "id2token_file": model_input("faceadapter.id2token", "ID2Token (net_id2token.pth, bf16)."),
            "image2token_file": model_input("faceadapter.image2token", "Image2Token (net_image2token.pth)."),
            "arcface_file": model_input("faceadapter.arcface_iresnet100",
                                        "ArcFace IResNet-100 (insightface_glint360k.pth)."),
            "controlnet": model_input("faceadapter.controlnet", "The attribute controller: diffusers ControlNet "
                                      "folder with diffusion_pytorch_model.safetensors."),
            "vision_encoder": model_input("faceadapter.vision_encoder", "CLIP ViT-H/14 vision tower "
                                          "(transformers folder).", (NONE_VISION,)),
            "empty_prompt": model_input("faceadapter.empty_prompt_embedding", "SD1.5 CLIP embedding of the empty "
                                        "prompt (1x77x768): the negative for UNet and ControlNet."),
        }}

    @classmethod
    def IS_CHANGED(cls, **choices):
        return choices_fingerprint(*((model_id, choices.get(name)) for name, model_id in MODEL_FILES
                                     if choices.get(name) != NONE_VISION))

    def load(self, id2token_file, image2token_file, arcface_file, controlnet, vision_encoder, empty_prompt):
        vision = None if vision_encoder == NONE_VISION else resolve_model_choice("faceadapter.vision_encoder",
                                                                                 vision_encoder)
        nets = FaceAdapterNets(resolve_model_choice("faceadapter.id2token", id2token_file),
                               resolve_model_choice("faceadapter.image2token", image2token_file),
                               resolve_model_choice("faceadapter.arcface_iresnet100", arcface_file),
                               vision, find_model_choice("faceadapter.empty_prompt_embedding", empty_prompt))
        nets.load_all()
        weights = diffusers_weights(resolve_model_choice("faceadapter.controlnet", controlnet))
        control = MODEL_CACHE.get("faceadapter_controlnet", [weights], lambda: sampling.load_controlnet(weights))
        return (nets, control.value)


class FaceAdapterLoadUNet:
    DESCRIPTION = ("Loads Face-Adapter's replacement SD1.5 UNet (pretrained_unet/, which upstream uses instead of "
                   "the base model's UNet) as a stock MODEL. The stock Load Diffusion Model (UNETLoader) loads the "
                   "same file from models/unet/ too; any SD1.5 checkpoint's MODEL also works, with LoRAs.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("SD1.5 UNet for KSampler or Face-Adapter Render.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"unet": model_input("faceadapter.pretrained_unet", "diffusers UNet folder.")}}

    @classmethod
    def IS_CHANGED(cls, unet=None):
        return choices_fingerprint(("faceadapter.pretrained_unet", unet))

    def load(self, unet):
        weights = diffusers_weights(resolve_model_choice("faceadapter.pretrained_unet", unet))
        return (MODEL_CACHE.get("faceadapter_unet", [weights], lambda: sampling.load_unet(weights)).value,)


class FaceAdapterEncodeIdentity:
    DESCRIPTION = ("Encodes who the generated face is: ArcFace on each distinct face's 256 aligned crop -> 64 "
                   "identity tokens -> ID2Token -> a 77x768 prompt, plus the 512-d ArcFace embedding. Each distinct "
                   "face is encoded once (one photo driving 300 frames = 1 encode). Take it from another record to "
                   "mix identity and attributes from different faces.")
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("FACEADAPTER_IDENTITY", "IMAGE")
    RETURN_NAMES = ("identity", "preview")
    OUTPUT_TOOLTIPS = ("Identity tokens per face pair, for Apply Face-Adapter or Render.",
                       "The aligned 256 crops ArcFace saw, one per distinct face.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "spatial": ("FACEADAPTER_SPATIAL", {"tooltip": SPATIAL_TIP}),
            "face_adapter": ("FACEADAPTER_MODEL", {"tooltip": "From Load Face-Adapter."}),
            "side": (["source", "target"], {"default": "source", "tooltip": "Whose identity: the source face "
                                            "(upstream, both tasks) or the target face."}),
        }}

    def encode(self, spatial, face_adapter, side):
        identity = encode_identity(side_views(spatial, side), face_adapter)
        return (identity, uint8_to_image(identity.crops))


class FaceAdapterEncodeAttributes:
    DESCRIPTION = ("Encodes the attribute template the ControlNet sees (hair, lighting, background, clothes): "
                   "CLIP ViT-H/14 hidden states of each distinct 512 crop (pixels prepared exactly as "
                   "CLIPImageProcessor) -> Image2Token -> 77x768. 'task' takes the source crop for reenact and "
                   "the target crop for swap, as upstream.")
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("FACEADAPTER_ATTRIBUTES", "IMAGE")
    RETURN_NAMES = ("attributes", "preview")
    OUTPUT_TOOLTIPS = ("Attribute tokens per face pair, for Apply Face-Adapter or Render.",
                       "The 512 crops CLIP saw, one per distinct crop.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "spatial": ("FACEADAPTER_SPATIAL", {"tooltip": SPATIAL_TIP}),
            "face_adapter": ("FACEADAPTER_MODEL", {"tooltip": "From Load Face-Adapter."}),
            "side": (list(SIDES), {"default": "task", "tooltip": "task: source for reenact, target for swap "
                                   "(upstream). source / target: force one side."}),
        }, "optional": {
            "clip_vision": ("CLIP_VISION", {"tooltip": "A stock CLIP ViT-H/14 vision model (Load CLIP Vision). "
                                            "Unconnected: Face-Adapter's own vision_encoder/."}),
        }}

    def encode(self, spatial, face_adapter, side, clip_vision=None):
        hidden, encoder = choose_hidden_states(face_adapter, clip_vision)
        attributes = encode_attributes(side_views(spatial, side), face_adapter, hidden, encoder)
        return (attributes, uint8_to_image(attributes.crops))


def _control_inputs() -> dict:
    return {
        "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3.0, "step": 0.01,
                               "tooltip": "ControlNet strength (upstream: 1.0)."}),
        "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001,
                                    "tooltip": "Where in the schedule the attribute controller starts acting."}),
        "end_percent": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001,
                                  "tooltip": "Where it stops."}),
    }


def _generation_inputs() -> dict:
    return {
        "spatial": ("FACEADAPTER_SPATIAL", {"tooltip": SPATIAL_TIP}),
        "identity": ("FACEADAPTER_IDENTITY", {"tooltip": "From Encode Identity (one per pair, or one for all)."}),
        "attributes": ("FACEADAPTER_ATTRIBUTES", {"tooltip": "From Encode Attribute Template."}),
        "control_net": ("CONTROL_NET", {"tooltip": "Face-Adapter's ControlNet (Load Face-Adapter or ControlNet "
                                        "Loader)."}),
        "face_adapter": ("FACEADAPTER_MODEL", {"tooltip": "From Load Face-Adapter (gives the negative embedding)."}),
    }


NEGATIVE_TIP = ("Optional: CLIPTextEncode with an EMPTY text (SD1.5 CLIP). Unconnected: Face-Adapter's "
                "empty_prompt_embedding.pth. Upstream uses the empty prompt for both tasks.")


class FaceAdapterApply:
    DESCRIPTION = ("Turns identity, attributes and control images into positive and negative CONDITIONING for "
                   "the stock KSampler: the UNet sees the identity tokens (empty prompt on the negative); the "
                   "ControlNet sees the control image in [-1,1] with its own context, the attribute tokens "
                   "(cross_attn_controlnet; empty prompt on the negative), on both CFG halves as upstream, so CFG "
                   "stays one batched forward. Also an empty 512 LATENT with one entry per face pair. Upstream "
                   "sampling: euler, normal, 25 steps, CFG 5.")
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    OUTPUT_TOOLTIPS = ("Identity tokens + ControlNet with attribute tokens.", "Empty prompt + ControlNet with the "
                       "empty prompt.", "Empty latent, one per face pair (512x512).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**_generation_inputs(), **_control_inputs()},
                "optional": {"negative": ("CONDITIONING", {"tooltip": NEGATIVE_TIP}),
                             "vae": ("VAE", {"tooltip": "Only for ControlNets that need one (not Face-Adapter's)."})}}

    def apply(self, spatial, identity, attributes, control_net, face_adapter, strength, start_percent, end_percent,
              negative=None, vae=None):
        conditions = conditions_for(spatial, identity, attributes, negative_embedding(face_adapter, negative))
        positive, negative_out = comfy_conditioning(conditions, control_net,
                                                    ControlSettings(strength, start_percent, end_percent), vae)
        return (positive, negative_out, empty_latent(conditions))


class FaceAdapterBlendFaces:
    DESCRIPTION = ("Upstream's last step: generated 512 crops blended onto the crop the control image was built "
                   "on (source for reenact, target for swap) with the record's soft blend mask: "
                   "gen*blend + background*(1-blend). Feed 'crops' and 'paste_mask' to Paste Generated Faces.")
    CATEGORY = CATEGORY
    FUNCTION = "blend"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("crops", "paste_mask")
    OUTPUT_TOOLTIPS = ("Blended 512 crops, one per face pair (Face-Adapter's own output).",
                       "All-ones crop mask: the blend is already in the crops, so paste them whole.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "spatial": ("FACEADAPTER_SPATIAL", {"tooltip": SPATIAL_TIP}),
            "images": ("IMAGE", {"tooltip": "VAE Decode output: one generated 512 crop per face pair."}),
        }}

    def blend(self, spatial, images):
        blended = blend_crops(spatial, images)
        return (blended, spatial.blend.new_ones(spatial.blend.shape))


class FaceAdapterRender:
    DESCRIPTION = ("Face-Adapter in one node: Apply -> ComfyUI's sampler -> VAE decode -> blend -> paste back. "
                   "Frames go through in batches; progress per step and Cancel within one step. With "
                   "'shared_noise' every frame starts from the same noise (FADM's trick), so identical conditions "
                   "give identical frames and video flickers less.")
    CATEGORY = CATEGORY
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "IMAGE", "MASK")
    RETURN_NAMES = ("image", "crops", "mask")
    OUTPUT_TOOLTIPS = ("The paste side's frames with the generated faces (reenact: the source image, one per "
                       "driving frame; swap: the target frames).", "Blended 512 crops, one per face pair.",
                       "Blend weights used, per output frame.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **_generation_inputs(),
            "image": ("IMAGE", {"tooltip": "reenact: the source image; swap: the target frames (checked against "
                                "the record)."}),
            "model": ("MODEL", {"tooltip": "SD1.5 MODEL: Load Face-Adapter UNet, or a checkpoint (+ LoRAs)."}),
            "vae": ("VAE", {"tooltip": "SD1.5 VAE (upstream: sd-vae-ft-mse)."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                             "tooltip": "Noise seed."}),
            "steps": ("INT", {"default": 25, "min": 1, "max": 200, "tooltip": "Sampling steps (upstream: 25)."}),
            "cfg": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 30.0, "step": 0.1, "tooltip": "CFG (upstream: 5)."}),
            "sampler_name": (sampling.sampler_names(), {"default": "euler", "tooltip": "Sampler (upstream: euler)."}),
            "scheduler": (sampling.scheduler_names(), {"default": "normal", "tooltip": "Scheduler (normal = "
                                                       "upstream's Euler sigmas)."}),
            "frames_per_batch": ("INT", {"default": 8, "min": 1, "max": 256, "tooltip": "Face pairs sampled together "
                                         "(more is faster on a big GPU, needs more VRAM)."}),
            "shared_noise": ("BOOLEAN", {"default": True, "tooltip": "One initial noise for every frame (temporal "
                                         "consistency). Off: frame k uses seed + k."}),
            **_control_inputs(),
        }, "optional": {"negative": ("CONDITIONING", {"tooltip": NEGATIVE_TIP})}}

    def render(self, spatial, identity, attributes, control_net, face_adapter, image, model, vae, seed, steps, cfg,
               sampler_name, scheduler, frames_per_batch, shared_noise, strength, start_percent, end_percent,
               negative=None):
        spatial.check_frames(image)
        conditions = conditions_for(spatial, identity, attributes, negative_embedding(face_adapter, negative))
        sampler = NativeSampler(model, vae, control_net, ControlSettings(strength, start_percent, end_percent),
                                steps, cfg, sampler_name, scheduler, seed)
        batches = -(-len(conditions) // frames_per_batch)
        bar = bridge.progress(batches * steps + spatial.frame_count(), "Face-Adapter render")  # updates honour Cancel
        crops = sample_in_batches(conditions, sampler, seed, shared_noise=shared_noise,
                                  frames_per_batch=frames_per_batch, on_step=bar.update)
        blended = blend_crops(spatial, crops)
        pasted, mask = paste_generated(spatial, image, crops, step=bar.update)
        return (pasted, blended, mask)


_NODES = {
    "FaceAdapterLoad": (FaceAdapterLoad, "Load Face-Adapter (FaceAdapter)"),
    "FaceAdapterLoadUNet": (FaceAdapterLoadUNet, "Load Face-Adapter UNet (FaceAdapter)"),
    "FaceAdapterEncodeIdentity": (FaceAdapterEncodeIdentity, "Encode Identity (FaceAdapter)"),
    "FaceAdapterEncodeAttributes": (FaceAdapterEncodeAttributes, "Encode Attribute Template (FaceAdapter)"),
    "FaceAdapterApply": (FaceAdapterApply, "Apply Face-Adapter (FaceAdapter)"),
    "FaceAdapterBlendFaces": (FaceAdapterBlendFaces, "Blend Generated Faces (FaceAdapter)"),
    "FaceAdapterRender": (FaceAdapterRender, "Face-Adapter Render (FaceAdapter)"),
}
NODE_CLASS_MAPPINGS = {k: v[0] for k, v in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {k: v[1] for k, v in _NODES.items()}
