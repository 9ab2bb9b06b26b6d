"""The standalone path end to end (no ComfyUI): real photos, mediapipe conditions, the maker's tiny models,
diffusers for UNet / ControlNet / Euler / VAE. Its image equals upstream's pipeline (test_pipeline_parity.py);
here: reenact and swap paste back at the original size, faceless frames stay untouched, results depend only on
the seed, identity and attributes are encoded once whatever the steps and frames, CFG is one batched call per
step, and one shared initial noise makes identical conditions give identical frames."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from faceadapter_suite.core.errors import MissingModelError, WrongModelFileError
from faceadapter_suite.core.images import uint8_to_image
from faceadapter_suite.face.sample_photos import load_sample
from faceadapter_suite.generate.standalone import DiffusersSampler, DiffusionFiles, load_vae, render_standalone
from test_generate_nodes import count_calls, nets_of, records, tiny_models  # noqa: F401 (fixtures)

pytest.importorskip("diffusers")
STEPS = 2


def files_of(root) -> DiffusionFiles:
    return DiffusionFiles.in_models_dir(root, device=torch.device("cpu"))


def paste_image(spatial):
    """The frames a record pastes into: the source photo (reenact) or the 3-frame video (swap)."""
    astro = load_sample("astronaut")
    if spatial.task == "reenact":
        return uint8_to_image(load_sample("grace_hopper")[None])
    return uint8_to_image(np.stack([astro, np.zeros_like(astro), np.roll(astro, 12, axis=1)]))


@pytest.mark.parametrize("task", ["reenact", "swap"])
def test_render_pastes_back_once_per_frame_deterministically(tiny_models, records, task):
    spatial, nets, files = records[task], nets_of(tiny_models), files_of(tiny_models)
    image = paste_image(spatial)
    sampler = DiffusersSampler(files, steps=STEPS, cfg=5.0)
    unet_batches, arc_calls, clip_calls, steps = [], [], [], []
    handles = [count_calls(files.load().unet, unet_batches), count_calls(nets.id2token().value, arc_calls),
               count_calls(nets.vision_encoder().value, clip_calls)]
    try:
        first = render_standalone(spatial, nets, sampler, image, seed=3, frames_per_batch=8,
                                  on_step=lambda: steps.append(1))
    finally:
        for h in handles:
            h.remove()
    assert len(spatial) == 2 and first.pasted.shape == (3, *image.shape[1:]), "one output per driving frame"
    assert first.crops.shape == first.raw_crops.shape == (2, 512, 512, 3) and 0 <= first.raw_crops.min()
    assert arc_calls == [1], "one source photo driving two frames: one identity encode"
    assert clip_calls == [1 if task == "reenact" else 2], "one attribute encode per distinct crop"
    assert unet_batches == [4] * STEPS and sampler.calls == [2] * STEPS, "CFG: one UNet call of 2 x pairs a step"
    assert len(steps) == STEPS
    faceless = 1  # the black driving frame: swap leaves it black; reenact gives the source photo back
    assert torch.equal(first.pasted[faceless], image[0] if task == "reenact" else image[1])
    assert not torch.equal(first.pasted[0], image[0]), "a generated face was pasted into frame 0"
    again = render_standalone(spatial, nets, sampler, image, seed=3, frames_per_batch=8)
    assert torch.equal(again.pasted, first.pasted), "same seed, same frames"
    one_by_one = render_standalone(spatial, nets, sampler, image, seed=3, frames_per_batch=1)
    rounding = float((one_by_one.raw_crops - first.raw_crops).abs().max())
    assert rounding < 1e-3, rounding  # batch-size-dependent float32 kernels under CFG 5: measured 5.3e-5
    other = render_standalone(spatial, nets, sampler, image, seed=4)
    assert not torch.equal(other.raw_crops, first.raw_crops)


def test_shared_noise_gives_identical_frames_identical_faces(tiny_models, records):
    """FADM's trick: with one initial noise for every frame, identical conditions give identical crops."""
    spatial, nets = records["single"], nets_of(tiny_models)
    sampler = DiffusersSampler(files_of(tiny_models), steps=1, cfg=5.0)
    conditions_twice = spatial.control.repeat(2, 1, 1, 1)
    from faceadapter_suite.generate.conditioning import face_conditions
    from faceadapter_suite.generate.render import sample_in_batches

    tokens = torch.randn(1, 77, 768).expand(2, 77, 768)
    conditions = face_conditions(tokens, tokens, nets.negative(), conditions_twice)
    shared = sample_in_batches(conditions, sampler, seed=5, shared_noise=True)
    own = sample_in_batches(conditions, sampler, seed=5, shared_noise=False)
    assert torch.equal(shared[0], shared[1]) and not torch.equal(own[0], own[1])
    assert torch.equal(own[0], shared[0]), "frame 0 draws the same noise either way"


def test_vae_loads_from_original_names_as_from_diffusers_names(tiny_models, tmp_path):
    """sd-vae-ft-mse-original's single file uses the LDM names; it must load to the same network."""
    from safetensors.torch import load_file, save_file

    from faceadapter_suite.tools import sd15_layout as sd

    path = files_of(tiny_models).vae_file
    config = sd.vae_config_of(path)
    levels = len(config["block_out_channels"])
    renamed = {}
    for key, value in load_file(str(path)).items():
        name, to_conv = sd.vae_ldm_key(key, levels)
        renamed[name] = value[..., None, None] if to_conv else value
    ldm = tmp_path / "vae-ldm.safetensors"
    header = {sd.VAE_CONFIG_METADATA: json.dumps(config)}
    save_file(renamed, str(ldm), metadata=header)
    ours, theirs = load_vae(path).state_dict(), load_vae(ldm).state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    save_file({**renamed, "extra.weight": torch.zeros(1)}, str(ldm), metadata=header)
    with pytest.raises(WrongModelFileError, match="extra.weight"):
        load_vae(ldm)


def test_missing_files_name_the_path_and_where_to_get_them(tiny_models, tmp_path):
    with pytest.raises(MissingModelError, match="pretrained_unet(.|\n)*huggingface"):
        DiffusionFiles.in_models_dir(tmp_path).load()
    with pytest.raises(MissingModelError, match="nope.safetensors(.|\n)*sd-vae-ft-mse"):
        DiffusionFiles.in_models_dir(tiny_models, vae=tmp_path / "nope.safetensors").load()
