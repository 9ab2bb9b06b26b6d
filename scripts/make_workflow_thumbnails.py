"""Remake the spatial templates' thumbnails (workflows/<name>.jpg) from a real ComfyUI run.

Starts ComfyUI (COMFYUI_PATH, COMFYUI_PYTHON, as the tier-2 tests do) with no Face-Adapter model files,
as a fresh install has, queues each template's API twin on the sample photos and tiles four of its
outputs at 256 px: landmarks on the crop, control image, paste weights, the frame pasted back.

    COMFYUI_PATH=... COMFYUI_PYTHON=... python scripts/make_workflow_thumbnails.py
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "integration")]

import conftest  # noqa: E402,F401  (imports the pack as faceadapter_suite)
from comfy_server import ComfyServer  # noqa: E402
from faceadapter_suite.face.sample_photos import load_sample  # noqa: E402

NAMES = ("faceadapter_spatial_condition_reenact", "faceadapter_spatial_condition_swap")
TILE = 256


def tile(rgb: np.ndarray) -> np.ndarray:
    """Fit into TILE x TILE, letterboxed on black."""
    h, w = rgb.shape[:2]
    s = TILE / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.zeros((TILE, TILE, 3), np.uint8)
    y, x = (TILE - small.shape[0]) // 2, (TILE - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        server = ComfyServer(Path(os.environ["COMFYUI_PATH"]), os.environ["COMFYUI_PYTHON"], Path(work)).start()
        try:
            for name in NAMES:
                prompt = json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text())
                for node in prompt.values():
                    if node["class_type"] == "LoadImage":
                        sample = node["inputs"]["image"][len("faceadapter_"):-len(".png")]
                        path = Path(work) / node["inputs"]["image"]
                        cv2.imwrite(str(path), load_sample(sample)[:, :, ::-1])
                        node["inputs"]["image"] = server.upload_image(path)
                result = server.run(prompt, timeout=300)
                assert result.succeeded, result.error()
                outputs = server.history(result.prompt_id)["outputs"]

                def first(title_class: str, source: list) -> np.ndarray:
                    nid = next(k for k, n in prompt.items() if n["class_type"] == title_class
                               and n["inputs"]["images"] == source)
                    data = server.view(outputs[nid]["images"][0])
                    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]

                project = next(k for k, n in prompt.items() if n["class_type"] == "FaceAdapterProject3DLandmarks")
                compose = next(k for k, n in prompt.items() if n["class_type"] == "FaceAdapterComposeSpatialControl")
                paste = next(k for k, n in prompt.items() if n["class_type"] == "FaceAdapterPasteGenerated")
                weights = next(k for k, n in prompt.items() if n["class_type"] == "MaskToImage"
                               and n["inputs"]["mask"] == [paste, 1])
                tiles = [first("PreviewImage", [project, 1]), first("SaveImage", [compose, 1]),
                         first("PreviewImage", [weights, 0]), first("SaveImage", [paste, 0])]
                sheet = np.concatenate([np.concatenate([tile(t) for t in tiles[:2]], axis=1),
                                        np.concatenate([tile(t) for t in tiles[2:]], axis=1)], axis=0)
                target = REPO / "workflows" / f"{name}.jpg"
                cv2.imwrite(str(target), sheet[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
                print("wrote", target)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
