"""Tier 2: model files and memory over a ComfyUI session.

- Unload really frees: server RSS goes back near its level before the networks loaded,
  because node outputs hold handles, not networks (and the unload path calls malloc_trim).
- Fresh results: installing a model file after a first run re-runs the node that uses it.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest

from .comfy_server import upload_samples

from .test_networks_in_comfyui import graph

MB = 1024 * 1024
# Bound: after unload the server may keep at most this much of what the networks took (allocator slack,
# ComfyUI's own caches of the re-run nodes' small outputs). Measured on 2 CPU cores: see the report printout.
UNLOAD_SLACK_BYTES = 40 * MB


def rss(pid: int) -> int:
    """Resident set size of the server process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def settled_rss(pid: int) -> int:
    time.sleep(1.0)
    return rss(pid)


@pytest.fixture(scope="module")
def images(comfy, tmp_path_factory):
    return upload_samples(comfy, tmp_path_factory.mktemp("upload"), "fa_life_")


def _report(comfy, result, node: str = "11") -> dict:
    assert result.succeeded, (result.error(), comfy.log()[-3000:])
    return json.loads(comfy.history(result.prompt_id)["outputs"][node]["text"][0])


def _unload(comfy) -> dict:
    return _report(comfy, comfy.run({"1": {"class_type": "FaceAdapterModelCache", "inputs": {"action": "unload"}}},
                                    timeout=120), "1")


def _with_unload(prompt: dict) -> dict:
    """The same graph plus an unload node that runs after it: ComfyUI keeps every other node's output."""
    out = copy.deepcopy(prompt)
    out["12"] = {"class_type": "FaceAdapterModelCache", "inputs": {"action": "unload", "after": ["11", 0]}}
    return out


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="RSS is read from /proc (Linux)")
def test_unload_returns_network_memory(comfy, images):
    pid = comfy._proc.pid
    source, target = images
    warm = graph(source, target, "reenact", "adapting_area_net")
    warm["7"]["inputs"]["on_missing"] = "error"
    _report(comfy, comfy.run(_with_unload(warm), timeout=300), "12")  # imports, mediapipe, images, caches
    before = settled_rss(pid)

    prompt = graph(source, target, "reenact", "adapting_area_net")  # changed widget: projection + area re-run
    result = comfy.run(prompt, timeout=300)
    loaded_report = _report(comfy, result)
    assert "6" in result.cached_nodes, "the loader's cached handle is reused ..."
    assert loaded_report["cached"] >= 3, "... and the networks are reloaded transparently at use"
    loaded = settled_rss(pid)

    freed = comfy.run(_with_unload(prompt), timeout=120)
    out = _report(comfy, freed, "12")
    assert {"6", "7", "8"} <= freed.cached_nodes, "the graph's outputs (with the loader's handle) stay cached"
    after = settled_rss(pid)
    print(f"\nserver RSS: before load {before / MB:.1f} MiB, after load {loaded / MB:.1f} MiB, "
          f"after unload {after / MB:.1f} MiB (freed {out['freed']} models)")
    assert out["cached"] == 0 and out["freed"] >= 3
    assert loaded - before > 100 * MB, "D3DFR (~90 MB) + area net (~50 MB) should show in RSS"
    assert after - before <= UNLOAD_SLACK_BYTES, (
        f"unload kept {(after - before) / MB:.1f} MiB of the {(loaded - before) / MB:.1f} MiB the networks took")


def test_installing_a_model_file_reruns_the_node(comfy, images, configured_faceadapter_dir, random_models_dir):
    source, target = images
    # The session's server sees two faceadapter folders (the user-configured one first, then the maker's):
    # the file is "not installed" only when neither holds it.
    folders = (configured_faceadapter_dir, random_models_dir / "faceadapter")
    area_files = [folder / "net_seg_res18.pth" for folder in folders if (folder / "net_seg_res18.pth").exists()]
    assert area_files and area_files[0].parent == configured_faceadapter_dir
    parked = [path.with_name("net_seg_res18.parked") for path in area_files]
    prompt = graph(source, target, "reenact", "auto")
    for path, park in zip(area_files, parked):
        path.rename(park)  # "not installed yet"
    try:
        _unload(comfy)
        first = comfy.run(prompt, timeout=300)
        first_report = _report(comfy, first)
        assert "8" in first.executed_nodes
        assert first_report["cached"] == 2, "only D3DFR and BFM: auto fell back to the landmark hull"
        again = comfy.run(prompt, timeout=300)
        assert "8" in again.cached_nodes, "nothing changed: ComfyUI serves the area from its cache"
    finally:
        for path, park in zip(area_files, parked):
            park.rename(path)  # the user installs the file
    installed = comfy.run(prompt, timeout=300)
    report = _report(comfy, installed)
    assert "8" in installed.executed_nodes, "installing net_seg_res18.pth must re-run Predict Adapting Area"
    assert report["cached"] == 3 and report["models_loaded"][-1] == "adapting_area_predictor"
