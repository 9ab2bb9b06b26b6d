"""The 70-point landmark image that conditions Face-Adapter's ControlNet.

Reproduces the official ``draw_pts70_batch`` pixel for pixel (tests/test_landmark_drawing.py
checks it against parity/draw_pts70.npz): filled radius-2 cv2 circles on a black 256
canvas in the 256 aligned-crop frame, then warped back into the 512 crop with the
target's 256 warp (WARP_INVERSE_MAP, bilinear, border 0).

Colours are matplotlib's 'rainbow' colormap sampled at linspace(0, 1, 70), x255 and
truncated, with R and B swapped (upstream passes them reversed into an RGB canvas).
The ControlNet was trained on exactly these colours, so they are recomputed here from
the colormap's definition (gnuplot formulae 33/13/10 on a 256-entry lookup table)
instead of importing matplotlib at run time.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

from ..core.warp import warp_affine
from ..models.bfm import add_gaze_points

__all__ = ["rainbow_colors", "POINT_COLORS_RGB", "round_points", "draw_pts70", "draw_pts70_from_68"]

_LUT_SIZE = 256  # matplotlib's default colormap resolution
CANVAS_SIZE = 256
POINT_RADIUS = 2


def rainbow_colors(n: int) -> np.ndarray:
    """matplotlib ``get_cmap('rainbow')(np.linspace(0, 1, n))[:, :3] * 255`` truncated, (n,3) int RGB."""
    samples = np.linspace(0.0, 1.0, n) * _LUT_SIZE
    index = np.where(samples >= _LUT_SIZE, _LUT_SIZE - 1, samples).astype(int)
    t = np.linspace(0.0, 1.0, _LUT_SIZE)[index]
    rgb = np.stack([np.abs(2 * t - 0.5), np.sin(t * np.pi), np.cos(t * np.pi / 2)], axis=1)
    return (255 * np.clip(rgb, 0.0, 1.0)).astype(int)


# Colour of point i in the drawn (RGB) image: the colormap's (B, G, R).
POINT_COLORS_RGB: np.ndarray = rainbow_colors(70)[:, ::-1].copy()


def round_points(points: np.ndarray) -> np.ndarray:
    """Round to integer pixel centres like ``ndarray.round()`` (half to even), as upstream."""
    return np.asarray(points).round().astype(int)


def _draw_one(points: np.ndarray, warp_mat256: np.ndarray, dst_size: int, colors: np.ndarray) -> np.ndarray:
    canvas = np.zeros((CANVAS_SIZE, CANVAS_SIZE, 3), dtype=np.uint8)
    for (x, y), color in zip(points, colors):
        cv2.circle(canvas, (int(x), int(y)), POINT_RADIUS, tuple(int(c) for c in color), thickness=-1)
    # OpenCV 4.x's bilinear maths (what upstream runs on), whatever OpenCV is installed: 5.x rounds differently.
    return warp_affine(canvas, np.asarray(warp_mat256, dtype=np.float64), (dst_size, dst_size), inverse_map=True)


def draw_pts70(pts70: np.ndarray | torch.Tensor, warp_mat256: np.ndarray | Sequence[np.ndarray],
               dst_size: int = 512) -> np.ndarray:
    """(B,70,2) points in the 256 crop frame + (B,2,3) crop warps -> (B,dst,dst,3) uint8 RGB.

    ``warp_mat256`` maps the 512 crop to the 256 aligned crop (the matrix used to make
    the D3DFR input); it is applied inverted, so the image lands in the 512 crop frame.
    Map it to [-1, 1] (x/127.5 - 1) before it is used as a ControlNet hint.
    """
    if isinstance(pts70, torch.Tensor):
        pts70 = pts70.detach().cpu().numpy()
    points = round_points(pts70)
    warps = np.asarray(warp_mat256, dtype=np.float64).reshape(-1, 2, 3)
    if points.ndim != 3 or points.shape[2] != 2 or len(warps) != len(points):
        raise ValueError(f"expected (B,N,2) points and (B,2,3) warps, got {points.shape} and {warps.shape}")
    colors = POINT_COLORS_RGB if points.shape[1] == 70 else rainbow_colors(points.shape[1])[:, ::-1]
    return np.stack([_draw_one(p, w, int(dst_size), colors) for p, w in zip(points, warps)])


def draw_pts70_from_68(pts68: np.ndarray | torch.Tensor, gaze: np.ndarray | torch.Tensor,
                       warp_mat256: np.ndarray, dst_size: int = 512) -> np.ndarray:
    """Same inputs as upstream's ``draw_pts70_batch``: 68 BFM points + (B,4) pupil coefficients."""
    pts68_t = torch.as_tensor(np.asarray(pts68) if not isinstance(pts68, torch.Tensor) else pts68)
    gaze_t = torch.as_tensor(np.asarray(gaze) if not isinstance(gaze, torch.Tensor) else gaze)
    with torch.no_grad():
        pts70 = add_gaze_points(pts68_t.float(), gaze_t.float())
    return draw_pts70(pts70, warp_mat256, dst_size)
