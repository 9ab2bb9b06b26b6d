"""Face-Adapter Render inside ComfyUI: time per sampling step against the bare UNet + ControlNet forwards.

Runs in a Python that has ComfyUI's requirements, with COMFYUI_PATH naming a ComfyUI tree (without it, it
prints a JSON line saying it was skipped). No server: ComfyUI's modules are imported as the nodes use them.

Per step = (Render at 3 steps - Render at 1 step) / 2, which cancels what is paid once per call (conditioning,
VAE decode, blend, paste). Bare = the time spent inside the UNet's and the ControlNet's own forwards in the
same calls (forward hooks), so the ratio is the sampler's, ComfyUI's and the pack's overhead per step on top
of the networks, at the same size and batch. Also reports how many UNet calls a step makes and their batch
(CFG batched: one call of 2 x frames). Models: the maker's full-size random models (compute cost does not
depend on weight values); ``--models`` names another folder from scripts/make_random_models.py.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

COMFY = os.environ.get("COMFYUI_PATH", "")


def _prepare_comfy() -> bool:
    if not COMFY or not (Path(COMFY) / "main.py").is_file():
        return False
    import torch

    sys.argv = [sys.argv[0]] + ([] if torch.cuda.is_available() else ["--cpu"])
    sys.path.insert(0, COMFY)
    import comfy.options

    comfy.options.enable_args_parsing()
    return True


class ForwardClock:
    """Wall time and calls spent inside a module's forward (pre/post hooks)."""

    def __init__(self, module) -> None:
        self.seconds, self.calls, self.batches, self._start = 0.0, 0, [], 0.0
        self._handles = [module.register_forward_pre_hook(self._pre), module.register_forward_hook(self._post)]

    def _pre(self, _module, args) -> None:
        self._sync()
        self._start = time.perf_counter()
        if args:
            self.batches.append(int(args[0].shape[0]))

    def _post(self, _module, _args, _out) -> None:
        self._sync()
        self.seconds += time.perf_counter() - self._start
        self.calls += 1

    @staticmethod
    def _sync() -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def snapshot(self) -> tuple[float, int]:
        return self.seconds, self.calls


def spatial_record(frames: int):
    """Grace Hopper's face onto ``frames`` astronaut frames (swap), mediapipe conditions: no stage-1 files."""
    import numpy as np

    from faceadapter_suite.core.images import uint8_to_image
    from faceadapter_suite.face.analysis import load_analyzer
    from faceadapter_suite.face.sample_photos import load_sample
    from faceadapter_suite.nodes import face_analysis as fa_nodes
    from faceadapter_suite.nodes import spatial_condition as sc

    analyzer = load_analyzer("mediapipe")
    source = uint8_to_image(load_sample("grace_hopper"))
    astro = load_sample("astronaut")
    target = uint8_to_image(np.stack([np.roll(astro, 4 * k, axis=1) for k in range(frames)]))

    def faces(image):
        found = fa_nodes.FaceAdapterDetectFaces().detect(image, analyzer, True, "off", 1.0, 0.5, False)[0]
        return fa_nodes.FaceAdapterSelectFace().select(found, "largest", "left_to_right", 0, True, "pass_through",
                                                       -1.0)[0]

    recon = sc.FaceAdapterLoad3DReconstructor().load(sc.MESH, "", "")[0]
    landmarks = sc.FaceAdapterProject3DLandmarks().project(recon, source, faces(source), target, faces(target),
                                                           "swap", "pass_through", 0.81)[0]
    area = sc.FaceAdapterPredictAdaptingArea().predict(landmarks, "landmark_hull", "", "")[0]
    return sc.FaceAdapterComposeSpatialControl().compose(landmarks, area)[0], target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="a folder from scripts/make_random_models.py (default: the tier-2 cache)")
    parser.add_argument("--frames", type=int, nargs="+", default=[1], help="face pairs per Render call")
    args = parser.parse_args()
    if not _prepare_comfy():
        print('{"bench": "generation_native", "skipped": "set COMFYUI_PATH to a ComfyUI tree (and run with a '
              'Python that has its requirements)"}')
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import RANDOM_MODELS_CACHE, emit

    import comfy.sd
    import comfy.utils

    from faceadapter_suite.core import comfy_bridge_sampling as sampling
    from faceadapter_suite.generate.nets import FaceAdapterNets
    from faceadapter_suite.nodes import generation
    from faceadapter_suite.tools.random_models import ensure_random_models

    models = Path(args.models) if args.models else ensure_random_models(RANDOM_MODELS_CACHE / "fp16", dtype="fp16")
    fa = models / "faceadapter"
    nets = FaceAdapterNets(fa / "net_id2token.pth", fa / "net_image2token.pth",
                           fa / "third_party" / "insightface_glint360k.pth", fa / "vision_encoder",
                           fa / "empty_prompt_embedding.pth")
    model = sampling.load_unet(fa / "pretrained_unet" / "diffusion_pytorch_model.safetensors")
    control_net = sampling.load_controlnet(fa / "controlnet" / "diffusion_pytorch_model.safetensors")
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(models / "vae" / "vae-ft-mse-840000-ema-pruned.safetensors")))
    results = {}
    for frames in args.frames:
        spatial, image = spatial_record(frames)
        identity = generation.FaceAdapterEncodeIdentity().encode(spatial, nets, "source")[0]
        attributes = generation.FaceAdapterEncodeAttributes().encode(spatial, nets, "task")[0]

        def render(steps: int) -> float:
            start = time.perf_counter()
            generation.FaceAdapterRender().render(spatial, identity, attributes, control_net, nets, image, model,
                                                  vae, 0, steps, 5.0, "euler", "normal", frames, True, 1.0, 0.0, 1.0)
            return time.perf_counter() - start

        render(1)  # loads the networks onto the device; ComfyUI keeps them there
        unet = ForwardClock(model.model.diffusion_model)
        control = ForwardClock(control_net.control_model)
        times, inside, calls = {}, {}, {}
        for steps in (1, 3):
            before = unet.snapshot(), control.snapshot()
            times[steps] = render(steps)
            inside[steps] = unet.seconds - before[0][0] + control.seconds - before[1][0]
            calls[steps] = unet.calls - before[0][1]
        per_step = (times[3] - times[1]) / 2
        bare = (inside[3] - inside[1]) / 2
        results[f"frames_{frames}"] = {
            "render_s_per_step": round(per_step, 3),
            "bare_unet_controlnet_s_per_step": round(bare, 3),
            "ratio_render_per_step_over_bare": round(per_step / bare, 3),
            "goal": "<= 1.10",
            "unet_calls_per_step": (calls[3] - calls[1]) / 2,
            "unet_batch": sorted(set(unet.batches)),
            "fixed_cost_s": round(times[1] - per_step, 2),
        }
    emit("generation_native", {"size": 512, "models": str(models), **results})


if __name__ == "__main__":
    main()
