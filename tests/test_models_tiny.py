"""Random-weight round trips through the real file formats and the pack's loader, plus
forward-pass shapes at small inputs (full architectures, 64x64 images)."""
from __future__ import annotations

import functools

import pytest
import torch
from safetensors.torch import save_file

from faceadapter_suite.core.errors import WrongModelFileError
from faceadapter_suite.core.loading import load_state_dict, load_weights_into
from faceadapter_suite.models.adapting_area import AdaptingAreaPredictor
from faceadapter_suite.models.bisenet import BiSeNet
from faceadapter_suite.models.d3dfr import D3DFR, load_d3dfr
from faceadapter_suite.models.resnet import fold_batchnorm, resnet18_trunk

torch.set_num_threads(2)


def _randomise(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial BN statistics and head weights so a wrong load would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=g) * 0.1)
            elif name.endswith("weight") and tensor.ndim == 1:
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
            elif "fianl_layers" in name:
                tensor.copy_(torch.randn(tensor.shape, generator=g) * 0.01)
    return net.eval()


def _image(channels: int, size: int = 64, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


CASES = {
    "d3dfr": (D3DFR, 3),
    "adapting_area": (AdaptingAreaPredictor, 6),
    "bisenet": (BiSeNet, 3),
}


@functools.lru_cache(maxsize=None)
def _built(name: str):
    """(class, random-weight net, input, output) per network, built once per session."""
    cls, channels = CASES[name]
    net = _randomise(cls(), seed=len(name))
    x = _image(channels)
    with torch.no_grad():
        y = net(x)
    return cls, net, x, y


def _save(net: torch.nn.Module, path, prefix: str = "") -> None:
    state = {prefix + k: v.contiguous() for k, v in net.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, str(path))


ROUND_TRIPS = [(name, fmt) for name in sorted(CASES) for fmt in ("pth", "safetensors")]
ROUND_TRIPS.append(("d3dfr", "module_prefix.pth"))  # the released D3DFR file may carry DataParallel's prefix


@pytest.mark.parametrize("name,fmt", ROUND_TRIPS)
def test_round_trip_through_the_pack_loader(name, fmt, tmp_path):
    cls, net, x, y = _built(name)
    path = tmp_path / f"{name}.{fmt}"
    _save(net, path, prefix="module." if fmt.startswith("module") else "")
    state = load_state_dict(path)
    assert not any(k.startswith("module.") for k in state)
    loaded = load_weights_into(cls(), state, source=str(path))
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), y)


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_shapes_and_ranges(name):
    y = _built(name)[3]
    if name == "d3dfr":
        assert y.shape == (2, 261) and torch.isfinite(y).all()
    elif name == "adapting_area":
        assert y.shape == (2, 1, 64, 64)
        assert y.min() >= 0 and y.max() <= 1
    else:
        assert y.shape == (2, 19, 64, 64) and torch.isfinite(y).all()


def test_wrong_file_is_refused_with_key_names(tmp_path):
    path = tmp_path / "seg.pth"
    _save(AdaptingAreaPredictor(), path)
    with pytest.raises(WrongModelFileError, match="missing keys"):
        load_weights_into(BiSeNet(), load_state_dict(path), source=str(path))


def test_load_d3dfr_fuses_batchnorm_without_changing_outputs(tmp_path):
    _, net, x, y = _built("d3dfr")
    path = tmp_path / "d3dfr_res50_nofc.pth"
    _save(net, path, prefix="module.")
    fused = load_d3dfr(path)
    assert fused.is_fused and not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    with torch.no_grad():
        torch.testing.assert_close(fused(x), y, rtol=1e-4, atol=1e-5)
    assert torch.equal(load_d3dfr(path, fuse=False)(x), y)


def test_fold_batchnorm_matches_eval_mode_on_a_resnet18():
    trunk = _randomise(resnet18_trunk(in_channels=6), seed=3)
    x = _image(6, size=96)
    with torch.no_grad():
        ref = [f.clone() for f in trunk.forward_features(x)]
        fused = fold_batchnorm(trunk).forward_features(x)
    for a, b in zip(fused, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_bisenet_auxiliary_heads_and_main_head_agree():
    _, net, x, y = _built("bisenet")
    with torch.no_grad():
        main, aux16, aux32 = net.forward_all(x)
    assert torch.equal(main, y) and aux16.shape == aux32.shape == y.shape


def test_adapting_area_works_at_any_multiple_of_32():
    net = AdaptingAreaPredictor().eval()
    with torch.no_grad():
        assert net(_image(6, size=96, batch=1)).shape == (1, 1, 96, 96)
