"""Metrics nodes: identity similarity, expression and pose error, temporal flicker, before/after grid.

Thin: the maths is in metrics/; the recognizer comes from the shared model cache (generate/nets.py).
Each measuring node returns a FACEADAPTER_METRICS report, a table preview and plain FLOATs.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core import comfy_bridge as bridge
from ..core.errors import FaceAdapterError, MissingModelError
from ..core.images import image_to_uint8, uint8_to_image
from ..core.manifest import entry
from ..core.model_paths import choices_fingerprint, model_choices, resolve_model_choice
from ..generate.nets import cached_arcface
from ..metrics.grid import before_after_grid
from ..metrics.measure import expression_pose_report, flicker_report, identity_report, largest_faces
from ..metrics.report import table_image

REQUIRES = ("cv2", "scipy")
CATEGORY = "FaceAdapter/Metrics"
ARCFACE = "faceadapter.arcface_iresnet100"
FROM_ANALYSIS = "analysis embeddings (insightface recognition)"
ANALYSIS_TIP = "From Load Face Analysis; the largest face of each frame is measured."
REPORT_OUT = "The typed report (per frame and summary), for Before/After Grid or other nodes."
TABLE_OUT = "The report as a table image."


def _table(*reports) -> torch.Tensor:
    return uint8_to_image(table_image(reports))


def recognizer_missing(exc: MissingModelError) -> FaceAdapterError:
    """The message a mediapipe-only install gets: which recognition model, where it goes, and the alternative."""
    e = entry(ARCFACE)
    return FaceAdapterError(
        f"FaceAdapter: Identity Similarity needs a face recognition model, and none is installed. Put ArcFace "
        f"IResNet-100 '{e.path}' (insightface_glint360k.pth, {e.licence}) in a '{e.kind}' model folder, e.g. "
        f"ComfyUI/models/{e.kind}/{e.path} (python install.py --models {e.id}), or use an insightface Load Face "
        f"Analysis with recognition on and choose '{FROM_ANALYSIS}'.\n{exc}")


class FaceAdapterIdentitySimilarity:
    DESCRIPTION = ("How well identity is kept: cosine similarity of ArcFace 512-d embeddings of the largest face in "
                   "image_a and image_b, frame by frame (or one frame against a batch). Uses the same ArcFace "
                   "IResNet-100 file and aligned crop as Encode Identity, shared through the model cache; needs that "
                   "recognition model (a mediapipe-only install has none) or insightface's own embeddings.")
    CATEGORY = CATEGORY
    FUNCTION = "measure"
    RETURN_TYPES = ("FACEADAPTER_METRICS", "IMAGE", "FLOAT", "FLOAT")
    RETURN_NAMES = ("report", "table", "similarity", "min_similarity")
    OUTPUT_TOOLTIPS = (REPORT_OUT, TABLE_OUT, "Mean cosine similarity over the frames with a face on both sides.",
                       "The lowest frame's similarity.")

    @classmethod
    def INPUT_TYPES(cls):
        e = entry(ARCFACE)
        choices, default = model_choices(e)
        return {"required": {
            "image_a": ("IMAGE", {"tooltip": "E.g. the generated result (a frame or a batch)."}),
            "image_b": ("IMAGE", {"tooltip": "E.g. the source identity photo (one frame, or as many as image_a)."}),
            "analysis": ("FACEADAPTER_ANALYSIS", {"tooltip": ANALYSIS_TIP}),
            "recognizer": ([*choices, FROM_ANALYSIS], {"default": default, "tooltip": "ArcFace IResNet-100 file "
                           f"from the '{e.kind}' model folders (Source: {e.source}; Licence: {e.licence}), or the "
                           "embeddings an insightface analysis computes (glintr100)."}),
        }}

    @classmethod
    def IS_CHANGED(cls, recognizer=None, **_kw):
        return "analysis" if recognizer == FROM_ANALYSIS else choices_fingerprint((ARCFACE, recognizer))

    def measure(self, image_a, image_b, analysis, recognizer):
        item = None
        if recognizer != FROM_ANALYSIS:
            try:
                item = cached_arcface(resolve_model_choice(ARCFACE, recognizer))
            except MissingModelError as exc:
                raise recognizer_missing(exc) from None
        bar = bridge.progress(image_a.shape[0] + image_b.shape[0], "identity similarity")
        faces_a, faces_b = largest_faces(analysis, image_a, bar.update), largest_faces(analysis, image_b, bar.update)
        report = identity_report(image_a, faces_a, image_b, faces_b, item)
        return (report, _table(report), report.summary["similarity"], report.summary["min"])


class FaceAdapterExpressionPoseError:
    DESCRIPTION = ("How accurate expression and pose are: for the largest face of each result frame against its "
                   "driving frame, the yaw / pitch / roll error in degrees (3D mesh pose fit), the mouth and eye "
                   "openness errors and the 68-landmark NME in inter-ocular distances, read in the pose-free "
                   "canonical frame. A face against itself gives 0.")
    CATEGORY = CATEGORY
    FUNCTION = "measure"
    RETURN_TYPES = ("FACEADAPTER_METRICS", "IMAGE", "FLOAT", "FLOAT")
    RETURN_NAMES = ("report", "table", "pose_error_deg", "nme")
    OUTPUT_TOOLTIPS = (REPORT_OUT, TABLE_OUT, "Mean absolute yaw/pitch/roll error in degrees.",
                       "Mean landmark NME (inter-ocular distances).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "result": ("IMAGE", {"tooltip": "The generated frames."}),
            "driving": ("IMAGE", {"tooltip": "The frames whose pose and expression the result should have (one, or "
                                  "as many as result)."}),
            "analysis": ("FACEADAPTER_ANALYSIS", {"tooltip": ANALYSIS_TIP + " Needs the mediapipe mesh or insightface "
                         "68-point landmarks."}),
        }}

    def measure(self, result, driving, analysis):
        bar = bridge.progress(result.shape[0] + driving.shape[0], "expression and pose error")
        report = expression_pose_report(largest_faces(analysis, result, bar.update),
                                        largest_faces(analysis, driving, bar.update))
        return (report, _table(report), report.summary["pose_err_deg"], report.summary["nme"])


class FaceAdapterTemporalFlicker:
    DESCRIPTION = ("How much a video flickers: mean frame-to-frame change (8-bit levels) inside the face and "
                   "outside it, and the largest face's landmark motion and jitter (second difference, px per "
                   "frame). A static batch gives 0.")
    CATEGORY = CATEGORY
    FUNCTION = "measure"
    RETURN_TYPES = ("FACEADAPTER_METRICS", "IMAGE", "FLOAT", "FLOAT", "FLOAT")
    RETURN_NAMES = ("report", "table", "change_in_face", "change_outside", "landmark_jitter_px")
    OUTPUT_TOOLTIPS = (REPORT_OUT, TABLE_OUT, "Mean |frame[t+1] - frame[t]| inside the face mask (0..255).",
                       "The same outside the mask.", "Mean landmark jitter in px per frame.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "frames": ("IMAGE", {"tooltip": "A frame batch (video), at least 2 frames."}),
            "analysis": ("FACEADAPTER_ANALYSIS", {"tooltip": ANALYSIS_TIP}),
        }, "optional": {
            "mask": ("MASK", {"tooltip": "The face region per frame (e.g. Paste Generated Faces' mask). Unconnected: "
                              "the hull of the detected landmarks."}),
        }}

    def measure(self, frames, analysis, mask=None):
        if frames.shape[0] < 2:
            raise ValueError(f"FaceAdapter: Temporal Flicker needs at least 2 frames, got {frames.shape[0]}")
        bar = bridge.progress(frames.shape[0] + 1, "temporal flicker")
        report = flicker_report(frames, largest_faces(analysis, frames, bar.update), mask, bar.update)
        s = report.summary
        return (report, _table(report), s["change_in"], s["change_out"], s["landmark_jitter_px"])


def _mask_frames(mask):
    if mask is None:
        return None
    m = mask.detach().float().cpu().reshape(-1, mask.shape[-2], mask.shape[-1])
    return list(np.rint(m.clamp(0, 1).numpy() * 255).astype(np.uint8))


class FaceAdapterBeforeAfterGrid:
    DESCRIPTION = ("One picture to compare settings: source | target | result | mask per frame, with the numbers of "
                   "the connected metrics reports printed under each row and their means at the bottom.")
    CATEGORY = CATEGORY
    FUNCTION = "grid"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("grid",)
    OUTPUT_TOOLTIPS = ("The grid (connect to Save Image).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "result": ("IMAGE", {"tooltip": "The generated frames (one row each)."}),
            "cell_size": ("INT", {"default": 256, "min": 64, "max": 1024, "step": 32,
                                  "tooltip": "Side of each picture in the grid, px."}),
        }, "optional": {
            "source": ("IMAGE", {"tooltip": "The identity source (one image repeats on every row)."}),
            "target": ("IMAGE", {"tooltip": "The driving / target frames."}),
            "mask": ("MASK", {"tooltip": "A mask per row (adapting area, blend mask)."}),
            "report_1": ("FACEADAPTER_METRICS", {"tooltip": "A metrics report to print."}),
            "report_2": ("FACEADAPTER_METRICS", {"tooltip": "Another metrics report."}),
            "report_3": ("FACEADAPTER_METRICS", {"tooltip": "Another metrics report."}),
        }}

    def grid(self, result, cell_size, source=None, target=None, mask=None, report_1=None, report_2=None,
             report_3=None):
        bridge.check_interrupt()
        columns = [("source", None if source is None else list(image_to_uint8(source))),
                   ("target", None if target is None else list(image_to_uint8(target))),
                   ("result", list(image_to_uint8(result))), ("mask", _mask_frames(mask))]
        reports = [r for r in (report_1, report_2, report_3) if r is not None]
        return (uint8_to_image(before_after_grid(columns, reports, cell=cell_size)),)


_NODES = {
    "FaceAdapterIdentitySimilarity": (FaceAdapterIdentitySimilarity, "Identity Similarity (FaceAdapter)"),
    "FaceAdapterExpressionPoseError": (FaceAdapterExpressionPoseError, "Expression & Pose Error (FaceAdapter)"),
    "FaceAdapterTemporalFlicker": (FaceAdapterTemporalFlicker, "Temporal Flicker (FaceAdapter)"),
    "FaceAdapterBeforeAfterGrid": (FaceAdapterBeforeAfterGrid, "Before/After Grid (FaceAdapter)"),
}
NODE_CLASS_MAPPINGS = {k: v[0] for k, v in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {k: v[1] for k, v in _NODES.items()}
