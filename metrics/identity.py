"""Identity similarity: cosine of ArcFace 512-d embeddings of two faces (or two batches, frame by frame).

Each face is aligned on its five points into the 256 crop Encode Identity uses and embedded by the
same code (generate.identity.embed_aligned_crops) with the shared cached recognizer, so a score here is
the score Face-Adapter's identity encoder would see. Faces that already carry a recognition embedding
(insightface backend, glintr100) can be compared as they are instead.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..core.cache import CachedModel
from ..core.images import frame_to_uint8
from ..face.align import aligned_matrix, warp_to_crop
from ..face.records import FaceBatch
from ..generate.identity import embed_aligned_crops

__all__ = ["aligned_crops", "arcface_embeddings", "analysis_embeddings", "pair_rows", "cosine_rows"]

ALIGNED = 256


def aligned_crops(image: torch.Tensor, faces: FaceBatch) -> tuple[np.ndarray, list[Optional[int]]]:
    """The first face of every frame as a (K,256,256,3) uint8 aligned crop; per frame its row or None."""
    crops, rows = [], []
    for i, frame in enumerate(faces.frames):
        if not frame.faces:
            rows.append(None)
            continue
        rgb = frame_to_uint8(image, i)
        crops.append(warp_to_crop(rgb, aligned_matrix(frame.faces[0].kps5, ALIGNED), ALIGNED))
        rows.append(len(crops) - 1)
    return (np.stack(crops) if crops else np.zeros((0, ALIGNED, ALIGNED, 3), np.uint8)), rows


def arcface_embeddings(image: torch.Tensor, faces: FaceBatch, item: CachedModel) -> list[Optional[np.ndarray]]:
    """Per frame: the L2-normalised ArcFace embedding of its first face, or None without a face."""
    crops, rows = aligned_crops(image, faces)
    emb = torch.nn.functional.normalize(embed_aligned_crops(crops, item), dim=-1).numpy() if len(crops) else None
    return [None if r is None else emb[r] for r in rows]


def analysis_embeddings(faces: FaceBatch) -> list[Optional[np.ndarray]]:
    """Per frame: the recognition embedding the face-analysis backend stored on its first face."""
    out: list[Optional[np.ndarray]] = []
    for i, frame in enumerate(faces.frames):
        if not frame.faces:
            out.append(None)
        elif frame.faces[0].embedding is None:
            raise ValueError(f"FaceAdapter: the face in frame {i} carries no recognition embedding: the "
                             f"'{faces.backend}' analysis computes none (use insightface with recognition on, "
                             "or an ArcFace file)")
        else:
            v = np.asarray(frame.faces[0].embedding, np.float64)
            out.append(v / max(np.linalg.norm(v), 1e-12))
    return out


def pair_rows(count_a: int, count_b: int, what: str = "batches") -> list[tuple[int, int]]:
    """Frame pairs of two batches: i with i, or one frame against every frame of the other."""
    if count_a == count_b:
        return [(i, i) for i in range(count_a)]
    if count_a == 1 or count_b == 1:
        return [(0 if count_a == 1 else i, 0 if count_b == 1 else i) for i in range(max(count_a, count_b))]
    raise ValueError(f"FaceAdapter: the two {what} hold {count_a} and {count_b} frames; give equal counts or one "
                     "frame on either side")


def cosine_rows(a: Sequence[Optional[np.ndarray]], b: Sequence[Optional[np.ndarray]],
                pairs: Sequence[tuple[int, int]], step: Optional[Callable[[], None]] = None) -> list[float]:
    """Cosine similarity of each pair of normalised embeddings (NaN where a face is missing)."""
    out = []
    for i, j in pairs:
        out.append(float("nan") if a[i] is None or b[j] is None else float(np.dot(a[i], b[j])))
        if step is not None:
            step()
    return out
