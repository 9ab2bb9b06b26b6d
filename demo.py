#!/usr/bin/env python3
"""Offline demo of the spatial-condition stage, through the same node classes ComfyUI runs.

    python demo.py                                   # Grace Hopper's identity, the astronaut's pose
    python demo.py --source me.jpg --target you.png --task swap --out my_demo

Photos default to ones shipped inside installed packages; models default to none at
all (mediapipe mesh projector + landmark-hull area). Put Face-Adapter's files in
``<models-dir>/faceadapter/`` and pass ``--projector d3dfr_bfm`` to use the upstream path.
Writes PNGs (detections, landmarks, adapting area, control image, a contact sheet) and a
summary JSON to the output folder.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent
SAMPLE_NAMES = ("astronaut", "grace_hopper", "tom_hanks", "t1")  # face/sample_photos.py; kept here so --help needs no numpy


def _pack():
    """Heavy imports (numpy, torch, cv2, mediapipe) only once the arguments are known."""
    sys.path.insert(0, str(REPO))
    from standalone import load_pack

    load_pack()
    import faceadapter_suite as pack
    from faceadapter_suite.core import comfy_bridge, errors, images
    from faceadapter_suite.face import sample_photos
    from faceadapter_suite.nodes import face_analysis, spatial_condition

    assert tuple(sample_photos.SAMPLE_NAMES) == SAMPLE_NAMES
    return pack, comfy_bridge, errors, images, sample_photos, face_analysis, spatial_condition


def read_photo(name: str):
    sample_photos = _pack()[4]
    if name in SAMPLE_NAMES:
        return sample_photos.load_sample(name)
    try:
        return sample_photos.read_rgb(name)
    except FileNotFoundError:
        raise SystemExit(f"demo: cannot read {name!r} (give a path or one of {', '.join(SAMPLE_NAMES)})") from None


def save_png(path: Path, image) -> None:
    import cv2
    import numpy as np

    image_to_uint8 = _pack()[3].image_to_uint8
    rgb = image_to_uint8(image)[0] if not isinstance(image, np.ndarray) else image
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=-1)
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))


def run(args: argparse.Namespace) -> dict:
    import numpy as np

    _, comfy_bridge, errors, images_mod, _, fa, sc = _pack()
    image_to_uint8, uint8_to_image = images_mod.image_to_uint8, images_mod.uint8_to_image
    if args.models_dir:
        comfy_bridge.set_models_dir(args.models_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def timed(label: str, fn):
        start = time.perf_counter()
        value = fn()
        timings[label] = round(time.perf_counter() - start, 3)
        return value

    analyzer, info = timed("load_face_analysis", lambda: fa.FaceAdapterLoadFaceAnalysis().load(
        backend="mediapipe", min_score=0.5, max_faces=10, landmarks="auto", recognition=False,
        insightface_model="antelopev2", det_size=640, mediapipe_detector="full_range", device="auto"))
    images, faces = {}, {}
    for role, name in (("source", args.source), ("target", args.target)):
        images[role] = uint8_to_image(read_photo(name))
        detected, preview, _ = timed(f"detect_{role}", lambda: fa.FaceAdapterDetectFaces().detect(
            images[role], analyzer, tracking=False, smoothing="off", min_cutoff=1.0, beta=0.5, preview=True))
        try:
            faces[role] = fa.FaceAdapterSelectFace().select(detected, "largest", "left_to_right", 0, False, "error", -1.0)[0]
        except errors.NoFaceError:
            raise errors.NoFaceError(f"no face found in the {role} photo {name!r}; use a photo where a face is "
                                     "clearly visible") from None
        save_png(out / f"{role}_detections.png", preview)

    method = sc.BFM if args.projector == "d3dfr_bfm" else sc.MESH
    recon = sc.FaceAdapterLoad3DReconstructor().load(method, "third_party/d3dfr_res50_nofc.pth",
                                                     "third_party/BFM_model_front.mat")[0]
    landmarks, overlay, drawn = timed("project_landmarks", lambda: sc.FaceAdapterProject3DLandmarks().project(
        recon, images["source"], faces["source"], images["target"], faces["target"], args.task, "error", 0.81))
    area, area_preview = timed("adapting_area", lambda: sc.FaceAdapterPredictAdaptingArea().predict(
        landmarks, "auto", "net_seg_res18.pth", "third_party/79999_iter.pth"))
    _, control, _, blend = timed("compose_control", lambda: sc.FaceAdapterComposeSpatialControl().compose(
        landmarks, area))

    save_png(out / "landmarks_overlay.png", overlay)
    save_png(out / "landmarks.png", drawn)
    save_png(out / "adapting_area.png", area_preview)
    save_png(out / "blend_mask.png", (blend[0].numpy() * 255).astype(np.uint8))
    save_png(out / "control.png", control)
    crops = [landmarks.crops(r)[0] for r in ("source", "target")]
    sheet = np.concatenate([crops[0], crops[1], image_to_uint8(overlay)[0], image_to_uint8(area_preview)[0],
                            image_to_uint8(control)[0]], axis=1)
    save_png(out / "sheet.png", sheet)
    summary = {"source": args.source, "target": args.target, "task": args.task, "projector": landmarks.method,
               "analysis": info, "area_pixels": int(area.sum()),
               "timings_s": timings, "outputs": sorted(p.name for p in out.glob("*.png"))}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="grace_hopper", help=f"identity photo: a path or {', '.join(SAMPLE_NAMES)}")
    parser.add_argument("--target", default="astronaut", help="pose/expression photo: a path or a sample name")
    parser.add_argument("--task", choices=["reenact", "swap"], default="reenact")
    parser.add_argument("--projector", choices=["mediapipe_mesh", "d3dfr_bfm"], default="mediapipe_mesh")
    parser.add_argument("--models-dir", help="folder holding faceadapter/ (default: $FACEADAPTER_MODELS_DIR)")
    parser.add_argument("--out", default="demo_out")
    args = parser.parse_args(argv)
    errors = _pack()[2]
    try:
        summary = run(args)
    except errors.FaceAdapterError as exc:  # e.g. a photo with no face: one clear line, no traceback
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
