"""Face crops and their transforms: Face-Adapter's 512 box crop, the 5-point aligned crop.

Every crop is described by a 2x3 frame->crop affine (records.FaceCrop) so any
later stage (landmark drawing, paste-back) can map between frame and crop.
The constants are Face-Adapter's (data/datasets_faceswap.py, infer.py): see the
reference notes, section 1.2.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional

import cv2
import numpy as np
import torch

from ..core.images import frame_float
from ..core.warp import warp_affine
from .records import CropBatch, Face, FaceBatch, FaceCrop, transform_points

# The standard ArcFace 112x112 five-point template (recognition input framing).
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
# Face-Adapter's mean_face_lm5p_256: ArcFace's 112 template mapped x' = 2x + 16, y' = 2y and held as
# float32, exactly as upstream holds it (rounding it moves ~25 of the 70 drawn landmarks by a pixel).
TEMPLATE_256 = (ARCFACE_112 * np.array([2.0, 2.0]) + np.array([16.0, 0.0])).astype(np.float32)
# Face-Adapter's mean_box_lm4p_512: the corners the 512 box crop's square lands on.
BOX_CORNERS_512 = np.array([[80, 80], [80, 432], [432, 432], [432, 80]], dtype=np.float32)

FACEADAPTER_512 = "faceadapter512"
ALIGNED_256 = "aligned256"
CROP_RATIO = 0.81  # Face-Adapter's default crop_ratio
BOX_INNER = (80.0, 432.0)  # where the square lands inside the 512 canvas
# FADM / face-vid2vid / FOMM were trained on VoxCeleb as cut by the first-order-model authors'
# video-preprocessing (crop_vox.py, util.py): a face box per frame, their union over the shot ("tube"),
# every side grown by 10 % and the short side up to a square (so side = 1.2 x the longer side), resized to
# 256. "voxceleb_256" keeps that square on each frame's (tracked, smoothed) box; "voxceleb_256_shot" uses the
# union over the batch, per face track, as the dataset does: the crop cannot jitter.
VOXCELEB_INCREASE = 0.1
VOXCELEB_SIZE = 256
VOXCELEB_256 = "voxceleb256"
CROP_MODES = ("faceadapter_512", "aligned_256", "aligned_custom", "arcface_custom", "voxceleb_256",
              "voxceleb_256_shot")

StepFn = Optional[Callable[[], None]]


def faceadapter512_matrix(bbox: np.ndarray, crop_ratio: float = CROP_RATIO, size: int = 512) -> np.ndarray:
    """Face-Adapter's box crop: a square of side 2*crop_ratio*box width, centred on the box,
    mapped onto [80, 432] of a 512 canvas (scaled with ``size``).

    Built as upstream builds it (infer.py), so crops match bit for bit: float32 box (the
    detector's), corners computed as numpy 1.x does (float32 width and centre sum, the rest in
    float64) and stored as float32, then the Procrustes fit to the canvas corners in float64.
    Upstream takes max(w, w) (height ignored); we keep that.
    """
    b = np.asarray(bbox, dtype=np.float32)[:4]
    width = np.float64(b[2] - b[0])
    cx, cy = 0.5 * np.float64(b[2] + b[0]), 0.5 * np.float64(b[3] + b[1])
    half = width * float(crop_ratio)
    x1, x2, y1, y2 = cx - half, cx + half, cy - half, cy + half
    corners = np.array([[x1, y1], [x1, y2], [x2, y2], [x2, y1]], dtype=np.float32)
    return procrustes_matrix(corners, BOX_CORNERS_512 * np.float32(size / 512.0))


def procrustes_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Orthogonal Procrustes similarity src -> dst (2x3, float64): centre, scale by the overall
    standard deviation, rotate by the SVD of the cross-covariance, in upstream's operation order."""
    p1 = np.asarray(src, dtype=np.float64)[:, :2].copy()
    p2 = np.asarray(dst, dtype=np.float64)[:, :2].copy()
    c1, c2 = p1.mean(axis=0, keepdims=True), p2.mean(axis=0, keepdims=True)
    p1 -= c1
    p2 -= c2
    s1, s2 = p1.std(), p2.std()
    p1 /= s1
    p2 /= s2
    u, _, vt = np.linalg.svd(p1.T @ p2)
    rot = (s2 / s1) * (u @ vt).T
    return np.hstack([rot, c2.T - rot @ c1.T])


def fivepoint_similarity(kps5: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Least-squares 4-DOF similarity kps -> template by upstream's normal equations
    (data/datasets_faceswap.py get_affine_transform): float32 products summed in float64,
    solved with cv2.solve(DECOMP_SVD), so the 256 warp matrix is upstream's to the last bit."""
    a, b = np.asarray(kps5, dtype=np.float32)[:, :2], np.asarray(template, dtype=np.float32)[:, :2]
    if len(a) != len(b):
        raise ValueError("fivepoint_similarity needs matching point sets")
    lhs, rhs = np.zeros((4, 4)), np.zeros(4)
    for (ax, ay), (bx, by) in zip(a, b):
        lhs[0, 0] += ax * ax + ay * ay
        lhs[0, 2] += ax
        lhs[0, 3] += ay
        rhs[0] += ax * bx + ay * by
        rhs[1] += ax * by - ay * bx
        rhs[2] += bx
        rhs[3] += by
    lhs[1, 1] = lhs[0, 0]
    lhs[2, 1] = lhs[1, 2] = -lhs[0, 3]
    lhs[3, 1] = lhs[1, 3] = lhs[2, 0] = lhs[0, 2]
    lhs[2, 2] = lhs[3, 3] = len(a)
    lhs[3, 0] = lhs[0, 3]
    p = cv2.solve(lhs, rhs.reshape(4, 1), flags=cv2.DECOMP_SVD)[1].reshape(-1)
    return np.array([[p[0], -p[1], p[2]], [p[1], p[0], p[3]]], dtype=np.float64)


def template_points(size: int, template: str = "faceadapter") -> np.ndarray:
    """The five template points for a square crop of ``size``.

    "faceadapter" keeps mean_face_lm5p_256's framing at any size; "arcface"
    keeps the 112 recognition framing."""
    if template == "faceadapter":
        return TEMPLATE_256 if size == 256 else TEMPLATE_256 * (size / 256.0)
    if template == "arcface":
        return ARCFACE_112 * (size / 112.0)
    raise ValueError(f"unknown template {template!r}; use 'faceadapter' or 'arcface'")


def aligned_matrix(kps5: np.ndarray, size: int = 256, template: str = "faceadapter") -> np.ndarray:
    """Frame -> crop similarity that best puts the five keypoints on the template (upstream's solver)."""
    return fivepoint_similarity(kps5, template_points(size, template))


def alignment_error(face: Face, matrix: np.ndarray, size: int, template: str = "faceadapter") -> float:
    """Mean distance (crop px) between the mapped keypoints and the template points."""
    mapped = transform_points(face.kps5, matrix)
    return float(np.linalg.norm(mapped - template_points(size, template), axis=1).mean())


def crop_size(mode: str, size: int = 512) -> int:
    """Side of the crops a CROP_MODES entry makes (``size`` only for the custom modes)."""
    return {"faceadapter_512": 512, "aligned_256": 256, "voxceleb_256": VOXCELEB_SIZE,
            "voxceleb_256_shot": VOXCELEB_SIZE}.get(mode, int(size))


def crop_matrix(face: Face, mode: str, size: int = 512, crop_ratio: float = CROP_RATIO) -> tuple[np.ndarray, int, str]:
    """(matrix, crop size, CropBatch.mode name) for one face and a CROP_MODES entry."""
    if mode == "faceadapter_512":
        return faceadapter512_matrix(face.bbox, crop_ratio, 512), 512, FACEADAPTER_512
    if mode == "aligned_256":
        return aligned_matrix(face.kps5, 256), 256, ALIGNED_256
    if mode == "aligned_custom":
        return aligned_matrix(face.kps5, size), size, f"aligned{size}"
    if mode == "arcface_custom":
        return aligned_matrix(face.kps5, size, "arcface"), size, f"arcface{size}"
    if mode in ("voxceleb_256", "voxceleb_256_shot"):  # the shot's box is passed in as the face's bbox
        return voxceleb_matrix(face.bbox), VOXCELEB_SIZE, VOXCELEB_256
    raise ValueError(f"unknown crop mode {mode!r}; choose one of {', '.join(CROP_MODES)}")


def warp_to_crop(frame: np.ndarray, matrix: np.ndarray, size: int, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Cut a square crop out of a frame (INTER_LINEAR, black outside the frame, as upstream).

    OpenCV 4.10's maths (core.warp), so crops do not depend on the installed OpenCV.

    ``out`` (size x size x C, the frame's dtype) receives the crop without an extra copy."""
    return warp_affine(frame, matrix, (size, size), out=out)


def crop_batch(image: torch.Tensor, faces: FaceBatch, mode: str = "faceadapter_512", size: int = 512,
               crop_ratio: float = CROP_RATIO, step: StepFn = None) -> tuple[torch.Tensor, CropBatch]:
    """Crop every face of ``faces`` out of the IMAGE batch, frame by frame.

    Returns IMAGE crops [N, S, S, 3] (frame-major order) and the FACEADAPTER_CROP_TRANSFORMS
    that undo them. Frames are read in place, one at a time; crops are warped
    straight into the output tensor.
    """
    if image.shape[0] != len(faces):
        raise ValueError(f"IMAGE has {image.shape[0]} frames but FACEADAPTER_FACES describes {len(faces)}")
    plans: list[FaceCrop] = []
    mode_name = ""
    shot_boxes = shot_union_boxes(faces) if mode == "voxceleb_256_shot" else {}
    for fi, frame_faces in enumerate(faces.frames):
        for j, face in enumerate(frame_faces.faces):
            framing = replace(face, bbox=shot_boxes[shot_key(face, j)]) if shot_boxes else face
            matrix, out_size, mode_name = crop_matrix(framing, mode, size, crop_ratio)
            plans.append(FaceCrop(frame_index=fi, face_index=j, matrix=matrix, size=out_size, face=face))
    out_size = crop_size(mode, size)
    crops = torch.empty((len(plans), out_size, out_size, 3), dtype=torch.float32)
    k = 0
    for fi in range(len(faces)):
        todo = [p for p in plans if p.frame_index == fi]
        if todo:
            frame = frame_float(image, fi, writable=False)
            for plan in todo:
                warp_to_crop(frame, plan.matrix, plan.size, out=crops[k].numpy())
                k += 1
        if step is not None:
            step()
    sizes = tuple((int(f.height), int(f.width)) for f in faces.frames)
    return crops, CropBatch(crops=tuple(plans), frame_sizes=sizes, mode=mode_name)


def voxceleb_matrix(bbox: np.ndarray, size: int = VOXCELEB_SIZE) -> np.ndarray:
    """Frame -> crop affine of the VoxCeleb framing: the box grown 10 % per side, squared, onto ``size``."""
    return box_square_matrix(bbox, 1.0 + 2.0 * VOXCELEB_INCREASE, size)


def shot_key(face: Face, index: int) -> tuple[str, int]:
    """Which face of a shot a face is: its track, or (untracked) its place in the frame's list."""
    return ("track", int(face.track_id)) if face.track_id is not None else ("index", index)


def shot_union_boxes(faces: FaceBatch) -> dict[tuple[str, int], np.ndarray]:
    """Per face of the shot (shot_key), the union of its boxes over every frame of the batch."""
    boxes: dict[tuple[str, int], np.ndarray] = {}
    for frame_faces in faces.frames:
        for j, face in enumerate(frame_faces.faces):
            key, box = shot_key(face, j), np.asarray(face.bbox, dtype=np.float32)
            old = boxes.get(key)
            boxes[key] = box if old is None else np.concatenate([np.minimum(old[:2], box[:2]),
                                                                 np.maximum(old[2:], box[2:])])
    return boxes


# ---------------------------------------------------------------- box-centred square crops
def box_square(bbox: np.ndarray, context: float = 1.0) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square ``context`` times a box's longer side, centred on it.

    The framing of every crop that is driven by a detection box rather than by keypoints (landmark
    model inputs, mesh sub-images), so they all agree on where a face's square is."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return (x1 + x2) / 2.0, (y1 + y2) / 2.0, float(context) * max(x2 - x1, y2 - y1, 1.0)


def box_square_matrix(bbox: np.ndarray, context: float, size: int) -> np.ndarray:
    """Frame -> crop affine (2x3, no rotation) that puts ``box_square(bbox, context)`` onto a
    ``size`` x ``size`` crop; records.invert_affine gives the way back."""
    cx, cy, side = box_square(bbox, context)
    s = size / side
    return np.array([[s, 0.0, size / 2.0 - s * cx], [0.0, s, size / 2.0 - s * cy]])
