"""Choosing faces: largest, by index in a stated order, by similarity to a reference, or all.

Selection returns a FACES batch holding only the chosen faces plus a per-frame
FrameStatus, so a frame without the chosen face can pass through later stages
unchanged (or raise, if the user asked for that).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from ..core.errors import NoFaceError
from .records import Face, FaceBatch, FrameFaces, FrameStatus, check_on_missing, raise_on_missing

MODES = ("largest", "index", "reference", "all")
ORDERS = ("left_to_right", "right_to_left", "top_to_bottom", "bottom_to_top", "large_to_small", "small_to_large",
          "score")
# Similarity below which a face is "not the reference person", per metric.
DEFAULT_THRESHOLDS = {"embedding": 0.3, "mesh": 0.5, "kps5": 0.6}
# Procrustes distance (unit-norm shapes, x100) at which geometric similarity reaches 0. On the
# sample photos the same face re-detected after rotation/scale/flip stays below 0.13 (mesh) /
# 2 (kps5), different people are above 0.33 / 3.
_GEOMETRY_SCALE = {"mesh": 0.5, "kps5": 8.0}


def order_indices(faces: tuple[Face, ...], order: str = "left_to_right") -> list[int]:
    """Indices of ``faces`` in the stated order (stable for ties)."""
    keys = {
        "left_to_right": lambda f: f.center[0],
        "right_to_left": lambda f: -f.center[0],
        "top_to_bottom": lambda f: f.center[1],
        "bottom_to_top": lambda f: -f.center[1],
        "large_to_small": lambda f: -f.area,
        "small_to_large": lambda f: f.area,
        "score": lambda f: -f.score,
    }
    try:
        key = keys[order]
    except KeyError:
        raise ValueError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}") from None
    return sorted(range(len(faces)), key=lambda i: float(key(faces[i])))


# ---------------------------------------------------------------- similarity
def _procrustes_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Residual (x100) after the best similarity (rotation, scale, shift) between unit-norm shapes."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-9 or nb < 1e-9:
        return float("inf")
    a, b = a / na, b / nb
    u, s, vt = np.linalg.svd(a.T @ b)
    d = np.ones(len(s))
    d[-1] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = (u * d) @ vt
    residual = a @ rotation * float((s * d).sum()) - b
    return float(np.linalg.norm(residual) / np.sqrt(len(a)) * 100.0)


def similarity_metric(a: Face, b: Face) -> str:
    """Which signal compares two faces: recognition embeddings, the 3D mesh, or the five points."""
    if a.embedding is not None and b.embedding is not None:
        return "embedding"
    if (a.landmarks is not None and b.landmarks is not None and a.landmark_format == b.landmark_format
            and a.landmarks.shape == b.landmarks.shape):
        return "mesh"
    return "kps5"


def face_similarity(a: Face, b: Face) -> tuple[float, str]:
    """(similarity, metric): cosine of embeddings when both have one, else a geometric score in [0, 1].

    The geometric fallback compares face shape after removing pose and scale; it
    tells people apart only roughly (expressions move it too), so recognition is
    preferred whenever the backend provides it."""
    metric = similarity_metric(a, b)
    if metric == "embedding":
        ea, eb = np.asarray(a.embedding, np.float64), np.asarray(b.embedding, np.float64)
        return float(ea @ eb / max(np.linalg.norm(ea) * np.linalg.norm(eb), 1e-12)), metric
    pts_a, pts_b = (a.landmarks, b.landmarks) if metric == "mesh" else (a.kps5, b.kps5)
    distance = _procrustes_distance(pts_a, pts_b)
    return max(0.0, 1.0 - distance / _GEOMETRY_SCALE[metric]), metric


def reference_face(reference: FaceBatch) -> Face:
    """The reference person: the largest face of the first frame that has one."""
    for frame in reference.frames:
        if frame.faces:
            return max(frame.faces, key=lambda f: f.area)
    raise NoFaceError("FaceAdapter: the reference image has no face; use a photo where the face is visible")


# ---------------------------------------------------------------- selection
def _pick(frame: FrameFaces, mode: str, order: str, index: int, reference: Optional[Face],
          threshold: Optional[float]) -> tuple[int, ...]:
    """Indices chosen in one frame by the rule alone (no tracking)."""
    faces = frame.faces
    if not faces:
        return ()
    if mode == "all":
        return tuple(order_indices(faces, order))
    if mode == "largest":
        return (max(range(len(faces)), key=lambda i: faces[i].area),)
    if mode == "index":
        ranked = order_indices(faces, order)
        return (ranked[index],) if 0 <= index < len(ranked) else ()
    if mode == "reference":
        if reference is None:
            raise ValueError("selection mode 'reference' needs a reference FACES input")
        scored = [(face_similarity(f, reference), i) for i, f in enumerate(faces)]
        (best_sim, metric), best = max(scored, key=lambda t: t[0][0])
        limit = DEFAULT_THRESHOLDS[metric] if threshold is None else threshold
        return (best,) if best_sim >= limit else ()
    raise ValueError(f"unknown selection mode {mode!r}; choose one of {', '.join(MODES)}")


def _target_track(batch: FaceBatch, picks: list[tuple[int, ...]], mode: str, reference: Optional[Face]) -> Optional[int]:
    """The track id the whole video follows, or None when tracks cannot be used."""
    if mode == "all" or any(f.track_id is None for fr in batch.frames for f in fr.faces):
        return None
    if mode == "reference" and reference is not None:
        # The track most similar to the reference over all its frames (robust to one bad frame).
        totals: dict[int, list[float]] = {}
        for fr, pick in zip(batch.frames, picks):
            for i in pick:
                totals.setdefault(fr.faces[i].track_id, []).append(face_similarity(fr.faces[i], reference)[0])
        return max(totals, key=lambda t: (len(totals[t]), float(np.mean(totals[t])))) if totals else None
    for fr, pick in zip(batch.frames, picks):
        if pick:
            return fr.faces[pick[0]].track_id
    return None


def select_faces(batch: FaceBatch, mode: str = "largest", order: str = "left_to_right", index: int = 0,
                 reference: Optional[FaceBatch] = None, threshold: Optional[float] = None,
                 follow_track: bool = True, on_missing: str = "pass_through") -> tuple[FaceBatch, FrameStatus]:
    """Keep only the chosen faces in every frame.

    With ``follow_track`` (and track ids from Detect Faces) the person chosen by
    the rule in the first frame where it picks someone is followed through the
    video, so "largest" or "index 1" does not jump between people. Frames without
    the chosen face hold no faces and are flagged in the status; with
    ``on_missing="error"`` they raise NoFaceError naming the frames instead.
    """
    check_on_missing(on_missing)
    ref = reference_face(reference) if reference is not None else None
    picks = [_pick(fr, mode, order, index, ref, threshold) for fr in batch.frames]
    target = _target_track(batch, picks, mode, ref) if follow_track else None
    if target is not None:
        picks = [tuple(i for i, f in enumerate(fr.faces) if f.track_id == target) for fr in batch.frames]
    frames = tuple(replace(fr, faces=tuple(fr.faces[i] for i in pick)) for fr, pick in zip(batch.frames, picks))
    status = FrameStatus(found=tuple(bool(p) for p in picks))
    raise_on_missing(on_missing, status.missing(), len(batch), what=f"matching '{mode}'")
    return FaceBatch(frames=frames, backend=batch.backend), status


def status_report(batch: FaceBatch, status: FrameStatus) -> str:
    """Human-readable per-frame status for the STRING output."""
    lines = [f"{len(status.found) - len(status.missing())}/{len(status.found)} frames have the chosen face"]
    for i, (fr, ok) in enumerate(zip(batch.frames, status.found)):
        if ok:
            tracks = ", ".join("-" if f.track_id is None else str(f.track_id) for f in fr.faces)
            lines.append(f"frame {i}: {len(fr.faces)} face(s), track {tracks}")
        else:
            lines.append(f"frame {i}: missing (passed through)")
    return "\n".join(lines)
