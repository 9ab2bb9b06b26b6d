#!/usr/bin/env python3
"""Offline demo: the spatial-condition stage through the same node classes ComfyUI runs, then the face
generated and pasted back on the standalone (diffusers) path when the models folder has the files.

    python demo.py                                   # Grace Hopper's identity, the astronaut's pose
    python demo.py --source me.jpg --target you.png --task swap --out my_demo
    python demo.py --models-dir MODELS --steps 25    # + the generated face (MODELS/faceadapter/, MODELS/vae/)

Photos default to ones shipped inside installed packages; the spatial stage needs no model at all
(mediapipe mesh projector + landmark-hull area). Put Face-Adapter's files in ``<models-dir>/faceadapter/``
(and SD's VAE in ``<models-dir>/vae/``) to generate the face; pass ``--projector d3dfr_bfm`` to use the
upstream spatial path. ``./dev.sh models DIR`` writes random-weight files under the official names: they
check the pipeline end to end, they do not make a face. Writes PNGs (detections, landmarks, adapting area,
control image, a contact sheet; with the models: the generated crop, the blended crop and the result) and a
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
VAE_NAME = "vae-ft-mse-840000-ema-pruned.safetensors"  # generate/standalone.py's; kept here for --help


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
    spatial, control, _, blend = timed("compose_control", lambda: sc.FaceAdapterComposeSpatialControl().compose(
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
    paste_into = images["source"] if args.task == "reenact" else images["target"]
    generation = generate(args, spatial, paste_into, out, timed)
    summary = {"source": args.source, "target": args.target, "task": args.task, "projector": landmarks.method,
               "analysis": info, "area_pixels": int(area.sum()), "generation": generation,
               "timings_s": timings, "outputs": sorted(p.name for p in out.glob("*.png"))}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


MODELS_HOW = ("put Face-Adapter's files in <models-dir>/faceadapter/ and SD's VAE in <models-dir>/vae/ (README, "
              "'Models'), or write random-weight ones to check the pipeline: ./dev.sh models DIR [--tiny], then "
              "pass --models-dir DIR")


def generate(args: argparse.Namespace, spatial, paste_into, out: Path, timed) -> dict:
    """Stage 2 on the standalone path (diffusers; the same conditions as the nodes), or why it was skipped."""
    errors = _pack()[2]
    from faceadapter_suite.generate import standalone
    from faceadapter_suite.generate.nets import FaceAdapterNets

    assert standalone.VAE_NAME == VAE_NAME
    try:
        nets, files = FaceAdapterNets.found(), standalone.DiffusionFiles.found(args.vae)
        files.check()
        standalone.diffusers_module()
    except (errors.MissingModelError, ImportError) as exc:
        why = str(exc).splitlines()[0]
        print(f"demo: no face generated: {why}\ndemo: to generate it, {MODELS_HOW}", file=sys.stderr)
        return {"generated": False, "why": why, "how": MODELS_HOW}
    sampler = standalone.DiffusersSampler(files, steps=args.steps, cfg=args.cfg)
    done = []

    def progress() -> None:
        done.append(1)
        print(f"\rdemo: sampling step {len(done)}/{args.steps}", end="\n" if len(done) == args.steps else "",
              file=sys.stderr, flush=True)

    result = timed("generate", lambda: standalone.render_standalone(spatial, nets, sampler, paste_into,
                                                                      seed=args.seed, on_step=progress))
    save_png(out / "generated_crop.png", result.raw_crops)
    save_png(out / "blended_crop.png", result.crops)
    save_png(out / "result.png", result.pasted)
    return {"generated": True, "steps": args.steps, "cfg": args.cfg, "seed": args.seed, "sampler": "euler",
            "unet": str(files.unet_dir), "vae": str(files.vae_file), "frames": int(result.pasted.shape[0])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="grace_hopper", help=f"identity photo: a path or {', '.join(SAMPLE_NAMES)}")
    parser.add_argument("--target", default="astronaut", help="pose/expression photo: a path or a sample name")
    parser.add_argument("--task", choices=["reenact", "swap"], default="reenact")
    parser.add_argument("--projector", choices=["mediapipe_mesh", "d3dfr_bfm"], default="mediapipe_mesh")
    parser.add_argument("--models-dir", help="folder holding faceadapter/ (default: $FACEADAPTER_MODELS_DIR)")
    parser.add_argument("--vae", help=f"SD's VAE: a name in <models-dir>/vae/ or a path (default {VAE_NAME})")
    parser.add_argument("--steps", type=int, default=25, help="Euler steps (upstream: 25)")
    parser.add_argument("--cfg", type=float, default=5.0, help="classifier-free guidance scale (upstream: 5)")
    parser.add_argument("--seed", type=int, default=0)
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
