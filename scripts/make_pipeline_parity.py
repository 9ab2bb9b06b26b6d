#!/usr/bin/env python3
"""Write the sampling-pipeline parity fixture by running upstream's ``StableDiffusionFaceAdapterPipeline``.

Upstream Face-Adapter (commit UPSTREAM_COMMIT) samples with ``face_adapter_pipline.py``'s
``StableDiffusionFaceAdapterPipeline`` (a diffusers 0.26 StableDiffusionControlNetPipeline subclass), an
EulerDiscreteScheduler built from SD1.5's scheduler config, CFG 5 and ControlNet contexts of their own. This
script runs that class itself, OUTSIDE the pack (no pack import), in a venv with upstream's pins; it fetches
nothing and writes only ``tests/data/reference/parity/pipeline.npz``:

    python -m venv /work/scratch/upvenv     # + torch, numpy, pillow, torchvision, opencv, matplotlib
    /work/scratch/upvenv/bin/pip install diffusers==0.26.0 transformers==4.37.1 "huggingface_hub<0.26" safetensors
    git --git-dir=<mirror of FaceAdapter/Face-Adapter> archive 6e31388 face_adapter_pipline.py | tar -x -C UP
    ./dev.sh models /tmp/tiny --tiny --only unet controlnet vae          # the pack's maker, seed 0, fp32
    /work/scratch/upvenv/bin/python scripts/make_pipeline_parity.py --upstream UP --models /tmp/tiny \
        --work /tmp/seeded

``face_adapter_pipline.py`` star-imports ``fastai.basics`` without using it; an empty stand-in module is put
in ``sys.modules`` so the file imports without fastai.

Weights (not stored): the maker's tiny UNet, ControlNet and VAE configs and key layouts, with every tensor
re-drawn by tools/seeded_weights.py (loaded by path; fan-in scaled, so the ControlNet's context and hint stay
visible in the image, which the maker's fixed-std tensors let fade). They are written under --work;
tests/test_pipeline_parity.py writes the same files again and first compares the SHA-256 of their tensors
(``sha256_<unet|controlnet|vae>``) and the maker's configs (``config_<...>``) with the ones stored here. The VAE
file (diffusers keys, config in its safetensors header) goes into ``AutoencoderKL(**config)`` as
``from_pretrained`` would load a folder.

Inputs (stored): ``identity`` and ``attributes`` (2,77,768) and ``negative`` (1,77,768) tokens drawn N(0,1)
and rounded to multiples of 1/32 (stored as int8 = 32 x value); ``control`` (2,96,96,3) uint8, two real
astronaut crops resized to 96 (the pipeline is size-agnostic; 96 keeps the file small); ``noise``
(2,4,12,12) float32, passed as ``latents`` (the pipeline multiplies them by ``init_noise_sigma``). The hint is
upstream's ToTensor + Normalize(0.5, 0.5) of the control image, as infer.py prepares it; the negative goes to
the UNet and the ControlNet alike, as infer.py passes ``empty_prompt_token`` to both.
Outputs (``output_type="np"``, (B,96,96,3) in [0,1], stored as uint16 = round(65535 x value), 7.7e-6 at most
from the float32 result):
- ``image``: both pairs, 25 steps, CFG 5, ControlNet scale 1 over the whole schedule (infer.py's call);
- ``image_partial``: pair 0 only, 10 steps, CFG 3.5, ControlNet scale 0.7 from 20 % to 60 % of the steps
  (``controlnet_keep``).
Everything runs in float32 on the CPU (upstream runs fp16 on CUDA; fp32 makes a tight bound meaningful).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np

UPSTREAM_COMMIT = "6e313885188e05740a7c40e12c1b9015c748bf08"
PINS = {"diffusers": "0.26.0", "transformers": "4.37.1"}
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "reference" / "parity" / "pipeline.npz"
# runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json (a PNDMScheduler config): infer.py builds
# its EulerDiscreteScheduler from it with from_config, so every Euler option not named here is its default.
SD15_SCHEDULER_CONFIG = {"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
                         "beta_start": 0.00085, "clip_sample": False, "num_train_timesteps": 1000,
                         "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
                         "trained_betas": None}
SIZE, PAIRS, SEED = 96, 2, 7
TOKEN_STEP = 32  # tokens are multiples of 1/32, stored as int8
PIXEL_LEVELS = 65535  # images stored as uint16
CROPS = ((20, 240, 150, 370), (0, 512, 0, 512))  # (top, bottom, left, right) in skimage's astronaut


def seeded_weights_module():
    """tools/seeded_weights.py by path (numpy + torch only): the pack itself is not imported here."""
    spec = importlib.util.spec_from_file_location("seeded_weights", REPO / "tools" / "seeded_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tensors_sha256(path: Path) -> str:
    """SHA-256 over a safetensors file's tensors (sorted keys, name + float32 bytes): the weights, not the
    header (which names the writer's versions). The test computes the same on its own copy."""
    from safetensors.numpy import load_file

    digest = hashlib.sha256()
    for key, value in sorted(load_file(str(path)).items()):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(value.astype(np.float32)).tobytes())
    return digest.hexdigest()


def upstream_pipeline_class(upstream: Path):
    sys.modules.setdefault("fastai", types.ModuleType("fastai"))
    sys.modules.setdefault("fastai.basics", types.ModuleType("fastai.basics"))
    spec = importlib.util.spec_from_file_location("face_adapter_pipline", upstream / "face_adapter_pipline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.StableDiffusionFaceAdapterPipeline


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", type=Path, required=True, help="folder holding upstream's face_adapter_pipline.py")
    ap.add_argument("--models", type=Path, required=True, help="the maker's tiny set (unet, controlnet, vae)")
    ap.add_argument("--work", type=Path, required=True, help="where the seeded copies of those files are written")
    ap.add_argument("--astronaut", type=Path, help="skimage/data/astronaut.png (default: skimage's own)")
    args = ap.parse_args()

    import diffusers
    import torch
    import transformers
    from PIL import Image
    from safetensors import safe_open
    from safetensors.torch import load_file
    from torchvision import transforms

    for module in (diffusers, transformers):
        assert module.__version__ == PINS[module.__name__], (
            f"{module.__name__} {module.__version__} is not upstream's pin")
    torch.manual_seed(0)
    pipeline_class = upstream_pipeline_class(args.upstream)
    seeded = seeded_weights_module()
    seeded.seeded_diffusion_set(str(args.models), str(args.work))
    files = {name: args.work / rel for rel, name in seeded.DIFFUSION_FILES.items()}

    unet = diffusers.UNet2DConditionModel.from_pretrained(files["unet"].parent, torch_dtype=torch.float32)
    controlnet = diffusers.ControlNetModel.from_pretrained(files["controlnet"].parent, torch_dtype=torch.float32)
    with safe_open(str(files["vae"]), "pt") as f:
        vae_config = json.loads(f.metadata()["diffusers_config"])
    vae = diffusers.AutoencoderKL(**vae_config)
    vae.load_state_dict(load_file(str(files["vae"])), strict=True)
    vae.eval()
    scheduler = diffusers.EulerDiscreteScheduler.from_config(SD15_SCHEDULER_CONFIG)
    pipe = pipeline_class(vae=vae, text_encoder=None, tokenizer=None, unet=unet, controlnet=controlnet,
                          scheduler=scheduler, safety_checker=None, feature_extractor=None,
                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)

    if args.astronaut:
        photo = np.asarray(Image.open(args.astronaut).convert("RGB"))
    else:
        from skimage import data

        photo = data.astronaut()
    control = np.stack([np.asarray(Image.fromarray(photo[t:b, l:r]).resize((SIZE, SIZE), Image.BICUBIC))
                        for t, b, l, r in CROPS])
    g = torch.Generator().manual_seed(SEED)
    stored = {name: torch.randn(count, 77, 768, generator=g).mul(TOKEN_STEP).round().clamp(-127, 127).to(torch.int8)
              for name, count in (("identity", PAIRS), ("attributes", PAIRS), ("negative", 1))}
    identity, attributes, negative = (stored[k].float() / TOKEN_STEP for k in ("identity", "attributes", "negative"))
    noise = torch.randn(PAIRS, 4, SIZE // 8, SIZE // 8, generator=g)
    to_hint = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)])
    hint = torch.stack([to_hint(Image.fromarray(c)) for c in control])

    def run(rows: slice, steps: int, cfg: float, scale: float, start: float, end: float) -> np.ndarray:
        count = len(range(*rows.indices(PAIRS)))
        neg = negative.expand(count, 77, 768)
        return pipe(prompt_embeds=identity[rows], negative_prompt_embeds=neg,
                    controlnet_prompt_embeds=attributes[rows], controlnet_negative_prompt_embeds=neg,
                    image=hint[rows], num_inference_steps=steps, guidance_scale=cfg, latents=noise[rows].clone(),
                    controlnet_conditioning_scale=scale, control_guidance_start=start, control_guidance_end=end,
                    output_type="np").images.astype(np.float32)

    def as_uint16(image: np.ndarray) -> np.ndarray:
        return np.round(np.clip(image, 0, 1) * PIXEL_LEVELS).astype(np.uint16)

    image = run(slice(0, 2), 25, 5.0, 1.0, 0.0, 1.0)
    partial = run(slice(0, 1), 10, 3.5, 0.7, 0.2, 0.6)
    configs = {"unet": json.loads((files["unet"].parent / "config.json").read_text()),
               "controlnet": json.loads((files["controlnet"].parent / "config.json").read_text()), "vae": vae_config}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT, upstream_commit=UPSTREAM_COMMIT, diffusers=diffusers.__version__, transformers=transformers.__version__,
        scheduler_config=json.dumps(SD15_SCHEDULER_CONFIG), control=control, noise=noise.numpy(),
        token_step=TOKEN_STEP, pixel_levels=PIXEL_LEVELS, **{k: v.numpy() for k, v in stored.items()},
        image=as_uint16(image), image_partial=as_uint16(partial),
        partial_settings=np.array([10, 3.5, 0.7, 0.2, 0.6], np.float64),
        init_noise_sigma=float(scheduler.init_noise_sigma),
        **{f"sha256_{k}": tensors_sha256(v) for k, v in files.items()},
        **{f"config_{k}": json.dumps({n: c for n, c in v.items() if not n.startswith("_")}, sort_keys=True)
           for k, v in configs.items()})
    print(json.dumps({"out": str(OUT), "bytes": OUT.stat().st_size, "image_std": float(image.std()),
                      "partial_std": float(partial.std()), "init_noise_sigma": float(scheduler.init_noise_sigma)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
