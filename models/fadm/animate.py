"""face-vid2vid reenactment: head pose + expression -> driving keypoints -> generator.

Upstream FADM's demo drives in **absolute** mode: every frame's keypoints are the source's canonical
keypoints under the driving frame's own rotation, translation and expression. ``relative=True`` instead
moves the source's keypoints by the driving keypoints' change since a reference frame (the first frame of
the video), FOMM's relative mode without movement-scale adaptation, so a source whose pose differs from the
video's keeps its own pose. Pose quirks kept from upstream: degrees = softmax(bins)·[0..65]·3 − 99,
radians with 3.14, R = pitch·yaw·roll.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...core.loading import flatten_state, load_weights_into, read_checkpoint
from .blocks import relative_keypoints
from .facevid import FacevidConfig, HEEstimator, KPDetector, OcclusionAwareGenerator

__all__ = ["FacevidNets", "SourceState", "headpose_degrees", "rotation_matrix", "transform_keypoints",
           "prepare_source", "animate", "load_facevid", "FACEVID_PARTS"]

FACEVID_PARTS = ("kp_detector", "he_estimator", "generator")
PI_UPSTREAM = 3.14  # upstream's degrees-to-radians constant (not math.pi)


class FacevidNets(nn.Module):
    """The three face-vid2vid networks of one ``Facevid.pth``."""

    def __init__(self, config: FacevidConfig = FacevidConfig()):
        super().__init__()
        self.config = config
        self.kp_detector = KPDetector(config)
        self.he_estimator = HEEstimator(config)
        self.generator = OcclusionAwareGenerator(config)


@dataclass(frozen=True)
class SourceState:
    """What a source image contributes to every frame: computed once per video."""

    volume: torch.Tensor  # (1, C, D, h, w) generator appearance volume
    kp_canonical: torch.Tensor  # (1, K, 3)
    kp_source: torch.Tensor  # (1, K, 3) canonical keypoints under the source's own pose


def headpose_degrees(logits: torch.Tensor) -> torch.Tensor:
    """(B, 66) bin logits -> (B,) degrees: expectation over 3-degree bins starting at -99."""
    bins = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return (F.softmax(logits, dim=1) * bins).sum(dim=1) * 3 - 99


def rotation_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(B,) degrees each -> (B, 3, 3) = R_pitch(x) · R_yaw(y) · R_roll(z)."""
    y, p, r = (a / 180 * PI_UPSTREAM for a in (yaw, pitch, roll))
    one, zero = torch.ones_like(p), torch.zeros_like(p)

    def mat(*rows: torch.Tensor) -> torch.Tensor:
        return torch.stack(rows, dim=1).view(-1, 3, 3)

    pitch_m = mat(one, zero, zero, zero, p.cos(), -p.sin(), zero, p.sin(), p.cos())
    yaw_m = mat(y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos())
    roll_m = mat(r.cos(), -r.sin(), zero, r.sin(), r.cos(), zero, zero, zero, one)
    return torch.einsum("bij,bjk,bkm->bim", pitch_m, yaw_m, roll_m)


def transform_keypoints(kp_canonical: torch.Tensor, he: dict[str, torch.Tensor]) -> torch.Tensor:
    """Canonical (B|1, K, 3) keypoints under a head-pose/expression estimate: R·kp + t + exp."""
    rot = rotation_matrix(headpose_degrees(he["yaw"]), headpose_degrees(he["pitch"]), headpose_degrees(he["roll"]))
    kp = kp_canonical.expand(rot.shape[0], *kp_canonical.shape[1:])
    rotated = torch.einsum("bmp,bkp->bkm", rot, kp)
    return rotated + he["t"].unsqueeze(1) + he["exp"].view(rot.shape[0], -1, 3)


@torch.no_grad()
def prepare_source(nets: FacevidNets, source: torch.Tensor) -> SourceState:
    """(1,3,H,W) source in [0,1] -> its volume, canonical and posed keypoints."""
    kp_canonical = nets.kp_detector(source)
    kp_source = transform_keypoints(kp_canonical, nets.he_estimator(source))
    return SourceState(nets.generator.encode(source), kp_canonical, kp_source)


@torch.no_grad()
def animate(nets: FacevidNets, source: SourceState | torch.Tensor, driving: torch.Tensor, *,
            relative: bool = False, reference: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Coarse frames (N,3,H,W) in [0,1] for driving frames (N,3,H,W) in [0,1], one batched forward.

    ``relative``: keypoints = source keypoints + (driving − reference) keypoints, ``reference`` being
    the video's first frame (default: ``driving[:1]``; pass it explicitly when streaming chunks)."""
    state = source if isinstance(source, SourceState) else prepare_source(nets, source)
    kp_driving = transform_keypoints(state.kp_canonical, nets.he_estimator(driving))
    if relative:
        ref = driving[:1] if reference is None else reference
        kp_reference = transform_keypoints(state.kp_canonical, nets.he_estimator(ref))
        kp_driving = relative_keypoints(state.kp_source, kp_driving, kp_reference)
    return nets.generator.decode(state.volume, kp_driving, state.kp_source)


def load_facevid(path: str | Path, config: FacevidConfig = FacevidConfig(), *,
                 dtype: Optional[torch.dtype] = None) -> FacevidNets:
    """``Facevid.pth`` (dict of the three state dicts) -> FacevidNets in eval mode, each part strictly checked."""
    checkpoint = read_checkpoint(path)
    nets = FacevidNets(config)
    for part in FACEVID_PARTS:
        state = flatten_state(checkpoint, str(path), sub_key=part)
        load_weights_into(getattr(nets, part), state, source=f"{path} ['{part}']", dtype=dtype)
    return nets.eval()
