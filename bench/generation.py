"""Standalone Face-Adapter generation (diffusers, no ComfyUI): time per sampling step against the bare UNet +
ControlNet forwards, and identity encodes when one source drives many frames.

Per step = wall time between consecutive step callbacks of one render (so loading, encodes, VAE decode, blend
and paste, paid once per call, are outside it; on a shared CPU this is steadier than the difference of two
renders that bench/generation_native.py takes). Bare = the time spent inside the UNet's and the ControlNet's
own forwards in the same intervals (forward hooks), so the ratio is the standalone loop's overhead per step
(scheduler, CFG, batching, callback) on top of the networks, at the same size (512) and batch. Also: UNet calls per step and their batch (CFG
batched: one call of 2 x frames), and how many times ArcFace + ID2Token ran when one source photo drives
``--encode-frames`` frames (goal: 1; measured on the maker's tiny set at 1 step, as the count does not depend
on the networks' size). Models: the maker's full-size random models (compute cost does not depend on weight
values) in the tier-2 cache; ``--models`` names another folder from scripts/make_random_models.py.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import RANDOM_MODELS_CACHE, emit

from faceadapter_suite.core import comfy_bridge  # noqa: E402
from faceadapter_suite.core.cache import MODEL_CACHE  # noqa: E402
from faceadapter_suite.generate import standalone  # noqa: E402
from faceadapter_suite.generate.nets import FaceAdapterNets  # noqa: E402
from faceadapter_suite.tools.random_models import ensure_random_models  # noqa: E402
from generation_native import ForwardClock, spatial_record  # noqa: E402



def per_step(models: Path, frames: int, steps: int) -> dict:
    """Wall time between consecutive step callbacks of one render_standalone call against the UNet + ControlNet
    forward time inside the same intervals (the first step, which follows loading and encoding, is left out)."""
    comfy_bridge.set_models_dir(models)
    nets, files = FaceAdapterNets.found(), standalone.DiffusionFiles.found()
    spatial, image = spatial_record(frames)
    loaded = files.load()
    unet, control = ForwardClock(loaded.unet), ForwardClock(loaded.controlnet)
    marks: list[tuple[float, float]] = []

    def on_step() -> None:
        marks.append((time.perf_counter(), unet.seconds + control.seconds))

    start = time.perf_counter()
    standalone.render_standalone(spatial, nets, standalone.DiffusersSampler(files, steps=steps, cfg=5.0), image,
                                 frames_per_batch=frames, on_step=on_step)
    total = time.perf_counter() - start
    wall = (marks[-1][0] - marks[0][0]) / (len(marks) - 1)
    bare = (marks[-1][1] - marks[0][1]) / (len(marks) - 1)
    return {"standalone_s_per_step": round(wall, 3), "bare_unet_controlnet_s_per_step": round(bare, 3),
            "ratio_standalone_per_step_over_bare": round(wall / bare, 3), "goal": "<= 1.10",
            "steps_timed": len(marks) - 1, "unet_calls_per_step": unet.calls / steps,
            "unet_batch": sorted(set(unet.batches)), "rest_of_the_call_s": round(total - wall * (len(marks) - 1), 2)}


def identity_encodes(frames: int) -> dict:
    """ArcFace + ID2Token runs for one source photo driving ``frames`` frames, end to end (tiny set, 1 step)."""
    MODEL_CACHE.clear()
    comfy_bridge.set_models_dir(ensure_random_models(RANDOM_MODELS_CACHE / "tiny", tiny=True))
    nets, files = FaceAdapterNets.found(), standalone.DiffusionFiles.found()
    spatial, image = spatial_record(frames)
    counts = {"id2token": 0, "arcface_forwards": 0}

    def counter(name: str):
        return lambda *_: counts.__setitem__(name, counts[name] + 1)

    hooks = [nets.id2token().value.register_forward_hook(counter("id2token")),
             nets.arcface().value.register_forward_hook(counter("arcface_forwards"))]
    try:
        standalone.render_standalone(spatial, nets, standalone.DiffusersSampler(files, steps=1), image)
    finally:
        for hook in hooks:
            hook.remove()
    return {"frames": frames, "face_pairs": len(spatial), "identity_encodes": counts["id2token"], "goal": 1,
            "arcface_forwards": counts["arcface_forwards"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="a folder from scripts/make_random_models.py (default: the tier-2 cache)")
    parser.add_argument("--frames", type=int, nargs="+", default=[1], help="face pairs per render call")
    parser.add_argument("--steps", type=int, default=4, help="sampling steps of the timed render (>= 2)")
    parser.add_argument("--encode-frames", type=int, default=16, help="frames one source drives (encode count)")
    args = parser.parse_args()
    models = Path(args.models) if args.models else ensure_random_models(RANDOM_MODELS_CACHE / "fp16", dtype="fp16")
    results = {f"frames_{n}": per_step(models, n, max(args.steps, 2)) for n in args.frames}
    emit("generation", {"size": 512, "models": str(models), "dtype": str(standalone.DIFFUSION_DTYPE),
                        **results, "one_source": identity_encodes(args.encode_frames)})


if __name__ == "__main__":
    main()
