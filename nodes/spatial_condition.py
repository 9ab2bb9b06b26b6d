"""Spatial Condition Generator nodes (Face-Adapter stage 1). Thin: the maths is in spatial/."""
from __future__ import annotations

import logging

from ..core import comfy_bridge as bridge
from ..core.errors import NoFaceError
from ..core.images import frame_to_uint8, image_to_uint8, uint8_to_image
from ..core.manifest import entry
from ..core.model_paths import choices_fingerprint, find_model_choice, model_choices, resolve_model_choice
from ..spatial import area as area_ops
from ..spatial.condition import MISSING_POLICIES, compose_control, pair_views
from ..spatial.previews import landmark_overlay, mask_overlay
from ..spatial.projectors import MeshProjector, load_bfm_projector, project_pairs

REQUIRES = ("cv2", "scipy")
CATEGORY = "FaceAdapter/Spatial Condition"
log = logging.getLogger("FaceAdapter")

MESH = "mediapipe_mesh (licence-clean)"
BFM = "d3dfr_bfm (upstream, non-commercial)"
TASKS = ["reenact", "swap"]
TASK_TIP = ("reenact: the source face takes the target's pose and expression (background = source). "
            "swap: the source identity replaces the target face (background = target).")


def _manifest_path_input(model_id: str, tip: str) -> tuple:
    """A dropdown of the files in the model folders of this kind (manifest path first, always valid)."""
    e = entry(model_id)
    choices, default = model_choices(e)
    return (choices, {"default": default, "tooltip": f"{tip} Files found in the '{e.kind}' model folders "
                                                     f"(add folders in extra_model_paths.yaml). Source: {e.source}. "
                                                     f"Licence: {e.licence}."})


class FaceAdapterLoad3DReconstructor:
    DESCRIPTION = ("Chooses how source identity and target expression/pose become 70 landmarks. "
                   "mediapipe_mesh needs no model file (faces must come from the mediapipe backend); "
                   "d3dfr_bfm is Face-Adapter's own D3DFR + Basel Face Model path (non-commercial files).")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("FACE_RECONSTRUCTOR",)
    RETURN_NAMES = ("reconstructor",)
    OUTPUT_TOOLTIPS = ("Feeds Project 3D Landmarks.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "method": ([MESH, BFM], {"default": MESH, "tooltip": "Which 3D face model projects the landmarks."}),
            "d3dfr_file": _manifest_path_input("faceadapter.d3dfr_resnet50", "D3DFR weights (d3dfr_bfm only)."),
            "bfm_file": _manifest_path_input("faceadapter.bfm_front", "BFM_model_front.mat (d3dfr_bfm only)."),
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
    DESCRIPTION = ("Projects 70 landmarks (68 iBUG + 2 gaze) with the source's identity and the target's "
                   "expression and head pose, in each target frame's Face-Adapter 512 crop. Uses the first "
                   "face of each frame (put Select Face before it). One source image can drive a whole video.")
    CATEGORY = CATEGORY
    FUNCTION = "project"
    RETURN_TYPES = ("FACE_LANDMARKS", "IMAGE", "IMAGE")
    RETURN_NAMES = ("landmarks", "preview", "landmark_image")
    OUTPUT_TOOLTIPS = ("70 points per target frame with the crops they live in. Later outputs have one entry per "
                       "frame where both faces were found; the others pass through Paste Faces unchanged.",
                       "Landmarks drawn over the target 512 crop (one per found frame).",
                       "The official landmark drawing on black (what the ControlNet sees inside the mask).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "reconstructor": ("FACE_RECONSTRUCTOR", {"tooltip": "From Load 3D Face Reconstructor."}),
            "source_image": ("IMAGE", {"tooltip": "Who: the identity (1 image, or one per target frame)."}),
            "source_faces": ("FACES", {"tooltip": "Faces of source_image (first face per frame is used)."}),
            "target_image": ("IMAGE", {"tooltip": "Where/how: pose and expression (an image or video frames)."}),
            "target_faces": ("FACES", {"tooltip": "Faces of target_image (first face per frame is used)."}),
            "on_missing": (list(MISSING_POLICIES), {"default": "pass_through", "tooltip":
                           "A frame without a face: pass it through (no control image; Paste Faces keeps it unchanged) "
                           "or stop with an error naming the frame."}),
        }}

    def project(self, reconstructor, source_image, source_faces, target_image, target_faces, on_missing):
        bar = bridge.progress(len(target_faces) * 2, "project landmarks")
        targets, sources = pair_views(image_to_uint8(source_image), source_faces,
                                      lambda i: frame_to_uint8(target_image, i), target_faces, on_missing,
                                      step=bar.update)
        landmarks = project_pairs(reconstructor, targets, sources, target_faces)
        bar.update(len(target_faces))
        if not landmarks.found_indices():
            raise NoFaceError(f"FaceAdapter: none of the {len(landmarks)} target frame(s) has both a source and a "
                              "target face; check the Detect Faces previews or lower min_score")
        drawn = landmarks.landmark_images()
        return (landmarks, uint8_to_image(landmark_overlay(landmarks.crops("target"), drawn)), uint8_to_image(drawn))


class FaceAdapterPredictAdaptingArea:
    DESCRIPTION = ("Where the generator may change pixels, in the 512 crop. reenact: Face-Adapter's adapting-area "
                   "net on source + landmarks. swap: BiSeNet face parsing of the target. auto falls back to a "
                   "landmark hull when the model file is not installed (logged).")
    CATEGORY = CATEGORY
    FUNCTION = "predict"
    RETURN_TYPES = ("MASK", "IMAGE")
    RETURN_NAMES = ("area", "preview")
    OUTPUT_TOOLTIPS = ("Adapting area (1 = may change), 512x512 per found target frame.",
                       "The area shaded over the target crop.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "landmarks": ("FACE_LANDMARKS", {"tooltip": "From Project 3D Landmarks."}),
            "task": (TASKS, {"default": "reenact", "tooltip": TASK_TIP}),
            "method": (list(area_ops.METHODS), {"default": "auto", "tooltip":
                       "auto: the task's model if installed, else landmark_hull. Or force one."}),
            "area_model": _manifest_path_input("faceadapter.adapting_area_predictor", "net_seg_res18.pth."),
            "parsing_model": _manifest_path_input("faceparsing.bisenet19", "BiSeNet 79999_iter.pth."),
        }}

    @classmethod
    def IS_CHANGED(cls, area_model=None, parsing_model=None, **_kw):
        return choices_fingerprint(("faceadapter.adapting_area_predictor", area_model),
                                   ("faceparsing.bisenet19", parsing_model))

    def predict(self, landmarks, task, method, area_model, parsing_model):
        method = self._choose(task, method, area_model, parsing_model)
        bar = bridge.progress(max(len(landmarks.found_indices()), 1), f"adapting area ({method})")
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
    DESCRIPTION = ("Builds Face-Adapter's control image: landmarks inside the adapting area, the background "
                   "(source crop for reenact, target crop for swap) outside. Also returns the soft blend mask "
                   "and the crop transforms used to paste the generated face back into the target frames.")
    CATEGORY = CATEGORY
    FUNCTION = "compose"
    RETURN_TYPES = ("IMAGE", "MASK", "MASK", "IMAGE", "CROP_TRANSFORMS")
    RETURN_NAMES = ("control", "area", "blend_mask", "background", "transforms")
    OUTPUT_TOOLTIPS = ("Control image in [0,1] per found frame; the Face-Adapter apply node maps it to [-1,1] "
                       "for the ControlNet.",
                       "The adapting area as given.",
                       "Soft mask (pad 16, maxpool 17, avgpool 17) for blending the generated crop.",
                       "The background crops the control image was built on.",
                       "Target frame -> 512 crop transforms: Paste Faces puts generated crops back into the "
                       "target frames (faceless frames pass through).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "landmarks": ("FACE_LANDMARKS", {"tooltip": "From Project 3D Landmarks."}),
            "area": ("MASK", {"tooltip": "From Predict Adapting Area (512x512 per found target frame)."}),
            "task": (TASKS, {"default": "reenact", "tooltip": TASK_TIP}),
        }}

    def compose(self, landmarks, area, task):
        control, background = compose_control(landmarks, area, task)
        return (control, area, area_ops.paste_blend_mask(area), background, landmarks.crop_batch())


_NODES = {
    "FaceAdapterLoad3DReconstructor": (FaceAdapterLoad3DReconstructor, "Load 3D Face Reconstructor (FaceAdapter)"),
    "FaceAdapterProject3DLandmarks": (FaceAdapterProject3DLandmarks, "Project 3D Landmarks (FaceAdapter)"),
    "FaceAdapterPredictAdaptingArea": (FaceAdapterPredictAdaptingArea, "Predict Adapting Area (FaceAdapter)"),
    "FaceAdapterComposeSpatialControl": (FaceAdapterComposeSpatialControl, "Compose Spatial Control (FaceAdapter)"),
}
NODE_CLASS_MAPPINGS = {k: v[0] for k, v in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {k: v[1] for k, v in _NODES.items()}
