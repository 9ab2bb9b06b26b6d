"""FaceX's FORS on Face-Adapter: pick each component from one of several faces, get Face-Adapter's inputs.

Components and what they drive:
- identity: the identity tokens (UNet prompt) and the 3D shape the landmarks are built on;
- expression, gaze: the expression / gaze the landmarks take;
- pose: head rotation and position, and so the crop the landmarks live in;
- appearance: the attribute tokens (ControlNet prompt: hair colour, lighting, skin, clothes);
- background: the 512 crop the control image is drawn on and the frames results go back into;
- hair: from the background face, the area keeps its hair; from another face, the background's hair
  is added to the area so the generator repaints it from the appearance tokens (needs BiSeNet parsing).
Face-Adapter has no separate light input: lighting travels with the appearance tokens, and the
D3DFR light/texture coefficients stay in the representation for other uses.

The landmarks are computed exactly as Project 3D Landmarks computes them (same functions, same
inputs), so a face assembled wholly from itself, or with identity from A and everything else from
B, reproduces that node's record bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np
import torch

from ..face.records import transform_points
from ..generate.attributes import FaceAttributes
from ..generate.identity import FaceIdentity
from ..spatial import area as area_ops
from ..spatial.condition import FacePair, PairPlan, ProjectedLandmarks
from ..spatial.landmark_drawing import draw_pts70
from ..spatial.mesh_topology import canonical_points70
from ..spatial.pose import POSE_POINTS_68, Similarity, rotation_from_angles
from ..spatial.projector_mesh import eye_gaze, transfer_expression, with_gaze
from ..spatial.projectors import BfmProjector
from ..spatial.record import FaceSpatial, build_spatial
from .regions import PARSING_BISENET, region_mask
from .representation import METHOD_BFM, FaceRepr

COMPONENTS = ("identity", "expression", "pose", "gaze", "appearance", "hair", "background")


@dataclass(frozen=True)
class Recipe:
    """Which face (index into the inputs) each component comes from."""

    identity: int = 0
    expression: int = 0
    pose: int = 0
    gaze: int = 0
    appearance: int = 0
    hair: Optional[int] = None  # None: the background face's own hair
    background: int = 0

    def task(self) -> str:
        """Face-Adapter's task for this recipe: the background is the pose face's crop (swap: the
        landmarks and the canvas share a crop) or the identity face's (reenact)."""
        if self.background == self.pose:
            return "swap"
        if self.background == self.identity:
            return "reenact"
        raise ValueError("FaceAdapter: the background must come from the pose face (face swap: the canvas is where "
                         "the head is) or from the identity face (reenactment: the identity's own photo is "
                         f"re-posed); got background {self.background}, pose {self.pose}, identity {self.identity}")


def _similarity(pose: np.ndarray) -> Similarity:
    return Similarity(float(pose[0]), pose[1:10].reshape(3, 3), pose[10:13])


def _bfm_handle(faces: Sequence[FaceRepr], bfm: Optional[BfmProjector]) -> BfmProjector:
    handle = bfm or next((f.bfm for f in faces if f.bfm is not None), None)
    if handle is None:
        raise ValueError("FaceAdapter: these faces were decomposed with d3dfr_bfm; connect Load 3D Face "
                         "Reconstructor (d3dfr_bfm) so their coefficients can be projected")
    return handle


def _same_method(faces: Sequence[FaceRepr]) -> str:
    methods = {f.method for f in faces}
    if len(methods) != 1:
        raise ValueError(f"FaceAdapter: faces decomposed with different 3D methods ({', '.join(sorted(methods))}) "
                         "cannot be mixed; decompose them all with one Load 3D Face Reconstructor")
    return methods.pop()


def composite(identity: FaceRepr, expression: FaceRepr, pose: FaceRepr, gaze: FaceRepr) -> FaceRepr:
    """The geometry of an assembled face as one FaceRepr: the identity face with the chosen expression,
    gaze and pose (and the pose face's crop, where the landmarks live). Pose-dependent fields are
    exactly ``pose`` and ``view``; everything else is the identity / expression / gaze faces'."""
    _same_method((identity, expression, pose, gaze))
    if expression is identity and pose is identity and gaze is identity:
        return identity
    return replace(identity, expression=expression.expression, gaze=gaze.gaze, pose=pose.pose, view=pose.view,
                   frame_size=pose.frame_size, bfm=identity.bfm or pose.bfm)


def own_points(face: FaceRepr, bfm: Optional[BfmProjector] = None) -> np.ndarray:
    """(70,2) float32 points in the face's 256 aligned frame: its shape with its expression, gaze and pose
    (edits included), by the same maths as the spatial stage's projectors (spatial/projectors.py)."""
    if face.method == METHOD_BFM:
        return _bfm_handle((face,), bfm).bfm().ready().get_lm70(face.coefficients())[0].numpy().astype(np.float32)
    out = transfer_expression(face.shape, face.expression)
    if not np.array_equal(face.gaze, eye_gaze(face.expression)):  # gaze edited or from another face
        out = with_gaze(out, face.gaze)
    frame = _similarity(face.pose).apply(out)
    return transform_points(frame[:, :2], face.view.frame_to_256).astype(np.float32)


def project_motion(identity: FaceRepr, expression: FaceRepr, pose: FaceRepr, gaze: FaceRepr,
                   bfm: Optional[BfmProjector] = None) -> np.ndarray:
    """(70,2) float32 points in the pose face's 256 aligned frame (see :func:`composite`)."""
    return own_points(composite(identity, expression, pose, gaze), bfm)


def _identity_record(face: FaceRepr) -> FaceIdentity:
    tokens = face.require("identity_tokens", "the identity face")
    embedding = face.require("identity_embedding", "the identity face")
    crop = face.view.aligned256()[None]
    crop.setflags(write=False)
    return FaceIdentity(tokens[None].clone(), embedding[None].clone(), (0,), crop)


def _attribute_record(face: FaceRepr) -> FaceAttributes:
    tokens = face.require("appearance_tokens", "the appearance face")
    crop = face.view.crop512[None]
    return FaceAttributes(tokens[None].clone(), (0,), crop, face.appearance_encoder)


def _hair_area(background: FaceRepr) -> torch.Tensor:
    if background.parsing is None or background.parsing_source != PARSING_BISENET:
        raise ValueError("FaceAdapter: hair from another face needs the background face's hair region, which only "
                         "BiSeNet parsing gives; choose a parsing model in FaceX Decompose for the background face "
                         "or take hair from the background face")
    return torch.from_numpy(region_mask(background.parsing, "hair"))


def assemble(faces: Sequence[FaceRepr], recipe: Recipe, bfm: Optional[BfmProjector] = None,
             need_tokens: bool = True) -> tuple[FaceSpatial, Optional[FaceIdentity], Optional[FaceAttributes]]:
    """FORS: the spatial record (one face pair), identity and attribute records Apply / Render take.

    ``need_tokens``: True raises when the chosen faces lack tokens; False gives None for a record whose
    tokens are absent (then encode them from the spatial record with Encode Identity / Attribute Template)."""
    for name in COMPONENTS:
        index = getattr(recipe, name)
        if index is None and name == "hair":
            continue
        if not 0 <= index < len(faces) or faces[index] is None:
            raise ValueError(f"FaceAdapter: {name} is taken from face {'ABCD'[index] if 0 <= index < 4 else index}, "
                             "which is not connected")
    pick = {name: faces[getattr(recipe, name)] for name in COMPONENTS if getattr(recipe, name) is not None}
    task = recipe.task()
    pts = project_motion(pick["identity"], pick["expression"], pick["pose"], pick["gaze"], bfm)[None]
    pts.setflags(write=False)
    source, target = pick["identity"], pick["pose"]
    plan = PairPlan(task, (FacePair(0, 0, source.view, target.view),), (target.frame_size,), (source.frame_size,))
    landmarks = ProjectedLandmarks(plan, pts, source.method)
    area = area_ops.hull_area(landmarks, task)
    if recipe.hair is not None and recipe.hair != recipe.background:
        area = torch.maximum(area, _hair_area(pick["background"])[None])
    spatial = build_spatial(landmarks, area)
    identity, appearance = pick["identity"], pick["appearance"]
    if not need_tokens:
        return (spatial, _identity_record(identity) if identity.identity_tokens is not None else None,
                _attribute_record(appearance) if appearance.appearance_tokens is not None else None)
    return spatial, _identity_record(identity), _attribute_record(appearance)


# ------------------------------------------------------------------------------------------------- edits
# Upper / lower inner-lip points that meet when the mouth is closed (iBUG 61-67, 62-66, 63-65).
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))


def neutral_points70() -> np.ndarray:
    """The neutral expression of the mesh path: mediapipe's canonical face with its lips closed (the
    canonical face holds its inner lips 0.08 inter-ocular distances apart; each upper / lower pair is
    moved to its midpoint)."""
    points = np.array(canonical_points70(), np.float64)
    for upper, lower in INNER_LIP_PAIRS:
        points[[upper, lower]] = (points[upper] + points[lower]) / 2.0
    points.setflags(write=False)
    return points


def scale_expression(face: FaceRepr, scale: float) -> FaceRepr:
    """Expression intensity: 0 = neutral, 1 = unchanged, >1 exaggerated. d3dfr_bfm scales the BFM
    expression coefficients (0 = the model's mean expression); mediapipe_mesh moves the canonical
    points the expression is read from towards the canonical (neutral, mouth closed) face."""
    if scale == 1.0:
        return face
    if face.method == METHOD_BFM:
        expression = (face.expression * np.float32(scale)).astype(np.float32)
    else:
        neutral = neutral_points70()
        expression = face.expression + (float(scale) - 1.0) * (face.expression - neutral)
    expression.setflags(write=False)
    return face.edited(f"expression x{scale:g}", expression=expression)


def offset_pose(face: FaceRepr, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> FaceRepr:
    """Pose offset in degrees (spatial/pose.py's convention: yaw > 0 turns the nose to the image's
    right, pitch > 0 tilts it up, roll > 0 turns the face clockwise), added to the Euler angles. The
    mesh path keeps the face's centre (mean of its pose points) where it was."""
    if yaw == pitch == roll == 0.0:
        return face
    if face.method == METHOD_BFM:
        pose = face.pose.astype(np.float32).copy()
        pose[:3] += np.radians(np.array([-pitch, yaw, -roll], np.float64)).astype(np.float32)
    else:
        sim = _similarity(face.pose)
        rotation = rotation_from_angles(*(face.angles + np.array([yaw, pitch, roll], np.float64)))
        centre = np.asarray(face.shape, np.float64)[list(POSE_POINTS_68)].mean(axis=0)
        shift = sim.translation + sim.scale * (sim.rotation - rotation) @ centre
        pose = np.concatenate([[sim.scale], rotation.reshape(-1), shift])
    pose.setflags(write=False)
    return face.edited(f"pose {yaw:+g}/{pitch:+g}/{roll:+g} deg", pose=pose)


def offset_gaze(face: FaceRepr, horizontal: float = 0.0, vertical: float = 0.0) -> FaceRepr:
    """Gaze offset in eye widths (x to the image's right, y down) for both eyes; nothing else moves."""
    if horizontal == vertical == 0.0:
        return face
    gaze = np.array(face.gaze, copy=True)
    if face.method == METHOD_BFM:
        gaze = (gaze + np.array([horizontal, vertical, horizontal, vertical], np.float32)).astype(np.float32)
    else:
        gaze[:, 0] += horizontal
        gaze[:, 1] += vertical
    gaze.setflags(write=False)
    return face.edited(f"gaze {horizontal:+g}/{vertical:+g} eye widths", gaze=gaze)


def drawn_points(face: FaceRepr, points: np.ndarray) -> np.ndarray:
    """(512,512,3) uint8: the official landmark drawing of ``points`` (in the face's 256 frame) in its 512 crop."""
    return draw_pts70(np.asarray(points)[None], face.view.warp256[None], 512)[0]
