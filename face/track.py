"""Video: follow faces across frames (box overlap + appearance) and smooth landmarks (One-Euro).

A tracker is fed frames in order (Detect Faces does that frame by frame) and
gives each face a ``track_id`` that stays with the same person. Appearance is
the recognition embedding when the backend has one, else face geometry (see
select.face_similarity), so a mediapipe-only setup still separates people that
cross or jump.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from .analysis import box_iou
from .records import Face, FrameFaces
from .select import face_similarity


@dataclass(frozen=True)
class OneEuroParams:
    """One-Euro filter settings (Casiez et al. 2012).

    ``min_cutoff`` (Hz) sets smoothing at rest, ``beta`` how fast the cutoff rises
    with speed; speed is measured in face widths per second so the same values
    work at any resolution. ``rate`` is the frame rate the frames are assumed to have.
    """

    min_cutoff: float = 1.0
    beta: float = 0.5
    d_cutoff: float = 1.0
    rate: float = 30.0


def _alpha(cutoff: np.ndarray | float, rate: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau * rate)


class OneEuroFilter:
    """One-Euro filter over an (N, D) array of points; each point adapts to its own speed."""

    def __init__(self, params: OneEuroParams):
        self.params = params
        self._x: Optional[np.ndarray] = None
        self._dx: Optional[np.ndarray] = None

    def reset(self) -> None:
        self._x = self._dx = None

    def __call__(self, x: np.ndarray, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        p = self.params
        dx = (x - self._x) * p.rate
        a_d = _alpha(p.d_cutoff, p.rate)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True) / max(scale, 1e-6)
        a = _alpha(p.min_cutoff + p.beta * speed, p.rate)
        self._x = a * x + (1.0 - a) * self._x
        return self._x.copy()


@dataclass
class _Track:
    track_id: int
    face: Face
    last_seen: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    smoother: Optional[OneEuroFilter] = None

    def predicted_box(self, frame: int) -> np.ndarray:
        """Constant-velocity guess of the box in ``frame``."""
        return np.asarray(self.face.bbox, np.float64) + self.velocity * (frame - self.last_seen)


class FaceTracker:
    """Online tracker: call :meth:`update` once per frame, in order.

    A detection continues a track when their boxes overlap or are close (after a
    constant-velocity prediction) and their appearance agrees; with recognition
    embeddings a person who left for a while is recognised again (``reid_similarity``)
    and two people never swap ids however close their boxes get (``different_below``).
    Tracks unseen for more than ``max_age`` frames are otherwise forgotten.
    """

    def __init__(self, max_age: int = 30, appearance_weight: float = 1.0, reid_similarity: float = 0.5,
                 different_below: float = 0.2, smoothing: Optional[OneEuroParams] = None):
        self.max_age = int(max_age)
        self.different_below = float(different_below)
        self.appearance_weight = float(appearance_weight)
        self.reid_similarity = float(reid_similarity)
        self.smoothing = smoothing
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._frame = -1

    def _score(self, track: _Track, face: Face) -> Optional[float]:
        """Match score (higher is better) or None when the pair must not match."""
        age = self._frame - track.last_seen
        box = track.predicted_box(self._frame)
        iou = float(box_iou(box, face.bbox)[0, 0])
        size = math.sqrt(max(float(np.prod(box[2:] - box[:2])), 1.0))
        centre = (box[:2] + box[2:]) / 2.0
        proximity = max(0.0, 1.0 - float(np.linalg.norm(face.center - centre)) / size)
        similarity, metric = face_similarity(track.face, face)
        near = age <= self.max_age and (iou > 0.05 or proximity > 0.5)
        recognised = metric == "embedding" and similarity >= self.reid_similarity
        if not (near or recognised):
            return None
        if metric == "embedding" and similarity < self.different_below:
            return None  # recognition says: another person, however close the boxes are
        weight = self.appearance_weight * (1.0 if metric == "embedding" else 0.5)
        return iou + 0.5 * proximity + weight * similarity

    def update(self, frame: FrameFaces) -> FrameFaces:
        """Assign track ids (and smoothed geometry) to one frame's faces."""
        self._frame += 1
        faces = frame.faces
        pairs = []
        for ti, track in enumerate(self._tracks):
            for fi, face in enumerate(faces):
                score = self._score(track, face)
                if score is not None:
                    pairs.append((score, ti, fi))
        assigned: dict[int, int] = {}
        used_tracks: set[int] = set()
        for score, ti, fi in sorted(pairs, key=lambda p: -p[0]):
            if ti not in used_tracks and fi not in assigned:
                assigned[fi] = ti
                used_tracks.add(ti)
        out: list[Optional[Face]] = [None] * len(faces)
        # New people get ids left to right so ids are reproducible.
        for fi in sorted(range(len(faces)), key=lambda i: float(faces[i].center[0])):
            if fi in assigned:
                track = self._tracks[assigned[fi]]
                gap = self._frame - track.last_seen
                new_box = np.asarray(faces[fi].bbox, np.float64)
                track.velocity = (new_box - np.asarray(track.face.bbox, np.float64)) / gap if gap == 1 else np.zeros(4)
                if gap > 1 and track.smoother is not None:
                    track.smoother.reset()
            else:
                track = _Track(track_id=self._next_id, face=faces[fi], last_seen=self._frame,
                               smoother=OneEuroFilter(self.smoothing) if self.smoothing else None)
                self._next_id += 1
                self._tracks.append(track)
            face = self._smooth(track, faces[fi].with_track(track.track_id))
            track.face, track.last_seen = face, self._frame
            out[fi] = face
        self._forget()
        return replace(frame, faces=tuple(f for f in out if f is not None))

    def _smooth(self, track: _Track, face: Face) -> Face:
        """Filter box corners, five points and landmarks together (points that coincide stay equal)."""
        if track.smoother is None:
            return face
        parts = [np.asarray(face.bbox, np.float64).reshape(2, 2), np.asarray(face.kps5, np.float64)]
        dims = 2
        if face.landmarks is not None:
            parts.append(np.asarray(face.landmarks, np.float64)[:, :2])
        stacked = np.concatenate(parts)
        filtered = track.smoother(stacked, scale=float(face.bbox[2] - face.bbox[0]))
        bbox = filtered[:2].reshape(4).astype(np.float32)
        kps5 = filtered[2:7].astype(np.float32)
        landmarks = face.landmarks
        if landmarks is not None:
            landmarks = np.array(landmarks, np.float32, copy=True)
            landmarks[:, :dims] = filtered[7:]
        return replace(face, bbox=bbox, kps5=kps5, landmarks=landmarks)

    def _forget(self, keep_lost: int = 64) -> None:
        """Drop tracks that can no longer match: too old, unless an embedding can recognise
        them (the ``keep_lost`` most recent of those are kept)."""
        recent = [t for t in self._tracks if self._frame - t.last_seen <= self.max_age]
        lost = [t for t in self._tracks if self._frame - t.last_seen > self.max_age and t.face.embedding is not None]
        self._tracks = recent + sorted(lost, key=lambda t: -t.last_seen)[:keep_lost]

    def __call__(self, index: int, frame: FrameFaces) -> FrameFaces:
        """So a tracker can be passed as analysis.detect_batch's ``per_frame``."""
        return self.update(frame)
