"""Typed face records: the payload of the pack's custom sockets.

Every stage after detection speaks these types, so a node never has to guess
what a tuple or dict means. Arrays are numpy (CPU, float32) because they are
small and mostly feed OpenCV; images stay torch tensors in ComfyUI's layout.

Coordinate conventions (all stages):
- points are (x, y) pixels in the frame they belong to, origin top-left;
- ``kps5`` order is the insightface/ArcFace order: the eye on the image's left,
  the eye on the image's right, nose tip, left mouth corner, right mouth corner;
- a crop transform ``matrix`` is a 2x3 affine mapping *frame* pixels to *crop*
  pixels (the cv2.warpAffine forward matrix).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Optional, Protocol, Sequence

import numpy as np

from ..core.errors import NoFaceError

if TYPE_CHECKING:
    import torch

# Names of dense landmark layouts a Face may carry.
MEDIAPIPE_478 = "mediapipe478"
IBUG_68 = "ibug68"
INSIGHTFACE_106 = "insightface106"


# What a stage does with a frame that lacks the face it needs: hand the frame on unchanged, or stop.
# The one definition: node dropdowns list it, stages check it with check_on_missing and stop with
# raise_on_missing, so every stage accepts the same names and words its error the same way.
ON_MISSING: tuple[str, ...] = ("pass_through", "error")


def check_on_missing(on_missing: str) -> str:
    """``on_missing`` itself, or ValueError naming the choices (checked before any work is done)."""
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be one of {', '.join(ON_MISSING)}, got {on_missing!r}")
    return on_missing


def raise_on_missing(on_missing: str, missing: Sequence[int], total: int, side: str = "", what: str = "") -> None:
    """Under the "error" policy, NoFaceError naming the frames (and the side: "source" or "target")
    that lack the face; under "pass_through" nothing. ``what`` qualifies the face ("matching 'largest'")."""
    check_on_missing(on_missing)
    missing = list(missing)
    if not missing or on_missing != "error":
        return
    shown = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
    face = (f"no {side} face" if side else "no face") + (f" {what}" if what else "")
    raise NoFaceError(f"FaceAdapter: {face} in frame(s) {shown} of {total} (frames count from 0). "
                      "Set on_missing to 'pass_through' to keep those frames unchanged.")


def transform_points(pts: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map (N, 2+) points through a 2x3 affine; a z column is scaled like x.

    z follows the linear part's mean scale so depth keeps x's pixel units after
    a similarity (crops, downscaled detection)."""
    pts = np.asarray(pts, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    xy = pts[:, :2] @ m[:, :2].T + m[:, 2]
    if pts.shape[1] > 2:
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        return np.concatenate([xy, pts[:, 2:] * scale], axis=1)
    return xy


def _homogeneous(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine (e.g. crop -> frame from frame -> crop)."""
    return np.linalg.inv(_homogeneous(matrix))[:2]


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2x3 of ``outer`` after ``inner`` (inner is applied first)."""
    return (_homogeneous(outer) @ _homogeneous(inner))[:2]


@dataclass(frozen=True)
class Face:
    """One detected face in one frame."""

    bbox: np.ndarray  # (4,) float32: x1, y1, x2, y2 in frame pixels
    score: float
    kps5: np.ndarray  # (5, 2) float32, ArcFace order (see module doc)
    landmarks: Optional[np.ndarray] = None  # (N, 2) or (N, 3); z in pixel units when 3
    landmark_format: Optional[str] = None  # MEDIAPIPE_478, IBUG_68, ...
    embedding: Optional[np.ndarray] = None  # (512,) L2-normalised recognition vector
    track_id: Optional[int] = None

    @property
    def area(self) -> float:
        """Real box area (upstream sorts by a precedence bug; we do not)."""
        x1, y1, x2, y2 = (float(v) for v in self.bbox)
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    @property
    def center(self) -> np.ndarray:
        x1, y1, x2, y2 = self.bbox
        return np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0], dtype=np.float32)

    def with_track(self, track_id: int) -> "Face":
        return replace(self, track_id=track_id)

    def transformed(self, matrix: np.ndarray) -> "Face":
        """The same face in another pixel frame (2x3 affine; bbox = hull of its mapped corners)."""
        x1, y1, x2, y2 = (float(v) for v in self.bbox)
        corners = transform_points(np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]]), matrix)
        bbox = np.concatenate([corners.min(axis=0), corners.max(axis=0)]).astype(np.float32)
        landmarks = None
        if self.landmarks is not None:
            landmarks = transform_points(self.landmarks, matrix).astype(np.float32)
        kps5 = transform_points(self.kps5, matrix).astype(np.float32)
        return replace(self, bbox=bbox, kps5=kps5, landmarks=landmarks)


@dataclass(frozen=True)
class FrameFaces:
    """All faces found in one frame (possibly none)."""

    height: int
    width: int
    faces: tuple[Face, ...] = ()


@dataclass(frozen=True)
class FaceBatch:
    """FACEADAPTER_FACES socket: per-frame detections for an IMAGE batch."""

    frames: tuple[FrameFaces, ...]
    backend: str = ""

    def __len__(self) -> int:
        return len(self.frames)

    def count(self) -> int:
        return sum(len(f.faces) for f in self.frames)

    def found(self) -> tuple[bool, ...]:
        """Per frame: does it hold a face (after Select Face: was the chosen face found)."""
        return tuple(bool(f.faces) for f in self.frames)

    def missing(self) -> list[int]:
        """Indices of the frames without a face."""
        return [i for i, f in enumerate(self.frames) if not f.faces]

    def check_image(self, image: torch.Tensor, what: str = "IMAGE") -> None:
        """ValueError unless ``image`` has the frames these faces were detected on (count and size): a batch
        from another loader would otherwise be cropped at the wrong places, or fail deep inside a warp."""
        frames = 1 if image.ndim == 3 else int(image.shape[0])
        height, width = int(image.shape[-3]), int(image.shape[-2])
        sizes = {(f.height, f.width) for f in self.frames}
        if frames != len(self.frames) or (sizes and sizes != {(height, width)}):
            detected = ", ".join(f"{w}x{h}" for h, w in sorted(sizes)) or "no frames"
            raise ValueError(f"FaceAdapter: {what} has {frames} frame(s) of {width}x{height}, but its faces were "
                             f"detected on {len(self.frames)} frame(s) of {detected}; connect the IMAGE that went "
                             "into Detect Faces")


@dataclass(frozen=True)
class FaceCrop:
    """One face cut out of one frame, with the warp that made it."""

    frame_index: int
    face_index: int
    matrix: np.ndarray  # (2, 3) float64 frame -> crop
    size: int  # crops are square
    face: Face  # the record the crop was made from (frame coordinates)

    def inverse(self) -> np.ndarray:
        """2x3 crop -> frame affine."""
        return invert_affine(self.matrix)

    def to_crop(self, pts: np.ndarray) -> np.ndarray:
        """Map (N, 2) frame points into this crop."""
        return transform_points(np.asarray(pts)[:, :2], self.matrix)


@dataclass(frozen=True)
class CropBatch:
    """FACEADAPTER_CROP_TRANSFORMS socket: what Paste Faces needs to undo Crop Faces."""

    crops: tuple[FaceCrop, ...]
    frame_sizes: tuple[tuple[int, int], ...]  # (height, width) per source frame
    mode: str = ""  # "faceadapter512", "aligned256", "aligned<N>"

    def __len__(self) -> int:
        return len(self.crops)

    def repeated(self, frames: int) -> "CropBatch":
        """A one-frame batch (a source photo's crops) once per output frame: frame k holds a copy of every
        crop, so a video generated from one photo pastes back into copy k of that photo."""
        if len(self.frame_sizes) != 1:
            raise ValueError(f"FaceAdapter: these transforms describe {len(self.frame_sizes)} frames; repeating "
                             "needs the transforms of one source image (Crop Faces on the source photo)")
        if frames < 1:
            raise ValueError(f"FaceAdapter: cannot repeat the source's transforms for {frames} frames")
        crops = tuple(replace(c, frame_index=k) for k in range(frames) for c in self.crops)
        return replace(self, crops=crops, frame_sizes=self.frame_sizes * frames)


class FaceAnalyzer(Protocol):
    """What every face-analysis backend offers (FACEADAPTER_ANALYSIS socket)."""

    name: str
    provider: str  # what actually ran: "mediapipe-cpu", "CPUExecutionProvider", ...

    def detect(self, image_rgb: np.ndarray) -> FrameFaces:
        """Find faces in one HxWx3 uint8 RGB frame."""
        ...
