"""A stage whose optional package is missing is skipped with one clear log line; the rest load.
And inside ComfyUI, our folder kinds keep the paths users configured."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_missing_optional_package_skips_only_its_stage():
    result = _run("""
        import importlib.abc, importlib.util, logging, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "scipy" or name.startswith("scipy."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None
        sys.meta_path.insert(0, Block())
        _orig = importlib.util.find_spec
        importlib.util.find_spec = lambda n, *a: None if n.split(".")[0] == "scipy" else _orig(n, *a)
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        sys.path.insert(0, ".")
        from standalone import load_pack
        pack = load_pack()
        print("NODES", sorted(pack.NODE_CLASS_MAPPINGS))
    """)
    assert result.returncode == 0, result.stderr
    lines = [l for l in result.stderr.splitlines() if "skipped" in l]
    assert lines == [f"FaceAdapter: '{stage}' nodes skipped: missing package 'scipy' (pip install scipy)"
                     for stage in ("spatial_condition", "generation", "metrics", "facex")]  # both build on the spatial record
    nodes = result.stdout.split("NODES", 1)[1]
    assert "FaceAdapterDetectFaces" in nodes and "FaceAdapterModelCache" in nodes
    assert "FaceAdapterProject3DLandmarks" not in nodes


def test_register_keeps_user_configured_paths(monkeypatch, tmp_path):
    from faceadapter_suite.core import comfy_bridge, model_paths

    fake = types.ModuleType("folder_paths")
    fake.models_dir = str(tmp_path / "models")
    fake.supported_pt_extensions = {".pth", ".safetensors"}
    fake.folder_names_and_paths = {"faceadapter": ([str(tmp_path / "user")], set())}
    fake.get_folder_paths = lambda kind: list(fake.folder_names_and_paths[kind][0])
    monkeypatch.setitem(sys.modules, "folder_paths", fake)
    comfy_bridge._comfy.cache_clear()
    try:
        model_paths.register_model_folders()
        paths, exts = fake.folder_names_and_paths["faceadapter"]
        assert paths == [str(tmp_path / "user"), str(tmp_path / "models" / "faceadapter")]
        assert {".pth", ".mat", ".safetensors"} <= exts
        assert fake.folder_names_and_paths["insightface"][0] == [str(tmp_path / "models" / "insightface")]
        model_paths.register_model_folders()  # idempotent
        assert fake.folder_names_and_paths["faceadapter"][0] == paths
        assert comfy_bridge.folder_paths_for("faceadapter") == [Path(p) for p in paths]
    finally:
        comfy_bridge._comfy.cache_clear()


def test_broken_comfyui_is_reported_not_standalone(monkeypatch):
    """folder_paths imports (ComfyUI is there) but a comfy.* module raises: a clear error, not standalone."""
    from faceadapter_suite.core import comfy_bridge

    monkeypatch.delenv("FACEADAPTER_STANDALONE", raising=False)
    monkeypatch.setitem(sys.modules, "folder_paths", types.ModuleType("folder_paths"))
    monkeypatch.setitem(sys.modules, "comfy.model_management", None)  # importing it raises ImportError
    comfy_bridge._comfy.cache_clear()
    try:
        with pytest.raises(comfy_bridge.BrokenComfyUIError, match="importing 'comfy.model_management' failed"):
            comfy_bridge.torch_device()
        monkeypatch.setenv("FACEADAPTER_STANDALONE", "1")
        assert comfy_bridge.torch_device().type in ("cpu", "cuda", "mps")
    finally:
        comfy_bridge._comfy.cache_clear()


def test_no_folder_paths_means_standalone(monkeypatch):
    from faceadapter_suite.core import comfy_bridge

    monkeypatch.delenv("FACEADAPTER_STANDALONE", raising=False)
    monkeypatch.delitem(sys.modules, "folder_paths", raising=False)
    comfy_bridge._comfy.cache_clear()
    try:
        assert comfy_bridge._comfy("folder_paths") is None and comfy_bridge._comfy("comfy.model_management") is None
        assert not comfy_bridge.in_comfyui()
    finally:
        comfy_bridge._comfy.cache_clear()
