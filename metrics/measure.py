"""One function per metrics node: detect, measure, and hand back a MetricsReport."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from ..core.cache import CachedModel
from ..face.analysis import detect_batch
from ..face.records import FaceAnalyzer, FaceBatch, MEDIAPIPE_478
from ..face.select import select_faces
from ..spatial.mesh_topology import mesh_to_points70
from .flicker import FLICKER_COLUMNS, face_mask, landmark_motion, pixel_change
from .geometry import ERROR_COLUMNS, face_geometry, geometry_error
from .identity import analysis_embeddings, arcface_embeddings, cosine_rows, pair_rows
from .report import MetricsReport, nanmean

__all__ = ["largest_faces", "identity_report", "expression_pose_report", "flicker_report"]

Step = Optional[Callable[[], None]]
NAN = float("nan")


def largest_faces(analyzer: FaceAnalyzer, image: torch.Tensor, step: Step = None) -> FaceBatch:
    """The largest face of every frame (frames without one hold none)."""
    return select_faces(detect_batch(analyzer, image, step=step), "largest", follow_track=False)


def _missing(pairs: list[tuple[int, int]], a: FaceBatch, b: FaceBatch) -> tuple[int, ...]:
    found_a, found_b = a.found(), b.found()
    return tuple(k for k, (i, j) in enumerate(pairs) if not (found_a[i] and found_b[j]))


def identity_report(image_a: torch.Tensor, faces_a: FaceBatch, image_b: torch.Tensor, faces_b: FaceBatch,
                    recognizer: Optional[CachedModel], step: Step = None) -> MetricsReport:
    """Cosine similarity of the faces frame by frame; ``recognizer`` None uses the analysis's own embeddings."""
    pairs = pair_rows(len(faces_a), len(faces_b), "images")
    if recognizer is None:
        emb_a, emb_b = analysis_embeddings(faces_a), analysis_embeddings(faces_b)
        source = f"{faces_a.backend} analysis embeddings"
    else:
        emb_a = arcface_embeddings(image_a, faces_a, recognizer)
        emb_b = arcface_embeddings(image_b, faces_b, recognizer)
        source = "ArcFace IResNet on the 256 aligned crop (as Encode Identity)"
    sims = cosine_rows(emb_a, emb_b, pairs, step)
    finite = [s for s in sims if s == s]
    summary = {"similarity": nanmean(sims), "min": min(finite) if finite else NAN}
    return MetricsReport("identity", ("similarity",), tuple((s,) for s in sims), summary,
                         _missing(pairs, faces_a, faces_b), f"cosine of L2-normalised 512-d embeddings ({source}); 1 = same embedding")


def expression_pose_report(result: FaceBatch, driving: FaceBatch, step: Step = None) -> MetricsReport:
    """Pose (degrees), mouth / eye openness and NME of each result face against its driving face."""
    pairs = pair_rows(len(result), len(driving), "images (result and driving)")
    geo_r = [face_geometry(f.faces[0]) if f.faces else None for f in result.frames]
    geo_d = [face_geometry(f.faces[0]) if f.faces else None for f in driving.frames]
    rows = []
    for i, j in pairs:
        rows.append(geometry_error(geo_r[i], geo_d[j]))
        if step is not None:
            step()
    means = {c: nanmean([r[k] for r in rows]) for k, c in enumerate(ERROR_COLUMNS)}
    summary = {"pose_err_deg": nanmean([np.mean(r[:3]) for r in rows]), **means}
    return MetricsReport("expression_pose", ERROR_COLUMNS, tuple(rows), summary, _missing(pairs, result, driving),
                         "yaw/pitch/roll errors in degrees; mouth openness error in inter-ocular distances, eye "
                         "openness error in eye widths; nme = mean 68-point distance in the pose-free frame / IOD")


def _points(faces: FaceBatch) -> list[Optional[np.ndarray]]:
    """Per frame: the first face's landmarks in frame pixels (mesh: the 70 points; else all; else the 5)."""
    out: list[Optional[np.ndarray]] = []
    for frame in faces.frames:
        if not frame.faces:
            out.append(None)
            continue
        face = frame.faces[0]
        if face.landmarks is None:
            out.append(np.asarray(face.kps5, np.float64))
        elif face.landmark_format == MEDIAPIPE_478:
            out.append(mesh_to_points70(np.asarray(face.landmarks, np.float64))[:, :2])
        else:
            out.append(np.asarray(face.landmarks, np.float64)[:, :2])
    return out


def flicker_report(image: torch.Tensor, faces: FaceBatch, mask: Optional[torch.Tensor] = None,
                   step: Step = None) -> MetricsReport:
    """Frame-to-frame change inside / outside the face, landmark motion and jitter (rows: frames 1..N-1)."""
    n, h, w = image.shape[0], image.shape[1], image.shape[2]
    points = _points(faces)
    if mask is not None:
        masks = mask.detach().float().cpu().numpy().reshape(-1, mask.shape[-2], mask.shape[-1])
        if masks.shape[1:] != (h, w) or masks.shape[0] not in (1, n):
            raise ValueError(f"FaceAdapter: the mask is {tuple(mask.shape)}, the frames {n}x{h}x{w}; give one mask "
                             "per frame (or one for all) at the frames' size")
        masks = np.broadcast_to(masks, (n, h, w))
    else:
        masks = np.stack([face_mask(h, w, p) for p in points]) if n else np.zeros((0, h, w), np.float32)
    change = pixel_change(image, masks)
    motion, jitter = landmark_motion(points)
    rows = tuple((ci, co, m, j) for (ci, co), m, j in zip(change, motion, jitter))
    if step is not None:
        step()
    summary = {c: nanmean([r[k] for r in rows]) for k, c in enumerate(FLICKER_COLUMNS)}
    missing = tuple(k for k in range(len(rows)) if points[k] is None or points[k + 1] is None)
    return MetricsReport("flicker", FLICKER_COLUMNS, rows, summary, missing,
                         "row t compares frame t+1 with frame t: mean |change| in 8-bit levels inside / outside the "
                         "face mask; landmark motion and jitter (second difference) in px per frame", first_frame=1)
