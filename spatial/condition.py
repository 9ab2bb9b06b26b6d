"""Spatial-condition records (Face-Adapter stage 1): who is paired with whom, and where.

Flow: source/target frames + chosen faces -> :class:`FaceView` per face (512 crop and
the 256 aligned warp, framed as upstream does) -> :func:`plan_pairs` pairs source and
target faces per target frame (several faces per frame: group swaps / reenactments) -> a
projector gives 70 landmarks in each target's 256 frame (:class:`ProjectedLandmarks`) ->
an adapting area -> spatial/record.py composes the control image and the one record
(FACEADAPTER_SPATIAL) every later stage reads.

Crops are kept as uint8, as upstream makes them (cv2 on uint8 frames); that also
keeps a long video's condition data at 0.75 MB per crop.

Control image contract: IMAGE in [0, 1]. Whoever feeds it to the ControlNet maps it
to [-1, 1] (x*2-1), because Face-Adapter's ControlNet was trained on [-1, 1] hints.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..core.errors import NoFaceError
from ..face.analysis import box_iou
from ..face.align import CROP_RATIO, aligned_matrix, faceadapter512_matrix, warp_to_crop
from ..face.records import (Face, FaceAnalyzer, FaceBatch, check_on_missing, compose_affine, raise_on_missing,
                            transform_points)
from .landmark_drawing import draw_pts70

log = logging.getLogger("FaceAdapter")

CROP = 512
ALIGNED = 256
TASKS = ("reenact", "swap")
# Minimum overlap (IoU) between a face re-detected on the 512 crop and the box the crop was made from.
REDETECT_MIN_IOU = 0.3


@dataclass(frozen=True, eq=False)
class FaceView:
    """One face as Face-Adapter sees it: the 512 box crop and the 512->256 aligned warp."""

    face: Face  # frame coordinates (the face Select Face handed on)
    frame_index: int  # in its own image batch (source or target)
    crop512: np.ndarray  # (512,512,3) uint8 RGB
    matrix512: np.ndarray  # frame -> 512 crop
    warp256: np.ndarray  # 512 crop -> 256 aligned crop (upstream's warp_mat256)
    kps512: np.ndarray  # (5,2) the five points the 256 fit used, in the 512 crop
    redetected: bool = False  # kps512 come from a detection on the crop (upstream) rather than the frame's
    crop_ratio: float = CROP_RATIO

    @property
    def frame_to_256(self) -> np.ndarray:
        return compose_affine(self.warp256, self.matrix512)

    def aligned256(self) -> np.ndarray:
        """(256,256,3) uint8: the D3DFR / ArcFace input crop."""
        return warp_to_crop(self.crop512, self.warp256, ALIGNED)


def redetect_kps(analyzer: FaceAnalyzer, crop512: np.ndarray, expected_box: np.ndarray) -> Optional[np.ndarray]:
    """Five points of the face detected again on the 512 crop (upstream's step 2), or None.

    Upstream keeps the "largest" detection; we keep the one overlapping the box the crop was
    made from best (the same face whenever upstream's choice is right, never a neighbour)."""
    found = analyzer.detect(crop512).faces
    if not found:
        return None
    overlap = box_iou(np.stack([f.bbox for f in found]), expected_box)[:, 0]
    best = int(np.argmax(overlap))
    return np.asarray(found[best].kps5, np.float64) if overlap[best] >= REDETECT_MIN_IOU else None


def make_view(frame_rgb_uint8: np.ndarray, face: Face, frame_index: int, crop_ratio: float = CROP_RATIO,
              analyzer: Optional[FaceAnalyzer] = None, side: str = "") -> FaceView:
    """Upstream framing: 512 box crop (side 2*crop_ratio*box width), then the 5-point fit inside it.

    With ``analyzer`` the five points come from detecting the face again on the 512 crop, as
    upstream does; without, the frame's own five points are mapped into the crop. When the
    re-detection finds no face there, the mapped points are used and a warning names the side
    and frame."""
    matrix512 = faceadapter512_matrix(face.bbox, crop_ratio)
    crop = warp_to_crop(frame_rgb_uint8, matrix512, CROP)
    kps512 = transform_points(face.kps5, matrix512)
    redetected = False
    if analyzer is not None:
        box = Face.transformed(face, matrix512).bbox.astype(np.float64)
        found = redetect_kps(analyzer, crop, box)
        if found is None:
            log.warning("FaceAdapter: re-detection found no face on the 512 crop of %s frame %d; using the frame's "
                        "five points for the aligned crop", side or "the", frame_index)
        else:
            kps512, redetected = found, True
    warp256 = aligned_matrix(kps512, ALIGNED)
    for array in (crop, matrix512, warp256, kps512):  # records are shared by every consumer: never edited
        array.setflags(write=False)
    return FaceView(face, frame_index, crop, matrix512, warp256, kps512, redetected, crop_ratio)


def distinct_views(views: Sequence[FaceView]) -> tuple[list[FaceView], list[int]]:
    """Distinct view objects and each input's index among them: one source photo driving a video is one
    view shared by every pair, so networks run on it once."""
    order: dict[int, int] = {}
    unique: list[FaceView] = []
    index = []
    for v in views:
        if id(v) not in order:
            order[id(v)] = len(unique)
            unique.append(v)
        index.append(order[id(v)])
    return unique, index


@dataclass(frozen=True, eq=False)
class FacePair:
    """One source face paired with one target face for one target (driving) frame."""

    frame_index: int  # target frame: the output frame a generated crop belongs to
    face_index: int  # position among this frame's pairs
    source: FaceView
    target: FaceView


@dataclass(frozen=True, eq=False)
class PairPlan:
    """Who is paired with whom, and which frames lack a face (per side)."""

    task: str
    pairs: tuple[FacePair, ...]
    target_sizes: tuple[tuple[int, int], ...]  # (height, width) per target frame
    source_sizes: tuple[tuple[int, int], ...]  # per source frame (1, or one per target frame)
    missing_source: tuple[int, ...] = ()  # source frames without a face
    missing_target: tuple[int, ...] = ()  # target frames without a face

    def source_frame_of(self, target_frame: int) -> int:
        return 0 if len(self.source_sizes) == 1 else target_frame


@dataclass(frozen=True, eq=False)
class ProjectedLandmarks:
    """FACEADAPTER_LANDMARKS socket: 70 projected points per face pair, with the crops they live in.

    Row ``k`` is ``plan.pairs[k]``; ``pts70[k]`` is in that pair's target 256 aligned frame.
    Every array the stage hands on (drawings, crops, areas, control images) has one entry per
    pair, in frame order; frames without a pair pass through Paste Faces unchanged and no
    later stage spends work on them.
    """

    plan: PairPlan
    pts70: np.ndarray  # (N,70,2) float32
    method: str

    def __len__(self) -> int:
        return len(self.plan.pairs)

    @property
    def task(self) -> str:
        return self.plan.task

    @property
    def pairs(self) -> tuple[FacePair, ...]:
        return self.plan.pairs

    @cached_property
    def targets(self) -> tuple[FaceView, ...]:
        return tuple(p.target for p in self.plan.pairs)

    @cached_property
    def sources(self) -> tuple[FaceView, ...]:
        return tuple(p.source for p in self.plan.pairs)

    def landmark_images(self) -> np.ndarray:
        """(N,512,512,3) uint8, read-only: the official drawing in each pair's target 512 crop.
        Drawn once per record; preview, area net and control composition all reuse it."""
        return self._drawn

    @cached_property
    def _drawn(self) -> np.ndarray:
        if not len(self):
            out = np.zeros((0, CROP, CROP, 3), np.uint8)
        else:
            out = draw_pts70(self.pts70, np.stack([t.warp256 for t in self.targets]), CROP)
        out.setflags(write=False)
        return out

    def crops(self, which: str) -> np.ndarray:
        """(N,512,512,3) uint8 target or source crops of the pairs."""
        if which not in ("source", "target"):
            raise ValueError("which must be 'source' or 'target'")
        views = self.targets if which == "target" else self.sources
        out = np.empty((len(views), CROP, CROP, 3), np.uint8)
        for k, view in enumerate(views):
            out[k] = view.crop512
        return out


def plan_pairs(task: str, source_frames: np.ndarray, source_faces: FaceBatch,
               target_frames_at: Callable[[int], np.ndarray], target_faces: FaceBatch, on_missing: str = "pass_through",
               crop_ratio: float = CROP_RATIO, analyzer: Optional[FaceAnalyzer] = None,
               step: Optional[Callable[[], None]] = None) -> PairPlan:
    """Pair the faces Select Face handed on, per target frame; one source image may drive every frame.

    - swap: the source frame's first face goes onto every face of the target frame (group swap);
    - reenact: every face of the source frame is reenacted; the target (driving) frame's k-th face
      drives the k-th source face when both frames hold as many faces, else its first face drives all.
    A frame without a face on either side gets no pair (passed through) or, with ``on_missing``
    "error", stops with a message naming the side and the frame. ``target_frames_at(i)`` returns
    frame i as uint8 so a long video is never held whole.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    check_on_missing(on_missing)
    n_src, n_tgt = len(source_faces), len(target_faces)
    if n_src not in (1, n_tgt):
        raise ValueError(f"source has {n_src} frames, target {n_tgt}: give 1 source image or one per target frame")
    missing_source = tuple(source_faces.missing())
    missing_target = tuple(target_faces.missing())
    raise_on_missing(on_missing, missing_source, n_src, side="source")
    raise_on_missing(on_missing, missing_target, n_tgt, side="target")
    source_views: dict[tuple[int, int], FaceView] = {}

    def source_view(si: int, k: int) -> FaceView:
        if (si, k) not in source_views:
            source_views[(si, k)] = make_view(source_frames[si], source_faces.frames[si].faces[k], si, crop_ratio,
                                              analyzer, "source")
        return source_views[(si, k)]

    pairs: list[FacePair] = []
    for i in range(n_tgt):
        si = 0 if n_src == 1 else i
        n_s, n_t = len(source_faces.frames[si].faces), len(target_faces.frames[i].faces)
        if n_s and n_t:
            frame = target_frames_at(i)
            targets = [make_view(frame, f, i, crop_ratio, analyzer, "target") for f in target_faces.frames[i].faces]
            if task == "swap":
                links = [(0, k) for k in range(n_t)]
            else:
                links = [(k, k if n_t == n_s else 0) for k in range(n_s)]
            pairs += [FacePair(i, j, source_view(si, s), targets[t]) for j, (s, t) in enumerate(links)]
        if step is not None:
            step()
    sizes = tuple((int(f.height), int(f.width)) for f in target_faces.frames)
    src_sizes = tuple((int(f.height), int(f.width)) for f in source_faces.frames)
    return PairPlan(task, tuple(pairs), sizes, src_sizes, missing_source, missing_target)


def no_pair_error(plan: PairPlan) -> NoFaceError:
    """Why no frame got a pair, naming the side that lacks the face."""
    n_src, n_tgt = len(plan.source_sizes), len(plan.target_sizes)
    if len(plan.missing_source) == n_src:
        where = "the source image has no face" if n_src == 1 else f"none of the {n_src} source frames has a face"
        return NoFaceError(f"FaceAdapter: {where} (source frame(s) "
                           f"{', '.join(str(i) for i in plan.missing_source[:10])}); check the source's Detect Faces "
                           "preview, lower min_score or use another photo")
    if len(plan.missing_target) == n_tgt:
        return NoFaceError(f"FaceAdapter: none of the {n_tgt} target frame(s) has a face; check the target's Detect "
                           "Faces preview or lower min_score")
    return NoFaceError(f"FaceAdapter: no target frame has a face while its source frame has one (source frames "
                       f"without a face: {list(plan.missing_source[:10])}, target frames without a face: "
                       f"{list(plan.missing_target[:10])})")


def nchw_unit(images_uint8: np.ndarray | Sequence[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 (B,H,W,3) -> contiguous (B,3,H,W) in [-1,1] on ``device``: the normalisation every
    Face-Adapter network input uses, as ToTensor + Normalize(0.5, 0.5) compute it (float32 on the
    CPU: /255, -0.5, /0.5). Both the op order and the contiguous NCHW layout matter to the last
    bit (a channels-last view takes another CPU conv kernel)."""
    batch = np.stack(list(images_uint8)) if not isinstance(images_uint8, np.ndarray) else images_uint8
    nchw = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).contiguous()
    unit = nchw.to(torch.float32).div(255).sub(0.5).div(0.5)
    return unit.to(device=device, dtype=dtype)
