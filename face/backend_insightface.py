"""insightface backend (what Face-Adapter uses): antelopev2 ONNX models run with onnxruntime.

Our own pre/post-processing, written from the published model formats:
- SCRFD (scrfd_10g_bnkps): letterboxed RGB input, (x - 127.5) / 128; per stride
  (8, 16, 32) a score, four box distances and ten keypoint offsets per anchor
  (two anchors per grid cell, centred on the cell's top-left corner), all in
  units of the stride; then NMS.
- ArcFace (glintr100): the 112 crop aligned to the standard five-point template,
  (x - 127.5) / 127.5, one L2-normalised 512-d vector per face.
- optional 2d106det / 1k3d68 landmarks on a 192 crop around the box.
Models are found by file name and checked by their input/output signature, so
renamed files still route correctly.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np

from ..core.errors import CorruptModelFileError, FaceAdapterError, MissingModelError
from .align import aligned_matrix, box_square_matrix, warp_to_crop
from .analysis import nms, strongest
from .records import IBUG_68, INSIGHTFACE_106, Face, FrameFaces, invert_affine, transform_points

log = logging.getLogger("FaceAdapter")

DETECTION, RECOGNITION, LANDMARK_106, LANDMARK_68, OTHER = "detection", "recognition", "2d106", "3d68", "other"
# File-name hints (lower case); the signature check has the last word.
NAME_HINTS = ((DETECTION, ("scrfd", "det_10g", "det_2.5g", "det_500m")),
              (RECOGNITION, ("glintr", "w600k", "arcface", "r100", "r50", "r34")),
              (LANDMARK_106, ("2d106",)), (LANDMARK_68, ("1k3d68",)), (OTHER, ("genderage",)))
LANDMARK_SIZE = 192
LANDMARK_CONTEXT = 1.5  # crop side / longer box side
DEVICE_PROVIDERS = {"cuda": "CUDAExecutionProvider", "mps": "CoreMLExecutionProvider",
                    "privateuseone": "DmlExecutionProvider", "xpu": "OpenVINOExecutionProvider"}


def providers_for(device: object = "cpu") -> list[Union[str, tuple[str, dict]]]:
    """onnxruntime providers for a torch device (string or torch.device), CPU always last."""
    import onnxruntime as ort

    text = str(device)
    kind, _, index = text.partition(":")
    available = ort.get_available_providers()
    wanted = DEVICE_PROVIDERS.get(kind)
    chosen: list[Union[str, tuple[str, dict]]] = []
    if wanted and wanted in available:
        chosen.append((wanted, {"device_id": int(index)}) if kind == "cuda" and index.isdigit() else wanted)
    elif wanted:
        log.warning("FaceAdapter: torch runs on %s but onnxruntime has no %s (available: %s); insightface runs "
                    "on CPU. Install onnxruntime-gpu for GPU face analysis.", text, wanted, ", ".join(available))
    chosen.append("CPUExecutionProvider")
    return chosen


def _dims(shape: list) -> list[Optional[int]]:
    return [d if isinstance(d, int) and d > 0 else None for d in shape]


def signature_role(session) -> str:
    """What a model is, from its input/output shapes alone."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = _dims(inputs[0].shape)
    if len(shape) != 4 or shape[1] not in (3, None):
        return OTHER
    if len(outputs) in (6, 9, 10, 15):
        return DETECTION
    width = _dims(outputs[0].shape)[-1]
    if shape[2:] == [112, 112] and width in (512, None) and len(outputs) == 1:
        return RECOGNITION
    if shape[2:] == [LANDMARK_SIZE, LANDMARK_SIZE] and width == 212:
        return LANDMARK_106
    if shape[2:] == [LANDMARK_SIZE, LANDMARK_SIZE] and width == 3309:
        return LANDMARK_68
    return OTHER


def name_role(path: Path) -> Optional[str]:
    lower = path.name.lower()
    for role, hints in NAME_HINTS:
        if any(h in lower for h in hints):
            return role
    return None


def input_normalisation(path: Path, default: tuple[float, float]) -> tuple[float, float]:
    """(mean, std) for a recognition/landmark model: (0, 1) when the graph subtracts and scales itself.

    insightface's exported models that normalise in-graph start with Sub and Mul
    nodes (or a 'bn_data' batch-norm); the others expect the normalised input."""
    try:
        import onnx
    except ImportError:  # guessing would silently change embeddings/landmarks for half the model files
        raise FaceAdapterError(f"FaceAdapter: the insightface backend needs the 'onnx' package to read how "
                               f"{path.name} normalises its input (pip install onnx, or run install.py); "
                               "or use the mediapipe backend") from None
    try:
        nodes = list(onnx.load(str(path), load_external_data=False).graph.node[:8])
    except Exception as exc:
        raise CorruptModelFileError(str(path), f"not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    names = [(n.name or "").lower() + " " + n.op_type.lower() for n in nodes]
    has_sub = any(("sub" in t) or ("minus" in t) for t in names)
    has_mul = any("mul" in t for t in names)
    if (has_sub and has_mul) or any(n.name == "bn_data" for n in nodes[:3]):
        return 0.0, 1.0
    return default


class InsightFaceAnalyzer:
    """FaceAnalyzer on an insightface model folder (antelopev2)."""

    name = "insightface"

    def __init__(self, model_dir: Union[str, Path], device: object = "cpu", det_size: int = 640,
                 min_score: float = 0.5, nms_threshold: float = 0.4, max_faces: int = 10,
                 recognition: bool = True, landmarks: str = "none"):
        import onnxruntime as ort  # lazy: the node module imports without onnxruntime

        self.model_dir = Path(model_dir)
        self.det_size = int(det_size)
        self.min_score = float(min_score)
        self.nms_threshold = float(nms_threshold)
        self.max_faces = int(max_faces)
        if landmarks not in ("none", LANDMARK_106, LANDMARK_68):
            raise ValueError(f"landmarks must be 'none', '{LANDMARK_106}' or '{LANDMARK_68}', got {landmarks!r}")
        wanted = {DETECTION} | ({RECOGNITION} if recognition else set()) | ({landmarks} if landmarks != "none" else set())
        self._providers = providers_for(device)
        self._options = ort.SessionOptions()
        self._options.log_severity_level = 3
        self.sessions: dict[str, object] = {}
        self.paths: dict[str, Path] = {}
        self._route(sorted(self.model_dir.glob("*.onnx")), wanted)
        detector = self.sessions[DETECTION]
        self.provider = detector.get_providers()[0]
        self.requested_device = str(device)
        self._det_input = detector.get_inputs()[0].name
        self._det_outputs = [o.name for o in detector.get_outputs()]
        shape = _dims(detector.get_inputs()[0].shape)
        self._det_hw = (shape[2] or self.det_size, shape[3] or self.det_size)
        self._norm = {role: input_normalisation(self.paths[role], (127.5, 127.5 if role == RECOGNITION else 128.0))
                      for role in self.sessions if role != DETECTION}
        log.info("FaceAdapter: insightface %s on %s (torch device %s)", self.describe_models(), self.provider, device)

    def _route(self, files: list[Path], wanted: set[str]) -> None:
        """Open the models we need: by name first, then any unnamed file whose signature fits."""
        import onnxruntime as ort

        def open_as(path: Path, role: Optional[str]) -> None:
            session = ort.InferenceSession(str(path), self._options, providers=self._providers)
            actual = signature_role(session)
            if role is not None and actual != role:
                raise ValueError(f"{path.name} looks like a {role} model by name but its inputs/outputs are those "
                                 f"of a {actual} model; check the files in {self.model_dir}")
            if actual in wanted and actual not in self.sessions:
                self.sessions[actual], self.paths[actual] = session, path

        unnamed = []
        for path in files:
            role = name_role(path)
            if role is None:
                unnamed.append(path)
            elif role in wanted and role not in self.sessions:
                open_as(path, role)
        for path in unnamed:
            if wanted - set(self.sessions):
                open_as(path, None)
        missing = sorted(wanted - set(self.sessions))
        if missing:
            expected = {DETECTION: "scrfd_10g_bnkps.onnx", RECOGNITION: "glintr100.onnx",
                        LANDMARK_106: "2d106det.onnx", LANDMARK_68: "1k3d68.onnx"}
            raise MissingModelError(f"insightface {', '.join(missing)} model",
                                    [self.model_dir / expected[m] for m in missing], "insightface",
                                    "the antelopev2 release of the insightface model zoo",
                                    "insightface model zoo: non-commercial research use")

    def describe_models(self) -> str:
        return " + ".join(f"{role}={path.name}" for role, path in self.paths.items())

    def describe(self) -> str:
        return f"insightface ({self.describe_models()}) on {self.provider}, torch device {self.requested_device}"

    # ------------------------------------------------------------ detection
    def _letterbox(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """The frame resized into the detector input (top-left, zero padded) and the scale used."""
        th, tw = self._det_hw
        h, w = rgb.shape[:2]
        scale = min(th / h, tw / w)
        nh, nw = max(1, int(h * scale)), max(1, int(w * scale))
        canvas = np.zeros((th, tw, 3), np.uint8)
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        canvas[:nh, :nw] = cv2.resize(rgb, (nw, nh), interpolation=interp)
        return canvas, scale

    def _decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """SCRFD outputs -> boxes (N,4), scores (N,), kps (N,5,2) in detector-input pixels."""
        outs = [o[0] if o.ndim == 3 else o for o in outputs]
        groups: dict[int, list[np.ndarray]] = {}
        for o in outs:
            groups.setdefault(o.shape[-1], []).append(o)
        scores_l = sorted(groups.get(1, []), key=lambda a: -a.shape[0])
        boxes_l = sorted(groups.get(4, []), key=lambda a: -a.shape[0])
        kps_l = sorted(groups.get(10, []), key=lambda a: -a.shape[0])
        strides = [8 * 2 ** i for i in range(len(scores_l))]
        th, tw = self._det_hw
        all_boxes, all_scores, all_kps = [], [], []
        for i, stride in enumerate(strides):
            fh, fw = -(-th // stride), -(-tw // stride)
            anchors = max(1, scores_l[i].shape[0] // (fh * fw))
            ys, xs = np.mgrid[:fh, :fw]
            centres = np.repeat(np.stack([xs, ys], axis=-1).reshape(-1, 2) * stride, anchors, axis=0).astype(np.float32)
            score = scores_l[i].reshape(-1)
            keep = np.where(score >= self.min_score)[0]
            if keep.size == 0:
                continue
            c = centres[keep]
            d = boxes_l[i][keep] * stride
            all_boxes.append(np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1))
            all_scores.append(score[keep])
            if kps_l:
                all_kps.append(c[:, None, :] + kps_l[i][keep].reshape(-1, 5, 2) * stride)
        if not all_scores:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32)
        boxes, scores = np.concatenate(all_boxes), np.concatenate(all_scores)
        kps = np.concatenate(all_kps) if all_kps else np.zeros((len(scores), 5, 2), np.float32)
        return boxes, scores, kps

    def detect(self, image_rgb: np.ndarray) -> FrameFaces:
        """Faces of one HxWx3 uint8 RGB frame, in frame pixel coordinates."""
        rgb = np.ascontiguousarray(image_rgb[..., :3], dtype=np.uint8)
        h, w = rgb.shape[:2]
        canvas, scale = self._letterbox(rgb)
        blob = ((canvas.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
        boxes, scores, kps = self._decode(self.sessions[DETECTION].run(self._det_outputs, {self._det_input: blob}))
        faces = [Face(bbox=(boxes[i] / scale).astype(np.float32), score=float(scores[i]),
                      kps5=(kps[i] / scale).astype(np.float32))
                 for i in nms(boxes, scores, self.nms_threshold)]
        faces = list(strongest(faces, self.max_faces))
        if LANDMARK_106 in self.sessions or LANDMARK_68 in self.sessions:
            faces = [self._add_landmarks(rgb, f) for f in faces]
        if RECOGNITION in self.sessions and faces:
            faces = self._add_embeddings(rgb, faces)
        return FrameFaces(height=h, width=w, faces=tuple(faces))

    # ------------------------------------------------------------ recognition / landmarks
    def _blob(self, crops: list[np.ndarray], role: str) -> np.ndarray:
        mean, std = self._norm[role]
        return ((np.stack(crops).astype(np.float32) - mean) / std).transpose(0, 3, 1, 2)

    def _run(self, role: str, blob: np.ndarray) -> np.ndarray:
        """Run a model on a batch; models exported with batch 1 are run face by face."""
        session = self.sessions[role]
        name = session.get_inputs()[0].name
        if _dims(session.get_inputs()[0].shape)[0] == 1 and len(blob) > 1:
            return np.concatenate([session.run(None, {name: blob[i:i + 1]})[0] for i in range(len(blob))])
        return session.run(None, {name: blob})[0]

    def _add_embeddings(self, rgb: np.ndarray, faces: list[Face]) -> list[Face]:
        crops = [warp_to_crop(rgb, aligned_matrix(f.kps5, 112, "arcface"), 112) for f in faces]
        vectors = self._run(RECOGNITION, self._blob(crops, RECOGNITION)).reshape(len(faces), -1).astype(np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return [replace(f, embedding=v) for f, v in zip(faces, vectors)]

    def _add_landmarks(self, rgb: np.ndarray, face: Face) -> Face:
        role = LANDMARK_106 if LANDMARK_106 in self.sessions else LANDMARK_68
        to_crop = box_square_matrix(face.bbox, LANDMARK_CONTEXT, LANDMARK_SIZE)
        pred = self._run(role, self._blob([warp_to_crop(rgb, to_crop, LANDMARK_SIZE)], role))[0].reshape(-1)
        if role == LANDMARK_68:
            pts = pred.reshape(-1, 3)[-68:].astype(np.float64)
            pts[:, :2] += 1.0
        else:
            pts = pred.reshape(-1, 2).astype(np.float64) + 1.0
        pts *= LANDMARK_SIZE / 2.0
        to_frame = invert_affine(to_crop)
        landmarks = transform_points(pts, to_frame).astype(np.float32)
        return replace(face, landmarks=landmarks, landmark_format=IBUG_68 if role == LANDMARK_68 else INSIGHTFACE_106)

    def close(self) -> None:
        self.sessions.clear()
