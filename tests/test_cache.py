"""The process-wide model cache."""
from __future__ import annotations

import os
import time

import torch

from faceadapter_suite.core.cache import ModelCache
from faceadapter_suite.core import loading


def _file(tmp_path, name="net.pth", value=1.0):
    path = tmp_path / name
    torch.save({"weight": torch.full((2, 2), value)}, path)
    return path


def _builder(path):
    def build():
        module = torch.nn.Linear(2, 2, bias=False)
        return loading.load_weights_into(module, loading.load_state_dict(path), source=str(path))
    return build


def test_same_object_twice_one_load(tmp_path):
    cache, path = ModelCache(), _file(tmp_path)
    a = cache.get("linear", [path], _builder(path), dtype=torch.float32, device="cpu")
    b = cache.get("linear", [path], _builder(path), dtype=torch.float32, device="cpu")
    assert a is b and a.ready() is b.ready()
    assert (cache.stats.loads, cache.stats.hits) == (1, 1)


def test_other_dtype_loads_again(tmp_path):
    cache, path = ModelCache(), _file(tmp_path)
    cache.get("linear", [path], _builder(path), dtype=torch.float32, device="cpu")
    cache.get("linear", [path], _builder(path), dtype=torch.float16, device="cpu")
    assert cache.stats.loads == 2 and len(cache) == 2


def test_changed_file_reloads_and_replaces(tmp_path):
    cache, path = ModelCache(), _file(tmp_path)
    first = cache.get("linear", [path], _builder(path), dtype=torch.float32, device="cpu")
    time.sleep(0.01)
    _file(tmp_path, value=2.0)
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    second = cache.get("linear", [path], _builder(path), dtype=torch.float32, device="cpu")
    assert second is not first and cache.stats.loads == 2
    assert torch.all(second.value.weight == 2.0)
    assert len(cache) == 1, "the stale entry is dropped"


def test_folder_identity_and_clear(tmp_path):
    cache = ModelCache()
    folder = tmp_path / "controlnet"
    folder.mkdir()
    _file(folder, "a.pth")
    item = cache.get("folder", [folder], lambda: {"any": "object"}, device="cpu")
    assert cache.get("folder", [folder], lambda: None, device="cpu") is item
    _file(folder, "b.pth")
    assert cache.get("folder", [folder], lambda: {"new": 1}, device="cpu") is not item
    assert cache.clear() == 1 and len(cache) == 0
