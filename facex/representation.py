"""FACEADAPTER_FACE_REPR: one face decomposed (FaceX's FORD) on Face-Adapter's released networks.

FaceX splits a face into identity, intra-personal factors (motion: expression, pose, gaze; texture;
hair) and environment (light, background), and reassembles what a task needs. FaceX shipped no
weights, so the split is made of what Face-Adapter's networks already separate:

- identity: ID2Token tokens of the ArcFace map (what the UNet sees) + the 512-d ArcFace embedding;
- appearance: Image2Token tokens of the CLIP hidden states of the 512 crop (the attribute template);
- region features: CLIP patch tokens pooled over parsing regions (facex/regions.py);
- geometry and motion, in the units of the 3D method that measured them (``method``):
  * ``d3dfr_bfm``: D3DFR coefficients: shape = identity [0:80], expression [80:144], pose = angles
    (radians, BFM's x/y/z) + translation, gaze = pupil [257:261], light = SH gamma (27), texture (80);
  * ``mediapipe_mesh``: shape = the face's 70 points in the canonical frame (pose removed),
    expression = the canonical points expression is read from (region by region, see
    spatial/projector_mesh.py), pose = the canonical -> frame similarity (scale, rotation, shift),
    gaze = each iris centre in its eye's frame. The mesh gives no light or texture: those are absent.
- the crops and transforms it came from (the FaceView Face-Adapter's spatial stage uses), and the
  parsing label map.

Absent fields are None and named by :meth:`FaceRepr.absent`; a saved file lists them too.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np
import torch

from ..face.records import MEDIAPIPE_478
from ..generate.attributes import HiddenStates, encode_attributes
from ..generate.identity import encode_identity
from ..generate.nets import FaceAdapterNets
from ..models.d3dfr import COEFF_SLICES
from ..spatial.condition import FaceView
from ..spatial.pose import angles_from_rotation
from ..spatial.projector_mesh import eye_gaze, source_canonical
from ..spatial.projectors import BfmProjector, LandmarkProjector
from .regions import PARSING_BISENET, PARSING_MESH, bisenet_label_map, mesh_label_map, pool_region_features

log = logging.getLogger("FaceAdapter")
METHOD_BFM = "d3dfr_bfm"
METHOD_MESH = "mediapipe_mesh"
METHODS = (METHOD_BFM, METHOD_MESH)
OPTIONAL_FIELDS = ("identity_tokens", "identity_embedding", "appearance_tokens", "region_features", "parsing",
                   "light", "texture")


@dataclass(frozen=True, eq=False)
class FaceRepr:
    """One decomposed face (see the module doc). Never changes once made: edits return a new one."""

    view: FaceView
    frame_size: tuple[int, int]  # (height, width) of the frame the face came from
    method: str  # METHOD_BFM or METHOD_MESH: the units of shape / expression / pose / gaze
    shape: np.ndarray  # bfm (80,) float32 identity coefficients | mesh (70,3) float64 canonical points
    expression: np.ndarray  # bfm (64,) float32 | mesh (70,3) float64 canonical points
    pose: np.ndarray  # bfm (6,) float32 angles x,y,z (rad) + translation | mesh (13,) scale, R (9), shift (3)
    gaze: np.ndarray  # bfm (4,) float32 pupil coefficients | mesh (2,3) iris centres in eye frames
    light: Optional[np.ndarray] = None  # (27,) SH gamma, bfm only
    texture: Optional[np.ndarray] = None  # (80,) albedo coefficients, bfm only
    identity_tokens: Optional[torch.Tensor] = None  # (77,W) ID2Token output
    identity_embedding: Optional[torch.Tensor] = None  # (512,) ArcFace embedding (not normalised)
    appearance_tokens: Optional[torch.Tensor] = None  # (77,W) Image2Token output
    appearance_encoder: str = ""  # "vision_encoder" or "clip_vision"
    region_features: Optional[torch.Tensor] = None  # (R,C) CLIP patch means per regions.REGION_NAMES row
    region_present: Optional[torch.Tensor] = None  # (R,) bool
    parsing: Optional[np.ndarray] = None  # (512,512) uint8 BiSeNet label ids of the crop
    parsing_source: str = ""  # regions.PARSING_BISENET or regions.PARSING_MESH
    edits: tuple[str, ...] = ()  # what the edit nodes did, in order (shown and saved)
    bfm: Optional[BfmProjector] = field(default=None, repr=False)  # handle to project bfm motion (not saved)

    def absent(self) -> tuple[str, ...]:
        """Names of the fields this face does not have (the method or the models could not give them)."""
        return tuple(name for name in OPTIONAL_FIELDS if getattr(self, name) is None)

    def require(self, name: str, who: str = "this face") -> object:
        value = getattr(self, name)
        if value is None:
            how = {"identity_tokens": "connect Load Face-Adapter to FaceX Decompose",
                   "identity_embedding": "connect Load Face-Adapter to FaceX Decompose",
                   "appearance_tokens": "connect Load Face-Adapter (with its vision_encoder or a CLIP_VISION) to "
                                        "FaceX Decompose",
                   "parsing": "choose a parsing model (or mesh regions) in FaceX Decompose",
                   }.get(name, "decompose with the d3dfr_bfm reconstructor")
            raise ValueError(f"FaceAdapter: {who} has no {name} (absent: {', '.join(self.absent()) or 'none'}); "
                             f"{how}")
        return value

    @property
    def angles(self) -> np.ndarray:
        """(yaw, pitch, roll) in degrees, spatial/pose.py's convention, for both methods."""
        if self.method == METHOD_MESH:
            return np.array(angles_from_rotation(self.pose[1:10].reshape(3, 3)))
        x, y, z = (float(v) for v in np.degrees(self.pose[:3].astype(np.float64)))
        return np.array([y, -x, -z])  # BFM is y-up, z to the camera: the same Euler order, two axes flipped

    def coefficients(self) -> torch.Tensor:
        """(1,261) D3DFR coefficient vector rebuilt from the fields (bfm only)."""
        if self.method != METHOD_BFM:
            raise ValueError(f"FaceAdapter: a {self.method} face has no D3DFR coefficients")
        out = torch.zeros(1, 261, dtype=torch.float32)
        for name, value in (("id", self.shape), ("exp", self.expression), ("tex", self.texture),
                            ("angle", self.pose[:3]), ("gamma", self.light), ("trans", self.pose[3:]),
                            ("pupil", self.gaze)):
            out[0, COEFF_SLICES[name]] = torch.from_numpy(np.array(value, np.float32))
        return out

    def edited(self, note: str, **changes) -> "FaceRepr":
        return replace(self, edits=self.edits + (note,), **changes)


def _motion_bfm(projector: BfmProjector, view: FaceView) -> dict:
    coeffs = projector.coefficients([view])[0].numpy().astype(np.float32)
    part = {name: coeffs[s].copy() for name, s in COEFF_SLICES.items()}
    return dict(shape=part["id"], expression=part["exp"], pose=np.concatenate([part["angle"], part["trans"]]),
                gaze=part["pupil"], light=part["gamma"], texture=part["tex"], bfm=projector)


def _motion_mesh(view: FaceView) -> dict:
    points, pose = source_canonical(view.face)
    sim = pose.similarity
    return dict(shape=points, expression=points.copy(), gaze=eye_gaze(points),
                pose=np.concatenate([[sim.scale], sim.rotation.reshape(-1), sim.translation]).astype(np.float64))


def _read_only(values: dict) -> dict:
    for value in values.values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return values


@torch.no_grad()
def decompose(view: FaceView, frame_size: tuple[int, int], projector: LandmarkProjector,
              nets: Optional[FaceAdapterNets] = None, hidden_states: Optional[HiddenStates] = None,
              encoder: str = "", parsing_net=None, mesh_regions: bool = True) -> FaceRepr:
    """FORD: one face view -> FaceRepr, reusing the cached networks (the projector's D3DFR, the nets'
    ArcFace / ID2Token / Image2Token, the CLIP tower ``hidden_states``); nothing is loaded twice.

    Without ``nets`` identity and appearance are absent; without ``hidden_states`` appearance and
    region features are; parsing comes from ``parsing_net`` (BiSeNet) or, with ``mesh_regions``, the mesh."""
    if projector.method == METHOD_BFM:
        fields = _motion_bfm(projector, view)
    elif projector.method == METHOD_MESH:
        fields = _motion_mesh(view)
    else:
        raise ValueError(f"FaceAdapter: FaceX decomposes with {', '.join(METHODS)}, not {projector.method!r}")
    if parsing_net is not None:
        fields.update(parsing=bisenet_label_map(parsing_net, view), parsing_source=PARSING_BISENET)
    elif mesh_regions and view.face.landmarks is not None and view.face.landmark_format == MEDIAPIPE_478:
        fields.update(parsing=mesh_label_map(view), parsing_source=PARSING_MESH)
    elif mesh_regions:
        log.warning("FaceAdapter: FaceX Decompose: mesh regions need a mediapipe face (this one has %s landmarks); "
                    "parsing is absent", view.face.landmark_format)
    if nets is not None:
        identity = encode_identity([view], nets)
        fields.update(identity_tokens=identity.tokens[0], identity_embedding=identity.embeddings[0])
        if hidden_states is not None:
            seen: list[torch.Tensor] = []

            def keep(pixels: torch.Tensor) -> torch.Tensor:  # the one CLIP pass serves tokens and regions
                out = hidden_states(pixels)
                seen.append(out.detach().float().cpu())
                return out

            attributes = encode_attributes([view], nets, keep, encoder)
            fields.update(appearance_tokens=attributes.tokens[0], appearance_encoder=encoder)
            if fields.get("parsing") is not None:
                features, present = pool_region_features(seen[0][0], fields["parsing"], fields["parsing_source"])
                fields.update(region_features=features, region_present=present)
    return FaceRepr(view=view, frame_size=(int(frame_size[0]), int(frame_size[1])), method=projector.method,
                    **_read_only(fields))
