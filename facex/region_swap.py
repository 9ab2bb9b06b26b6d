"""FaceX region assembler at image level: chosen regions (eyes + brows, lips, ...) of a donor face in a
target face's 512 crop, via the parsing masks of both (BiSeNet, or mesh regions with mediapipe only).

The donor crop is aligned to the target crop by a similarity fitted on the landmarks of the chosen
regions (so lips land on lips even when the faces differ in proportions), its region masks are warped
along, and the union with the target's own regions is blended in (the target's own eyes must not show
beside the donor's). The result is a 512 crop plus the target's crop transform, for Paste Faces.
"""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

from ..face.align import FACEADAPTER_512, procrustes_matrix, warp_to_crop
from ..face.paste import match_colors
from ..face.records import CropBatch, FaceCrop
from ..spatial.masks import points_256_to_crop
from ..spatial.mesh_topology import BROWS, EYES, MOUTH, NOSE
from ..spatial.projectors import BfmProjector
from .assemble import own_points
from .regions import REGION_NAMES, available_regions, region_mask
from .representation import FaceRepr

# Landmarks a region is aligned on (iBUG 68 indices).
ALIGN_POINTS: dict[str, tuple[int, ...]] = {
    "brows": BROWS[0] + BROWS[1], "eyes": EYES[0] + EYES[1], "nose": NOSE, "lips": MOUTH,
    "ears": tuple(range(68)), "skin": tuple(range(68)), "hair": tuple(range(68)),
}
GROW_PX = 5  # the union mask is grown this much so the target's own region edge is covered


def _check_regions(face: FaceRepr, regions: Sequence[str], role: str) -> None:
    if face.parsing is None:
        raise ValueError(f"FaceAdapter: the {role} face has no parsing masks; decompose it with mesh regions or a "
                         "BiSeNet parsing model")
    missing = [r for r in regions if r not in available_regions(face.parsing_source)]
    if missing:
        raise ValueError(f"FaceAdapter: the {role} face's regions come from {face.parsing_source}, which has no "
                         f"{', '.join(missing)}; decompose it with a BiSeNet parsing model for those")


def crop_points(face: FaceRepr, bfm: Optional[BfmProjector] = None) -> np.ndarray:
    """(70,2) the face's own landmarks in its 512 crop."""
    return points_256_to_crop(own_points(face, bfm), face.view.warp256)


def swap_regions(target: FaceRepr, donor: FaceRepr, regions: Sequence[str], feather: float = 8.0,
                 color_match: bool = True, bfm: Optional[BfmProjector] = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crop (512,512,3) float32 in [0,1], blend mask (512,512) float32, donor->target 2x3 matrix)."""
    regions = [r for r in REGION_NAMES if r in set(regions)]
    if not regions:
        raise ValueError(f"FaceAdapter: choose at least one region ({', '.join(REGION_NAMES)})")
    _check_regions(target, regions, "target")
    _check_regions(donor, regions, "donor")
    index = sorted({i for r in regions for i in ALIGN_POINTS[r]})
    matrix = procrustes_matrix(crop_points(donor, bfm)[index], crop_points(target, bfm)[index])
    donor_mask = sum(region_mask(donor.parsing, r) for r in regions).clip(0, 1).astype(np.float32)
    target_mask = sum(region_mask(target.parsing, r) for r in regions).clip(0, 1).astype(np.float32)
    warped_mask = warp_to_crop(donor_mask, matrix, 512)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * GROW_PX + 1, 2 * GROW_PX + 1))
    union = cv2.dilate(np.maximum(warped_mask, target_mask), kernel)
    weights = np.clip(cv2.GaussianBlur(union, (0, 0), feather / 3.0) if feather > 0 else union, 0.0, 1.0)
    base = target.view.crop512.astype(np.float32) / 255.0
    donor_crop = warp_to_crop(donor.view.crop512.astype(np.float32) / 255.0, matrix, 512)
    if color_match:
        donor_crop = match_colors(donor_crop, base, weights)
    out = base * (1.0 - weights[..., None]) + donor_crop * weights[..., None]
    return out.astype(np.float32), weights.astype(np.float32), matrix


def target_transforms(target: FaceRepr) -> CropBatch:
    """The target's frame -> 512 crop transform, as Paste Faces takes it."""
    view = target.view
    crop = FaceCrop(frame_index=0, face_index=0, matrix=view.matrix512, size=512, face=view.face)
    return CropBatch(crops=(crop,), frame_sizes=(target.frame_size,), mode=FACEADAPTER_512)
