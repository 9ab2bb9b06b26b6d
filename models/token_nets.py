"""Face-Adapter's token networks: ID2Token (``net_id2token.pth``) and Image2Token
(``net_image2token.pth``), layouts ``faceadapter.id2token`` / ``faceadapter.image2token``.

Both project a memory sequence to 768-d and let 77 learned queries read it through a
3-layer post-norm ``nn.TransformerDecoder`` (12 heads, FFN 2048, ReLU, batch_first),
giving a (B,77,768) SD1.5 cross-attention context:
- ID2Token: memory = ArcFace layer4 tokens (B,64,512) of the source -> UNet prompt.
- Image2Token: memory = CLIP ViT-H/14 ``last_hidden_state`` (B,257,1280), before the
  post-layernorm -> ControlNet prompt.
The released ``net_id2token.pth`` is stored in bf16; the loaders cast it to fp32.

Dropout choice: upstream never calls ``.eval()`` on these two networks, so their
decoder dropout (p=0.1, on activations *and* attention weights) is live at inference
and the tokens change on every run (about 20 % relative L2 from the dropout-free
output). We default to the deterministic eval-mode output, because identical inputs
must give identical tokens (caching, one encode per source, reproducible seeds, tests
and parity), and the dropout-free output is the expectation the trained network
approximates. ``upstream_dropout=True`` (constructor or attribute) reproduces
upstream's stochastic behaviour (draws from torch's global RNG) even in eval mode.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import torch
from torch import nn

from ..core.loading import load_state_dict, load_weights_into

__all__ = ["TokenDecoder", "ID2Token", "Image2Token", "load_id2token", "load_image2token"]

TEXT_HIDDEN = 768
MAX_LENGTH = 77
NUM_LAYERS = 3
FFN_DIM = 2048
DROPOUT = 0.1


@contextmanager
def _training_mode(module: nn.Module, active: bool) -> Iterator[None]:
    """Temporarily set ``module``'s train flag (only dropout depends on it in a decoder)."""
    previous = [m.training for m in module.modules()]
    module.train(active)
    try:
        yield
    finally:
        for m, flag in zip(module.modules(), previous):
            m.training = flag


class TokenDecoder(nn.Module):
    """Linear projection of a memory sequence + learned queries through a TransformerDecoder.

    Subclasses name the projection and decoder attributes as the official checkpoints do.
    """

    proj_name = "proj"
    decoder_name = "decoder"

    def __init__(self, in_dim: int, hidden: int = TEXT_HIDDEN, max_length: int = MAX_LENGTH,
                 num_layers: int = NUM_LAYERS, ffn_dim: int = FFN_DIM, dropout: float = DROPOUT,
                 upstream_dropout: bool = False):
        super().__init__()
        if hidden % 64:
            raise ValueError(f"FaceAdapter: token decoder width {hidden} is not a multiple of 64 (64-d heads)")
        self.upstream_dropout = upstream_dropout
        self.query = nn.Parameter(torch.randn(1, max_length, hidden))
        setattr(self, self.proj_name, nn.Linear(in_dim, hidden))
        layer = nn.TransformerDecoderLayer(d_model=hidden, nhead=hidden // 64, dim_feedforward=ffn_dim,
                                           dropout=dropout, activation="relu", batch_first=True,
                                           norm_first=False)
        setattr(self, self.decoder_name, nn.TransformerDecoder(layer, num_layers=num_layers))

    @property
    def in_dim(self) -> int:
        return getattr(self, self.proj_name).in_features

    @property
    def out_dim(self) -> int:
        return getattr(self, self.proj_name).out_features

    def forward(self, memory: torch.Tensor) -> torch.Tensor:
        """(B,N,in_dim) -> (B,max_length,hidden)."""
        if memory.ndim != 3 or memory.shape[-1] != self.in_dim:
            raise ValueError(f"FaceAdapter: {type(self).__name__} expects (B,N,{self.in_dim}) tokens, "
                             f"got {tuple(memory.shape)}")
        batch = memory.shape[0]
        projected = getattr(self, self.proj_name)(memory)
        queries = self.query.expand(batch, -1, -1)
        decoder = getattr(self, self.decoder_name)
        with _training_mode(decoder, self.training or self.upstream_dropout):
            return decoder(queries, projected)

    @classmethod
    def config_from_state(cls, state: Mapping[str, torch.Tensor]) -> dict:
        """Constructor arguments read off a state dict of this class ({} when its keys are absent)."""
        proj, query = state.get(f"{cls.proj_name}.weight"), state.get("query")
        linear1 = state.get(f"{cls.decoder_name}.layers.0.linear1.weight")
        if proj is None or query is None or linear1 is None or proj.ndim != 2 or query.ndim != 3:
            return {}
        pattern = re.compile(rf"{re.escape(cls.decoder_name)}\.layers\.(\d+)\.")
        layers = {int(m.group(1)) for k in state if (m := pattern.match(k))}
        return {"in_dim": int(proj.shape[1]), "hidden": int(proj.shape[0]), "max_length": int(query.shape[1]),
                "num_layers": len(layers), "ffn_dim": int(linear1.shape[0])}


class ID2Token(TokenDecoder):
    """ArcFace layer4 tokens (B,64,512) -> identity prompt (B,77,768)."""

    proj_name = "id_proj"
    decoder_name = "id2t"

    def __init__(self, in_dim: int = 512, **kwargs):
        super().__init__(in_dim, **kwargs)


class Image2Token(TokenDecoder):
    """CLIP ViT-H last_hidden_state (B,257,1280), pre post-layernorm -> ControlNet prompt (B,77,768)."""

    proj_name = "visual_proj"
    decoder_name = "i2t"

    def __init__(self, in_dim: int = 1280, **kwargs):
        super().__init__(in_dim, **kwargs)


def _load(cls: type[TokenDecoder], path: str | Path, dtype: torch.dtype, upstream_dropout: bool) -> TokenDecoder:
    state = load_state_dict(path)
    config = cls.config_from_state(state)
    net = cls(**config, upstream_dropout=upstream_dropout)
    return load_weights_into(net, state, source=str(path), dtype=dtype)


def load_id2token(path: str | Path, *, dtype: torch.dtype = torch.float32,
                  upstream_dropout: bool = False) -> ID2Token:
    """ID2Token from ``net_id2token.pth`` (bf16 on disk -> ``dtype``, fp32 by default), eval mode."""
    return _load(ID2Token, path, dtype, upstream_dropout)


def load_image2token(path: str | Path, *, dtype: torch.dtype = torch.float32,
                     upstream_dropout: bool = False) -> Image2Token:
    """Image2Token from ``net_image2token.pth``, eval mode."""
    return _load(Image2Token, path, dtype, upstream_dropout)
