#!/usr/bin/env python3
"""Write tests/data/warp_cv4_10.npz: cv2.warpAffine outputs as OpenCV 4.10 computes them.

core/warp.py must reproduce OpenCV 4.x (the version upstream Face-Adapter runs on) bit for bit;
tests/test_warp_exact.py checks it against this file. Run with OpenCV 4.10 on the path, e.g.

    pip download opencv-python-headless==4.10.0.84 --no-deps && unzip the wheel into /tmp/cvx4.10
    PYTHONPATH=/tmp/cvx4.10 python scripts/make_warp_fixture.py

Every warp is INTER_LINEAR + BORDER_CONSTANT. Case ``k`` is stored as ``k_src``, ``k_matrix`` (2x3
float64), ``k_size`` (width, height), ``k_inverse`` (WARP_INVERSE_MAP), ``k_border`` and ``k_out``.
Small cases use random full-range images; the full-size crop-like cases use random 0/255 images so
that the file stays small while every output still depends on the exact weights and coordinates.
``draw_*`` cases warp the landmark canvases of tests/data/reference/parity/draw_pts70.npz (drawn
as the official draw_pts70_batch does) into the 512 crop.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "warp_cv4_10.npz"
sys.path.insert(0, str(REPO))


def similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    c, s = scale * np.cos(a), scale * np.sin(a)
    return np.array([[c, -s, tx], [s, c, ty]])


def crop_matrix(centre: tuple[float, float], face: float, degrees: float,
                out: int) -> np.ndarray:
    """Forward frame -> crop map that puts a ``face``-pixel square at ``centre`` into an ``out`` crop."""
    scale = out / face
    m = similarity(scale, degrees, 0.0, 0.0)
    m[:, 2] = np.array([out / 2, out / 2]) - m[:, :2] @ np.asarray(centre)
    return m


def centred_map(linear: np.ndarray, src_centre: np.ndarray, dst_wh: tuple[int, int]) -> np.ndarray:
    """dst -> src map with the given 2x2 part that sends the output's centre to ``src_centre``."""
    return np.concatenate([linear, (src_centre - linear @ (np.array(dst_wh) / 2))[:, None]], axis=1)


def small_cases(rng: np.random.Generator) -> list[dict]:
    """Random images; each dst -> src map is built to land on the source (around its centre, or on an
    edge for ``off_image``) and then stored as is (WARP_INVERSE_MAP) or as its inverse (forward map)."""
    cases = []
    kinds = ["similarity", "affine", "off_image", "downscale", "upscale_inverse", "ties", "translate"]
    for i in range(42):
        kind = kinds[i % len(kinds)]
        h, w = (int(v) for v in rng.integers(16, 97, 2))
        src = rng.integers(0, 256, (h, w) if i % 3 == 0 else (h, w, 3), dtype=np.uint8)
        dw, dh = (int(v) for v in rng.integers(16, 129, 2))
        inverse = bool(rng.integers(2))
        degrees = rng.uniform(-180, 180)
        if kind in ("similarity", "off_image", "ties"):
            linear = similarity(rng.uniform(0.4, 2.5), degrees, 0, 0)[:, :2]
        elif kind == "affine":
            linear = rng.normal(0, 1, (2, 2))
            while abs(np.linalg.det(linear)) < 0.2:
                linear = rng.normal(0, 1, (2, 2))
        elif kind == "downscale":  # forward 0.5x: each output pixel reads 2 source pixels
            linear, inverse = similarity(2.0, degrees / 12, 0, 0)[:, :2], False
        elif kind == "upscale_inverse":  # dst -> src map of a 2x upscale, as the landmark drawing uses
            linear, inverse = similarity(0.5, degrees / 12, 0, 0)[:, :2], True
        else:  # identity scale, integer and half-pixel shifts
            linear = np.eye(2)
        src_centre = np.array([w, h]) / 2 + rng.uniform(-0.2, 0.2, 2) * [w, h]
        if kind == "off_image":  # centre the output on an edge or corner of the source
            src_centre = np.array([rng.choice([0.0, w, w / 2]), rng.choice([0.0, h])])
        inv_map = centred_map(linear, src_centre, (dw, dh))
        if kind == "translate":
            inv_map[:, 2] = np.round(inv_map[:, 2] * 2) / 2
        if kind == "ties":  # entries on a 1/2048 grid: fixed-point products land on .5 (half-to-even)
            inv_map, inverse = np.round(inv_map * 2048) / 2048, True
        matrix = inv_map if inverse else np.linalg.inv(np.vstack([inv_map, [0, 0, 1]]))[:2]
        border = 0 if i % 5 else int(rng.integers(1, 256))
        cases.append(dict(name=f"small{i:02d}_{kind}", src=src, matrix=matrix, size=(dw, dh), inverse=inverse,
                          border=border))
    return cases


def crop_cases(rng: np.random.Generator) -> list[dict]:
    frame = rng.integers(0, 2, (1000, 1100), dtype=np.uint8) * 255
    gray = np.ascontiguousarray(frame[:512, :512])
    small = np.ascontiguousarray(frame[-256:, -256:])
    return [
        # a 512 face crop out of a ~1000 px frame (forward map, like the 512 alignment crop)
        dict(name="crop512_from_frame", src=frame, matrix=crop_matrix((530.3, 480.7), 870.0, 11.0, 512),
             size=(512, 512), inverse=False, border=0),
        # 512 -> 256 downscale with a little rotation (the 256 crop made from the 512 crop)
        dict(name="down512_to_256", src=gray, matrix=similarity(0.5, -7.3, 6.25, -3.7), size=(256, 256),
             inverse=False, border=0),
        # 256 -> 512 through the inverse map of that downscale (how the landmark canvas is warped back)
        dict(name="up256_to_512_inverse", src=small, matrix=similarity(0.5, 4.1, 3.3, -2.9), size=(512, 512),
             inverse=True, border=0),
    ]


def draw_cases() -> list[dict]:
    """The landmark canvases of the parity fixture, drawn like the official draw_pts70_batch."""
    from standalone import load_pack

    pack = load_pack()
    ld = importlib.import_module(pack.__name__ + ".spatial.landmark_drawing")
    bfm = importlib.import_module(pack.__name__ + ".models.bfm")
    parity = np.load(REPO / "tests" / "data" / "reference" / "parity" / "draw_pts70.npz")
    pts70 = bfm.add_gaze_points(torch.from_numpy(parity["pts68"]).float(), torch.from_numpy(parity["gaze"]).float())
    cases = []
    for b, (points, warp) in enumerate(zip(ld.round_points(pts70.numpy()), parity["warp_mat256"])):
        canvas = np.zeros((256, 256, 3), np.uint8)
        for (x, y), colour in zip(points, ld.POINT_COLORS_RGB):
            cv2.circle(canvas, (int(x), int(y)), ld.POINT_RADIUS, tuple(int(c) for c in colour), thickness=-1)
        cases.append(dict(name=f"draw{b}", src=canvas, matrix=warp, size=(512, 512), inverse=True, border=0))
    return cases


def float_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for i in range(6):
        h, w = (int(v) for v in rng.integers(24, 49, 2))
        src = rng.normal(0, 50, (h, w, 3) if i % 2 else (h, w)).astype(np.float32)
        linear = similarity(rng.uniform(0.5, 2.0), rng.uniform(-180, 180), 0, 0)[:, :2]
        inv_map = centred_map(linear, np.array([w, h]) / 2 + rng.uniform(-5, 5, 2), (48, 40))
        inverse = i % 3 == 0
        matrix = inv_map if inverse else np.linalg.inv(np.vstack([inv_map, [0, 0, 1]]))[:2]
        cases.append(dict(name=f"float{i}", src=src, matrix=matrix, size=(48, 40), inverse=inverse,
                          border=0 if i < 4 else 1.25))
    return cases


def main() -> None:
    if not cv2.__version__.startswith("4.10."):
        sys.exit(f"run this with OpenCV 4.10 (upstream's behaviour); found {cv2.__version__}")
    rng = np.random.default_rng(20260312)
    data = {"opencv_version": np.array(cv2.__version__)}
    for case in small_cases(rng) + crop_cases(rng) + draw_cases() + float_cases(rng):
        flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if case["inverse"] else 0)
        out = cv2.warpAffine(case["src"], case["matrix"], case["size"], flags=flags, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=(case["border"],) * 4)
        key = case["name"]
        data.update({f"{key}_src": case["src"], f"{key}_matrix": np.asarray(case["matrix"], np.float64),
                     f"{key}_size": np.array(case["size"]), f"{key}_inverse": np.array(case["inverse"]),
                     f"{key}_border": np.array(case["border"], np.float64), f"{key}_out": out})
    np.savez_compressed(OUT, **data)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB, {sum(k.endswith('_out') for k in data)} cases)")


if __name__ == "__main__":
    main()
