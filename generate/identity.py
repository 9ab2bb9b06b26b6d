"""FACEADAPTER_IDENTITY: who the generated face is (upstream step 9, UNet prompt).

Per distinct source face: the 256 aligned crop -> bilinear 128x128 in [-1,1] -> ArcFace IResNet-100
layer4 map as 64 tokens x 512 -> ID2Token -> (77,768). Also the 512-d ArcFace embedding (112x112
crop, full forward) for similarity and metrics. One source photo driving 300 frames is one encode.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..core import comfy_bridge as bridge
from ..models.arcface import embedding_input_from_crop256
from ..spatial.condition import FaceView, distinct_views, nchw_unit
from .conditioning import per_pair
from ..core.cache import CachedModel
from .nets import FaceAdapterNets

CHUNK = 16


@dataclass(frozen=True, eq=False)
class FaceIdentity:
    """Identity tokens of M distinct faces and, per face pair, which row it uses."""

    tokens: torch.Tensor  # (M,77,768) fp32, ID2Token output
    embeddings: torch.Tensor  # (M,512) fp32, ArcFace embedding (not normalised)
    index: tuple[int, ...]  # per face pair of the record it was encoded from -> row
    crops: np.ndarray  # (M,256,256,3) uint8, the aligned crops ArcFace saw

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def for_pairs(self, pairs: int) -> torch.Tensor:
        """(pairs,77,768): one row per face pair (a single identity serves every pair)."""
        return per_pair(self.tokens, self.index, "the identity", pairs)

    def normalized_embeddings(self) -> torch.Tensor:
        return torch.nn.functional.normalize(self.embeddings, dim=-1)


@torch.no_grad()
def encode_identity(views: Sequence[FaceView], nets: FaceAdapterNets) -> FaceIdentity:
    """Encode each distinct view once (in chunks, honouring Cancel)."""
    unique, index = distinct_views(views)
    arc_item, tok_item = nets.arcface(), nets.id2token()
    arcface, id2token = arc_item.ready(), tok_item.ready()
    device = arc_item.device
    crops = np.stack([v.aligned256() for v in unique]) if unique else np.zeros((0, 256, 256, 3), np.uint8)
    tokens, embeddings = [], []
    for start in range(0, len(unique), CHUNK):
        bridge.check_interrupt()
        x = nchw_unit(crops[start:start + CHUNK], device, torch.float32)
        memory = arcface.identity_tokens(x)
        tokens.append(id2token(memory.to(tok_item.device)).float().cpu())
        embeddings.append(_embed(arcface, x))
    crops.setflags(write=False)
    return FaceIdentity(torch.cat(tokens) if tokens else torch.zeros(0, 77, 768),
                        torch.cat(embeddings) if embeddings else torch.zeros(0, 512), tuple(index), crops)


def _embed(arcface: torch.nn.Module, crops256: torch.Tensor) -> torch.Tensor:
    """(B,3,256,256) aligned crops in [-1,1] -> (B,512) fp32 CPU ArcFace embeddings (not normalised)."""
    return arcface.embed(embedding_input_from_crop256(crops256)).float().cpu()


@torch.no_grad()
def embed_aligned_crops(crops: np.ndarray, item: CachedModel) -> torch.Tensor:
    """(K,256,256,3) uint8 aligned crops -> (K,512) embeddings, exactly as Encode Identity computes them
    (in chunks, honouring Cancel)."""
    arcface, out = item.ready(), []
    for start in range(0, len(crops), CHUNK):
        bridge.check_interrupt()
        out.append(_embed(arcface, nchw_unit(crops[start:start + CHUNK], item.device, torch.float32)))
    return torch.cat(out) if out else torch.zeros(0, 512)
