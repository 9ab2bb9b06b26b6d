"""FADM's maths by hand and the sampler's contracts, on tiny networks (upstream parity: test_fadm_parity.py)."""
from __future__ import annotations

import math

import pytest
import torch

from faceadapter_suite.core.errors import WrongModelFileError
from faceadapter_suite.models.fadm.animate import FacevidNets, animate, load_facevid, prepare_source
from faceadapter_suite.models.fadm.condition import coarse_levels, motion_weight
from faceadapter_suite.models.fadm.deca import FLAME_SLICES, NUM_FLAME_PARAMS, attribute_vector
from faceadapter_suite.models.fadm.facevid import DenseMotionConfig, FacevidConfig
from faceadapter_suite.models.fadm.fomm import FOMMConfig, FOMMNets, fomm_animate
from faceadapter_suite.models.fadm.renderer import (FADMDiffusion, RendererConfig, load_fadm_diffusion, make_noise,
                                                    render, sample, schedule,
                                                    step_timesteps)
from faceadapter_suite.models.fadm.unet import UNetConfig

TINY_FACEVID = FacevidConfig(num_kp=5, feature_channel=8, kp_block_expansion=8, kp_max_features=32, kp_num_blocks=3,
                             kp_reshape_channel=128, kp_reshape_depth=4, he_block_expansion=16, block_expansion=8,
                             max_features=32, reshape_channel=8, reshape_depth=4, num_resblocks=1,
                             dense_motion=DenseMotionConfig(8, 32, 3, 4, 2))
TINY_RENDERER = RendererConfig(unet=UNetConfig(inner_channel=16, norm_groups=8, channel_mults=(1, 2), attn_res=(16,),
                                               res_blocks=1, image_size=32))


def test_motion_weights_by_hand():
    w = torch.tensor([[0.5, 0.3]])
    # w_i = (K-i)/K exp(w-0.3) + i/K exp(0.3-w), K = 2
    assert torch.allclose(motion_weight(w, 0, 2), torch.tensor([[math.exp(0.2), 1.0]]))
    assert torch.allclose(motion_weight(w, 1, 2), torch.tensor([[math.cosh(0.2), 1.0]]))
    assert torch.allclose(motion_weight(w, 2, 2), torch.tensor([[math.exp(-0.2), 1.0]]))


def test_schedule_by_hand():
    s = schedule(100)
    assert s["betas"][0].item() == pytest.approx(0.001) and s["betas"][-1].item() == pytest.approx(0.2)
    assert s["betas"][1].item() == pytest.approx(0.001 + 0.199 / 99)
    ac1 = 0.999 * (1 - (0.001 + 0.199 / 99))
    assert s["alphas_cumprod"][1].item() == pytest.approx(ac1)
    assert s["alphas_cumprod_prev"][0].item() == 1.0 and s["ddim_c1"][0].item() == 0.0
    # η = 1: c1 equals the DDPM posterior standard deviation
    assert torch.allclose(s["ddim_c1"] ** 2, s["posterior_variance"])
    assert s["posterior_variance"][1].item() == pytest.approx((0.001 + 0.199 / 99) * 0.001 / (1 - ac1))


def test_steps_subsample_the_schedule():
    assert step_timesteps(100) == list(range(99, -1, -1)) == step_timesteps(100, 100)
    assert step_timesteps(100, 10) == [99, 88, 77, 66, 55, 44, 33, 22, 11, 0]
    assert step_timesteps(100, 1) == [0]
    with pytest.raises(ValueError):
        step_timesteps(100, 0)


def test_attribute_is_exp_and_pose_difference():
    assert NUM_FLAME_PARAMS == 236
    assert FLAME_SLICES["exp"] == slice(150, 200) and FLAME_SLICES["pose"] == slice(200, 206)
    src, frames = torch.randn(1, 236), torch.randn(3, 236)
    attr = attribute_vector(src, frames)
    assert attr.shape == (3, 56) and torch.equal(attr, src[:, 150:206] - frames[:, 150:206])


@pytest.fixture(scope="module")
def renderer() -> FADMDiffusion:
    torch.manual_seed(0)
    return FADMDiffusion(TINY_RENDERER).eval()


def _coarse(n: int) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(n))


def test_levels_are_upstreams_sizes():
    levels, blurred = coarse_levels(torch.rand(2, 3, 256, 256))
    assert [lv.shape[-1] for lv in levels] == [32, 64, 128] and blurred.shape[-1] == 256


def test_render_is_deterministic_and_noise_is_shared(renderer):
    coarse = _coarse(1).expand(2, -1, -1, -1)  # two identical coarse frames
    attr = torch.randn(1, 56).expand(2, -1)
    noise = make_noise(3, 32, 100)
    out = render(renderer, coarse, attr, noise, steps=4)
    assert out.shape == (2, 3, 32, 32) and 0 <= out.min() and out.max() <= 1
    assert torch.equal(out[0], out[1])  # same condition + shared noise -> same frame
    assert torch.equal(out, render(renderer, coarse, attr, make_noise(3, 32, 100), steps=4))
    assert not torch.equal(out, render(renderer, coarse, attr, make_noise(4, 32, 100), steps=4))


def test_batched_equals_frame_by_frame(renderer):
    """A batch (or a chunk of a long video) gives each frame what it gets alone: compared before the final
    clamp, relative to the magnitude (untrained weights amplify the noise, see test_fadm_parity)."""
    coarse, attr, noise = _coarse(3), torch.randn(3, 56), make_noise(5, 32, 100)

    def raw(c: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        levels, blurred = coarse_levels(c)
        prepared = renderer.denoiser.condition_conv.prepare(levels, blurred, blurred, a)
        return sample(renderer, prepared, noise, steps=3, trajectory=True)[1][-1]

    batched = raw(coarse, attr)
    single = torch.cat([raw(coarse[i:i + 1], attr[i:i + 1]) for i in range(3)])
    assert float((batched - single).abs().max() / batched.abs().max()) < 1e-5


def test_progress_callback_counts_steps(renderer):
    seen = []
    render(renderer, _coarse(1), torch.zeros(1, 56), make_noise(0, 32, 100), steps=5,
           callback=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 5) for i in range(1, 6)]


@pytest.fixture(scope="module")
def facevid() -> FacevidNets:
    torch.manual_seed(0)
    return FacevidNets(TINY_FACEVID).eval()


@torch.no_grad()
def test_relative_mode_moves_source_keypoints(facevid):
    source, driving = torch.rand(1, 3, 64, 64), torch.rand(4, 3, 64, 64)
    state = prepare_source(facevid, source)
    rel = animate(facevid, state, driving, relative=True)
    # the reference frame itself drives the source keypoints unchanged
    unchanged = facevid.generator.decode(state.volume, state.kp_source, state.kp_source)
    assert torch.allclose(rel[0], unchanged[0], atol=1e-6)
    # streaming: a later chunk with the first frame as explicit reference equals the whole video
    chunk = animate(facevid, state, driving[2:], relative=True, reference=driving[:1])
    assert torch.allclose(chunk, rel[2:], atol=1e-6)
    absolute = animate(facevid, state, driving)
    assert absolute.shape == rel.shape == (4, 3, 64, 64)
    assert torch.allclose(absolute[1:2], animate(facevid, source, driving[1:2]), atol=1e-6)


@torch.no_grad()
def test_fomm_relative_mode_composes_jacobians():
    torch.manual_seed(0)
    nets = FOMMNets(FOMMConfig(num_kp=4, kp_block_expansion=8, kp_max_features=32, kp_num_blocks=3, block_expansion=8,
                               max_features=32, num_bottleneck_blocks=1, dm_block_expansion=8, dm_max_features=32,
                               dm_num_blocks=3)).eval()
    torch.nn.init.zeros_(nets.kp_detector.jacobian.weight)  # upstream's initialisation: identity jacobians
    nets.kp_detector.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(4))
    source, driving = torch.rand(1, 3, 64, 64), torch.rand(3, 3, 64, 64)
    rel = fomm_animate(nets, source, driving, relative=True)
    kp_source = nets.kp_detector(source)
    unchanged = nets.generator(source, kp_source, kp_source)  # the reference frame leaves the source as it is
    assert torch.allclose(rel[0], unchanged[0], atol=1e-6)
    assert torch.allclose(fomm_animate(nets, source, driving[1:], relative=True, reference=driving[:1]), rel[1:],
                          atol=1e-6)
    assert fomm_animate(nets, source, driving).shape == (3, 3, 64, 64)


def test_loaders_name_path_and_keys(tmp_path, facevid, renderer):
    parts = {p: getattr(facevid, p).state_dict() for p in ("kp_detector", "he_estimator")}
    torch.save(parts, tmp_path / "Facevid.pth")
    with pytest.raises(WrongModelFileError, match=r"'generator'") as err:
        load_facevid(tmp_path / "Facevid.pth", TINY_FACEVID)
    assert str(tmp_path / "Facevid.pth") in str(err.value)
    state = renderer.state_dict()
    state.pop("diffusion.ddim_c1")
    state["diffusion.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "diffusion.pth")
    with pytest.raises(WrongModelFileError) as err:
        load_fadm_diffusion(tmp_path / "diffusion.pth", TINY_RENDERER)
    text = str(err.value)
    assert str(tmp_path / "diffusion.pth") in text and "diffusion.ddim_c1" in text and "diffusion.extra" in text


def test_inference_forward_is_the_autograd_forward_bit_for_bit(renderer):
    """Under no_grad the denoiser's Blocks, residual adds and attention write into fresh outputs in place
    (fewer full-size temporaries); the values must be exactly those of the plain forward autograd runs."""
    coarse, attr = _coarse(2), torch.randn(2, 56)
    levels, blurred = coarse_levels(coarse)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([70, 3])
    with torch.no_grad():
        prepared = renderer.denoiser.condition_conv.prepare(levels, blurred, blurred, attr)
        fast = renderer.denoiser(x, t, prepared)
    with torch.enable_grad():
        plain = renderer.denoiser(x, t, prepared).detach()
    assert torch.equal(fast, plain)
