"""The standalone sampler reproduces upstream's StableDiffusionFaceAdapterPipeline image.

tests/data/reference/parity/pipeline.npz was written by scripts/make_pipeline_parity.py, which ran upstream's
pipeline class (Face-Adapter 6e31388, diffusers 0.26.0) on the maker's tiny UNet, ControlNet and VAE layouts
with seeded weights (tools/seeded_weights.py), fixed tokens, control images and initial noise. Here the same
inputs go through generate/standalone.py's :class:`DiffusersSampler` (the CropSampler the demo and
render_standalone use), loading the same files through :class:`DiffusionFiles`.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

TOLERANCE = 1e-3  # on [0,1] pixels (the bound); measured 7.6e-6 = the fixture's uint16 step (fp32 CPU)


@pytest.fixture(scope="module")
def reference(reference_dir):
    with np.load(reference_dir / "parity" / "pipeline.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def files(tiny_models_dir, reference, tmp_path_factory):
    from faceadapter_suite.generate.standalone import DiffusionFiles
    from faceadapter_suite.tools.seeded_weights import DIFFUSION_FILES, seeded_diffusion_set

    out = tmp_path_factory.mktemp("seeded_diffusion")
    seeded_diffusion_set(str(tiny_models_dir), str(out))
    diffusion = DiffusionFiles.in_models_dir(out, device=torch.device("cpu"))
    for rel, name in DIFFUSION_FILES.items():
        assert _tensors_sha256(out / rel) == str(reference[f"sha256_{name}"]), (
            f"the seeded {name} ({out / rel}) is not the one the fixture was made with: re-run "
            "scripts/make_pipeline_parity.py")
    for name, config in (("unet", diffusion.unet_dir / "config.json"),
                         ("controlnet", diffusion.controlnet_dir / "config.json")):
        ours = {k: v for k, v in json.loads(config.read_text()).items() if not k.startswith("_")}
        assert ours == json.loads(str(reference[f"config_{name}"])), f"the maker's tiny {name} config changed"
    return diffusion


def _tensors_sha256(path) -> str:
    """As make_pipeline_parity.tensors_sha256: sorted keys, name + float32 bytes."""
    from safetensors.numpy import load_file

    digest = hashlib.sha256()
    for key, value in sorted(load_file(str(path)).items()):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(value.astype(np.float32)).tobytes())
    return digest.hexdigest()


def _image(reference, name: str) -> np.ndarray:
    return reference[name].astype(np.float32) / float(reference["pixel_levels"])


def _conditions(reference, rows: slice):
    from faceadapter_suite.core.images import uint8_to_image
    from faceadapter_suite.generate.conditioning import face_conditions

    tokens = {k: torch.from_numpy(reference[k].astype(np.float32) / float(reference["token_step"]))
              for k in ("identity", "attributes", "negative")}
    return face_conditions(tokens["identity"][rows], tokens["attributes"][rows], tokens["negative"],
                           uint8_to_image(reference["control"][rows]))


def _sample(files, reference, rows: slice, **settings) -> np.ndarray:
    from faceadapter_suite.generate.standalone import DiffusersSampler

    steps = []
    sampler = DiffusersSampler(files, **settings)
    out = sampler(_conditions(reference, rows), torch.from_numpy(reference["noise"][rows]), lambda: steps.append(1))
    assert len(steps) == settings["steps"] and sampler.calls == [out.shape[0]] * settings["steps"]
    return out.numpy()


def test_reproduces_upstream_pipeline(files, reference):
    expected = _image(reference, "image")
    ours = _sample(files, reference, slice(0, 2), steps=25, cfg=5.0)
    assert ours.shape == expected.shape and expected.std() > 0.05
    diff = float(np.abs(ours - expected).max())
    assert diff <= TOLERANCE, diff


def test_reproduces_upstream_partial_control(files, reference):
    """ControlNet scale 0.7 kept from 20 % to 60 % of the steps (upstream's controlnet_keep), CFG 3.5."""
    steps, cfg, strength, start, end = reference["partial_settings"].tolist()
    ours = _sample(files, reference, slice(0, 1), steps=int(steps), cfg=cfg, strength=strength, start=start, end=end)
    diff = float(np.abs(ours - _image(reference, "image_partial")).max())
    assert diff <= TOLERANCE, diff


@pytest.mark.parametrize("mistake", ["controlnet_sees_identity", "contexts_swapped", "no_controlnet"])
def test_bound_is_sensitive_to_the_conditions(files, reference, mistake):
    """The bound means something on these weights: the usual ways to get upstream's semantics wrong (a plain
    ControlNet pipeline giving the ControlNet the UNet's prompt, the two contexts swapped, no ControlNet)
    move the image by far more than the tolerance."""
    from faceadapter_suite.generate.conditioning import FaceConditions
    from faceadapter_suite.generate.standalone import DiffusersSampler

    c = _conditions(reference, slice(0, 1))
    wrong, strength = {
        "controlnet_sees_identity": (FaceConditions(c.unet_positive, c.unet_positive, c.negative, c.hint), 1.0),
        "contexts_swapped": (FaceConditions(c.controlnet_positive, c.unet_positive, c.negative, c.hint), 1.0),
        "no_controlnet": (c, 0.0)}[mistake]
    out = DiffusersSampler(files, steps=25, cfg=5.0, strength=strength)(
        wrong, torch.from_numpy(reference["noise"][:1]), lambda: None)
    assert float(np.abs(out.numpy() - _image(reference, "image")[:1]).max()) > 10 * TOLERANCE


def test_scheduler_matches_upstreams(reference):
    """Our pinned Euler config gives upstream's initial noise scale (sigma_max for linspace spacing)."""
    from faceadapter_suite.generate.standalone import euler_scheduler, sigma_at

    scheduler = euler_scheduler()
    scheduler.set_timesteps(25)
    assert float(scheduler.init_noise_sigma) == pytest.approx(float(reference["init_noise_sigma"]), rel=1e-6)
    assert sigma_at(float(scheduler.timesteps[0])) == pytest.approx(float(reference["init_noise_sigma"]), rel=1e-6)
    assert sigma_at(float(scheduler.timesteps[3])) == pytest.approx(float(scheduler.sigmas[3]), rel=1e-6)
    assert json.loads(str(reference["scheduler_config"]))["beta_schedule"] == "scaled_linear"
