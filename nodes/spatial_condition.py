"""Spatial Condition Generator nodes (Face-Adapter stage 1). Thin: the maths is in spatial/."""
from __future__ import annotations

import logging

from ..core import comfy_bridge as bridge
from ..core.images import frame_to_uint8, image_to_uint8, uint8_to_image
from ..core.model_paths import choices_fingerprint, find_model_choice, resolve_model_choice
from ..spatial import area as area_ops
from ..face.align import CROP_RATIO
from ..face.paste import COLOR_MATCH
from ..face.records import ON_MISSING
from ..spatial.condition import TASKS, no_pair_error, plan_pairs
from ..spatial.previews import landmark_overlay, mask_overlay
from ..spatial.projectors import MeshProjector, load_bfm_projector, project_pairs
from ..spatial.record import build_spatial, paste_generated
from .common import model_input

REQUIRES = ("cv2", "scipy")
CATEGORY = "FaceAdapter/Spatial Condition"
log = logging.getLogger("FaceAdapter")

MESH = "mediapipe_mesh (licence-clean)"
BFM = "d3dfr_bfm (upstream, non-commercial)"
TASK_TIP = ("reenact: the source face takes the target's pose and expression (background = source; results go "
            "back into the source image, one per driving frame). swap: the source identity replaces the target "
            "face (background = target; results go back into the target frames). Later stages read it from the "
            "record.")


class FaceAdapterLoad3DReconstructor:
    DESCRIPTION = ("Chooses how source identity and target expression/pose become 70 landmarks. "
                   "mediapipe_mesh needs no model file (faces must come from the mediapipe backend); "
                   "d3dfr_bfm is Face-Adapter's own D3DFR + Basel Face Model path (non-commercial files).")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("FACEADAPTER_RECONSTRUCTOR",)
    RETURN_NAMES = ("reconstructor",)
    OUTPUT_TOOLTIPS = ("Feeds Project 3D Landmarks.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "method": ([MESH, BFM], {"default": MESH, "tooltip": "Which 3D face model projects the landmarks."}),
            "d3dfr_file": model_input("faceadapter.d3dfr_resnet50", "D3DFR weights (d3dfr_bfm only)."),
            "bfm_file": model_input("faceadapter.bfm_front", "BFM_model_front.mat (d3dfr_bfm only)."),
        }}

    @classmethod
    def IS_CHANGED(cls, d3dfr_file=None, bfm_file=None, **_kw):
        return choices_fingerprint(("faceadapter.d3dfr_resnet50", d3dfr_file), ("faceadapter.bfm_front", bfm_file))

    def load(self, method: str, d3dfr_file: str, bfm_file: str):
        if method == MESH:
            return (MeshProjector(),)
        d3dfr = resolve_model_choice("faceadapter.d3dfr_resnet50", d3dfr_file)
        bfm = resolve_model_choice("faceadapter.bfm_front", bfm_file)
        return (load_bfm_projector(d3dfr, bfm),)


class FaceAdapterProject3DLandmarks:
    DESCRIPTION = ("Pairs the source and target faces and projects 70 landmarks (68 iBUG + 2 gaze) with the "
                   "source's identity and the target's expression and head pose, in each target face's "
                   "Face-Adapter 512 crop. Several faces per frame: swap puts the source face onto every target "
                   "face Select Face passed on; reenact drives every source face. One source image can drive a "
                   "whole video.")
    CATEGORY = CATEGORY
    FUNCTION = "project"
    RETURN_TYPES = ("FACEADAPTER_LANDMARKS", "IMAGE", "IMAGE")
    RETURN_NAMES = ("landmarks", "preview", "landmark_image")
    OUTPUT_TOOLTIPS = ("70 points per face pair with the crops they live in, and the task. Later outputs have one "
                       "entry per pair; frames without one pass through the paste unchanged.",
                       "Landmarks drawn over the target 512 crop (one per pair).",
                       "The official landmark drawing on black (what the ControlNet sees inside the mask).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "reconstructor": ("FACEADAPTER_RECONSTRUCTOR", {"tooltip": "From Load 3D Face Reconstructor."}),
            "source_image": ("IMAGE", {"tooltip": "Who: the identity (1 image, or one per target frame)."}),
            "source_faces": ("FACEADAPTER_FACES", {"tooltip": "Faces of source_image (from Select Face)."}),
            "target_image": ("IMAGE", {"tooltip": "Where/how: pose and expression (an image or video frames)."}),
            "target_faces": ("FACEADAPTER_FACES", {"tooltip": "Faces of target_image (from Select Face; every "
                                                   "face it passed on is used)."}),
            "task": (list(TASKS), {"default": "reenact", "tooltip": TASK_TIP}),
            "on_missing": (list(ON_MISSING), {"default": "pass_through", "tooltip":
                           "A frame without a face: pass it through (no control image; the paste keeps it "
                           "unchanged) or stop with an error naming the side (source / target) and the frame."}),
            "crop_ratio": ("FLOAT", {"default": CROP_RATIO, "min": 0.3, "max": 2.0, "step": 0.01, "tooltip":
                           "Framing of the 512 crop: half its side in box widths (upstream's crop_ratio, 0.81; "
                           "the same setting as Crop Faces'). Face-Adapter's networks were trained at 0.81."}),
        }, "optional": {
            "analysis": ("FACEADAPTER_ANALYSIS", {"tooltip": "Connect to detect each face again on its 512 crop "
                         "before the five-point fit, as upstream does (insightface antelopev2 for upstream's "
                         "numbers). Unconnected: the frame's five points are mapped into the crop."}),
        }}

    def project(self, reconstructor, source_image, source_faces, target_image, target_faces, task, on_missing,
                crop_ratio, analysis=None):
        source_faces.check_image(source_image, "source_image")
        target_faces.check_image(target_image, "target_image")
        bar = bridge.progress(len(target_faces) * 2, "project landmarks")
        plan = plan_pairs(task, image_to_uint8(source_image), source_faces, lambda i: frame_to_uint8(target_image, i),
                          target_faces, on_missing, crop_ratio, analysis, step=bar.update)
        if not plan.pairs:
            raise no_pair_error(plan)
        landmarks = project_pairs(reconstructor, plan)
        bar.update(len(target_faces))
        drawn = landmarks.landmark_images()
        return (landmarks, uint8_to_image(landmark_overlay(landmarks.crops("target"), drawn)), uint8_to_image(drawn))


class FaceAdapterPredictAdaptingArea:
    DESCRIPTION = ("Where the generator may change pixels, in the 512 crop (the task comes with the landmarks). "
                   "reenact: Face-Adapter's adapting-area net on source + landmarks. swap: BiSeNet face parsing of "
                   "the target. auto falls back to a landmark hull when the model file is not installed (logged).")
    CATEGORY = CATEGORY
    FUNCTION = "predict"
    RETURN_TYPES = ("MASK", "IMAGE")
    RETURN_NAMES = ("area", "preview")
    OUTPUT_TOOLTIPS = ("Adapting area (1 = may change), 512x512 per face pair.",
                       "The area shaded over the background crop (source for reenact, target for swap).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "landmarks": ("FACEADAPTER_LANDMARKS", {"tooltip": "From Project 3D Landmarks."}),
            "method": (list(area_ops.METHODS), {"default": "auto", "tooltip":
                       "auto: the task's model if installed, else landmark_hull. Or force one."}),
            "area_model": model_input("faceadapter.adapting_area_predictor", "net_seg_res18.pth."),
            "parsing_model": model_input("faceparsing.bisenet19", "BiSeNet 79999_iter.pth."),
        }}

    @classmethod
    def IS_CHANGED(cls, area_model=None, parsing_model=None, **_kw):
        return choices_fingerprint(("faceadapter.adapting_area_predictor", area_model),
                                   ("faceparsing.bisenet19", parsing_model))

    def predict(self, landmarks, method, area_model, parsing_model):
        task = landmarks.task
        method = self._choose(task, method, area_model, parsing_model)
        bar = bridge.progress(max(len(landmarks), 1), f"adapting area ({method})")
        if method == "adapting_area_net":
            net = area_ops.load_area_net(resolve_model_choice("faceadapter.adapting_area_predictor", area_model))
            area = area_ops.reenact_area(net, landmarks, step=bar.update)
        elif method == "face_parsing":
            net = area_ops.load_parsing_net(resolve_model_choice("faceparsing.bisenet19", parsing_model))
            area = area_ops.swap_area(net, landmarks, step=bar.update)
        else:
            area = area_ops.hull_area(landmarks, task, step=bar.update)
        preview = mask_overlay(landmarks.crops("target" if task == "swap" else "source"), area.numpy())
        return (area, uint8_to_image(preview))

    @staticmethod
    def _choose(task: str, method: str, area_model: str, parsing_model: str) -> str:
        if method != "auto":
            return method
        wanted, model_id, file = (("adapting_area_net", "faceadapter.adapting_area_predictor", area_model)
                                  if task == "reenact" else ("face_parsing", "faceparsing.bisenet19", parsing_model))
        if find_model_choice(model_id, file) is not None:
            return wanted
        log.warning("FaceAdapter: %s not found in the faceadapter folder; using the landmark-hull area", file)
        return "landmark_hull"


class FaceAdapterComposeSpatialControl:
    DESCRIPTION = ("Builds Face-Adapter's control image (landmarks inside the adapting area, the background "
                   "outside: source crop for reenact, target crop for swap) and the one spatial record later "
                   "stages read: face views, 70 points, area, control, soft blend mask, attribute crop and the "
                   "task-aware paste transforms.")
    CATEGORY = CATEGORY
    FUNCTION = "compose"
    RETURN_TYPES = ("FACEADAPTER_SPATIAL", "IMAGE", "MASK", "MASK")
    RETURN_NAMES = ("spatial", "control", "area", "blend_mask")
    OUTPUT_TOOLTIPS = ("The spatial record: connect to the generation stages and to Paste Generated Faces.",
                       "Preview: control image in [0,1] per face pair (the Face-Adapter apply node maps it to "
                       "[-1,1] for the ControlNet).",
                       "Preview: the adapting area as given.",
                       "Preview: the soft blend mask (pad 16, maxpool 17, avgpool 17) the paste uses.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "landmarks": ("FACEADAPTER_LANDMARKS", {"tooltip": "From Project 3D Landmarks."}),
            "area": ("MASK", {"tooltip": "From Predict Adapting Area (512x512 per face pair)."}),
        }}

    def compose(self, landmarks, area):
        spatial = build_spatial(landmarks, area)
        return (spatial, spatial.control, spatial.area, spatial.blend)


class FaceAdapterPasteGenerated:
    DESCRIPTION = ("Puts generated 512 crops back with the spatial record's transforms and soft blend mask: "
                   "reenact results into the SOURCE image (one output frame per driving frame), swap results into "
                   "the TARGET frames. With feather 0 the blend is upstream's gen*blend + background*(1-blend). "
                   "Frames without a face pair pass through unchanged.")
    CATEGORY = CATEGORY
    FUNCTION = "paste"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "mask")
    OUTPUT_TOOLTIPS = ("One frame per target (driving) frame with the crops pasted back.",
                       "The blend weights actually used, per frame.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "spatial": ("FACEADAPTER_SPATIAL", {"tooltip": "From Compose Spatial Control."}),
            "image": ("IMAGE", {"tooltip": "reenact: the source image (the one Project 3D Landmarks got); swap: the "
                                "target frames. Checked against the record."}),
            "crops": ("IMAGE", {"tooltip": "Generated crops, one per face pair, in the record's order (any size: "
                                "rescaled to 512)."}),
            "feather": ("INT", {"default": 0, "min": 0, "max": 256, "tooltip": "Extra fade on top of the blend mask, "
                                "in 512-crop pixels. 0: the soft blend mask exactly as upstream."}),
            "color_match": (list(COLOR_MATCH), {"tooltip": "mean_std: match the crop's colour (Lab mean/std inside "
                                                  "the mask) to the frame."}),
            "preserve_unchanged": ("BOOLEAN", {"default": True, "tooltip": "Where a crop equals the frame's own crop, "
                                               "keep the frame's native-resolution pixels instead of a resampled "
                                               "copy (the blend weights stay the mask's)."}),
        }, "optional": {
            "mask": ("MASK", {"tooltip": "Replace the record's blend mask (crop space, one per pair or one for all)."}),
        }}

    def paste(self, spatial, image, crops, feather, color_match, preserve_unchanged, mask=None):
        bar = bridge.progress(spatial.frame_count(), "paste generated faces")  # each update honours Cancel
        return paste_generated(spatial, image, crops, feather, color_match, preserve_unchanged, mask, bar.update)


_NODES = {
    "FaceAdapterLoad3DReconstructor": (FaceAdapterLoad3DReconstructor, "Load 3D Face Reconstructor (FaceAdapter)"),
    "FaceAdapterProject3DLandmarks": (FaceAdapterProject3DLandmarks, "Project 3D Landmarks (FaceAdapter)"),
    "FaceAdapterPredictAdaptingArea": (FaceAdapterPredictAdaptingArea, "Predict Adapting Area (FaceAdapter)"),
    "FaceAdapterComposeSpatialControl": (FaceAdapterComposeSpatialControl, "Compose Spatial Control (FaceAdapter)"),
    "FaceAdapterPasteGenerated": (FaceAdapterPasteGenerated, "Paste Generated Faces (FaceAdapter)"),
}
NODE_CLASS_MAPPINGS = {k: v[0] for k, v in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {k: v[1] for k, v in _NODES.items()}
