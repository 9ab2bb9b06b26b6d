"""The random model maker (tools/random_models.py): the tiny set loads with the pack's loaders and with
diffusers / transformers and runs finite; the full-size files it would write have the official key
layouts (meta device) and SD1.5 configs; caching and seeds behave."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from faceadapter_suite.core.loading import load_network, load_state_dict
from faceadapter_suite.models.adapting_area import AdaptingAreaPredictor
from faceadapter_suite.models.arcface import load_arcface
from faceadapter_suite.models.bfm import BFM
from faceadapter_suite.models.bisenet import BiSeNet
from faceadapter_suite.models.d3dfr import load_d3dfr
from faceadapter_suite.models.token_nets import load_id2token, load_image2token
from faceadapter_suite.tools import random_models as rm
from faceadapter_suite.tools import sd15_layout as sd

from conftest import REPO  # noqa: E402

torch.set_num_threads(2)
FA = "faceadapter"


def _transformers():
    """transformers comes with ComfyUI's requirements, not the pack's: without it only these checks skip."""
    return pytest.importorskip("transformers", reason="transformers (from ComfyUI's requirements) is not installed")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("random_tiny")
    start = time.perf_counter()
    rm.ensure_random_models(out, tiny=True)
    return out, time.perf_counter() - start


def test_tiny_set_is_small_fast_and_listed(tiny):
    out, seconds = tiny
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] == rm.MAKER_VERSION
    assert set(manifest["components"]) == set(rm.resolve_components(None, tiny=True))
    files = {rel: size for rec in manifest["components"].values() for rel, size in rec["files"].items()}
    for rel, size in files.items():
        assert (out / rel).stat().st_size == size, rel
    assert not list(out.rglob("*.partial"))
    # the generation networks are small; the stage-1 networks keep their fixed full-size architectures
    generation = sum(size for rel, size in files.items() if rel.split("/")[-1] not in
                     {"net_seg_res18.pth", "d3dfr_res50_nofc.pth", "79999_iter.pth"})
    assert generation < 45e6, generation
    assert seconds < 60, seconds


def test_ensure_is_cheap_when_up_to_date_and_rewrites_what_changed(tiny, tmp_path):
    out, _ = tiny
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"}
    start = time.perf_counter()
    rm.ensure_random_models(out, tiny=True)
    assert time.perf_counter() - start < 5
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp, "an up-to-date folder was rewritten"

    # a truncated file, or other options, are made again
    small = tmp_path / "m"
    rm.ensure_random_models(small, tiny=True, only=["id2token"])
    path = small / FA / "net_id2token.pth"
    first = load_state_dict(path)
    path.write_bytes(path.read_bytes()[:1000])
    rm.ensure_random_models(small, tiny=True, only=["id2token"])
    assert all(torch.equal(first[k], v) for k, v in load_state_dict(path).items()), "same seed, same values"
    rm.ensure_random_models(small, tiny=True, seed=1, only=["id2token"])
    other = load_state_dict(path)
    assert not torch.equal(first["query"], other["query"])
    assert json.loads((small / "manifest.json").read_text())["components"]["id2token"]["options"]["seed"] == 1


def test_script_writes_the_chosen_components(tmp_path):
    out = tmp_path / "models"
    cmd = [sys.executable, str(REPO / "scripts" / "make_random_models.py"), str(out), "--tiny", "--only",
           "vae", "empty_prompt", "--seed", "3"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["components"]) == ["empty_prompt", "vae"]
    assert manifest["components"]["vae"]["options"] == {"version": rm.MAKER_VERSION, "tiny": True,
                                                        "dtype": "fp32", "seed": 3}
    assert (out / rm.VAE_FILE).is_file() and "wrote" in result.stdout
    again = subprocess.run(cmd + ["--cache"], capture_output=True, text=True, timeout=300)
    assert "vae: up to date" in again.stdout and "empty_prompt: up to date" in again.stdout


def test_fp16_applies_to_the_large_files_only(tmp_path):
    rm.make_random_models(tmp_path, tiny=True, dtype="fp16", only=["unet", "vision_encoder", "id2token", "arcface"])
    unet = load_file(str(tmp_path / FA / "pretrained_unet" / "diffusion_pytorch_model.safetensors"))
    vision = load_file(str(tmp_path / FA / "vision_encoder" / "model.safetensors"))
    assert {v.dtype for v in unet.values()} == {v.dtype for v in vision.values()} == {torch.float16}
    assert json.loads((tmp_path / FA / "vision_encoder" / "config.json").read_text())["torch_dtype"] == "float16"
    assert {v.dtype for v in load_state_dict(tmp_path / FA / "net_id2token.pth").values()} == {torch.bfloat16}
    arcface = load_state_dict(tmp_path / FA / "third_party" / "insightface_glint360k.pth")
    assert {v.dtype for v in arcface.values() if v.is_floating_point()} == {torch.float32}


def test_checkpoint_is_full_size_only_and_names_are_checked(tmp_path):
    with pytest.raises(ValueError, match="full size only"):
        rm.make_random_models(tmp_path, tiny=True, only=["checkpoint"])
    with pytest.raises(ValueError, match="unknown component 'unet2'"):
        rm.make_random_models(tmp_path, only=["unet2"])


def test_tiny_token_nets_and_arcface_load_with_the_packs_loaders(tiny):
    out, _ = tiny
    raw = torch.load(out / FA / "net_id2token.pth", weights_only=True)
    assert all(v.dtype == torch.bfloat16 for v in raw.values()), "net_id2token.pth is bf16 as released"
    id2token = load_id2token(out / FA / "net_id2token.pth")
    image2token = load_image2token(out / FA / "net_image2token.pth")
    arcface = load_arcface(out / FA / "third_party" / "insightface_glint360k.pth")
    assert all(p.dtype == torch.float32 for p in id2token.parameters())
    assert id2token.in_dim == arcface.out_channels and id2token.out_dim == 768
    empty = torch.load(out / FA / "empty_prompt_embedding.pth", weights_only=True)
    assert empty.dtype == torch.float16 and empty.shape == (1, 77, 768)
    crop = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ids = id2token(arcface.identity_tokens(crop))
        attrs = image2token(torch.randn(1, 257, image2token.in_dim))
    assert ids.shape == attrs.shape == (1, 77, 768)
    assert torch.isfinite(ids).all() and torch.isfinite(attrs).all() and ids.std() > 0


def test_tiny_stage1_networks_load_with_the_models_loaders(tiny):
    out, _ = tiny
    third = out / FA / "third_party"
    assert list(torch.load(third / "d3dfr_res50_nofc.pth", weights_only=True))[0].startswith("module.")
    d3dfr = load_d3dfr(third / "d3dfr_res50_nofc.pth")
    area = load_network(AdaptingAreaPredictor, out / FA / "net_seg_res18.pth")
    parsing = load_network(BiSeNet, third / "79999_iter.pth")
    bfm = BFM.from_mat(third / "BFM_model_front.mat")
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        coeffs = d3dfr(x)
        assert torch.isfinite(bfm.get_lm70(coeffs)).all()
        assert torch.isfinite(area(torch.cat([x, x], 1))).all() and torch.isfinite(parsing(x)).all()


def _diffusers_folder(cls, folder):
    model = cls.from_pretrained(str(folder))
    return model.eval()


def test_tiny_diffusers_folders_load_and_run_finite(tiny):
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    out, _ = tiny
    unet = _diffusers_folder(UNet2DConditionModel, out / FA / "pretrained_unet")
    controlnet = _diffusers_folder(ControlNetModel, out / FA / "controlnet")
    for model, expected in ((unet, sd.TINY_UNET_CONFIG), (controlnet, sd.TINY_CONTROLNET_CONFIG)):
        assert {k: model.config[k] for k in expected} == {k: (list(v) if isinstance(v, tuple) else v)
                                                          for k, v in expected.items()}
    vae_file = out / rm.VAE_FILE
    assert sd.vae_config_of(vae_file) == sd.TINY_VAE_CONFIG  # the file names its own config
    vae = AutoencoderKL(**sd.vae_config_of(vae_file)).eval()
    vae.load_state_dict(load_file(str(vae_file)), strict=True)
    g = torch.Generator().manual_seed(0)
    latents, context = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, 768, generator=g)
    hint = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    with torch.no_grad():
        down, mid = controlnet(latents, 10, encoder_hidden_states=context, controlnet_cond=hint, return_dict=False)
        noise = unet(latents, 10, encoder_hidden_states=context, down_block_additional_residuals=down,
                     mid_block_additional_residual=mid).sample
        image = vae.decode(latents / vae.config.scaling_factor).sample
    assert noise.shape == latents.shape and torch.isfinite(noise).all() and noise.std() > 0
    assert image.shape == (2, 3, 64, 64) and torch.isfinite(image).all()


def test_tiny_vision_encoder_is_a_transformers_4x_folder(tiny):
    CLIPVisionModel = _transformers().CLIPVisionModel
    out, _ = tiny
    folder = out / FA / "vision_encoder"
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "clip_vision_model" and config["architectures"] == ["CLIPVisionModel"]
    assert (config["patch_size"], config["image_size"]) == (14, 224)
    stored = load_file(str(folder / "model.safetensors"))
    assert all(k.startswith("vision_model.") for k in stored), "the 4.x layout ComfyUI's CLIPVisionLoader needs"
    model, info = CLIPVisionModel.from_pretrained(str(folder), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    embed = stored["vision_model.embeddings.patch_embedding.weight"]
    assert torch.equal(model.state_dict()[_transformers_key(model, "embeddings.patch_embedding.weight")], embed)
    with torch.no_grad():
        hidden = model(pixel_values=torch.rand(1, 3, 224, 224)).last_hidden_state
    assert hidden.shape == (1, 257, sd.TINY_VISION["hidden_size"]) and torch.isfinite(hidden).all()


def _transformers_key(model: torch.nn.Module, inner: str) -> str:
    """transformers 4.x names CLIP vision keys ``vision_model.*``, 5.x without the prefix."""
    keys = model.state_dict()
    return inner if inner in keys else f"vision_model.{inner}"


# ------------------------------------------------------------------ full size, meta device only
@pytest.mark.parametrize("component,official", [
    ("id2token", "faceadapter.id2token"), ("image2token", "faceadapter.image2token"),
    ("arcface", "faceadapter.arcface_iresnet100"), ("seg_unet", "faceadapter.adapting_area_predictor"),
    ("d3dfr", "faceadapter.d3dfr_resnet50"), ("bisenet", "faceparsing.bisenet19")])
def test_full_size_files_have_the_official_layouts(component, official, official_keys):
    layout = rm.planned_layout(component)
    if component == "d3dfr":  # the released file carries DataParallel's prefix; the loader strips it
        assert all(k.startswith("module.") for k in layout)
        layout = {k.removeprefix("module."): v for k, v in layout.items()}
    expected = {k: tuple(v["shape"]) for k, v in official_keys[official]["keys"].items()}
    assert layout == expected
    assert list(layout) == list(expected)


def test_every_face_adapter_module_in_the_official_list_is_checked(official_keys):
    checked = {"faceadapter.id2token", "faceadapter.image2token", "faceadapter.arcface_iresnet100",
               "faceadapter.adapting_area_predictor", "faceadapter.d3dfr_resnet50", "faceparsing.bisenet19"}
    listed = {k for k in official_keys if k.startswith(("faceadapter.", "faceparsing."))}
    assert listed == checked


def test_full_size_diffusers_configs_are_sd15():
    for config in (sd.unet_config(), sd.controlnet_config()):
        assert config["cross_attention_dim"] == 768 and config["block_out_channels"] == [320, 640, 1280, 1280]
        assert config["layers_per_block"] == 2 and config["attention_head_dim"] == 8
    assert sd.controlnet_config()["conditioning_channels"] == 3
    assert sd.vae_config()["block_out_channels"] == [128, 256, 512, 512]
    unet = sd.diffusers_layout("unet", sd.unet_config())
    controlnet = sd.diffusers_layout("controlnet", sd.controlnet_config())
    assert sum(torch.Size(s).numel() for s in unet.values()) == 859_520_964  # SD1.5's UNet
    assert controlnet["controlnet_cond_embedding.conv_in.weight"] == (16, 3, 3, 3)
    assert controlnet["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"] == (320, 768)


def test_full_size_clip_layouts_match_transformers():
    tf = _transformers()
    with torch.device("meta"):
        vision = tf.CLIPVisionModel(tf.CLIPVisionConfig(**sd.VIT_H14_VISION))
        text = tf.CLIPTextModel(tf.CLIPTextConfig(**sd.CLIP_L_TEXT))
    for ours, model, prefix in ((sd.clip_vision_layout(), vision, "vision_model."),
                                (sd.clip_text_layout(), text, "text_model.")):
        theirs = {(k if k.startswith(prefix) else prefix + k): tuple(v.shape) for k, v in model.state_dict().items()
                  if not k.endswith("position_ids")}
        assert ours == theirs
    # ViT-H/14 visual tower: 632,076,800 parameters in OpenCLIP, less its 1280x1024 projection (not in the folder)
    assert sum(torch.Size(s).numel() for s in sd.clip_vision_layout().values()) == 632_076_800 - 1280 * 1024


# Names every SD1.5 single-file checkpoint has (original CompVis layout), with their shapes.
LDM_FACTS = {
    "model.diffusion_model.time_embed.0.weight": (1280, 320),
    "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
    "model.diffusion_model.input_blocks.1.0.in_layers.0.weight": (320,),
    "model.diffusion_model.input_blocks.1.1.proj_in.weight": (320, 320, 1, 1),
    "model.diffusion_model.input_blocks.3.0.op.weight": (320, 320, 3, 3),
    "model.diffusion_model.input_blocks.4.0.skip_connection.weight": (640, 320, 1, 1),
    "model.diffusion_model.input_blocks.9.0.op.weight": (1280, 1280, 3, 3),
    "model.diffusion_model.input_blocks.11.0.emb_layers.1.weight": (1280, 1280),
    "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight": (1280, 768),
    "model.diffusion_model.middle_block.2.out_layers.3.weight": (1280, 1280, 3, 3),
    "model.diffusion_model.output_blocks.2.1.conv.weight": (1280, 1280, 3, 3),
    "model.diffusion_model.output_blocks.5.2.conv.weight": (1280, 1280, 3, 3),
    "model.diffusion_model.output_blocks.8.2.conv.weight": (640, 640, 3, 3),
    "model.diffusion_model.output_blocks.11.1.proj_out.weight": (320, 320, 1, 1),
    "model.diffusion_model.out.2.weight": (4, 320, 3, 3),
    "first_stage_model.encoder.down.0.downsample.conv.weight": (128, 128, 3, 3),
    "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight": (256, 128, 1, 1),
    "first_stage_model.encoder.mid.attn_1.q.weight": (512, 512, 1, 1),
    "first_stage_model.decoder.mid.block_2.norm2.weight": (512,),
    "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight": (128, 256, 1, 1),
    "first_stage_model.decoder.up.3.upsample.conv.weight": (512, 512, 3, 3),
    "first_stage_model.decoder.norm_out.weight": (128,),
    "first_stage_model.quant_conv.weight": (8, 8, 1, 1),
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (49408, 768),
    "cond_stage_model.transformer.text_model.final_layer_norm.weight": (768,),
}


def test_full_size_checkpoint_layout_is_sd15_ldm():
    plan = rm.checkpoint_layout(sd.diffusers_layout("unet", sd.unet_config()),
                                sd.diffusers_layout("vae", sd.vae_config()), sd.clip_text_layout(),
                                sd.unet_config(), sd.vae_config())
    shapes = {name: shape for name, (_, shape) in plan.items()}
    counts = {p: sum(k.startswith(p) for k in shapes) for p in sd.CHECKPOINT_PREFIXES.values()}
    assert counts == {"model.diffusion_model.": 686, "first_stage_model.": 248, "cond_stage_model.transformer.": 196}
    assert {k: shapes.get(k) for k in LDM_FACTS} == LDM_FACTS
    assert plan["model.diffusion_model.output_blocks.5.2.conv.weight"][0] == "unet:up_blocks.1.upsamplers.0.conv.weight"
