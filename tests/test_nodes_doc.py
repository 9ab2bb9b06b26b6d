"""NODES.md is generated from the node classes and must match them."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STALE = "NODES.md is stale: run python scripts/nodes_doc.py"


def _script():
    spec = importlib.util.spec_from_file_location("nodes_doc_script", REPO / "scripts" / "nodes_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nodes_md_is_current(pack):
    assert (REPO / "NODES.md").read_text() == _script().render(pack), STALE


def test_every_node_is_documented(pack):
    text = (REPO / "NODES.md").read_text()
    for key, cls in pack.NODE_CLASS_MAPPINGS.items():
        assert f"`{key}`" in text, f"{key} missing from NODES.md: {STALE}"
        assert f"### {pack.NODE_DISPLAY_NAME_MAPPINGS[key]}\n" in text
        for section in cls.INPUT_TYPES().values():
            for name in section:
                assert f"| `{name}` |" in text, f"{key}.{name} missing from NODES.md"


def test_render_ignores_installed_models(pack, tmp_path):
    """A model file present in the models folder must not change the document."""
    bridge = sys.modules[f"{pack.__name__}.core.comfy_bridge"]
    manifest = sys.modules[f"{pack.__name__}.core.manifest"].entries()
    for e in manifest.values():
        if not e.folder:
            (tmp_path / e.kind / e.path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / e.kind / e.path).write_bytes(b"x")
    (tmp_path / "faceadapter" / "extra_user_weights.pth").write_bytes(b"x")
    before = bridge._standalone_models_dir
    bridge.set_models_dir(tmp_path)
    try:
        text = _script().render(pack)
        assert bridge._standalone_models_dir == tmp_path.resolve()  # the render restores the folder
    finally:
        bridge._standalone_models_dir = before
    assert text == (REPO / "NODES.md").read_text()
    assert "extra_user_weights" not in text
