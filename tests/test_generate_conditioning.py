"""Face-Adapter conditioning: hint range, contexts per pair, noise sharing, negative file checks."""
from __future__ import annotations

import pytest
import torch


from faceadapter_suite.generate import conditioning, nets


@pytest.fixture(scope="module")
def cond():
    return conditioning


def test_hint_is_signed_and_channels_first(cond):
    control = torch.rand(2, 16, 16, 3)
    hint = cond.signed_hint(control)
    assert hint.shape == (2, 3, 16, 16) and hint.is_contiguous()
    assert torch.equal(hint, control.permute(0, 3, 1, 2) * 2 - 1)
    with pytest.raises(ValueError, match="IMAGE"):
        cond.signed_hint(torch.rand(2, 3, 16, 16))


def test_conditions_per_pair_and_negative_for_both(cond):
    ident, attr = torch.randn(3, 77, 32), torch.randn(3, 77, 32)
    negative = torch.randn(1, 77, 32).half()
    c = cond.face_conditions(ident, attr, negative, torch.rand(3, 64, 64, 3))
    assert torch.equal(c.unet_positive, ident) and torch.equal(c.controlnet_positive, attr)
    assert c.negative.dtype == torch.float32 and torch.equal(c.negative[2], negative[0].float())
    assert c.latent_shape == (4, 8, 8) and len(c.rows(1, 3)) == 2
    with pytest.raises(ValueError, match=r"attributes tokens are \(2, 77, 32\) for 3"):
        cond.face_conditions(ident, attr[:2], negative, torch.rand(3, 64, 64, 3))
    with pytest.raises(ValueError, match="negative embedding must be 1x77x32"):
        cond.face_conditions(ident, attr, torch.randn(1, 77, 16), torch.rand(3, 64, 64, 3))


def test_per_pair_maps_broadcasts_and_names_both_counts(cond):
    tokens = torch.arange(2.0).view(2, 1, 1).expand(2, 77, 4)
    assert cond.per_pair(tokens, (1, 1, 0), "the identity", 3)[:, 0, 0].tolist() == [1, 1, 0]
    assert cond.per_pair(tokens[:1], (0,), "the identity", 4).shape[0] == 4
    with pytest.raises(ValueError, match="the identity holds 2 face.*control images hold 5"):
        cond.per_pair(tokens, (0, 1), "the identity", 5)


def test_noise_shared_or_per_frame_independent_of_batching(cond):
    shared = cond.initial_noise(7, 3, (4, 8, 8))
    assert torch.equal(shared[0], shared[2]) and torch.equal(shared, cond.initial_noise(7, 3, (4, 8, 8)))
    own = cond.initial_noise(7, 3, (4, 8, 8), shared=False)
    assert not torch.equal(own[0], own[1])
    assert torch.equal(own[2], cond.initial_noise(9, 1, (4, 8, 8), shared=False)[0])  # frame 2 of seed 7 = seed 9


def test_guidance_matches_upstream_formula(cond):
    u, c = torch.randn(2, 4), torch.randn(2, 4)
    assert torch.allclose(cond.guided(u, c, 5.0), u + 5.0 * (c - u))


def test_empty_prompt_file_loads_and_a_wrong_file_says_where_to_get_it(tmp_path):
    path = tmp_path / "empty_prompt_embedding.pth"
    torch.save(torch.randn(1, 77, 768).half(), path)
    assert nets.load_empty_prompt(path).shape == (1, 77, 768)
    torch.save({"w": torch.randn(3, 5)}, path)
    with pytest.raises(ValueError, match="empty_prompt_embedding.pth or connect CLIPTextEncode"):
        nets.load_empty_prompt(path)
