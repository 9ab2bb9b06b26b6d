"""Adapting-area and blend masks of the official Face-Adapter pipeline (torch, (B,1,H,W)).

* Reenactment: the adapting-area UNet's sigmoid thresholded at 0.5.
* Swapping: groups of BiSeNet labels (CelebAMask-HQ ids, see models/bisenet.py)
  face = {1-5, 10-13}, face+ears = {1-13} - {6, 9}, occlusion = {6, 9, 15, 18};
  mask = max(face+ears, maxpool65(face)) * (1 - occlusion), then maxpool5.
  So the editable area is the face grown by 32 px, minus glasses/earrings/necklace/hat.
* Blend (both tasks): pad 16, maxpool k17, avgpool k17, crop back - a mask grown by
  8 px with an 8 px linear ramp, so generated pixels fade into the background.

When no parsing model is available, ``landmark_hull_mask`` builds a stand-in face
region from the 68/70 landmarks and runs it through the same swap-mask maths.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..face.records import invert_affine, transform_points

__all__ = [
    "ADAPTING_AREA_THRESHOLD", "FACE_LABELS", "FACE_EAR_LABELS", "OCCLUSION_LABELS",
    "adapting_area_mask", "parsing_labels", "label_groups", "label_png_groups", "swap_mask",
    "swap_mask_from_labels", "blend_mask", "landmark_hull_mask", "points_256_to_crop",
]

ADAPTING_AREA_THRESHOLD = 0.5
FACE_LABELS = (1, 2, 3, 4, 5, 10, 11, 12, 13)
FACE_EAR_LABELS = (1, 2, 3, 4, 5, 7, 8, 10, 11, 12, 13)
OCCLUSION_LABELS = (6, 9, 15, 18)
FACE_GROW_KERNEL = 65
FINAL_GROW_KERNEL = 5
BLEND_PAD = 16
BLEND_KERNEL = 17


def _per_plane(mask: torch.Tensor, op) -> torch.Tensor:
    """Apply a 2-D OpenCV op to every (H,W) plane of a CPU (B,C,H,W) float tensor."""
    planes = mask.detach().to(torch.float32).reshape(-1, *mask.shape[-2:]).numpy()
    out = np.stack([op(np.ascontiguousarray(p)) for p in planes]) if len(planes) else planes
    return torch.from_numpy(out).reshape(mask.shape).to(mask.dtype)


def _grow(mask: torch.Tensor, kernel: int) -> torch.Tensor:
    """Binary dilation by a square of odd side ``kernel`` (= max-pool k, stride 1, same size).

    On the CPU OpenCV's dilation (constant time per pixel) replaces torch's k^2 max-pool,
    which took 0.4 s per 512^2 mask for upstream's 65-px face growth; elsewhere a k x k
    pool is done as 1 x k then k x 1 (equal, 2k instead of k^2 per pixel)."""
    if mask.device.type == "cpu":
        element = np.ones((kernel, kernel), np.uint8)
        return _per_plane(mask, lambda p: cv2.dilate(p, element, borderType=cv2.BORDER_CONSTANT,
                                                     borderValue=-np.inf))
    return _grow_separable(mask, kernel)


def _grow_separable(mask: torch.Tensor, kernel: int) -> torch.Tensor:
    half = kernel // 2
    rows = F.max_pool2d(mask, kernel_size=(1, kernel), stride=1, padding=(0, half))
    return F.max_pool2d(rows, kernel_size=(kernel, 1), stride=1, padding=(half, 0))


def _box_mean(mask: torch.Tensor, kernel: int) -> torch.Tensor:
    """k x k mean with zero padding counted: upstream's own avg_pool2d (one k x k sum, then one
    division), because a separable or OpenCV box filter rounds differently in the last bit."""
    return F.avg_pool2d(mask, kernel_size=kernel, stride=1, padding=kernel // 2, count_include_pad=True)


def _in(labels: torch.Tensor, ids: tuple[int, ...]) -> torch.Tensor:
    return torch.isin(labels, torch.tensor(ids, device=labels.device)).float()


def adapting_area_mask(probability: torch.Tensor, threshold: float = ADAPTING_AREA_THRESHOLD) -> torch.Tensor:
    """UNet sigmoid output -> binary float mask (strictly greater than the threshold)."""
    return (probability > threshold).to(probability.dtype if probability.is_floating_point() else torch.float32)


def parsing_labels(logits: torch.Tensor, size: Optional[int] = None) -> torch.Tensor:
    """BiSeNet logits (B,19,h,w) -> labels (B,1,size,size) long; bilinear resize then argmax."""
    if size is not None and tuple(logits.shape[2:]) != (size, size):
        logits = F.interpolate(logits, (size, size), mode="bilinear", align_corners=False)
    return logits.argmax(dim=1, keepdim=True)


def label_groups(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B,1,H,W) label ids -> float (face, face+ears, occlusion) masks."""
    return _in(labels, FACE_LABELS), _in(labels, FACE_EAR_LABELS), _in(labels, OCCLUSION_LABELS)


def label_png_groups(png_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Groups for the upstream *precomputed* mask PNG (``<target>/mask/*.png``).

    Upstream reads it as round(value * 20 / 255) and takes face = 2..11,
    face+ears = 2..13, occlusion = 15..19. That file's label scheme is not documented
    (it is not the BiSeNet one), so this exists only to reproduce those files.
    """
    labels = torch.round(png_values.float() * (20.0 / 255)).long()
    face = ((labels > 1) & (labels < 12)).float()
    face_ears = ((labels > 1) & (labels < 14)).float()
    occlusion = ((labels > 14) & (labels < 20)).float()
    return face, face_ears, occlusion


def swap_mask(face: torch.Tensor, face_ears: torch.Tensor, occlusion: Optional[torch.Tensor] = None,
              face_grow: int = FACE_GROW_KERNEL, final_grow: int = FINAL_GROW_KERNEL) -> torch.Tensor:
    """max(face+ears, grow65(face)) * (1 - occlusion), then grow5."""
    mask = torch.maximum(face_ears, _grow(face, face_grow))
    if occlusion is not None:
        mask = mask * (1 - occlusion)
    return _grow(mask, final_grow)


def swap_mask_from_labels(labels: torch.Tensor) -> torch.Tensor:
    """BiSeNet label map (B,1,H,W) -> the official face-swap adapting area."""
    return swap_mask(*label_groups(labels))


def blend_mask(mask: torch.Tensor, pad: int = BLEND_PAD, kernel: int = BLEND_KERNEL) -> torch.Tensor:
    """Soft paste mask: zero-pad, max-pool k, avg-pool k (zero padding counted), crop back."""
    padded = F.pad(mask, (pad, pad, pad, pad), mode="constant", value=0.0)
    soft = _box_mean(_grow(padded, kernel), kernel)
    return soft[:, :, pad:pad + mask.shape[2], pad:pad + mask.shape[3]]


def points_256_to_crop(points: np.ndarray, warp_mat256: np.ndarray) -> np.ndarray:
    """Map (...,2) points from the 256 aligned crop back to the 512 crop (inverse of the 2x3 warp)."""
    pts = np.asarray(points, dtype=np.float64)
    flat = transform_points(pts.reshape(-1, pts.shape[-1])[:, :2], invert_affine(warp_mat256))
    return flat.reshape(*pts.shape[:-1], 2)


def _hull_polygon(points68: np.ndarray, forehead: float) -> np.ndarray:
    """Jaw + brows, with the brows pushed away from the chin to cover the forehead."""
    chin, brows = points68[8], points68[17:27]
    up = brows.mean(axis=0) - chin
    lifted = brows + forehead * up
    return np.concatenate([points68[:17], brows, lifted, points68[27:68]], axis=0)


def landmark_hull_mask(points: np.ndarray | torch.Tensor, size: int = 512,
                       warp_mat256: Optional[np.ndarray] = None, forehead: float = 0.3,
                       grow: bool = True) -> torch.Tensor:
    """Fallback swap mask from landmarks when no BiSeNet weights are installed.

    ``points``: (B,68|70,2); only the first 68 are used. In the ``size`` frame, or in
    the 256 aligned crop if ``warp_mat256`` (B,2,3) is given. The convex hull of jaw,
    brows, nose, eyes and mouth - with the brows lifted by ``forehead`` x (brow-chin
    distance) to stand in for the skin up to the hairline - plays the role of both
    "face" and "face+ears"; with ``grow`` it then goes through ``swap_mask`` (no
    occlusion is known). It is an approximation: no ears, hair or glasses handling.
    """
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().numpy()
    points = np.asarray(points, dtype=np.float64)[:, :68]
    masks = np.zeros((len(points), 1, size, size), dtype=np.float32)
    for i, pts in enumerate(points):
        if warp_mat256 is not None:
            pts = points_256_to_crop(pts, np.asarray(warp_mat256).reshape(-1, 2, 3)[i])
        hull = cv2.convexHull(np.round(_hull_polygon(pts, forehead)).astype(np.int32))
        canvas = np.zeros((size, size), dtype=np.uint8)
        cv2.fillConvexPoly(canvas, hull, 1)
        masks[i, 0] = canvas
    face = torch.from_numpy(masks)
    return swap_mask(face, face) if grow else face
