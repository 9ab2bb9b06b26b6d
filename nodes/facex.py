"""FaceX nodes on Face-Adapter: decompose (FORD), assemble (FORS), edit, save / load. Thin: maths in facex/."""
from __future__ import annotations

import logging
import re

import numpy as np
import torch


from ..core import comfy_bridge as bridge
from ..core.images import frame_to_uint8, uint8_to_image
from ..core.model_paths import (choices_fingerprint, list_model_files, model_choices, model_fingerprint,
                                resolve_model_choice, resolve_user_file, user_file_candidates)
from ..face.align import CROP_RATIO
from ..generate.attributes import choose_hidden_states
from ..spatial import area as area_ops
from ..spatial.condition import make_view
from ..spatial.previews import landmark_overlay, mask_overlay
from ..facex import storage
from ..facex.assemble import (COMPONENTS, Recipe, assemble, drawn_points, offset_gaze, offset_pose, own_points,
                              scale_expression)
from ..facex.region_swap import swap_regions, target_transforms
from ..facex.regions import REGION_NAMES, regions_overlay
from ..facex.representation import decompose

REQUIRES = ("cv2", "scipy", "safetensors")
log = logging.getLogger("FaceAdapter")
CATEGORY = "FaceAdapter/FaceX"
FACE = "FACEADAPTER_FACE_REPR"
SLOTS = ("A", "B", "C", "D")
MESH_REGIONS = "mesh regions (licence-clean)"
NO_REGIONS = "none"
HAIR_OF_BACKGROUND = "background"
FACE_TIP = "A decomposed face (FaceX Decompose or FaceX Load Face)."
RECON_TIP = ("Only for faces decomposed with d3dfr_bfm: Load 3D Face Reconstructor (d3dfr_bfm) projects their "
             "coefficients. Faces decomposed with mediapipe_mesh need nothing.")


def _preview(face, bfm=None):
    """(1,512,512,3) IMAGE: the face's own landmarks (edits included) over its dimmed crop."""
    drawn = drawn_points(face, own_points(face, bfm))
    return uint8_to_image(landmark_overlay(face.view.crop512[None], drawn[None]))


def _with_handle(face, reconstructor):
    """Attach a d3dfr_bfm projector handle (a file handle, not a network) to a face that needs one."""
    if reconstructor is not None and getattr(reconstructor, "method", "") == "d3dfr_bfm" and face.bfm is None:
        from dataclasses import replace

        return replace(face, bfm=reconstructor)
    return face


class FaceXDecompose:
    DESCRIPTION = ("FaceX FORD: decomposes one face into identity (ID2Token tokens + ArcFace embedding), appearance "
                   "(Image2Token tokens of its CLIP hidden states), region features (CLIP patch tokens pooled over "
                   "brows, eyes, nose, lips, ears, skin, hair), motion (expression, pose, gaze), light and texture "
                   "(d3dfr_bfm only), parsing masks and the crops it came from. Networks come from the pack's one "
                   "model cache (nothing loaded twice). Without Load Face-Adapter the tokens are marked absent; "
                   "with mediapipe_mesh, motion comes from the mesh and light / texture are absent.")
    CATEGORY = CATEGORY
    FUNCTION = "decompose"
    RETURN_TYPES = (FACE, "IMAGE", "IMAGE")
    RETURN_NAMES = ("face", "landmarks", "regions")
    OUTPUT_TOOLTIPS = ("The decomposed face, for FaceX Assemble, the edit nodes or FaceX Save Face.",
                       "Preview: the face's 70 landmarks as its representation gives them, over its 512 crop.",
                       "Preview: the parsing regions over the 512 crop.")

    @classmethod
    def INPUT_TYPES(cls):
        choices, default = model_choices("faceparsing.bisenet19")
        return {"required": {
            "image": ("IMAGE", {"tooltip": "The photo (or frames) the face is in."}),
            "faces": ("FACEADAPTER_FACES", {"tooltip": "Its faces (Detect Faces / Select Face)."}),
            "reconstructor": ("FACEADAPTER_RECONSTRUCTOR", {"tooltip": "Load 3D Face Reconstructor: mediapipe_mesh "
                              "(faces from the mediapipe backend) or d3dfr_bfm (D3DFR coefficients)."}),
            "frame": ("INT", {"default": 0, "min": 0, "max": 100000, "tooltip": "Which frame of the batch."}),
            "face_index": ("INT", {"default": 0, "min": 0, "max": 100, "tooltip": "Which face of that frame "
                                   "(the order Select Face passed on)."}),
            "crop_ratio": ("FLOAT", {"default": CROP_RATIO, "min": 0.3, "max": 2.0, "step": 0.01, "tooltip":
                           "Framing of the 512 crop, as in Project 3D Landmarks (upstream 0.81)."}),
            "regions": ([MESH_REGIONS, NO_REGIONS, *choices], {"default": MESH_REGIONS, "tooltip":
                        "Parsing masks: from the mediapipe mesh (no ears / hair), none, or a BiSeNet file "
                        "(79999_iter.pth, non-commercial) in the faceadapter model folders."}),
        }, "optional": {
            "face_adapter": ("FACEADAPTER_MODEL", {"tooltip": "Load Face-Adapter: gives identity and appearance "
                             "tokens (absent when unconnected)."}),
            "clip_vision": ("CLIP_VISION", {"tooltip": "A stock CLIP ViT-H/14 for the appearance tokens; "
                            "unconnected: Face-Adapter's own vision_encoder/."}),
            "analysis": ("FACEADAPTER_ANALYSIS", {"tooltip": "Re-detect the face on its 512 crop before the "
                         "five-point fit, as Project 3D Landmarks does when connected."}),
        }}

    @classmethod
    def IS_CHANGED(cls, regions=None, **_kw):
        if regions in (MESH_REGIONS, NO_REGIONS):
            return regions
        return choices_fingerprint(("faceparsing.bisenet19", regions))

    def decompose(self, image, faces, reconstructor, frame, face_index, crop_ratio, regions, face_adapter=None,
                  clip_vision=None, analysis=None):
        if frame >= len(faces) or face_index >= len(faces.frames[frame].faces):
            found = len(faces.frames[frame].faces) if frame < len(faces) else 0
            raise ValueError(f"FaceAdapter: FaceX Decompose wants face {face_index} of frame {frame}, but the faces "
                             f"hold {len(faces)} frame(s) and that frame {found} face(s); check Select Face")
        pixels = frame_to_uint8(image, frame)
        view = make_view(pixels, faces.frames[frame].faces[face_index], frame, crop_ratio, analysis, "FaceX")
        parsing = None
        if regions not in (MESH_REGIONS, NO_REGIONS):
            parsing = area_ops.load_parsing_net(resolve_model_choice("faceparsing.bisenet19", regions))
        hidden, encoder = (None, "")
        if face_adapter is not None and (clip_vision is not None or face_adapter.vision_encoder_path is not None):
            hidden, encoder = choose_hidden_states(face_adapter, clip_vision)
        face = decompose(view, pixels.shape[:2], reconstructor, face_adapter, hidden, encoder, parsing,
                         mesh_regions=regions == MESH_REGIONS)
        return (face, _preview(face), uint8_to_image(regions_overlay(view.crop512, face.parsing)[None]))


def _slot_input(default: str, tip: str) -> tuple:
    return (list(SLOTS), {"default": default, "tooltip": tip})


COMPONENT_TIPS = {
    "identity": "Who: identity tokens and the 3D face shape.",
    "expression": "Expression the landmarks take (eyelids, brows, mouth, jaw).",
    "pose": "Head rotation and position (the crop the landmarks live in).",
    "gaze": "Where the eyes look (the two gaze points).",
    "appearance": "Attribute tokens (ControlNet prompt): hair colour, lighting, skin, clothes. Face-Adapter has no "
                  "separate light input: lighting comes with the appearance.",
    "hair": "Hair: 'background' keeps the background face's own hair; another face's means the background's hair is added to "
            "the area and repainted from the appearance (needs BiSeNet regions on the background face).",
    "background": "The canvas and the photo results go back into: the pose face (face swap) or the identity face "
                  "(reenactment: its own photo re-posed).",
}


class FaceXAssemble:
    DESCRIPTION = ("FaceX FORS: takes each component (identity, expression, pose, gaze, appearance, hair, "
                   "background) from one of up to four decomposed faces and builds exactly what Apply Face-Adapter "
                   "and Face-Adapter Render take: the spatial record, identity and attribute records. Face swap: "
                   "identity A, the rest B. Reenactment: identity, appearance and background A, expression / pose / "
                   "gaze B. Expression-, pose- or gaze-only transfer: that one component from B.")
    CATEGORY = CATEGORY
    FUNCTION = "assemble"
    RETURN_TYPES = ("FACEADAPTER_SPATIAL", "FACEADAPTER_IDENTITY", "FACEADAPTER_ATTRIBUTES", "FACEADAPTER_LANDMARKS",
                    "IMAGE", "IMAGE")
    RETURN_NAMES = ("spatial", "identity", "attributes", "landmarks", "preview", "control")
    OUTPUT_TOOLTIPS = ("Spatial record (landmark-hull area). For Face-Adapter's area nets route 'landmarks' through "
                       "Predict Adapting Area + Compose Spatial Control instead.",
                       "Identity record of the identity face (empty when it was decomposed without Load "
                       "Face-Adapter: then use Encode Identity on 'spatial', side source).",
                       "Attribute record of the appearance face (empty without Load Face-Adapter: then Encode "
                       "Attribute Template on 'spatial').",
                       "The assembled 70 landmarks with their crops (for Predict Adapting Area).",
                       "Preview: assembled landmarks over the background crop (what the control image is drawn on).", "Preview: the control image.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"face_a": (FACE, {"tooltip": FACE_TIP}),
                             **{name: _slot_input("A", COMPONENT_TIPS[name]) for name in COMPONENTS if name != "hair"},
                             "hair": ([HAIR_OF_BACKGROUND, *SLOTS], {"default": HAIR_OF_BACKGROUND,
                                                                     "tooltip": COMPONENT_TIPS["hair"]})},
                "optional": {"face_b": (FACE, {"tooltip": FACE_TIP}), "face_c": (FACE, {"tooltip": FACE_TIP}),
                             "face_d": (FACE, {"tooltip": FACE_TIP}),
                             "reconstructor": ("FACEADAPTER_RECONSTRUCTOR", {"tooltip": RECON_TIP})}}

    def assemble(self, face_a, face_b=None, face_c=None, face_d=None, reconstructor=None, **choices):
        faces = [face_a, face_b, face_c, face_d]
        recipe = Recipe(**{name: None if choices[name] == HAIR_OF_BACKGROUND else SLOTS.index(choices[name])
                           for name in COMPONENTS})
        spatial, identity, attributes = assemble(faces, recipe, reconstructor, need_tokens=False)
        if identity is None or attributes is None:
            log.warning("FaceAdapter: FaceX Assemble: the %s face was decomposed without Load Face-Adapter; its "
                        "output is empty: use Encode Identity / Encode Attribute Template on the spatial record",
                        "identity" if identity is None else "appearance")
        drawn = spatial.landmarks.landmark_images()
        preview = landmark_overlay(spatial.background(), drawn)
        return (spatial, identity, attributes, spatial.landmarks, uint8_to_image(preview), spatial.control)


class _Edit:
    CATEGORY = CATEGORY
    FUNCTION = "edit"
    RETURN_TYPES = (FACE, "IMAGE")
    RETURN_NAMES = ("face", "preview")
    OUTPUT_TOOLTIPS = ("The edited face (the input is left unchanged).",
                       "Preview: the edited face's landmarks over its crop.")

    @staticmethod
    def _optional() -> dict:
        return {"optional": {"reconstructor": ("FACEADAPTER_RECONSTRUCTOR", {"tooltip": RECON_TIP})}}

    def _out(self, face, reconstructor):
        face = _with_handle(face, reconstructor)
        return (face, _preview(face))


class FaceXExpressionIntensity(_Edit):
    DESCRIPTION = ("Scales a face's expression: 0 = neutral (mouth closed, eyes at rest), 1 = unchanged, above 1 "
                   "exaggerated, below 0 the opposite. d3dfr_bfm scales the BFM expression coefficients; "
                   "mediapipe_mesh moves the expression towards the canonical neutral face. Gaze is kept.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"face": (FACE, {"tooltip": FACE_TIP}),
                             "intensity": ("FLOAT", {"default": 1.0, "min": -1.0, "max": 3.0, "step": 0.05,
                                                     "tooltip": "0 neutral, 1 as decomposed."})}, **cls._optional()}

    def edit(self, face, intensity, reconstructor=None):
        return self._out(scale_expression(face, float(intensity)), reconstructor)


class FaceXPoseOffset(_Edit):
    DESCRIPTION = ("Turns a face's head by yaw / pitch / roll degrees (yaw > 0 turns the nose to the image's right, "
                   "pitch > 0 up, roll > 0 clockwise), added to its pose; expression, gaze and identity are kept.")

    @classmethod
    def INPUT_TYPES(cls):
        def angle(tip):
            return ("FLOAT", {"default": 0.0, "min": -90.0, "max": 90.0, "step": 0.5, "tooltip": tip})
        return {"required": {"face": (FACE, {"tooltip": FACE_TIP}), "yaw": angle("Degrees, nose to the right > 0."),
                             "pitch": angle("Degrees, nose up > 0."), "roll": angle("Degrees, clockwise > 0.")},
                **cls._optional()}

    def edit(self, face, yaw, pitch, roll, reconstructor=None):
        return self._out(offset_pose(face, float(yaw), float(pitch), float(roll)), reconstructor)


class FaceXGazeDirection(_Edit):
    DESCRIPTION = ("Moves where a face looks: both gaze points shift by the given eye widths (x to the image's "
                   "right, y down); only the two gaze points of the landmarks move.")

    @classmethod
    def INPUT_TYPES(cls):
        def amount(tip):
            return ("FLOAT", {"default": 0.0, "min": -0.5, "max": 0.5, "step": 0.01, "tooltip": tip})
        return {"required": {"face": (FACE, {"tooltip": FACE_TIP}),
                             "horizontal": amount("Eye widths, to the image's right > 0."),
                             "vertical": amount("Eye widths, down > 0.")}, **cls._optional()}

    def edit(self, face, horizontal, vertical, reconstructor=None):
        return self._out(offset_gaze(face, float(horizontal), float(vertical)), reconstructor)


def _face_files() -> list[str]:
    return list_model_files(storage.KIND, {storage.SUFFIX})


class FaceXSaveFace:
    DESCRIPTION = ("Saves a decomposed face as one safetensors file (tensors + a JSON header) in the 'faces' model "
                   "folder (ComfyUI/models/faces/), to reuse with FaceX Load Face. The round trip is exact.")
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Where the file was written.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"face": (FACE, {"tooltip": FACE_TIP}),
                             "name": ("STRING", {"default": "face", "tooltip": "File name (letters, digits, - _ . "
                                                 "and sub-folders with /); .safetensors is added."}),
                             "overwrite": ("BOOLEAN", {"default": False, "tooltip": "Replace an existing file of "
                                                       "that name (otherwise an error names it)."})}}

    def save(self, face, name, overwrite):
        name = name.strip().removesuffix(storage.SUFFIX)
        if not name or not re.fullmatch(r"[\w.\-]+(/[\w.\-]+)*", name) or ".." in name.split("/"):
            raise ValueError(f"FaceAdapter: {name!r} is not a usable face file name (letters, digits, - _ . and /)")
        path = bridge.folder_paths_for(storage.KIND)[0] / f"{name}{storage.SUFFIX}"
        if path.exists() and not overwrite:
            raise FileExistsError(f"FaceAdapter: {path} exists; pick another name or set overwrite")
        storage.save_face(face, path)
        return {"ui": {"text": [str(path)]}, "result": (str(path),)}


class FaceXLoadFace:
    DESCRIPTION = ("Loads a face saved by FaceX Save Face from the 'faces' model folders. A file with a missing or "
                   "misshapen field is refused with the file and the field named.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (FACE, "IMAGE")
    RETURN_NAMES = ("face", "preview")
    OUTPUT_TOOLTIPS = ("The saved face.", "Preview: its landmarks over its crop.")

    @classmethod
    def INPUT_TYPES(cls):
        files = _face_files()
        return {"required": {"face_file": (files or ["(no saved faces in models/faces)"], {"tooltip":
                                           "Files in the 'faces' model folders (models/faces/ or "
                                           "extra_model_paths.yaml)."})},
                "optional": {"reconstructor": ("FACEADAPTER_RECONSTRUCTOR", {"tooltip": RECON_TIP})}}

    @classmethod
    def IS_CHANGED(cls, face_file=None, **_kw):
        return model_fingerprint(user_file_candidates(storage.KIND, face_file or ""))

    def load(self, face_file, reconstructor=None):
        face = _with_handle(storage.load_face(resolve_user_file(storage.KIND, face_file)), reconstructor)
        return (face, _preview(face))


class FaceXRegionSwap:
    DESCRIPTION = ("FaceX region assembler at image level: the chosen regions (eyes, brows, lips, ...) of the donor "
                   "face in the target face's 512 crop, aligned on those regions' landmarks and blended over the union "
                   "of both faces' region masks (BiSeNet, or mesh regions with mediapipe only: no ears or hair). "
                   "Feed 'crop', 'mask' and 'transforms' to Paste Faces with the target's photo.")
    CATEGORY = CATEGORY
    FUNCTION = "swap"
    RETURN_TYPES = ("IMAGE", "MASK", "FACEADAPTER_CROP_TRANSFORMS", "IMAGE")
    RETURN_NAMES = ("crop", "mask", "transforms", "preview")
    OUTPUT_TOOLTIPS = ("The target's 512 crop with the donor's regions.", "The blend weights used (crop space).",
                       "The target's frame -> crop transform (Paste Faces: image = the target's photo, one frame).",
                       "Preview: the blend region tinted over the result.")

    @classmethod
    def INPUT_TYPES(cls):
        def region(default):
            return ("BOOLEAN", {"default": default, "tooltip": "Take this region from the donor."})
        return {"required": {
            "target": (FACE, {"tooltip": "The face whose photo receives the regions."}),
            "donor": (FACE, {"tooltip": "The face the regions come from."}),
            **{name: region(name in ("brows", "eyes")) for name in REGION_NAMES},
            "feather": ("INT", {"default": 8, "min": 0, "max": 64, "tooltip": "Soft edge of the blend, in 512-crop "
                                "pixels (0: hard)."}),
            "color_match": ("BOOLEAN", {"default": True, "tooltip": "Match the donor's colours (Lab mean/std inside "
                                        "the region) to the target's."}),
        }, "optional": {"reconstructor": ("FACEADAPTER_RECONSTRUCTOR", {"tooltip": RECON_TIP})}}

    def swap(self, target, donor, feather, color_match, reconstructor=None, **chosen):
        regions = [name for name in REGION_NAMES if chosen.get(name)]
        crop, mask, _ = swap_regions(target, donor, regions, float(feather), bool(color_match), reconstructor)
        shown = np.clip(np.rint(crop * 255.0), 0, 255).astype(np.uint8)[None]
        preview = uint8_to_image(mask_overlay(shown, mask[None]))
        return (torch.from_numpy(crop)[None], torch.from_numpy(mask)[None], target_transforms(target), preview)


_NODES = {
    "FaceAdapterFaceXDecompose": (FaceXDecompose, "FaceX Decompose (FaceAdapter)"),
    "FaceAdapterFaceXAssemble": (FaceXAssemble, "FaceX Assemble (FaceAdapter)"),
    "FaceAdapterFaceXExpressionIntensity": (FaceXExpressionIntensity, "FaceX Expression Intensity (FaceAdapter)"),
    "FaceAdapterFaceXPoseOffset": (FaceXPoseOffset, "FaceX Pose Offset (FaceAdapter)"),
    "FaceAdapterFaceXGazeDirection": (FaceXGazeDirection, "FaceX Gaze Direction (FaceAdapter)"),
    "FaceAdapterFaceXSaveFace": (FaceXSaveFace, "FaceX Save Face (FaceAdapter)"),
    "FaceAdapterFaceXLoadFace": (FaceXLoadFace, "FaceX Load Face (FaceAdapter)"),
    "FaceAdapterFaceXRegionSwap": (FaceXRegionSwap, "FaceX Region Swap (FaceAdapter)"),
}
NODE_CLASS_MAPPINGS = {k: v[0] for k, v in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {k: v[1] for k, v in _NODES.items()}
