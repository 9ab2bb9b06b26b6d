"""FACEADAPTER_SPATIAL: the one record every stage after the spatial condition reads.

Per face pair (see condition.plan_pairs) it carries the source and target face views (512
crop, 256 aligned crop, transforms), the 70 points, the adapting area, the control image in
[0,1], the soft blend mask, the attribute crop and the task-aware paste transforms, so a
graph wires one socket instead of five parallel outputs in the right order.

Where results go back depends on the task. A reenactment result lives in the SOURCE 512 crop
(its background is the source, and upstream blends with the source), so it is pasted into the
source frames: one output frame per driving frame (one source photo driven by N frames gives
N pasted source frames). A swap result lives in the TARGET crop and goes into the target
frames. In both, the frames pasted into are the ones whose crop is the blend background, so
``gen*blend + background*(1-blend)`` in crop space is exactly what the paste computes.

The record never changes after it is made: ComfyUI hands the same object to every consumer.
Its tensors are the ones the Compose node also outputs for previews (shared, not copied);
nobody may write into them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..core.images import frame_float, uint8_to_image
from ..face.align import FACEADAPTER_512, warp_to_crop
from ..face.paste import paste_batch
from ..face.records import CropBatch, FaceCrop
from .area import paste_blend_mask
from .condition import CROP, FacePair, FaceView, ProjectedLandmarks, distinct_views

# Mean |difference| (0..1) between the frames given to paste and the record's own background crop
# above which they are not the frames the record was made from (wrong side, wrong video).
WRONG_FRAMES_ABOVE = 0.08


@dataclass(frozen=True, eq=False)
class FaceSpatial:
    """FACEADAPTER_SPATIAL socket: see the module docstring. Row k of every array is ``pairs[k]``."""

    landmarks: ProjectedLandmarks
    control: torch.Tensor  # (N,512,512,3) float32 in [0,1]
    area: torch.Tensor  # (N,512,512) float32, the adapting area as predicted
    blend: torch.Tensor  # (N,512,512) float32, upstream's soft blend mask (pad 16, maxpool 17, avgpool 17)

    def __len__(self) -> int:
        return len(self.landmarks)

    @property
    def task(self) -> str:
        return self.landmarks.task

    @property
    def pairs(self) -> tuple[FacePair, ...]:
        return self.landmarks.pairs

    @property
    def pts70(self) -> np.ndarray:
        """(N,70,2) float32, each in its target's 256 aligned frame."""
        return self.landmarks.pts70

    @property
    def sources(self) -> tuple[FaceView, ...]:
        return self.landmarks.sources

    @property
    def targets(self) -> tuple[FaceView, ...]:
        return self.landmarks.targets

    def distinct_sources(self) -> tuple[list[FaceView], list[int]]:
        """The distinct source views and each pair's index among them (encode identities once each)."""
        return distinct_views(self.sources)

    @property
    def paste_side(self) -> str:
        """Which frames the results go back into: "source" (reenact) or "target" (swap)."""
        return background_side(self.task)

    def paste_views(self) -> tuple[FaceView, ...]:
        return self.sources if self.paste_side == "source" else self.targets

    def _paste_side_sizes(self) -> tuple[tuple[int, int], ...]:
        plan = self.landmarks.plan
        return plan.source_sizes if self.paste_side == "source" else plan.target_sizes

    def background(self) -> np.ndarray:
        """(N,512,512,3) uint8: the crop the control image and the blend are built on
        (source for reenact, target for swap, upstream steps 8 and 10)."""
        return self.landmarks.crops(self.paste_side)

    def attribute_crops(self) -> np.ndarray:
        """(N,512,512,3) uint8: what upstream feeds Image2Token, the source crop for reenact and the
        target crop for swap; by construction the same crop as the background."""
        return self.background()

    def frame_count(self) -> int:
        """Output frames of a paste: one per target (driving) frame, for both tasks."""
        return len(self.landmarks.plan.target_sizes)

    def paste_frame_of(self) -> list[int]:
        """Per output frame, the frame of the paste side's IMAGE it is built on."""
        plan = self.landmarks.plan
        if self.task == "swap":
            return list(range(self.frame_count()))
        return [plan.source_frame_of(i) for i in range(self.frame_count())]

    def paste_transforms(self) -> CropBatch:
        """Frame -> 512 crop transforms of the paste side, indexed by output frame (for Paste Faces)."""
        side_sizes = self._paste_side_sizes()
        sizes = tuple(side_sizes[j] for j in self.paste_frame_of())
        crops = tuple(FaceCrop(frame_index=p.frame_index, face_index=p.face_index, matrix=v.matrix512, size=CROP,
                               face=v.face) for p, v in zip(self.pairs, self.paste_views()))
        return CropBatch(crops=crops, frame_sizes=sizes, mode=FACEADAPTER_512)

    def check_frames(self, image: torch.Tensor) -> None:
        """ValueError unless ``image`` holds the paste side's frames this record was made from."""
        side, sizes = self.paste_side, self._paste_side_sizes()
        frames = 1 if image.ndim == 3 else image.shape[0]
        hint = ("reenact results go back into the SOURCE image (one output per driving frame)"
                if self.task == "reenact" else "swap results go back into the TARGET frames")
        if frames != len(sizes) or tuple(image.shape[-3:-1]) != sizes[0]:
            raise ValueError(f"FaceAdapter: the spatial record pastes into {len(sizes)} {side} frame(s) of "
                             f"{sizes[0][1]}x{sizes[0][0]}, but IMAGE has {frames} of {image.shape[-2]}x"
                             f"{image.shape[-3]}; {hint}")
        if not len(self):
            return
        view = self.paste_views()[0]
        crop = warp_to_crop(frame_float(image, view.frame_index, writable=False), view.matrix512, CROP)
        difference = float(np.abs(crop - view.crop512.astype(np.float32) / 255.0).mean())
        if difference > WRONG_FRAMES_ABOVE:
            raise ValueError(f"FaceAdapter: IMAGE is not the {side} frames this spatial record was made from "
                             f"(mean difference {difference:.3f} in the first face's crop, {side} frame "
                             f"{view.frame_index}); {hint}")


def background_side(task: str) -> str:
    """The crop a task's control image and blend are built on, and so the frames its results go back
    into: the source for reenactment, the target for swapping (upstream steps 8 and 10)."""
    return "source" if task == "reenact" else "target"


def build_spatial(landmarks: ProjectedLandmarks, area: torch.Tensor) -> FaceSpatial:
    """Control IMAGE [0,1] = landmarks*area + background*(1-area), background = source crop for
    reenactment and target crop for swapping (upstream step 8), plus the soft blend mask (step 10)."""
    if area.ndim == 2:
        area = area.unsqueeze(0)
    if area.shape[0] != len(landmarks) or tuple(area.shape[1:]) != (CROP, CROP):
        raise ValueError(f"area has {area.shape[0]} mask(s) of {tuple(area.shape[1:])} but the landmarks have "
                         f"{len(landmarks)} face pair(s) of 512x512; connect the area predicted from these landmarks")
    area = area.to(torch.float32)
    background = uint8_to_image(landmarks.crops(background_side(landmarks.task)))
    drawn = uint8_to_image(landmarks.landmark_images())
    mask = area.unsqueeze(-1)
    control = drawn * mask + background * (1.0 - mask)
    return FaceSpatial(landmarks, control, area, paste_blend_mask(area))


def paste_generated(spatial: FaceSpatial, image: torch.Tensor, crops: torch.Tensor, feather: float = 0.0,
                    color_match: str = "off", preserve_unchanged: bool = True, mask: Optional[torch.Tensor] = None,
                    step: Optional[Callable[[], None]] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated 512 crops (one per pair) back into the paste side's frames with the record's blend
    mask (or ``mask``): (IMAGE with one frame per target frame, MASK of the weights used)."""
    if crops.shape[0] != len(spatial):
        raise ValueError(f"got {crops.shape[0]} crops but the spatial record has {len(spatial)} face pair(s); "
                         "connect the crops generated from this record (same order)")
    spatial.check_frames(image)
    return paste_batch(image, crops, spatial.paste_transforms(), spatial.blend if mask is None else mask, feather,
                       color_match, preserve_unchanged, step=step, frame_of=spatial.paste_frame_of())
