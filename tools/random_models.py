"""Random model maker: every Face-Adapter file under its official name, format and layout, plus an SD1.5
checkpoint and VAE, filled with seeded random weights.

Why: compute cost does not depend on weight values, so tier-2 tests, benchmarks and the demo run the
real full-size networks without downloading 8 GB of licensed weights; ``--tiny`` writes the same
formats with small configs for tier-1 tests. Output is a ComfyUI-style models folder::

    OUT/faceadapter/{net_id2token.pth, net_image2token.pth, net_seg_res18.pth, controlnet/,
                     pretrained_unet/, vision_encoder/, empty_prompt_embedding.pth, third_party/...}
    OUT/checkpoints/faceadapter_random_sd15.safetensors   (full size only; ComfyUI detects SD15)
    OUT/vae/vae-ft-mse-840000-ema-pruned.safetensors      (diffusers AutoencoderKL keys; the name templates use)
    OUT/fadm/{diffusion.pth, Facevid.pth, FOMM.pth, deca_model.tar}   (FADM, fp32; group "fadm", not in --tiny's default)
    OUT/manifest.json                                     (files, sizes, seeds, options, maker version)

Every tensor is drawn from its own generator seeded by (seed, component, key), so a file depends only
on the seed and its own layout, whatever else is written: the checkpoint's UNet and VAE equal
``pretrained_unet/`` and ``vae/``. Weights ~ N(0, 0.02), biases 0, norm scales 1 (finite forwards);
the stage-1 networks take tools/seeded_weights.py's values, whose masks cover part of a crop.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import torch

from ..core.manifest import entry
from . import sd15_layout as sd
from .fadm_layouts import fadm_parts
from .seeded_weights import seeded_state_dict

__all__ = ["MAKER_VERSION", "COMPONENTS", "GROUPS", "DTYPES", "WEIGHT_STD", "CHECKPOINT_FILE", "VAE_FILE",
           "RESNET18_FILE", "make_random_models", "ensure_random_models", "read_manifest", "random_state",
           "random_tensor", "layout_of", "planned_layout", "FULL_SIZE_ONLY", "checkpoint_layout",
           "resolve_components", "FADM_FILES"]

MAKER_VERSION = "3"  # bump when any file's contents or layout change: cached folders are then rewritten
WEIGHT_STD = 0.02
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
CHECKPOINT_FILE = "checkpoints/faceadapter_random_sd15.safetensors"
VAE_FILE = "vae/vae-ft-mse-840000-ema-pruned.safetensors"  # sd-vae-ft-mse's usual file name, so the templates run on it
RESNET18_FILE = "faceadapter/third_party/resnet18-5c106cde.pth"  # upstream's BiSeNet reads it; not in our manifest
SYNTHETIC_BFM = Path(__file__).resolve().parents[1] / "tests/data/reference/parity/bfm_synthetic_front.mat"
MANIFEST_NAME = "manifest.json"

Layout = Mapping[str, tuple]


def _fa(model_id: str) -> str:
    """Path of a Face-Adapter file inside OUT (the manifest's path under the faceadapter kind)."""
    e = entry(model_id)
    return f"{e.kind}/{e.path}"


# ------------------------------------------------------------------ random values
def _generator(seed: int, component: str, key: str) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(f"{component}/{key}".encode())) % 2**63)


def random_tensor(key: str, shape: Sequence[int], *, seed: int, component: str,
                  dtype: torch.dtype = torch.float32, std: float = WEIGHT_STD) -> torch.Tensor:
    """One tensor of a random network: biases and running means 0, norm scales and running variances 1,
    BatchNorm's counter 0 (int64), everything else N(0, std) from its own (seed, component, key) stream."""
    shape = tuple(int(s) for s in shape)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    if key.endswith(("bias", "running_mean")):
        return torch.zeros(shape, dtype=dtype)
    if key.endswith("running_var") or (len(shape) == 1 and key.endswith("weight")):
        return torch.ones(shape, dtype=dtype)
    values = torch.empty(shape, dtype=torch.float32).normal_(0.0, std, generator=_generator(seed, component, key))
    return values.to(dtype)


def random_state(layout: Layout, *, seed: int, component: str,
                 dtype: torch.dtype = torch.float32) -> "OrderedDict[str, torch.Tensor]":
    """A state dict with ``layout``'s keys (in order) and shapes."""
    return OrderedDict((k, random_tensor(k, shape, seed=seed, component=component, dtype=dtype))
                       for k, shape in layout.items())


def layout_of(module: torch.nn.Module) -> dict[str, tuple]:
    """Key -> shape of a module's state dict (build it on the meta device: nothing is allocated)."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


# ------------------------------------------------------------------ writers (each returns the files it wrote)
def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary name so an interrupted run never leaves a file that looks complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    write(tmp)
    os.replace(tmp, path)


def _save_torch(state: Any, path: Path) -> None:
    _atomic(path, lambda tmp: torch.save(state, str(tmp)))


def _readable(path: Path) -> None:
    """safetensors creates files 0600; models folders are shared, so use the usual 0644."""
    path.chmod(0o644)


def _save_safetensors(state: Mapping[str, torch.Tensor], path: Path,
                      metadata: Optional[Mapping[str, str]] = None) -> None:
    from safetensors.torch import save_file

    header = {"format": "pt", **(metadata or {})}
    _atomic(path, lambda tmp: (save_file(dict(state), str(tmp), metadata=header), _readable(tmp)))


def _save_json(data: Mapping[str, Any], path: Path) -> None:
    _atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


class _Job:
    """What one component writer needs: output root and options."""

    def __init__(self, out: Path, *, tiny: bool, dtype: str, seed: int):
        self.out, self.tiny, self.seed, self.dtype = out, tiny, seed, DTYPES[dtype]

    def path(self, relative: str) -> Path:
        return self.out / relative


def _token_layout(cls_name: str, tiny_args: Mapping[str, Any], tiny: bool) -> dict[str, tuple]:
    from ..models import token_nets

    with torch.device("meta"):
        return layout_of(getattr(token_nets, cls_name)(**(tiny_args if tiny else {})))


def _arcface_layout(tiny: bool) -> dict[str, tuple]:
    from ..models.arcface import IResNet, iresnet100

    with torch.device("meta"):
        return layout_of(IResNet(**sd.TINY_ARCFACE) if tiny else iresnet100())


def _stage1_build(network: str) -> Callable[[], torch.nn.Module]:
    from ..models.adapting_area import AdaptingAreaPredictor
    from ..models.bisenet import BiSeNet
    from ..models.d3dfr import D3DFR

    return {"d3dfr": D3DFR, "seg_unet": AdaptingAreaPredictor, "bisenet": BiSeNet}[network]


def _stage1_meta_state(network: str) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return _stage1_build(network)().state_dict()


def _resnet18_layout() -> dict[str, tuple]:
    """torchvision's resnet18 ImageNet layout (trunk + 1000-way fc): upstream's BiSeNet reads it at construction."""
    from ..models.resnet import resnet18_trunk

    with torch.device("meta"):
        layout = layout_of(resnet18_trunk())
    layout.update({"fc.weight": (1000, 512), "fc.bias": (1000,)})
    return layout


# Stage-1 networks (tools/seeded_weights.py names): network -> (manifest id, key prefix in the released file)
_STAGE1 = {"seg_unet": ("faceadapter.adapting_area_predictor", ""), "d3dfr": ("faceadapter.d3dfr_resnet50", "module."),
           "bisenet": ("faceparsing.bisenet19", "")}


def planned_layout(name: str, tiny: bool = False) -> dict[str, tuple]:
    """Key -> shape of the state dict the maker writes for a single-file network component (as stored,
    prefix included), computed on the meta device: tests compare it with the official layouts."""
    if name == "id2token":
        return _token_layout("ID2Token", sd.TINY_ID2TOKEN, tiny)
    if name == "image2token":
        return _token_layout("Image2Token", sd.TINY_IMAGE2TOKEN, tiny)
    if name == "arcface":
        return _arcface_layout(tiny)
    if name == "resnet18":
        return _resnet18_layout()
    if name in _STAGE1:
        return {_STAGE1[name][1] + k: tuple(v.shape) for k, v in _stage1_meta_state(name).items()}
    raise ValueError(f"FaceAdapter: {name!r} is not a single-file network component")


def _write_random_pth(job: _Job, name: str, relative: str, dtype: torch.dtype = torch.float32) -> list[str]:
    _save_torch(random_state(planned_layout(name, job.tiny), seed=job.seed, component=name, dtype=dtype),
                job.path(relative))
    return [relative]


def _write_stage1(job: _Job, network: str) -> list[str]:
    """D3DFR / seg-UNet / BiSeNet with tools/seeded_weights.py's values (full size: fixed architectures)."""
    model_id, prefix = _STAGE1[network]
    # seeded_state_dict reads only the shapes of float tensors and copies integer buffers
    template = {k: v if v.is_floating_point() else torch.zeros(v.shape, dtype=v.dtype)
                for k, v in _stage1_meta_state(network).items()}
    seeded = seeded_state_dict(template, network)
    _save_torch(OrderedDict((prefix + k, v) for k, v in seeded.items()), job.path(_fa(model_id)))
    return [_fa(model_id)]


def _write_bfm(job: _Job) -> list[str]:
    """The committed synthetic BFM (the Deep3DFaceRecon fields, 600 vertices): the projector reads only the
    68 keypoint rows, so its cost does not depend on the vertex count."""
    if not SYNTHETIC_BFM.is_file():
        raise FileNotFoundError(f"FaceAdapter: the synthetic BFM {SYNTHETIC_BFM} is missing from this checkout")
    relative = _fa("faceadapter.bfm_front")
    _atomic(job.path(relative), lambda tmp: shutil.copyfile(SYNTHETIC_BFM, tmp))
    return [relative]


def _write_empty_prompt(job: _Job) -> list[str]:
    relative = _fa("faceadapter.empty_prompt_embedding")
    values = torch.empty(1, 77, 768).normal_(0.0, 1.0, generator=_generator(job.seed, "empty_prompt", "embedding"))
    _save_torch(values.to(torch.float16), job.path(relative))
    return [relative]


def _write_diffusers(job: _Job, kind: str, model_id: str, config: Mapping[str, Any]) -> list[str]:
    model = sd.diffusers_model_on_meta(kind, config)
    folder = job.path(_fa(model_id))
    state = random_state(layout_of(model), seed=job.seed, component=kind, dtype=job.dtype)
    _save_safetensors(state, folder / "diffusion_pytorch_model.safetensors")
    del state
    model.save_config(str(folder))  # diffusers' own config.json for this config
    rel = _fa(model_id)
    return [f"{rel}/config.json", f"{rel}/diffusion_pytorch_model.safetensors"]


def _write_unet(job: _Job) -> list[str]:
    return _write_diffusers(job, "unet", "faceadapter.pretrained_unet", sd.unet_config(job.tiny))


def _write_controlnet(job: _Job) -> list[str]:
    return _write_diffusers(job, "controlnet", "faceadapter.controlnet", sd.controlnet_config(job.tiny))


def _write_vision(job: _Job) -> list[str]:
    """transformers CLIPVisionModel folder in the 4.x layout (``vision_model.*``), as Face-Adapter ships it."""
    vision = sd.vision_config(job.tiny)
    rel = _fa("faceadapter.vision_encoder")
    state = random_state(sd.clip_vision_layout(vision), seed=job.seed, component="vision_encoder", dtype=job.dtype)
    _save_safetensors(state, job.path(f"{rel}/model.safetensors"))
    del state
    _save_json(sd.vision_config_json(vision, job.dtype), job.path(f"{rel}/config.json"))
    return [f"{rel}/config.json", f"{rel}/model.safetensors"]


def _write_vae(job: _Job) -> list[str]:
    """diffusers AutoencoderKL keys (VAELoader converts them; the standalone path loads them as they are).
    The file carries its diffusers config in the safetensors header (sd15_layout.vae_config_of reads it)."""
    config = sd.vae_config(job.tiny)
    state = random_state(sd.diffusers_layout("vae", config), seed=job.seed, component="vae", dtype=job.dtype)
    _save_safetensors(state, job.path(VAE_FILE), {sd.VAE_CONFIG_METADATA: json.dumps(config)})
    return [VAE_FILE]


def checkpoint_layout(unet: Layout, vae: Layout, text: Layout, unet_config: Mapping[str, Any],
                      vae_config: Mapping[str, Any]) -> dict[str, tuple[str, tuple]]:
    """Single-file SD checkpoint name -> (source key, shape) for diffusers UNet/VAE and 4.x CLIP text layouts.

    Source keys are ``unet:<key>``, ``vae:<key>``, ``text:<key>``; shapes are the checkpoint's (the VAE's
    mid-attention Linear weights become 1x1 convs)."""
    up_attention = ["CrossAttn" in t for t in unet_config["up_block_types"]]
    levels = len(vae_config["block_out_channels"])
    out: dict[str, tuple[str, tuple]] = {}
    for key, shape in unet.items():
        name = sd.unet_ldm_key(key, unet_config["layers_per_block"], up_attention)
        out[sd.CHECKPOINT_PREFIXES["unet"] + name] = (f"unet:{key}", tuple(shape))
    for key, shape in vae.items():
        name, to_conv = sd.vae_ldm_key(key, levels)
        out[sd.CHECKPOINT_PREFIXES["vae"] + name] = (f"vae:{key}", tuple(shape) + ((1, 1) if to_conv else ()))
    for key, shape in text.items():
        out[sd.CHECKPOINT_PREFIXES["text"] + key] = (f"text:{key}", tuple(shape))
    if len(out) != len(unet) + len(vae) + len(text):
        raise AssertionError("FaceAdapter: two diffusers keys map to one checkpoint name")
    return out


def _write_checkpoint(job: _Job) -> list[str]:
    """SD1.5 single file: the UNet and VAE of this maker (same values as pretrained_unet/ and vae/) in the
    original names, and a random CLIP-L text encoder under ``cond_stage_model.transformer.text_model.``."""
    unet_cfg, vae_cfg = sd.unet_config(), sd.vae_config()
    layouts = {"unet": sd.diffusers_layout("unet", unet_cfg), "vae": sd.diffusers_layout("vae", vae_cfg),
               "text": sd.clip_text_layout()}
    plan = checkpoint_layout(layouts["unet"], layouts["vae"], layouts["text"], unet_cfg, vae_cfg)
    components = {"unet": "unet", "vae": "vae", "text": "text_encoder"}  # generator streams
    state = OrderedDict()
    for name, (source, shape) in plan.items():
        part, key = source.split(":", 1)
        tensor = random_tensor(key, layouts[part][key], seed=job.seed, component=components[part], dtype=job.dtype)
        state[name] = tensor.reshape(shape)
    _save_safetensors(state, job.path(CHECKPOINT_FILE))
    return [CHECKPOINT_FILE]


# ------------------------------------------------------------------ FADM (layouts: tools/fadm_layouts.py)
FADM_FILES = {"fadm_diffusion": "fadm.diffusion", "fadm_facevid": "fadm.facevid", "fadm_fomm": "fadm.fomm",
              "fadm_deca": "fadm.deca"}


def _write_fadm(job: _Job, name: str) -> list[str]:
    """FADM files as released: fp32 .pth/.tar, a plain state dict (diffusion.pth) or a dict of them."""
    content: dict[Optional[str], Any] = {}
    for entry_name, (build, fixed) in fadm_parts(name, job.tiny).items():
        with torch.device("meta"):
            layout = layout_of(build())
        state = random_state(layout, seed=job.seed, component=f"{name}/{entry_name}")
        state.update((k, v.detach().clone()) for k, v in fixed.items())
        content[entry_name] = state
    relative = _fa(FADM_FILES[name])
    _save_torch(content.pop(None) if None in content else content, job.path(relative))
    return [relative]


# name -> (writer, in the default tiny set)
COMPONENTS: dict[str, tuple[Callable[[_Job], list[str]], bool]] = {
    "id2token": (lambda job: _write_random_pth(job, "id2token", _fa("faceadapter.id2token"), torch.bfloat16), True),
    "image2token": (lambda job: _write_random_pth(job, "image2token", _fa("faceadapter.image2token")), True),
    "arcface": (lambda job: _write_random_pth(job, "arcface", _fa("faceadapter.arcface_iresnet100")), True),
    "empty_prompt": (_write_empty_prompt, True),
    "controlnet": (_write_controlnet, True),
    "unet": (_write_unet, True),
    "vision_encoder": (_write_vision, True),
    "vae": (_write_vae, True),
    "seg_unet": (lambda job: _write_stage1(job, "seg_unet"), True),
    "d3dfr": (lambda job: _write_stage1(job, "d3dfr"), True),
    "bisenet": (lambda job: _write_stage1(job, "bisenet"), True),
    # the pack never reads resnet18: in the tiny set only when asked for
    "resnet18": (lambda job: _write_random_pth(job, "resnet18", RESNET18_FILE), False),
    "bfm": (_write_bfm, True),
    "checkpoint": (_write_checkpoint, False),
    # FADM: fp32 as released; not in the default tiny set (E_flame and the head-pose trunk stay ~220 MB)
    "fadm_diffusion": (lambda job: _write_fadm(job, "fadm_diffusion"), False),
    "fadm_facevid": (lambda job: _write_fadm(job, "fadm_facevid"), False),
    "fadm_fomm": (lambda job: _write_fadm(job, "fadm_fomm"), False),
    "fadm_deca": (lambda job: _write_fadm(job, "fadm_deca"), False),
}
FULL_SIZE_ONLY = {"checkpoint"}
GROUPS = {
    "generation": ("id2token", "image2token", "arcface", "empty_prompt", "controlnet", "unet", "vision_encoder", "vae"),
    "stage1": ("seg_unet", "d3dfr", "bisenet", "resnet18", "bfm"),
    "fadm": ("fadm_diffusion", "fadm_facevid", "fadm_fomm", "fadm_deca"),
}


def resolve_components(only: Optional[Iterable[str]], tiny: bool) -> list[str]:
    """Component names for ``only`` (names or GROUPS; None = everything the size supports), in COMPONENTS order."""
    if only is None:
        return [n for n, (_, in_tiny) in COMPONENTS.items() if in_tiny or not tiny]
    wanted: set[str] = set()
    for name in only:
        if name in GROUPS:
            wanted.update(GROUPS[name])
        elif name in COMPONENTS:
            wanted.add(name)
        else:
            raise ValueError(f"FaceAdapter: unknown component {name!r}; choose from "
                             f"{', '.join([*COMPONENTS, *GROUPS])}")
    return [n for n in COMPONENTS if n in wanted]


# ------------------------------------------------------------------ manifest and caching
def read_manifest(out: str | Path) -> dict[str, Any]:
    """OUT/manifest.json, or an empty manifest when there is none (or it is unreadable)."""
    path = Path(out) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"components": {}}
    return data if isinstance(data.get("components"), dict) else {"components": {}}


def _options(tiny: bool, dtype: str, seed: int) -> dict[str, Any]:
    return {"version": MAKER_VERSION, "tiny": bool(tiny), "dtype": dtype, "seed": int(seed)}


def _up_to_date(out: Path, record: Optional[Mapping[str, Any]], options: Mapping[str, Any]) -> bool:
    if not record or record.get("options") != dict(options):
        return False
    files = record.get("files") or {}
    return bool(files) and all((out / rel).is_file() and (out / rel).stat().st_size == size
                               for rel, size in files.items())


def make_random_models(out: str | Path, *, tiny: bool = False, dtype: str = "fp32", seed: int = 0,
                       only: Optional[Iterable[str]] = None, skip_up_to_date: bool = False,
                       log: Callable[[str], None] = lambda message: None) -> Path:
    """Write the random models folder at ``out`` and its manifest; returns ``out``.

    ``dtype`` applies to the large diffusers / CLIP / checkpoint files; id2token stays bf16, the other
    .pth files fp32 and the empty-prompt embedding fp16, as released. With ``skip_up_to_date`` a
    component whose files and options (maker version, size, dtype, seed) match the manifest is kept.
    """
    if dtype not in DTYPES:
        raise ValueError(f"FaceAdapter: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = resolve_components(only, tiny)
    if tiny and FULL_SIZE_ONLY & set(names):
        raise ValueError("FaceAdapter: the single-file SD1.5 checkpoint is full size only (ComfyUI detects "
                         "SD1.5 from its shapes); drop --tiny or leave 'checkpoint' out of --only")
    options = _options(tiny, dtype, seed)
    manifest = read_manifest(out)
    job = _Job(out, tiny=tiny, dtype=dtype, seed=seed)
    for name in names:
        record = manifest["components"].get(name)
        if skip_up_to_date and _up_to_date(out, record, options):
            log(f"{name}: up to date")
            continue
        start = time.perf_counter()
        files = COMPONENTS[name][0](job)
        seconds = time.perf_counter() - start
        manifest["components"][name] = {"options": options, "seconds": round(seconds, 2),
                                        "files": {rel: (out / rel).stat().st_size for rel in files}}
        total = sum(manifest["components"][name]["files"].values())
        log(f"{name}: {total / 1e6:.1f} MB in {seconds:.1f} s")
        manifest.update({"maker": "FaceAdapter Suite tools/random_models.py", "version": MAKER_VERSION,
                         "note": "random weights with the official layouts: for tests and benchmarks, "
                                 "they make no meaningful images"})
        _save_json(manifest, out / MANIFEST_NAME)  # after each component: an interrupted run keeps the rest
    return out


def ensure_random_models(out: str | Path, tiny: bool = False, *, dtype: str = "fp32", seed: int = 0,
                         only: Optional[Iterable[str]] = None,
                         log: Callable[[str], None] = lambda message: None) -> Path:
    """Like make_random_models, but cheap when ``out`` already holds these components with these options."""
    return make_random_models(out, tiny=tiny, dtype=dtype, seed=seed, only=only, skip_up_to_date=True, log=log)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI: ``make_random_models OUT_MODELS_DIR [--tiny] [--dtype fp16|fp32] [--seed N] [--only ...] [--cache]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="models folder to write (ComfyUI layout)")
    parser.add_argument("--tiny", action="store_true", help="small configs for tier-1 tests")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32",
                        help="dtype of the diffusers, CLIP and checkpoint files (fp16 halves their size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help=f"components or groups: {', '.join([*COMPONENTS, *GROUPS])}")
    parser.add_argument("--cache", action="store_true", help="keep components already written with these options")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    start = time.perf_counter()
    make_random_models(args.out, tiny=args.tiny, dtype=args.dtype, seed=args.seed, only=args.only,
                       skip_up_to_date=args.cache, log=lambda message: print(message, flush=True))
    sizes = sum(size for rec in read_manifest(args.out)["components"].values() for size in rec["files"].values())
    print(f"wrote {args.out} ({sizes / 1e6:.1f} MB in the manifest) in {time.perf_counter() - start:.1f} s")
    return 0
