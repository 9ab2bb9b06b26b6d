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
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"conv.weight": _Evil()}, fh)
    with pytest.raises(errors.UnsafeModelFileError, match="evil.pth"):
        loading.load_state_dict(path)
    # torch.save's zip format with a code-carrying object too
    path2 = tmp_path / "evil2.pth"
    torch.save({"w": _Evil()}, path2)
    with pytest.raises(errors.UnsafeModelFileError):
        loading.load_state_dict(path2)


def test_truncated_files(tmp_path):
    sd = _state()
    for name, save in (("t.pth", lambda p: torch.save(sd, p)), ("t.safetensors", lambda p: save_file(sd, str(p)))):
        path = tmp_path / name
        save(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(errors.CorruptModelFileError, match=name):
            loading.load_state_dict(path)


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
