"""FADM's networks against upstream FADM's own code (fixture: scripts/make_fadm_parity.py, upstream 090f0ae).

Same inputs (sample-photo crops), same seeded random weights (tools/seeded_weights.py, saved here in the
released file formats and read back through the pack's loaders), same shared noise. Bounds:

- face-vid2vid, FOMM, conditioning network, denoiser: 1e-5 relative to the output's magnitude (float32
  rounding; upstream.md §2.5 measures upstream's own float32 floor at 1e-6..3e-6);
- E_flame and the head-pose estimator: 5e-5 relative (their floor is 1.2e-5: deep BN ResNets);
- the renderer: the issue asks for a 3-step trajectory within 1e-4, but upstream cannot run a short
  schedule (betas scaled by 1000/T reach 1 for T < 5: NaN), so the full 100-step trajectory of the tiny
  denoiser is compared instead, every snapshot within 1e-4 of its own magnitude. Untrained weights amplify
  the noise ~1,000x over 100 steps, so absolute differences would measure that amplification, not us.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from faceadapter_suite.models.fadm.animate import FacevidNets, animate, load_facevid, prepare_source
from faceadapter_suite.models.fadm.condition import coarse_levels
from faceadapter_suite.models.fadm.deca import EFlame, attribute_vector, load_e_flame
from faceadapter_suite.models.fadm.facevid import DenseMotionConfig, FacevidConfig
from faceadapter_suite.models.fadm.fomm import FOMMConfig, FOMMNets, Keypoints, load_fomm
from faceadapter_suite.models.fadm.renderer import (FADMDiffusion, RendererConfig, RendererNoise,
                                                    load_fadm_diffusion, sample)
from faceadapter_suite.models.fadm.unet import UNetConfig
from faceadapter_suite.tools.seeded_weights import seeded_noise, seeded_state_dict

FIXTURE = np.load(Path(__file__).parent / "data" / "reference" / "parity" / "fadm.npz")
CONFIG = json.loads(str(FIXTURE["config"]))


def _relative(mine: torch.Tensor, theirs: np.ndarray) -> float:
    ref = torch.from_numpy(theirs)
    return float((mine.float() - ref).abs().max() / ref.abs().max())


def facevid_config() -> FacevidConfig:
    c = dict(CONFIG["facevid"])
    return FacevidConfig(**{**c, "dense_motion": DenseMotionConfig(**c["dense_motion"])})


def renderer_config() -> RendererConfig:
    u = dict(CONFIG["unet"])
    u.update(channel_mults=tuple(u["channel_mults"]), attn_res=tuple(u["attn_res"]))
    return RendererConfig(timesteps=CONFIG["timesteps"], unet=UNetConfig(**u))


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """The three FADM files at the fixture's configs, seeded, saved in the released layouts, loaded back."""
    root = tmp_path_factory.mktemp("fadm_parity")
    template = FacevidNets(facevid_config())
    torch.save({part: seeded_state_dict(getattr(template, part).state_dict(), f"fadm_{part}")
                for part in ("kp_detector", "he_estimator", "generator")}, root / "Facevid.pth")
    fomm = FOMMNets(FOMMConfig(**CONFIG["fomm"]))
    torch.save({part: seeded_state_dict(getattr(fomm, part).state_dict(), f"fadm_fomm_{part}")
                for part in ("kp_detector", "generator")}, root / "FOMM.pth")
    torch.save({"E_flame": seeded_state_dict(EFlame().state_dict(), "fadm_e_flame")}, root / "deca_model.tar")
    torch.save(seeded_state_dict(FADMDiffusion(renderer_config()).state_dict(), "fadm_diffusion"),
               root / "diffusion.pth")
    return {"facevid": load_facevid(root / "Facevid.pth", facevid_config()),
            "fomm": load_fomm(root / "FOMM.pth", FOMMConfig(**CONFIG["fomm"])),
            "e_flame": load_e_flame(root / "deca_model.tar"),
            "diffusion": load_fadm_diffusion(root / "diffusion.pth", renderer_config())}


@torch.no_grad()
def test_facevid_keypoints_and_coarse_frames(nets):
    fv = nets["facevid"]
    source = torch.from_numpy(FIXTURE["facevid_source"])
    driving = torch.from_numpy(FIXTURE["facevid_driving"])
    state = prepare_source(fv, source)
    assert _relative(state.kp_canonical, FIXTURE["kp_canonical"]) < 1e-5
    assert _relative(state.kp_source, FIXTURE["kp_source"]) < 5e-5
    he = fv.he_estimator(driving)
    for key in ("yaw", "pitch", "roll", "t", "exp"):
        assert _relative(he[key], FIXTURE[f"he_driving_{key}"]) < 5e-5, key
    coarse = animate(fv, state, driving)  # both frames in one batch; upstream ran them one by one
    err = _relative(coarse, FIXTURE["coarse"])
    assert err < 1e-5, err
    assert float(torch.from_numpy(FIXTURE["coarse"]).std()) > 0.01  # the fixture is a picture, not a constant


@torch.no_grad()
def test_fomm_keypoints_and_coarse_frames(nets):
    fomm = nets["fomm"]
    source = torch.from_numpy(FIXTURE["facevid_source"])
    driving = torch.from_numpy(FIXTURE["facevid_driving"])
    kp_source, kp_driving = fomm.kp_detector(source), fomm.kp_detector(driving)
    for mine, name in ((kp_source, "source"), (kp_driving, "driving")):
        assert _relative(mine.value, FIXTURE[f"fomm_kp_{name}_value"]) < 1e-5
        assert _relative(mine.jacobian, FIXTURE[f"fomm_kp_{name}_jacobian"]) < 1e-5
    fixture_kp = Keypoints(torch.from_numpy(FIXTURE["fomm_kp_driving_value"]),
                           torch.from_numpy(FIXTURE["fomm_kp_driving_jacobian"]))
    coarse = fomm.generator(source, fixture_kp, kp_source)
    err = _relative(coarse, FIXTURE["fomm_coarse"])
    assert err < 1e-5, err
    assert float(torch.from_numpy(FIXTURE["fomm_coarse"]).std()) > 0.01


@torch.no_grad()
def test_e_flame_and_attribute(nets):
    frames = np.stack([FIXTURE[f"frame_{k}"] for k in ("source", "driving0", "driving1")])
    images = torch.from_numpy(frames.astype(np.float32) / 255).permute(0, 3, 1, 2)
    params = nets["e_flame"](images)  # 256 -> 224 bilinear without antialiasing inside
    err = _relative(params, FIXTURE["e_flame"])
    assert err < 5e-5, err
    attr = attribute_vector(params[:1], params[1:])  # differences: bounded relative to the parameters
    assert attr.shape == (2, 56)
    assert float((attr - torch.from_numpy(FIXTURE["attribute"])).abs().max() / params.abs().max()) < 5e-5


def _condition(model: FADMDiffusion):
    coarse = torch.from_numpy(FIXTURE["render_coarse"])
    levels, blurred = coarse_levels(coarse)
    return model.denoiser.condition_conv.prepare(levels, blurred, blurred, torch.from_numpy(FIXTURE["attribute"]))


def _noise() -> RendererNoise:
    s = CONFIG["unet"]["image_size"]
    noise = torch.from_numpy(seeded_noise(CONFIG["noise_seed"], (1, 3, s, s), CONFIG["timesteps"] + 1))
    return RendererNoise(noise[0], noise[1:])


@torch.no_grad()
def test_conditioning_network_and_denoiser(nets):
    model = nets["diffusion"]
    unet = model.denoiser
    prepared = _condition(model)
    for j, step in enumerate(CONFIG["condition_steps"]):
        emb = unet.time_mlp(torch.full((2,), step, dtype=torch.long))
        err = _relative(unet.condition_conv(prepared, emb), FIXTURE["condition"][:, j])
        assert err < 1e-5, (step, err)
    noise = _noise().initial.expand(2, -1, -1, -1)
    step = torch.full((2,), CONFIG["denoiser_step"], dtype=torch.long)
    err = _relative(unet(noise, step, prepared), FIXTURE["denoiser"])
    assert err < 1e-5, err


@torch.no_grad()
def test_renderer_trajectory_100_steps(nets):
    model = nets["diffusion"]
    out, snapshots = sample(model, _condition(model), _noise(), trajectory=True)
    assert len(snapshots) == 11
    trajectory = torch.stack(snapshots, dim=1)  # (frames, 11, 3, s, s)
    errors = [_relative(trajectory[:, i], FIXTURE["trajectory"][:, i]) for i in range(11)]
    assert max(errors) < 1e-4, errors
    assert torch.equal(out, snapshots[-1].clamp(0, 1))  # upstream's output: the last snapshot, clamped
