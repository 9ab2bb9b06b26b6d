"""Spatial-condition records and the control-image composition (Face-Adapter stage 1).

Flow: target/source frames + chosen faces -> :class:`FaceView` per face (512 crop and
the 256 aligned warp, exactly as upstream frames them) -> a projector gives 70
landmarks in each target's 256 frame (:class:`ProjectedLandmarks`) -> an adapting
area (MASK in the 512 crop) -> control image = landmarks*mask + background*(1-mask).

Crops are kept as uint8, as upstream makes them (cv2 on uint8 frames); that also
keeps a long video's condition data at 0.75 MB per crop.

Control image contract: IMAGE in [0, 1]. Whoever feeds it to the ControlNet maps it
to [-1, 1] (x*2-1), because Face-Adapter's ControlNet was trained on [-1, 1] hints.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..core.errors import NoFaceError
from ..core.images import uint8_to_image
from ..face.align import FACEADAPTER_512, aligned_matrix, faceadapter512_matrix, warp_to_crop
from ..face.records import CropBatch, Face, FaceBatch, FaceCrop, compose_affine, transform_points
from .landmark_drawing import draw_pts70

CROP = 512
ALIGNED = 256
MISSING_POLICIES = ("pass_through", "error")


@dataclass(frozen=True)
class FaceView:
    """One face as Face-Adapter sees it: the 512 box crop and the 512->256 aligned warp."""

    face: Face  # frame coordinates
    frame_index: int
    crop512: np.ndarray  # (512,512,3) uint8 RGB
    matrix512: np.ndarray  # frame -> 512 crop
    warp256: np.ndarray  # 512 crop -> 256 aligned crop (upstream's warp_mat256)

    @property
    def frame_to_256(self) -> np.ndarray:
        return compose_affine(self.warp256, self.matrix512)

    def aligned256(self) -> np.ndarray:
        """(256,256,3) uint8: the D3DFR / ArcFace input crop."""
        return warp_to_crop(self.crop512, self.warp256, ALIGNED)


def make_view(frame_rgb_uint8: np.ndarray, face: Face, frame_index: int) -> FaceView:
    """Upstream framing: 512 box crop, then the 5-point fit inside that crop."""
    matrix512 = faceadapter512_matrix(face.bbox)
    crop = warp_to_crop(frame_rgb_uint8, matrix512, CROP)
    kps512 = transform_points(face.kps5, matrix512)
    return FaceView(face, frame_index, crop, matrix512, aligned_matrix(kps512, ALIGNED))


@dataclass(frozen=True)
class ProjectedLandmarks:
    """FACEADAPTER_LANDMARKS socket: 70 projected points per target frame, with the crops they live in.

    ``pts70[i]`` is in target frame i's 256 aligned frame (NaN where ``found[i]`` is False).
    ``sources`` has one view per target frame (the same object repeated when one source
    image drives a whole video).

    Like Crop Faces, everything the stage hands on (drawings, crops, areas, control images)
    has one entry per *found* frame, in frame order; :meth:`crop_batch` maps them back, so
    Paste Faces passes faceless frames through and no later stage spends work on them.
    """

    pts70: np.ndarray  # (B,70,2) float32
    targets: tuple[Optional[FaceView], ...]
    sources: tuple[Optional[FaceView], ...]
    found: tuple[bool, ...]
    method: str
    frame_sizes: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.found)

    def found_indices(self) -> list[int]:
        return [i for i, ok in enumerate(self.found) if ok]

    def landmark_images(self) -> np.ndarray:
        """(N,512,512,3) uint8, read-only: the official drawing in each found target's 512 crop.
        Drawn once per record; preview, area net and control composition all reuse it."""
        return self._drawn

    @cached_property
    def _drawn(self) -> np.ndarray:
        idx = self.found_indices()
        if not idx:
            out = np.zeros((0, CROP, CROP, 3), np.uint8)
        else:
            out = draw_pts70(self.pts70[idx], np.stack([self.targets[i].warp256 for i in idx]), CROP)
        out.setflags(write=False)
        return out

    def crops(self, which: str) -> np.ndarray:
        """(N,512,512,3) uint8 target or source crops of the found frames."""
        views = self.targets if which == "target" else self.sources
        idx = self.found_indices()
        out = np.empty((len(idx), CROP, CROP, 3), np.uint8)
        for k, i in enumerate(idx):
            out[k] = views[i].crop512
        return out

    def crop_batch(self) -> CropBatch:
        """FACEADAPTER_CROP_TRANSFORMS of the found targets' 512 crops (frame -> crop), for Paste Faces."""
        crops = tuple(FaceCrop(frame_index=i, face_index=0, matrix=self.targets[i].matrix512, size=CROP,
                               face=self.targets[i].face) for i in self.found_indices())
        return CropBatch(crops=crops, frame_sizes=self.frame_sizes, mode=FACEADAPTER_512)


def first_face(faces: FaceBatch, index: int) -> Optional[Face]:
    frame = faces.frames[index]
    return frame.faces[0] if frame.faces else None


def pair_views(source_frames: np.ndarray, source_faces: FaceBatch, target_frames_at: Callable[[int], np.ndarray],
               target_faces: FaceBatch, on_missing: str = "pass_through",
               step: Optional[Callable[[], None]] = None) -> tuple[list[Optional[FaceView]], list[Optional[FaceView]]]:
    """Views of the chosen (first) face per frame; one source image may drive every target frame.

    ``target_frames_at(i)`` returns frame i as uint8 so a long video is never held whole.
    """
    if on_missing not in MISSING_POLICIES:
        raise ValueError(f"on_missing must be one of {MISSING_POLICIES}")
    n_src, n_tgt = len(source_faces), len(target_faces)
    if n_src not in (1, n_tgt):
        raise ValueError(f"source has {n_src} frames, target {n_tgt}: give 1 source image or one per target frame")
    source_cache: dict[int, Optional[FaceView]] = {}

    def source_view(i: int) -> Optional[FaceView]:
        si = 0 if n_src == 1 else i
        if si not in source_cache:
            face = first_face(source_faces, si)
            source_cache[si] = None if face is None else make_view(source_frames[si], face, si)
        return source_cache[si]

    targets: list[Optional[FaceView]] = []
    sources: list[Optional[FaceView]] = []
    for i in range(n_tgt):
        tface, sview = first_face(target_faces, i), source_view(i)
        if (tface is None or sview is None) and on_missing == "error":
            who = "target" if tface is None else "source"
            raise NoFaceError(f"FaceAdapter: no {who} face in frame {i if who == 'target' else (0 if n_src == 1 else i)}; "
                              "set on_missing to pass_through to keep such frames unchanged")
        targets.append(None if tface is None else make_view(target_frames_at(i), tface, i))
        sources.append(sview)
        if step is not None:
            step()
    return targets, sources


def compose_control(landmarks: ProjectedLandmarks, area: torch.Tensor, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Control IMAGE [0,1] = landmarks*area + background*(1-area); background is the
    source crop for reenactment and the target crop for swapping (upstream step 8).

    Returns (control [N,512,512,3], background [N,512,512,3]) for the N found frames.
    """
    if task not in ("reenact", "swap"):
        raise ValueError("task must be 'reenact' or 'swap'")
    found = len(landmarks.found_indices())
    if area.shape[0] != found:
        raise ValueError(f"area has {area.shape[0]} masks but the landmarks have {found} found frame(s); connect "
                         "the area predicted from these landmarks")
    background = uint8_to_image(landmarks.crops("source" if task == "reenact" else "target"))
    drawn = uint8_to_image(landmarks.landmark_images())
    mask = area.to(torch.float32).unsqueeze(-1)
    return drawn * mask + background * (1.0 - mask), background


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """[0,1] -> [-1,1]: the normalisation every Face-Adapter network input uses."""
    return x * 2.0 - 1.0


def nchw_unit(images_uint8: np.ndarray | Sequence[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 (B,H,W,3) -> (B,3,H,W) in [-1,1] on ``device``."""
    batch = torch.from_numpy(np.ascontiguousarray(np.stack(list(images_uint8)) if not isinstance(images_uint8, np.ndarray)
                                                  else images_uint8))
    return to_unit_range(batch.to(device=device, dtype=dtype).permute(0, 3, 1, 2) / 255.0)
