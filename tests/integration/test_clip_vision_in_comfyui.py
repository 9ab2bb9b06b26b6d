"""Tier 2: a stock CLIP_VISION gives the attribute template the same hidden states as our tower.

Runs in ComfyUI's own Python (COMFYUI_PYTHON, ComfyUI's tree on sys.path, --cpu), no server: a random
full-size ViT-H/14 written in the transformers 4.x layout as fp16 safetensors (as ComfyUI's
clip_vision_h.safetensors and Face-Adapter's vision_encoder/ are laid out) is loaded by ComfyUI's
``comfy.clip_vision.load`` and by ``load_clip_vision``; on the same CLIPImageProcessor pixels,
``comfy_bridge.clip_vision_hidden_states`` must equal our last_hidden_state. A ViT-L-shaped stock
encoder must be refused by the width check.
"""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Both sides use the same fp16 weights and compute in fp32 (ComfyUI's manual cast follows the fp32 pixels).
# Measured on CPU: max |diff| 1.9e-5 with max |h| 26.9 (7e-7 relative; mean |h| 4.9).
RELATIVE_TOLERANCE = 1e-5

SCRIPT = textwrap.dedent(r"""
    import json, sys, time
    comfy_path, repo, folder = sys.argv[1:4]
    sys.argv = [sys.argv[0], "--cpu"]
    sys.path[:0] = [comfy_path, repo]
    import comfy.options
    comfy.options.enable_args_parsing()
    import numpy as np, torch
    import comfy.clip_vision
    from safetensors.torch import save_file
    from standalone import load_pack
    load_pack()
    from faceadapter_suite.core import comfy_bridge
    from faceadapter_suite.face.sample_photos import load_sample
    from faceadapter_suite.models import clip_vision as cv

    def write(config, path, random):
        with torch.device("meta"):
            layout = cv.CLIPVisionTower(config).state_dict()
        g = torch.Generator().manual_seed(0)
        state = {}
        for k, v in layout.items():
            if not random:
                t = torch.zeros(v.shape)
            elif k.endswith("bias"):
                t = torch.randn(v.shape, generator=g) * 0.05
            elif "norm" in k:
                t = torch.rand(v.shape, generator=g) + 0.5
            elif v.ndim == 1 or "position_embedding" in k:
                t = torch.randn(v.shape, generator=g)
            else:
                t = torch.randn(v.shape, generator=g) / float(np.prod(v.shape[1:])) ** 0.5
            state[k] = t.to(torch.float16)
        save_file(state, path)

    report = {}
    h_path, l_path = folder + "/vit_h14.safetensors", folder + "/vit_l14.safetensors"
    write(cv.VIT_H14, h_path, random=True)
    write(cv.VIT_L14, l_path, random=False)

    stock = comfy.clip_vision.load(h_path)
    report["width_layers"] = comfy_bridge.clip_vision_width_layers(stock)
    cv.require_vit_h(*report["width_layers"])
    astronaut = load_sample("astronaut")
    pixels = cv.clip_image_processor_pixels(astronaut[None])
    t0 = time.perf_counter()
    theirs = comfy_bridge.clip_vision_hidden_states(stock, pixels)
    report["comfy_seconds"] = time.perf_counter() - t0
    ours_tower = cv.load_clip_vision(h_path)
    with torch.no_grad():
        ours = ours_tower(pixels)
    report["shape"] = list(theirs.shape)
    report["dtype"] = str(theirs.dtype)
    report["stock_weight_dtype"] = str(stock.model.vision_model.encoder.layers[0].mlp.fc1.weight.dtype)
    report["max_abs"] = (theirs - ours).abs().max().item()
    report["max_h"] = ours.abs().max().item()
    report["mean_abs_h"] = ours.abs().mean().item()

    vit_l = comfy.clip_vision.load(l_path)
    report["vit_l_width_layers"] = comfy_bridge.clip_vision_width_layers(vit_l)
    try:
        cv.require_vit_h(*report["vit_l_width_layers"])
        report["vit_l_refused"] = ""
    except cv.WrongVisionEncoderError as exc:
        report["vit_l_refused"] = str(exc)
    print("REPORT " + json.dumps(report))
""")


def test_stock_clip_vision_matches_our_tower(tmp_path):
    env = dict(os.environ, FACEADAPTER_STANDALONE="0", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    comfy_path = os.environ["COMFYUI_PATH"]
    proc = subprocess.run([os.environ["COMFYUI_PYTHON"], "-c", SCRIPT, comfy_path, str(REPO), str(tmp_path)],
                          cwd=comfy_path, env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(lines[-1][len("REPORT "):])
    print(report)
    assert report["width_layers"] == [1280, 32]
    assert report["shape"] == [1, 257, 1280] and report["dtype"] == "torch.float32"
    assert report["stock_weight_dtype"] == "torch.float16"  # ComfyUI keeps CLIP vision in fp16
    assert report["mean_abs_h"] > 0.3
    assert report["max_abs"] <= RELATIVE_TOLERANCE * report["max_h"], report
    assert report["vit_l_width_layers"] == [1024, 24]
    assert "ViT-L/14 (1024 wide, 24 layers)" in report["vit_l_refused"]
    assert "ViT-H/14 (1280 wide, 32 layers)" in report["vit_l_refused"]
