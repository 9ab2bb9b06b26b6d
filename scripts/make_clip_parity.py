#!/usr/bin/env python3
"""Write the CLIP vision parity fixture by running transformers 4.37.1 (Face-Adapter's pin) itself.

Upstream Face-Adapter (commit UPSTREAM_COMMIT, infer.py / app.py) builds the attribute
template as ``CLIPVisionModel.from_pretrained(<ckpt>/vision_encoder)(CLIPImageProcessor()(images=
<PIL 512 crop>, return_tensors="pt").pixel_values).last_hidden_state``. This script runs exactly
those two transformers classes, OUTSIDE the pack (no pack import; only the sibling script
make_token_parity.py), in a venv with upstream's pins; it fetches nothing:

    python -m venv /work/venvs/upstream-tokens
    /work/venvs/upstream-tokens/bin/pip install torch numpy pillow safetensors transformers==4.37.1
    /work/venvs/upstream-tokens/bin/python scripts/make_clip_parity.py \\
        --astronaut .../site-packages/skimage/data/astronaut.png \\
        --tom-hanks .../site-packages/insightface/data/images/Tom_Hanks_54745.png

Both photos are PNGs (lossless), so the tests rebuild the identical uint8 inputs from
face/sample_photos.py and check them against the stored SHA-256 before comparing.

Writes (under tests/data/reference/parity/):
- ``clip_tiny_config.json``: the config.json 4.37.1's ``save_pretrained`` writes for a tiny random
  ``CLIPVisionModel`` (64 wide, 2 layers, 4 heads, MLP 128, patch 14, 224 px, gelu). Its weights are not
  stored (the pack tracks no weight files): ``make_token_parity.seeded_state`` (numpy RandomState) makes
  them from ``tiny_seed`` in the order ``tiny_keys`` (the model's state_dict order) here and in
  tests/test_clip_vision.py, which writes the same 4.x folder (config.json + model.safetensors).
- ``clip.npz``: ``tiny_keys`` (the keys 4.37.1 saved in model.safetensors, state_dict order), ``tiny_seed``;
  ``names``; ``crops`` (N,5) int (source index, top, bottom, left, right); ``input_sha256``;
  ``pixel_values`` (N,3,224,224) float32 from ``CLIPImageProcessor()`` on the PIL crops (one batch call,
  as upstream) and ``last_hidden_state`` (N,257,64) float32 of the tiny model on them; plus
  ``geometry_*``: more crops (upscaled, exactly 224, odd long edges) whose processor output is stored
  only as the SHA-256 of its float32 bytes, for an exact (bit-for-bit) check at no storage cost.
- ``clip_vit_h14_keys.json``: key names and shapes of a full ViT-H/14 ``CLIPVisionModel`` (the
  laion/CLIP-ViT-H-14-laion2B-s32B-b79K vision config) built on the meta device by 4.37.1.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from make_token_parity import layout_of, seeded_state  # same folder; numpy-seeded weights

UPSTREAM_COMMIT = "6e313885188e05740a7c40e12c1b9015c748bf08"
TRANSFORMERS_PIN = "4.37.1"
REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "tests" / "data" / "reference" / "parity"
SOURCES = ("astronaut", "tom_hanks")
# (name, source, top, bottom, left, right): the 512 attribute crop as upstream feeds it, a downscaled
# non-square crop (long edge 487 -> int(327.6) = 327, odd crop offset) and an upscaled non-square one.
STORED = (("astronaut_512", 0, 0, 512, 0, 512),
          ("astronaut_333x487", 0, 30, 363, 10, 497),
          ("tom_hanks_112x97", 1, 0, 112, 9, 106))
GEOMETRY = (("astronaut_224", 0, 100, 324, 150, 374),
            ("astronaut_225x300", 0, 0, 225, 0, 300),
            ("astronaut_80x350", 0, 100, 180, 50, 400),
            ("astronaut_512x301", 0, 0, 512, 211, 512),
            ("astronaut_97x61", 0, 150, 247, 200, 261),
            ("tom_hanks_112x112", 1, 0, 112, 0, 112))
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            image_size=224, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=64)
VIT_H14 = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
               image_size=224, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=1024)
SEED = 21


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--astronaut", type=Path, required=True, help="skimage/data/astronaut.png")
    ap.add_argument("--tom-hanks", type=Path, required=True, help="insightface/data/images/Tom_Hanks_54745.png")
    args = ap.parse_args()

    import torch
    import transformers
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    if transformers.__version__ != TRANSFORMERS_PIN:
        raise SystemExit(f"needs transformers {TRANSFORMERS_PIN} (upstream's pin), found {transformers.__version__}")
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in (args.astronaut, args.tom_hanks)]
    processor = CLIPImageProcessor()

    def crop(spec) -> np.ndarray:
        _, src, top, bottom, left, right = spec
        return np.ascontiguousarray(photos[src][top:bottom, left:right])

    stored = [crop(s) for s in STORED]
    pixel_values = processor(images=[Image.fromarray(c) for c in stored], return_tensors="pt").pixel_values
    geometry = [processor(images=Image.fromarray(crop(s)), return_tensors="pt").pixel_values[0].numpy()
                for s in GEOMETRY]

    from safetensors import safe_open

    model = CLIPVisionModel(CLIPVisionConfig(**TINY)).eval()
    layout = layout_of(model)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in seeded_state(layout, SEED).items()})
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        with safe_open(str(Path(tmp) / "model.safetensors"), "pt") as f:
            saved = set(f.keys())
        assert saved == {k for k, _, _ in layout}, "4.37.1 saved other keys than its state_dict"
        (OUT_DIR / "clip_tiny_config.json").write_text((Path(tmp) / "config.json").read_text())
        model = CLIPVisionModel.from_pretrained(tmp).eval()  # upstream's own load path
    with torch.no_grad():
        hidden = model(pixel_values).last_hidden_state.numpy()

    np.savez_compressed(
        OUT_DIR / "clip.npz",
        tiny_keys=np.array([k for k, _, _ in layout]), tiny_seed=np.array(SEED),
        names=np.array([s[0] for s in STORED]), sources=np.array(SOURCES),
        crops=np.array([s[1:] for s in STORED], dtype=np.int64),
        input_sha256=np.array([sha256(c) for c in stored]),
        pixel_values=pixel_values.numpy().astype(np.float32), last_hidden_state=hidden.astype(np.float32),
        geometry_names=np.array([s[0] for s in GEOMETRY]),
        geometry_crops=np.array([s[1:] for s in GEOMETRY], dtype=np.int64),
        geometry_input_sha256=np.array([sha256(crop(s)) for s in GEOMETRY]),
        geometry_pixel_sha256=np.array([sha256(g.astype(np.float32)) for g in geometry]),
        transformers_version=np.array(transformers.__version__), upstream_commit=np.array(UPSTREAM_COMMIT))

    with torch.device("meta"):
        full = CLIPVisionModel(CLIPVisionConfig(**VIT_H14))
    keys = [f"  {json.dumps(k)}: {json.dumps(list(v.shape))}" for k, v in full.state_dict().items()]
    head = {"transformers": transformers.__version__, "config": VIT_H14}
    (OUT_DIR / "clip_vit_h14_keys.json").write_text(
        json.dumps(head)[:-1] + ', "keys": {\n' + ",\n".join(keys) + "\n}}\n")
    print(f"wrote clip.npz, clip_tiny_config.json, clip_vit_h14_keys.json ({len(keys)} keys) in {OUT_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
