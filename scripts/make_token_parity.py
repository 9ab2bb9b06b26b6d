#!/usr/bin/env python3
"""Write tests/data/reference/parity/tokens.npz by running upstream Face-Adapter's own token
networks and ArcFace IResNet (FaceAdapter/Face-Adapter at commit UPSTREAM_COMMIT).

Usage (fetches nothing; the checkout and the venv are yours to provide):

    python -m venv /work/venvs/upstream-tokens
    /work/venvs/upstream-tokens/bin/pip install torch numpy diffusers==0.26.0 transformers==4.37.1 \
        huggingface-hub==0.20.2          # model_to_token.py imports diffusers/transformers mixins
    /work/venvs/upstream-tokens/bin/python scripts/make_token_parity.py /path/to/Face-Adapter

Only ``face_adapter/model_to_token.py`` and ``third_party/insightface_backbone_conv.py`` are
imported from the checkout. Networks:
- ID2Token and Image2Token at the official full size (768-d, 77 queries, 3 layers);
- IResNet at upstream's ``iresnet18`` depth (2,2,2,2): same blocks, widths and heads as r100
  (the r100 layout itself is checked key-for-key on the meta device), 3x cheaper to regenerate.
Weights are not stored: ``seeded_state`` regenerates them from numpy's RandomState in this script
and in tests/test_token_nets.py, which imports these helpers. The id2token weights are rounded to
bf16 and saved as a bf16 .pth, as the released ``net_id2token.pth``; upstream loads every file
the way infer.py does (``load_state_dict(torch.load(path))``; here with weights_only=True, same tensors).
Upstream never calls ``.eval()`` on the token networks (dropout p=0.1 stays on at inference);
for comparable outputs this script puts them in eval mode, and separately records one
dropout-on (train-mode) ID2Token run under ``torch.manual_seed(DROPOUT_SEED)``.

Stored arrays: ``crop256_u8`` (1,256,256,3) input crop; ``clip_memory_f16`` (1,257,1280) CLIP
memory (fp16 values, used as fp32); ``arcface_tokens`` (1,64,512) upstream IResNet on the crop
resized to 128 (F.interpolate bilinear); ``arcface_embedding`` (1,512) full forward on the 128
resize's rows 0:112, cols 8:120; ``id_tokens`` / ``image_tokens`` (1,77,768) eval-mode outputs;
``id_tokens_dropout`` the train-mode run.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

UPSTREAM_COMMIT = "6e313885188e05740a7c40e12c1b9015c748bf08"
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "reference" / "parity" / "tokens.npz"
ARCFACE_LAYERS = (2, 2, 2, 2)  # upstream iresnet18
SEEDS = {"arcface": 11, "id2token": 12, "image2token": 13, "crop": 14, "clip": 15}
DROPOUT_SEED = 1234


def seeded_state(layout: list[tuple[str, tuple[int, ...], bool]], seed: int) -> dict[str, np.ndarray]:
    """Deterministic random weights for an ordered (name, shape, is_float) layout.

    Scales keep activations O(1) through the nets: fan-in-scaled matrices, BN/LN gains and
    variances in [0.5, 1.5], small biases and means; integer buffers are 0.
    """
    rs = np.random.RandomState(seed)
    state = {}
    for name, shape, is_float in layout:
        if not is_float:
            state[name] = np.zeros(shape, dtype=np.int64)
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "running_var":
            value = rs.uniform(0.5, 1.5, shape)
        elif leaf in ("running_mean",) or leaf.endswith("bias"):
            value = rs.normal(0.0, 0.05, shape)
        elif "prelu" in name:
            value = rs.uniform(0.1, 0.4, shape)
        elif len(shape) <= 1:
            value = rs.uniform(0.5, 1.5, shape)
        elif name == "query":
            value = rs.standard_normal(shape)
        else:
            value = rs.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
        state[name] = value.astype(np.float32)
    return state


def layout_of(module) -> list[tuple[str, tuple[int, ...], bool]]:
    """The (name, shape, is_float) list of a torch module's state dict, in order."""
    return [(k, tuple(v.shape), v.is_floating_point()) for k, v in module.state_dict().items()]


def fixed_inputs() -> dict[str, np.ndarray]:
    """The crop (uint8 RGB, NHWC) and the CLIP memory (fp16) fed to both sides."""
    crop = np.random.RandomState(SEEDS["crop"]).randint(0, 256, (1, 256, 256, 3)).astype(np.uint8)
    clip = np.random.RandomState(SEEDS["clip"]).standard_normal((1, 257, 1280)).astype(np.float16)
    return {"crop256_u8": crop, "clip_memory_f16": clip}


def crop_tensor(crop_u8: np.ndarray):
    """uint8 NHWC -> float NCHW in [-1,1], as ToTensor + Normalize(0.5, 0.5) compute it."""
    import torch

    x = torch.from_numpy(crop_u8).permute(0, 3, 1, 2).float().div(255.0)
    return x.sub(0.5).div(0.5).contiguous()


def save_state(state: dict[str, np.ndarray], path: Path, dtype=None) -> None:
    """torch.save an OrderedDict of tensors (floats cast to ``dtype`` when given)."""
    from collections import OrderedDict

    import torch

    tensors = OrderedDict()
    for k, v in state.items():
        t = torch.from_numpy(v)
        tensors[k] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
    torch.save(tensors, str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream", type=Path, help="checkout of FaceAdapter/Face-Adapter at UPSTREAM_COMMIT")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    sys.path.insert(0, str(args.upstream))

    import torch
    import torch.nn.functional as F
    from face_adapter.model_to_token import ID2Token, Image2Token
    from third_party.insightface_backbone_conv import iresnet18

    torch.set_num_threads(2)
    inputs = fixed_inputs()
    x = crop_tensor(inputs["crop256_u8"])
    memory = torch.from_numpy(inputs["clip_memory_f16"]).float()

    nets = {
        "arcface": iresnet18().eval(),
        "id2token": ID2Token(id_dim=512, text_hidden_size=768, max_length=77, num_layers=3),
        "image2token": Image2Token(visual_hidden_size=1280, text_hidden_size=768, max_length=77, num_layers=3),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, net in nets.items():
            path = Path(tmp) / f"{name}.pth"
            save_state(seeded_state(layout_of(net), SEEDS[name]), path,
                       dtype=torch.bfloat16 if name == "id2token" else None)
            net.load_state_dict(torch.load(str(path), weights_only=True))
    arcface, id2token, image2token = nets["arcface"], nets["id2token"], nets["image2token"]
    out = dict(inputs)
    with torch.no_grad():
        tokens = arcface(F.interpolate(x, [128, 128], mode="bilinear"))
        x112 = F.interpolate(x, [128, 128], mode="bilinear")[:, :, 0:112, 8:120].contiguous()
        out["arcface_tokens"] = tokens.numpy()
        out["arcface_embedding"] = arcface(x112, return_id512=True).numpy()
        id2token.eval()
        image2token.eval()
        out["id_tokens"] = id2token(tokens).numpy()
        out["image_tokens"] = image2token(memory).numpy()
        id2token.train()  # upstream's actual inference state
        torch.manual_seed(DROPOUT_SEED)
        out["id_tokens_dropout"] = id2token(tokens).numpy()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, upstream_commit=np.array(UPSTREAM_COMMIT), torch_version=np.array(torch.__version__),
                        **out)
    for k, v in out.items():
        print(f"{k}: {v.shape} {v.dtype} mean|x| {np.abs(v.astype(np.float64)).mean():.4g}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
