"""3D landmark projectors: source identity + target expression/pose -> 70 points.

Two interchangeable implementations behind one small interface (FACEADAPTER_RECONSTRUCTOR socket):
- :class:`BfmProjector` - upstream-exact: D3DFR coefficients on the 256 aligned crops,
  target coefficients with the source identity [0:80], BFM keypoints projected with the
  upstream camera, plus two gaze points. Needs the (non-commercial) BFM and D3DFR files.
- :class:`MeshProjector` - licence-clean default from the mediapipe 478-point mesh
  (see spatial/projector_mesh.py for the method and its limits).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np
import torch

from ..core import comfy_bridge as bridge
from ..core.cache import MODEL_CACHE, CachedModel
from ..models.bfm import BFM, mix_coefficients
from ..models.d3dfr import load_d3dfr
from .condition import FaceView, PairPlan, ProjectedLandmarks, distinct_views, nchw_unit


class LandmarkProjector(Protocol):
    method: str

    def project(self, sources: Sequence[FaceView], targets: Sequence[FaceView]) -> np.ndarray:
        """(N,70,2) float32 points, each in its target's 256 aligned frame."""
        ...


@dataclass(frozen=True)
class BfmProjector:
    """A handle: which files to use, not the networks.

    The D3DFR network and the BFM are fetched from the one model cache at each use, so
    ComfyUI's cached node output holds no network and the unload node really frees them
    (the next use reloads transparently).
    """

    d3dfr_path: Path
    bfm_path: Path
    device: Optional[torch.device] = None
    chunk: int = 16
    method: str = "d3dfr_bfm"

    def d3dfr(self) -> CachedModel:
        """D3DFR runs in fp32 like upstream's helper nets."""
        path = self.d3dfr_path
        return MODEL_CACHE.get("d3dfr_resnet50", [path], lambda: load_d3dfr(path, dtype=torch.float32),
                               dtype=torch.float32, device=self.device or bridge.torch_device())

    def bfm(self) -> CachedModel:
        path = self.bfm_path
        return MODEL_CACHE.get("bfm_front", [path], lambda: BFM.from_mat(path), dtype=torch.float32,
                               device=torch.device("cpu"))

    @torch.no_grad()
    def coefficients(self, views: Sequence[FaceView]) -> torch.Tensor:
        """(N,261) D3DFR coefficients, computed once per distinct view, in chunks."""
        item = self.d3dfr()
        net = item.ready()
        unique, index = distinct_views(views)
        out = []
        for start in range(0, len(unique), self.chunk):
            bridge.check_interrupt()
            crops = [v.aligned256() for v in unique[start:start + self.chunk]]
            out.append(net(nchw_unit(crops, item.device, item.dtype or torch.float32)).float().cpu())
        coeffs = torch.cat(out) if out else torch.zeros(0, 261)
        return coeffs[index]

    @torch.no_grad()
    def project(self, sources: Sequence[FaceView], targets: Sequence[FaceView]) -> np.ndarray:
        mixed = mix_coefficients(self.coefficients(sources), self.coefficients(targets))
        return self.bfm().ready().get_lm70(mixed).numpy().astype(np.float32)


@dataclass
class MeshProjector:
    """Licence-clean projector; needs faces detected by the mediapipe backend (478-point mesh)."""

    method: str = "mediapipe_mesh"

    def project(self, sources: Sequence[FaceView], targets: Sequence[FaceView]) -> np.ndarray:
        from .projector_mesh import project_landmarks_mesh, source_canonical

        unique, index = distinct_views(sources)
        fits = [source_canonical(v.face) for v in unique]  # once per source image, not per frame
        return np.stack([project_landmarks_mesh(s.face, t.face, t.frame_to_256, fits[k]).points
                         for s, t, k in zip(sources, targets, index)]).astype(np.float32)


def load_bfm_projector(d3dfr_path: Path, bfm_path: Path, device: Optional[torch.device] = None) -> BfmProjector:
    """Load both files into the shared cache now (so a bad file fails at the loader) and return a handle."""
    projector = BfmProjector(Path(d3dfr_path), Path(bfm_path), device)
    projector.d3dfr()
    projector.bfm()
    return projector


def project_pairs(projector: LandmarkProjector, plan: PairPlan) -> ProjectedLandmarks:
    """Project every pair of the plan (frames without a pair have no row)."""
    pts = np.zeros((len(plan.pairs), 70, 2), np.float32)
    if plan.pairs:
        bridge.check_interrupt()
        pts[:] = projector.project([p.source for p in plan.pairs], [p.target for p in plan.pairs])
    pts.setflags(write=False)
    return ProjectedLandmarks(plan, pts, projector.method)
