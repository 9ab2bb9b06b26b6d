"""Face regions for FaceX: one label map per face, in BiSeNet's CelebAMask-HQ label ids.

BiSeNet (Face-Adapter's ``79999_iter.pth``) gives the map directly; a mediapipe-only install draws it
from the mesh's 68 iBUG points (skin, brows, eyes, nose, lips, mouth). The mesh knows nothing of ears
and hair, so those regions are absent there, never guessed. Region features pool CLIP's patch tokens
over each region (FaceX's region features, built on Face-Adapter's CLIP tower).
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..face.records import MEDIAPIPE_478, transform_points
from ..spatial.condition import CROP, FaceView, nchw_unit
from ..spatial.masks import landmark_hull_mask, parsing_labels
from ..spatial.mesh_topology import BROWS, EYES, INNER_LIPS, NOSE, OUTER_LIPS, interocular, mesh_to_points70

# Region name -> BiSeNet (CelebAMask-HQ) label ids.
REGIONS: dict[str, tuple[int, ...]] = {
    "brows": (2, 3), "eyes": (4, 5), "nose": (10,), "lips": (11, 12, 13), "ears": (7, 8), "skin": (1,),
    "hair": (17,),
}
REGION_NAMES: tuple[str, ...] = tuple(REGIONS)
MESH_REGIONS: tuple[str, ...] = ("brows", "eyes", "nose", "lips", "skin")  # what the mesh can draw
PARSING_BISENET = "bisenet19"
PARSING_MESH = "mediapipe_mesh"
BROW_THICKNESS_IOD = 0.07  # brows are drawn as lines this thick (inter-ocular distances)


def mesh_label_map(view: FaceView) -> np.ndarray:
    """(512,512) uint8 label map of the view's 512 crop drawn from its mediapipe mesh."""
    face = view.face
    if face.landmark_format != MEDIAPIPE_478 or face.landmarks is None:
        raise ValueError("FaceAdapter: mesh regions need a face from the mediapipe backend (478-point mesh); "
                         f"this face has {face.landmark_format!r} landmarks. Choose a BiSeNet parsing model instead")
    pts = transform_points(mesh_to_points70(np.asarray(face.landmarks))[:, :2], view.matrix512)
    labels = (landmark_hull_mask(pts[None, :68], CROP, grow=False)[0, 0].numpy() > 0).astype(np.uint8)

    def poly(indices: tuple[int, ...], label: int, convex: bool = False) -> None:
        p = np.round(pts[list(indices)]).astype(np.int32)
        (cv2.fillConvexPoly(labels, cv2.convexHull(p), label) if convex else cv2.fillPoly(labels, [p], label))

    thickness = max(int(round(BROW_THICKNESS_IOD * interocular(pts))), 1)
    for brow, label in zip(BROWS, (2, 3)):
        cv2.polylines(labels, [np.round(pts[list(brow)]).astype(np.int32)], False, label, thickness)
    for eye, label in zip(EYES, (4, 5)):
        poly(eye, label)
    poly(NOSE, 10, convex=True)
    poly(OUTER_LIPS, 12)
    poly(INNER_LIPS, 11)
    return labels


@torch.no_grad()
def bisenet_label_map(net, view: FaceView) -> np.ndarray:
    """(512,512) uint8 BiSeNet labels of the view's 512 crop (``net``: the cached parsing network)."""
    model = net.ready()
    logits = model(nchw_unit(view.crop512[None].copy(), net.device, torch.float32))
    return parsing_labels(logits, CROP)[0, 0].to(torch.uint8).cpu().numpy()


def region_mask(labels: np.ndarray, region: str) -> np.ndarray:
    """(512,512) float32 0/1 mask of one named region."""
    if region not in REGIONS:
        raise ValueError(f"FaceAdapter: unknown region {region!r}; regions are {', '.join(REGION_NAMES)}")
    return np.isin(labels, REGIONS[region]).astype(np.float32)


def available_regions(source: str) -> tuple[str, ...]:
    return REGION_NAMES if source == PARSING_BISENET else MESH_REGIONS


def pool_region_features(hidden: torch.Tensor, labels: np.ndarray, source: str) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP hidden states (257,C) of the crop -> ((R,C) region means of the patch tokens, (R,) bool present).

    The crop is square, so CLIP's resize to 224 keeps it whole and patch (i, j) covers the same
    1/grid of the 512 crop; each region's mask is area-pooled to the patch grid and used as weights."""
    patches = hidden[1:].to(torch.float32)
    grid = int(round(patches.shape[0] ** 0.5))
    if grid * grid != patches.shape[0]:
        raise ValueError(f"FaceAdapter: CLIP hidden states have {patches.shape[0]} patch tokens, not a square grid")
    features = torch.zeros(len(REGION_NAMES), patches.shape[1])
    present = torch.zeros(len(REGION_NAMES), dtype=torch.bool)
    usable = available_regions(source)
    for r, name in enumerate(REGION_NAMES):
        if name not in usable:
            continue
        mask = torch.from_numpy(region_mask(labels, name))[None, None]
        weight = F.adaptive_avg_pool2d(mask, grid).reshape(-1)
        if float(weight.sum()) > 0:
            features[r] = (weight[:, None] * patches).sum(0) / weight.sum()
            present[r] = True
    return features, present


def regions_overlay(crop: np.ndarray, labels: Optional[np.ndarray]) -> np.ndarray:
    """(512,512,3) uint8: the crop with each region tinted its own colour (preview)."""
    if labels is None:
        return crop.copy()
    colors = np.array([[255, 200, 0], [0, 160, 255], [255, 80, 80], [220, 0, 180], [120, 255, 120],
                       [255, 170, 120], [150, 90, 40]], np.float32)
    out = crop.astype(np.float32)
    for r, name in enumerate(REGION_NAMES):
        m = region_mask(labels, name)[..., None] * 0.45
        out = out * (1 - m) + colors[r] * m
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
