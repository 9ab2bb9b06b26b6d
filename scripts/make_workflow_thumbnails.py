"""Remake the templates' thumbnails (workflows/<name>.jpg) from a real ComfyUI run.

Starts ComfyUI (COMFYUI_PATH, COMFYUI_PYTHON, as the tier-2 tests do), queues each template's API twin on
the sample photos and tiles four of its outputs at 256 px.
- Spatial templates, with no Face-Adapter model files (as a fresh install has): landmarks on the crop,
  control image, paste weights, the frame pasted back.
- The metrics template, with the random maker's ArcFace (the identity score of random weights means nothing;
  pose, expression and flicker numbers are real): its before/after grid, fitted to 512 px wide.
- Generation templates, with the random model maker's full-size files (tools/random_models.py; random
  weights, so the generated face is noise, not a face) and 1 sampling step instead of 25 to fit a CPU:
  source photo, control image, generated crop, the frame pasted back.
- The FADM template, on the same random files at 1 refinement step: source photo, coarse frame, refined
  crop, the frame pasted back.

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
GENERATION_NAMES = ("faceadapter_reenact", "faceadapter_swap", "faceadapter_multi_face_video_swap",
                    "faceadapter_native_checkpoint_lora")
METRICS_NAMES = ("faceadapter_metrics",)
FADM_NAMES = ("faceadapter_fadm_video",)
THUMBNAIL_STEPS = 1
TILE = 256
README_GRID = REPO / "docs" / "metrics_grid.png"


def tile(rgb: np.ndarray) -> np.ndarray:
    """Fit into TILE x TILE, letterboxed on black."""
    h, w = rgb.shape[:2]
    s = TILE / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.zeros((TILE, TILE, 3), np.uint8)
    y, x = (TILE - small.shape[0]) // 2, (TILE - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


def queue(server: ComfyServer, work: Path, prompt: dict) -> tuple[dict, dict]:
    """Upload the sample photos a prompt loads, run it, return (prompt with uploaded names, outputs)."""
    for node in prompt.values():
        if node["class_type"] == "LoadImage":
            sample = node["inputs"]["image"][len("faceadapter_"):-len(".png")]
            path = work / node["inputs"]["image"]
            cv2.imwrite(str(path), load_sample(sample)[:, :, ::-1])
            node["inputs"]["image"] = server.upload_image(path)
    result = server.run(prompt, timeout=3600)
    assert result.succeeded, result.error()
    return prompt, server.history(result.prompt_id)["outputs"]


def spatial_tiles(prompt: dict, first) -> list[np.ndarray]:
    project = next(k for k, n in prompt.items() if n["class_type"] == "FaceAdapterProject3DLandmarks")
    compose = next(k for k, n in prompt.items() if n["class_type"] == "FaceAdapterComposeSpatialControl")
    paste = next(k for k, n in prompt.items() if n["class_type"] == "FaceAdapterPasteGenerated")
    weights = next(k for k, n in prompt.items() if n["class_type"] == "MaskToImage" and n["inputs"]["mask"] == [paste, 1])
    return [first("PreviewImage", [project, 1]), first("SaveImage", [compose, 1]),
            first("PreviewImage", [weights, 0]), first("SaveImage", [paste, 0])]


def generation_tiles(prompt: dict, first) -> list[np.ndarray]:
    project = next(n for n in prompt.values() if n["class_type"] == "FaceAdapterProject3DLandmarks")
    side = "source_image" if project["inputs"]["task"] == "reenact" else "target_image"
    frames = prompt[project["inputs"][side][0]]
    if frames["class_type"] == "RepeatImageBatch":  # the video stand-in: its first frame
        frames = prompt[frames["inputs"]["image"][0]]
    photo = frames["inputs"]["image"]
    compose = next(k for k, n in prompt.items() if n["class_type"] == "FaceAdapterComposeSpatialControl")
    maker = next(k for k, n in prompt.items() if n["class_type"] in ("FaceAdapterBlendFaces", "FaceAdapterRender"))
    result = next(k for k, n in prompt.items() if n["class_type"] in ("FaceAdapterPasteGenerated", "FaceAdapterRender")
                  and any(m["class_type"] == "SaveImage" and m["inputs"]["images"] == [k, 0] for m in prompt.values()))
    original = cv2.imread(str(Path(SERVER_INPUT[0]) / photo))[:, :, ::-1]
    return [original, first("PreviewImage", [compose, 1]), first("PreviewImage", [maker, 0 if prompt[maker]["class_type"]
            == "FaceAdapterBlendFaces" else 1]), first("SaveImage", [result, 0])]


def metrics_sheet(prompt: dict, first) -> np.ndarray:
    """The before/after grid fitted to 512 px wide; the full grid also goes to docs/metrics_grid.png (README)."""
    grid = next(k for k, n in prompt.items() if n["class_type"] == "FaceAdapterBeforeAfterGrid")
    image = first("SaveImage", [grid, 0])
    cv2.imwrite(str(README_GRID), image[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print("wrote", README_GRID)
    scale = 2 * TILE / image.shape[1]
    return cv2.resize(image, (2 * TILE, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)


def fadm_tiles(prompt: dict, first) -> list[np.ndarray]:
    """Source photo, first coarse frame, first refined crop, the first frame pasted back."""
    of = {n["class_type"]: k for k, n in prompt.items()}
    source = prompt[of["FaceAdapterCoarseAnimate"]]["inputs"]["source"][0]
    photo = prompt[prompt[source]["inputs"]["image"][0]]["inputs"]["image"]
    original = cv2.imread(str(Path(SERVER_INPUT[0]) / photo))[:, :, ::-1]
    return [original, first("PreviewImage", [of["FaceAdapterCoarseAnimate"], 0]),
            first("PreviewImage", [of["FaceAdapterFADMRefine"], 0]),
            first("SaveImage", [of["FaceAdapterPasteFaces"], 0])]


SERVER_INPUT: list[str] = []


def thumbnails(names: tuple[str, ...], models: dict | None, tiles_of) -> None:
    with tempfile.TemporaryDirectory() as work:
        server = ComfyServer(Path(os.environ["COMFYUI_PATH"]), os.environ["COMFYUI_PYTHON"], Path(work),
                             models=models).start()
        SERVER_INPUT[:] = [str(Path(work) / "input")]
        try:
            for name in names:
                prompt = json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text())
                for node in prompt.values():
                    if "steps" in node["inputs"]:
                        node["inputs"]["steps"] = THUMBNAIL_STEPS
                prompt, outputs = queue(server, Path(work), prompt)

                def first(title_class: str, source: list) -> np.ndarray:
                    nid = next(k for k, n in prompt.items() if n["class_type"] == title_class
                               and n["inputs"]["images"] == source)
                    data = server.view(outputs[nid]["images"][0])
                    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]

                tiles = tiles_of(prompt, first)
                if isinstance(tiles, np.ndarray):  # one finished sheet
                    sheet = tiles
                else:
                    sheet = np.concatenate([np.concatenate([tile(t) for t in tiles[:2]], axis=1),
                                            np.concatenate([tile(t) for t in tiles[2:]], axis=1)], axis=0)
                target = REPO / "workflows" / f"{name}.jpg"
                cv2.imwrite(str(target), sheet[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
                print("wrote", target)
        finally:
            server.stop()


def main() -> None:
    only = set(sys.argv[1:])
    spatial = tuple(n for n in NAMES if not only or n in only)
    generation = tuple(n for n in GENERATION_NAMES if not only or n in only)
    measured = tuple(n for n in METRICS_NAMES if not only or n in only)
    fadm = tuple(n for n in FADM_NAMES if not only or n in only)
    if spatial:
        thumbnails(spatial, None, spatial_tiles)
    if generation or measured or fadm:
        from conftest import PACK  # noqa: F401
        from faceadapter_suite.tools.random_models import ensure_random_models
        from integration.conftest import RANDOM_MODELS_CACHE, template_models_paths

        models = ensure_random_models(RANDOM_MODELS_CACHE / "fp16", dtype="fp16")
        with tempfile.TemporaryDirectory() as links:
            paths = template_models_paths(models, Path(links))
            if generation:
                thumbnails(generation, paths, generation_tiles)
            if measured:
                thumbnails(measured, paths, metrics_sheet)
            if fadm:
                thumbnails(fadm, paths, fadm_tiles)


if __name__ == "__main__":
    main()
