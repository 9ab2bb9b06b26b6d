"""Safe loading in every real file format, and the errors users see."""
from __future__ import annotations

import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from faceadapter_suite.core import errors, loading


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)


def _state():
    torch.manual_seed(0)
    return Tiny().state_dict()


def test_pth_roundtrip_and_module_prefix(tmp_path):
    sd = _state()
    path = tmp_path / "w.pth"
    torch.save({"module." + k: v for k, v in sd.items()}, path)
    loaded = loading.load_state_dict(path)
    assert set(loaded) == set(sd)
    model = loading.load_weights_into(Tiny(), loaded, source=str(path))
    assert torch.equal(model.conv.weight, sd["conv.weight"])


def test_tar_and_nested_checkpoint(tmp_path):
    sd = _state()
    path = tmp_path / "model.tar"
    torch.save({"generator": sd, "epoch": 3}, path)
    loaded = loading.load_state_dict(path, sub_key="generator")
    assert torch.equal(loaded["bn.running_var"], sd["bn.running_var"])
    with pytest.raises(errors.WrongModelFileError, match="kp_detector"):
        loading.load_state_dict(path, sub_key="kp_detector")


def test_safetensors_and_bf16_to_fp32(tmp_path):
    sd = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in _state().items()}
    path = tmp_path / "w.safetensors"
    save_file(sd, str(path))
    model = loading.load_weights_into(Tiny(), loading.load_state_dict(path), source=str(path), dtype=torch.float32)
    assert model.conv.weight.dtype == torch.float32
    assert torch.equal(model.conv.weight, sd["conv.weight"].float())


def test_diffusers_folder(tmp_path):
    folder = tmp_path / "controlnet"
    folder.mkdir()
    (folder / "config.json").write_text('{"_class_name": "ControlNetModel"}')
    save_file(_state(), str(folder / "diffusion_pytorch_model.safetensors"))
    config, sd = loading.load_diffusers_folder(folder)
    assert config["_class_name"] == "ControlNetModel" and "conv.weight" in sd


class _Evil:
    """Unpickling this creates the file named in MARKER: proof that code ran."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


SAVERS = {
    "zip.pth": lambda sd, p: torch.save(sd, p),
    "zip.tar": lambda sd, p: torch.save(sd, p),
    "legacy.tar": lambda sd, p: torch.save(sd, p, _use_new_zipfile_serialization=False),
    "legacy.pth": lambda sd, p: torch.save(sd, p, _use_new_zipfile_serialization=False),
    "file.safetensors": lambda sd, p: save_file(sd, str(p)),
}


def _no_unsafe_advice(text: str) -> None:
    assert "weights_only" not in text and "arbitrary code" not in text, text


@pytest.mark.parametrize("name", sorted(n for n in SAVERS if not n.endswith(".safetensors")))  # no code there
def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, name):
    marker = tmp_path / "code_ran"
    evil = _Evil()
    evil.marker = str(marker)
    path = tmp_path / name
    SAVERS[name]({"conv.weight": evil}, path)
    assert not marker.exists()
    with pytest.raises(errors.UnsafeModelFileError) as info:
        loading.load_state_dict(path)
    text = str(info.value)
    assert str(path) in text and "refused" in text and "for safety" in text and "open" in text.split("imports")[1]
    _no_unsafe_advice(text)
    assert not marker.exists(), "the pickle's code must never run"


def test_raw_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "code_ran"
    evil = _Evil()
    evil.marker = str(marker)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"conv.weight": evil}, fh)
    with pytest.raises(errors.UnsafeModelFileError, match="evil.pth"):
        loading.load_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
@pytest.mark.parametrize("name", sorted(SAVERS))
def test_truncated_or_garbled_file_is_corrupt_with_path_size_source(tmp_path, name, damage):
    folder = tmp_path / "faceadapter" / "third_party"
    folder.mkdir(parents=True)
    good = folder / name
    SAVERS[name](_state(), good)
    data = bytearray(good.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        for i in range(0, len(data), 97):
            data[i] ^= 0x5A
    # named like a manifest file so the error can say where to download it
    path = folder / ("d3dfr_res50_nofc" + good.suffix)
    path.write_bytes(bytes(data))
    with pytest.raises(errors.CorruptModelFileError) as info:
        loading.load_state_dict(path)
    text = str(info.value)
    assert str(path) in text and "corrupt" in text and f"{len(data):,} bytes" in text, text
    _no_unsafe_advice(text)
    if good.suffix == ".pth":
        assert "huggingface.co/FaceAdapter" in text and "install.py --models faceadapter.d3dfr_resnet50" in text
        assert "the manifest expects about" in text


def test_random_bytes_and_empty_file_are_corrupt(tmp_path):
    for name, data in (("random.pth", os.urandom(5000)), ("empty.pth", b"")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(errors.CorruptModelFileError, match=name) as info:
            loading.load_state_dict(path)
        _no_unsafe_advice(str(info.value))


def test_wrong_architecture_names_keys(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3), "head.weight": torch.zeros(2)}, path)
    with pytest.raises(errors.WrongModelFileError) as info:
        loading.load_weights_into(Tiny(), loading.load_state_dict(path), source=str(path))
    text = str(info.value)
    assert "other.pth" in text and "missing keys" in text and "bn.weight" in text
    assert "1 unexpected keys: head.weight" in text
    assert info.value.unexpected == ["head.weight"]


def test_wrong_shape_reported(tmp_path):
    sd = _state()
    sd["conv.weight"] = torch.zeros(8, 3, 3, 3)
    with pytest.raises(errors.WrongModelFileError, match="wrong shape: conv.weight"):
        loading.load_weights_into(Tiny(), sd, source="x.pth")
