"""Tier 2: the native path computes the same model function as the standalone (upstream-pinned) path.

In ComfyUI's own Python (no server): the maker's full-size random UNet and ControlNet are loaded by ComfyUI
(comfy.sd / comfy.controlnet, as the stock loaders and Load Face-Adapter do) and by diffusers (the standalone
path). At the same noisy latent, sigma and face conditions, ComfyUI's CFG-combined noise prediction, with the
conditioning Apply Face-Adapter builds (ControlNet with its own context on both halves, signed hint, empty
negative), must equal ``generate.standalone.cfg_noise_prediction``. Whole images are not compared: the
samplers' noise differs (see upstream.md §1.5b).
"""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RELATIVE_TOLERANCE = 1e-4  # fp32 on both sides; the bound

SCRIPT = textwrap.dedent(r"""
    import json, sys
    comfy_path, repo, models = sys.argv[1:4]
    sys.argv = [sys.argv[0], "--cpu"]
    sys.path[:0] = [comfy_path, repo]
    import comfy.options
    comfy.options.enable_args_parsing()
    import torch
    import comfy.sample, comfy.samplers, comfy.sd, comfy.controlnet
    from standalone import load_pack
    load_pack()
    from faceadapter_suite.core import comfy_bridge_sampling as sampling
    from faceadapter_suite.generate.conditioning import face_conditions
    from faceadapter_suite.generate.native import ControlSettings, comfy_conditioning
    from faceadapter_suite.generate import standalone as sa

    fa = models + "/faceadapter"
    g = torch.Generator().manual_seed(0)
    count, size, cfg, timestep = 2, 64, 5.0, 500
    conditions = face_conditions(torch.randn(count, 77, 768, generator=g), torch.randn(count, 77, 768, generator=g),
                                 torch.randn(1, 77, 768, generator=g), torch.rand(count, size, size, 3, generator=g))
    sigma = sa.sigma_at(timestep)
    latent = torch.randn(count, 4, size // 8, size // 8, generator=g) * (sigma ** 2 + 1) ** 0.5

    model = sampling.load_unet(fa + "/pretrained_unet/diffusion_pytorch_model.safetensors")
    control_net = sampling.load_controlnet(fa + "/controlnet/diffusion_pytorch_model.safetensors")
    positive, negative = comfy_conditioning(conditions, control_net, ControlSettings())
    captured = {}

    def one_model_call(model_wrap, noise, sigmas, extra_args=None, callback=None, disable=None):
        denoised = model_wrap(noise, sigmas[0] * noise.new_ones([noise.shape[0]]), **(extra_args or {}))
        captured["eps"] = ((noise - denoised) / sigmas[0]).float().cpu()
        return denoised

    sampler = comfy.samplers.KSAMPLER(one_model_call)
    sigmas = torch.tensor([sigma, 0.0])
    # KSAMPLER starts from latent_image + noise * sigma (not the max-denoise scaling at this sigma): x = latent
    comfy.sample.sample_custom(model, latent / sigma, cfg, sampler, sigmas, positive, negative,
                               torch.zeros_like(latent), seed=0)
    native = captured["eps"]
    comfy_sigma = float(model.get_model_object("model_sampling").sigma(torch.tensor(timestep)))
    # One side's full-size fp32 networks at a time (~5 GB each): CI machines have 24 GB beside the server.
    del model, control_net, positive, negative, sampler
    import gc, comfy.model_management
    comfy.model_management.unload_all_models()
    gc.collect()

    files = sa.DiffusionFiles(sa.Path(fa + "/pretrained_unet"), sa.Path(fa + "/controlnet"),
                              sa.Path(models + "/vae/vae-ft-mse-840000-ema-pruned.safetensors"),
                              device=torch.device("cpu"))
    ours = sa.cfg_noise_prediction(files.load(), latent, timestep, conditions, cfg)
    diff = (native - ours).abs().max().item()
    print(json.dumps({"max_abs": diff, "max_ref": ours.abs().max().item(), "shape": list(ours.shape),
                      "comfy_sigma": comfy_sigma,
                      "sigma": sigma}))
""")


def _free_session_server(comfy) -> None:
    """The session ComfyUI holds the earlier tests' full-size networks (~11 GB on CPU): drop the pack's model
    cache and ComfyUI's cached outputs and models first, so this test's own process fits beside it."""
    comfy.run({"1": {"class_type": "FaceAdapterModelCache", "inputs": {"action": "unload"}}}, timeout=120)
    comfy.post("/free", {"unload_models": True, "free_memory": True})
    comfy.run({"1": {"class_type": "FaceAdapterModelCache", "inputs": {"action": "report"}}}, timeout=120)


def test_native_cfg_prediction_equals_standalone(comfy, random_models_dir, tmp_path):
    _free_session_server(comfy)
    result = subprocess.run([os.environ["COMFYUI_PYTHON"], "-c", SCRIPT, os.environ["COMFYUI_PATH"], str(REPO),
                             str(random_models_dir)], cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(report))  # pytest -s shows the measured difference
    assert report["shape"] == [2, 4, 8, 8]
    assert abs(report["comfy_sigma"] - report["sigma"]) < 1e-5 * report["sigma"]
    assert report["max_abs"] <= RELATIVE_TOLERANCE * report["max_ref"], report
