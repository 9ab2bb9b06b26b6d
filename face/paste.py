"""Paste-back: warp processed crops into the full frames at native resolution.

Each crop goes back through the inverse of its FACEADAPTER_CROP_TRANSFORMS matrix, blended
with the given MASK as it is (soft values kept: upstream's gen*m + bg*(1-m)) or a face mask
from the landmarks, optionally feathered on top.
Only the frame region under the crop is touched, so frames of any size cost
what the crop costs, and frames without a crop pass through bit-identical.
The warp back is core/warp's, like the crop's: OpenCV 4.x's bilinear values whatever OpenCV is
installed (OpenCV 5's float warpAffine moves values by up to 1/60).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import cv2
import numpy as np
import torch

from ..core.images import frame_float
from ..core.warp import warp_affine
from .align import TEMPLATE_256, fivepoint_similarity, warp_to_crop
from .records import CropBatch, FaceCrop, invert_affine, transform_points

COLOR_MATCH = ("off", "mean_std")
# Face oval used when a face has only five points: an ellipse in the 256 template frame
# (eyes at y~103, mouth at y~184), big enough to reach brows and chin.
_OVAL_CENTRE_256 = (128.0, 138.0)
_OVAL_AXES_256 = (76.0, 100.0)


def _oval_256(points: int = 64) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, points, endpoint=False)
    return np.column_stack([_OVAL_CENTRE_256[0] + _OVAL_AXES_256[0] * np.cos(t),
                            _OVAL_CENTRE_256[1] + _OVAL_AXES_256[1] * np.sin(t)])


def face_mask(crop: FaceCrop, size: Optional[int] = None) -> np.ndarray:
    """Hard face mask (float32 0/1, crop space): hull of the dense landmarks, else an oval from the 5 points."""
    size = size or crop.size
    scale = size / crop.size
    if crop.face.landmarks is not None and len(crop.face.landmarks) >= 8:
        outline = crop.to_crop(crop.face.landmarks) * scale
    else:
        kps = crop.to_crop(crop.face.kps5) * scale
        outline = transform_points(_oval_256(), fivepoint_similarity(TEMPLATE_256, kps))
    mask = np.zeros((size, size), np.uint8)
    hull = cv2.convexHull(np.round(outline * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(np.float32)


def face_masks(crops: CropBatch) -> torch.Tensor:
    """MASK [N, S, S] of every crop's hard face mask (empty batch when there are no crops)."""
    side = crops.crops[0].size if crops.crops else 64
    masks = torch.zeros((len(crops), side, side), dtype=torch.float32)
    for k, crop in enumerate(crops.crops):
        masks[k] = torch.from_numpy(face_mask(crop, side))
    return masks


def feather_mask(mask: np.ndarray, feather: float) -> np.ndarray:
    """Blend weights: the mask as given, optionally faded out over ``feather`` px at its edge.

    ``feather`` 0 returns the mask unchanged (soft values kept), so a soft blend mask gives
    exactly upstream's ``gen*m + bg*(1-m)``. With ``feather`` > 0 the mask is multiplied by a
    smoothstep of the distance to where it is 0 (and to the crop's border): never a threshold,
    and exactly the mask deeper than ``feather`` inside it."""
    mask = np.asarray(mask, np.float32)
    if feather <= 0:
        return mask
    support = (mask > 0).astype(np.uint8)
    support[0, :] = support[-1, :] = 0
    support[:, 0] = support[:, -1] = 0
    distance = cv2.distanceTransform(support, cv2.DIST_L2, 5)
    ramp = np.clip(distance / float(feather), 0.0, 1.0)
    return mask * (ramp * ramp * (3.0 - 2.0 * ramp))


def match_colors(processed: np.ndarray, original: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Move the processed crop's colour statistics (Lab mean/std inside the mask) to the original's."""
    inside = weights > 0.5
    if inside.sum() < 16:
        return processed
    lab_p = cv2.cvtColor(np.clip(processed, 0, 1).astype(np.float32), cv2.COLOR_RGB2Lab)
    lab_o = cv2.cvtColor(np.clip(original, 0, 1).astype(np.float32), cv2.COLOR_RGB2Lab)
    mean_p, std_p = lab_p[inside].mean(axis=0), lab_p[inside].std(axis=0)
    mean_o, std_o = lab_o[inside].mean(axis=0), lab_o[inside].std(axis=0)
    lab = (lab_p - mean_p) * (std_o / np.maximum(std_p, 1e-3)) + mean_o
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB), 0.0, 1.0)


# Crop-space change (max over RGB, lightly blurred) below which the frame keeps its own pixels,
# and above which the crop is pasted as it is; in between the two blend.
UNCHANGED_BELOW = 1.0 / 255.0
CHANGED_ABOVE = 4.0 / 255.0


def unchanged_weights(delta: np.ndarray) -> np.ndarray:
    """1 where the processed crop equals the original crop, 0 where it was edited."""
    change = cv2.GaussianBlur(np.abs(delta).max(axis=-1).astype(np.float32), (0, 0), 1.0)
    t = np.clip((change - UNCHANGED_BELOW) / (CHANGED_ABOVE - UNCHANGED_BELOW), 0.0, 1.0)
    return 1.0 - t * t * (3.0 - 2.0 * t)


def paste_one(frame: np.ndarray, frame_mask: np.ndarray, crop_image: np.ndarray, crop: FaceCrop,
              weights: np.ndarray, color_match: str = "off", preserve_unchanged: bool = True) -> None:
    """Blend one crop into ``frame`` (float32 HxWx3, edited in place) and max its weights into ``frame_mask``.

    With ``preserve_unchanged`` only the crop's *change* is warped back where the
    crop is (nearly) unchanged, so those pixels keep the frame's native detail
    instead of a twice-resampled copy; edited areas are pasted as they are.
    """
    side = crop_image.shape[0]
    if crop_image.shape[1] != side:
        raise ValueError(f"crops must be square, got {crop_image.shape[1]}x{side}")
    matrix = np.asarray(crop.matrix, np.float64) * (side / crop.size)  # frame -> this crop's pixels
    original = warp_to_crop(frame, matrix, side)
    if color_match == "mean_std":
        crop_image = match_colors(crop_image, original, weights)
    delta = crop_image - original
    keep = unchanged_weights(delta) if preserve_unchanged else np.zeros((side, side), np.float32)
    corners = np.array([[0, 0], [side, 0], [side, side], [0, side]], np.float64)
    footprint = transform_points(corners, invert_affine(matrix))
    h, w = frame.shape[:2]
    x0, y0 = np.clip(np.floor(footprint.min(axis=0)).astype(int) - 1, 0, [w, h])
    x1, y1 = np.clip(np.ceil(footprint.max(axis=0)).astype(int) + 1, 0, [w, h])
    if x1 <= x0 or y1 <= y0:
        return
    roi_matrix = matrix.copy()
    roi_matrix[:, 2] += matrix[:, :2] @ np.array([x0, y0], np.float64)

    def back(channels: np.ndarray) -> np.ndarray:  # the crop's pixels -> the frame's ROI, like the crop was cut
        return warp_affine(np.ascontiguousarray(channels, np.float32), roi_matrix, (int(x1 - x0), int(y1 - y0)),
                           inverse_map=True, border_value=0)

    pasted = back(np.dstack([crop_image, weights]))  # crop RGB + blend weight
    changed = back(np.dstack([delta, keep]))  # crop change + "unchanged" weight
    alpha, k = pasted[..., 3:], changed[..., 3:]
    roi = frame[y0:y1, x0:x1]
    roi += alpha * ((1.0 - k) * (pasted[..., :3] - roi) + k * changed[..., :3])
    np.maximum(frame_mask[y0:y1, x0:x1], alpha[..., 0], out=frame_mask[y0:y1, x0:x1])


def _crop_weights(crops: CropBatch, index: int, side: int, mask: Optional[torch.Tensor], feather: float) -> np.ndarray:
    """Blend weights for crop ``index``: the given MASK (one per crop, or one for all) or the face mask."""
    if mask is None:
        base = face_mask(crops.crops[index], side)
    else:
        m = mask if mask.ndim == 3 else mask.unsqueeze(0)
        base = m[index if m.shape[0] > 1 else 0].detach().float().cpu().numpy()
        if base.shape != (side, side):
            base = cv2.resize(base, (side, side), interpolation=cv2.INTER_LINEAR)
    return feather_mask(base, feather * side / crops.crops[index].size)


def paste_batch(image: torch.Tensor, crop_images: torch.Tensor, crops: CropBatch, mask: Optional[torch.Tensor] = None,
                feather: float = 16.0, color_match: str = "off", preserve_unchanged: bool = True,
                step: Optional[Callable[[], None]] = None,
                frame_of: Optional[Sequence[int]] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste every crop back into its frame; returns (IMAGE [B,H,W,3], MASK [B,H,W] of the weights used).

    ``mask`` is in crop space: one per crop, or a single one for all crops; used as given
    (soft values kept) and feathered on top only when ``feather`` > 0.
    ``feather`` is in pixels of the crop size the transforms were made for.
    ``frame_of[b]`` is the IMAGE frame output frame ``b`` is built on (default: frame ``b``), so one
    source photo can take a different reenacted face per driving frame.
    """
    if color_match not in COLOR_MATCH:
        raise ValueError(f"color_match must be one of {', '.join(COLOR_MATCH)}")
    if crop_images.shape[0] != len(crops):
        raise ValueError(f"got {crop_images.shape[0]} crop images but the transforms describe {len(crops)} crops; "
                         "connect the crops made from the same Crop Faces / spatial record (same order)")
    if mask is not None and mask.ndim == 3 and mask.shape[0] not in (1, len(crops)):
        raise ValueError(f"MASK has {mask.shape[0]} masks; give one per crop ({len(crops)}) or a single one")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    height, width = image.shape[1], image.shape[2]
    frame_of = list(range(image.shape[0])) if frame_of is None else list(frame_of)
    frames = len(frame_of)
    if crops.frame_sizes and (len(crops.frame_sizes) != frames or crops.frame_sizes[0] != (height, width)):
        raise ValueError(f"the transforms were made for {len(crops.frame_sizes)} frame(s) of "
                         f"{crops.frame_sizes[0][1]}x{crops.frame_sizes[0][0]}, but IMAGE has {image.shape[0]} of "
                         f"{width}x{height}")
    out = torch.empty((frames, height, width, 3), dtype=torch.float32)
    out_mask = torch.zeros((frames, height, width), dtype=torch.float32)
    by_frame: dict[int, list[int]] = {}
    for k, crop in enumerate(crops.crops):
        by_frame.setdefault(crop.frame_index, []).append(k)
    for fi in range(frames):
        frame = frame_float(image, frame_of[fi])
        frame_mask = out_mask[fi].numpy()
        for k in by_frame.get(fi, []):
            crop_image = frame_float(crop_images, k, writable=False)  # gray crops expanded, alpha dropped
            weights = _crop_weights(crops, k, crop_image.shape[0], mask, feather)
            paste_one(frame, frame_mask, crop_image, crops.crops[k], weights, color_match, preserve_unchanged)
        out[fi] = torch.from_numpy(frame)
        if step is not None:
            step()
    return out.clamp_(0.0, 1.0), out_mask
