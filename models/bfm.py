"""Basel Face Model landmark projector, as Face-Adapter's 3D landmark stage uses it.

Reads the Deep3DFaceRecon ``BFM_model_front.mat`` layout (``meanshape`` (1,3N),
``idBase`` (3N,80), ``exBase`` (3N,64), ``keypoints`` (1,68) 1-based) and projects the
68 keypoint vertices of a D3DFR coefficient vector into the 256 aligned crop:

* mean shape re-centred on its vertex mean (before adding the bases);
* rotation R = Rz @ Ry @ Rx from the (x, y, z) Euler angles, applied as ``p @ R.T``;
* translation added, then camera space z' = camera_distance - z;
* pinhole with focal 1015*256/224 and principal point image_size/2;
* image y flipped as (image_size - 1) - y.

Only the 68 keypoint rows of the bases are kept by default: the projector never needs
the other ~35k vertices, so the 127 MB file shrinks to ~0.1 MB in memory.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .d3dfr import COEFF_SLICES

__all__ = ["BFM", "BFM_FOCAL", "BFM_IMAGE_SIZE", "add_gaze_points", "mix_coefficients"]

BFM_FOCAL = 1015.0 * 256 / 224
BFM_IMAGE_SIZE = 256
BFM_CAMERA_DISTANCE = 10.0

# 0-based indices (in the 68-point scheme) of the eye corners that scale the gaze points.
_LEFT_EYE = (36, 39)
_RIGHT_EYE = (42, 45)


class BFM(nn.Module):
    """Shape part of the BFM + the D3DFR camera; all tensors are buffers (follow ``.to``)."""

    meanshape: torch.Tensor
    id_base: torch.Tensor
    exp_base: torch.Tensor
    keypoints: torch.Tensor
    persc_proj: torch.Tensor

    def __init__(self, meanshape: torch.Tensor, id_base: torch.Tensor, exp_base: torch.Tensor,
                 keypoints: torch.Tensor, *, focal: float = BFM_FOCAL, image_size: int = BFM_IMAGE_SIZE,
                 camera_distance: float = BFM_CAMERA_DISTANCE):
        """``meanshape`` (N,3) already re-centred; bases (3N,K); ``keypoints`` (68,) 0-based into N."""
        super().__init__()
        self.register_buffer("meanshape", meanshape.float().reshape(-1, 3))
        self.register_buffer("id_base", id_base.float())
        self.register_buffer("exp_base", exp_base.float())
        self.register_buffer("keypoints", keypoints.long().reshape(-1))
        # Row-vector form of the intrinsics, K.T, so that projected = points @ K.T.
        centre = image_size / 2
        k = np.array([[focal, 0, centre], [0, focal, centre], [0, 0, 1]], dtype=np.float32)
        self.register_buffer("persc_proj", torch.from_numpy(k.T.copy()))
        self.image_size = int(image_size)
        self.camera_distance = float(camera_distance)

    @classmethod
    def from_mat(cls, path: str | Path, *, recenter: bool = True, landmarks_only: bool = True,
                 focal: float = BFM_FOCAL, image_size: int = BFM_IMAGE_SIZE,
                 camera_distance: float = BFM_CAMERA_DISTANCE) -> "BFM":
        """Load ``BFM_model_front.mat`` (or any file with the same fields) with scipy."""
        from scipy.io import loadmat

        mat = loadmat(str(path), variable_names=("meanshape", "idBase", "exBase", "keypoints"))
        missing = [k for k in ("meanshape", "idBase", "exBase", "keypoints") if k not in mat]
        if missing:
            raise ValueError(f"FaceAdapter: {path} is not a BFM_model_front.mat file (no {', '.join(missing)})")
        mean = torch.from_numpy(np.asarray(mat["meanshape"])).float().reshape(-1, 3)
        if recenter:
            mean = mean - mean.mean(dim=0, keepdim=True)
        id_base = torch.from_numpy(np.asarray(mat["idBase"])).float()
        exp_base = torch.from_numpy(np.asarray(mat["exBase"])).float()
        keypoints = torch.from_numpy(np.asarray(mat["keypoints"])).long().reshape(-1) - 1
        if landmarks_only:
            rows = (keypoints[:, None] * 3 + torch.arange(3)).reshape(-1)
            mean, id_base, exp_base = mean[keypoints], id_base[rows], exp_base[rows]
            keypoints = torch.arange(keypoints.numel())
        return cls(mean, id_base, exp_base, keypoints, focal=focal, image_size=image_size,
                   camera_distance=camera_distance)

    def shape(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Vertices (B,N,3) from identity coeffs [0:80] and expression coeffs [80:144]."""
        coeffs = coeffs.to(self.id_base)
        id_part = torch.einsum("ij,aj->ai", self.id_base, coeffs[:, COEFF_SLICES["id"]])
        exp_part = torch.einsum("ij,aj->ai", self.exp_base, coeffs[:, COEFF_SLICES["exp"]])
        flat = id_part + exp_part + self.meanshape.reshape(1, -1)
        return flat.reshape(coeffs.shape[0], -1, 3)

    @staticmethod
    def rotation(angles: torch.Tensor) -> torch.Tensor:
        """(B,3) Euler angles (x, y, z) in radians -> R = Rz @ Ry @ Rx, (B,3,3)."""
        x, y, z = angles[:, 0], angles[:, 1], angles[:, 2]
        one, zero = torch.ones_like(x), torch.zeros_like(x)

        def mat(*rows: torch.Tensor) -> torch.Tensor:
            return torch.stack(rows, dim=1).reshape(-1, 3, 3)

        rot_x = mat(one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos())
        rot_y = mat(y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos())
        rot_z = mat(z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one)
        return rot_z @ rot_y @ rot_x

    def project(self, vertices: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
        """Pose, camera and pinhole: (B,N,3) model-space vertices -> (B,N,2) pixels (y down)."""
        coeffs = coeffs.to(vertices)
        rot = self.rotation(coeffs[:, COEFF_SLICES["angle"]])
        posed = vertices @ rot.transpose(1, 2) + coeffs[:, COEFF_SLICES["trans"]].unsqueeze(1)
        camera = torch.cat([posed[..., :2], self.camera_distance - posed[..., 2:]], dim=-1)
        image = camera @ self.persc_proj
        uv = image[..., :2] / image[..., 2:]
        return torch.stack([uv[..., 0], (self.image_size - 1) - uv[..., 1]], dim=-1)

    def get_lm68(self, coeffs: torch.Tensor) -> torch.Tensor:
        """(B,261 or more) D3DFR coefficients -> (B,68,2) landmarks in the 256 crop frame."""
        return self.project(self.shape(coeffs)[:, self.keypoints], coeffs)

    def get_lm70(self, coeffs: torch.Tensor) -> torch.Tensor:
        """68 projected landmarks + the two gaze points from the pupil coefficients [257:261]."""
        return add_gaze_points(self.get_lm68(coeffs), coeffs[:, COEFF_SLICES["pupil"]])


def add_gaze_points(lm68: torch.Tensor, pupil: torch.Tensor) -> torch.Tensor:
    """(B,68,2), (B,4) -> (B,70,2).

    Each gaze point is pupil_xy * eye width + eye centre, where the eye width is the
    Euclidean distance between the eye corners (36/39 left, 42/45 right) and the centre
    their midpoint; the left point uses pupil[0:2], the right one pupil[2:4].
    """
    pupil = pupil.to(lm68)
    points = []
    for (a, b), p in zip((_LEFT_EYE, _RIGHT_EYE), (pupil[:, 0:2], pupil[:, 2:4])):
        first, second = lm68[:, a], lm68[:, b]
        width = torch.sqrt(torch.sum((second - first) ** 2, dim=1, keepdim=True))
        points.append(p * width + (second + first) * 0.5)
    return torch.cat([lm68, torch.stack(points, dim=1)], dim=1)


def mix_coefficients(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Target coefficients with the identity block [0:80] taken from the source (a copy)."""
    mixed = target.clone()
    mixed[:, COEFF_SLICES["id"]] = source[:, COEFF_SLICES["id"]].to(mixed)
    return mixed
