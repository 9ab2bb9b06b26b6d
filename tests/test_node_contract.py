"""Every node class must satisfy ComfyUI's classic node contract."""
from __future__ import annotations

import inspect

import pytest

from conftest import PACK

NODES = sorted(PACK.NODE_CLASS_MAPPINGS.items())
PRIMITIVES = {"INT", "FLOAT", "STRING", "BOOLEAN"}


def test_every_stage_loaded():
    from faceadapter_suite import nodes

    assert nodes.SKIPPED_STAGES == {}, f"stages skipped in the test environment: {nodes.SKIPPED_STAGES}"
    assert set(PACK.NODE_DISPLAY_NAME_MAPPINGS) == set(PACK.NODE_CLASS_MAPPINGS)


@pytest.mark.parametrize("name,cls", NODES, ids=[n for n, _ in NODES])
def test_node_contract(name, cls):
    assert name.startswith("FaceAdapter"), "class keys are prefixed to avoid clashes with other packs"
    spec = cls.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"}
    assert "required" in spec
    for section in ("required", "optional"):
        for input_name, entry in spec.get(section, {}).items():
            assert isinstance(entry, tuple) and 1 <= len(entry) <= 2, input_name
            kind = entry[0]
            assert isinstance(kind, (str, list)), input_name
            options = entry[1] if len(entry) == 2 else {}
            assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"
            if isinstance(kind, list):
                assert kind, f"{name}.{input_name}: empty dropdown"
                if "default" in options:
                    assert options["default"] in kind
            elif kind in ("INT", "FLOAT"):
                assert options["min"] <= options["default"] <= options["max"], input_name
    assert isinstance(cls.RETURN_TYPES, tuple)
    names = getattr(cls, "RETURN_NAMES", None)
    if names is not None:
        assert len(names) == len(cls.RETURN_TYPES)
    tips = getattr(cls, "OUTPUT_TOOLTIPS", None)
    if cls.RETURN_TYPES:
        assert tips and len(tips) == len(cls.RETURN_TYPES), f"{name}: OUTPUT_TOOLTIPS"
    fn = getattr(cls, cls.FUNCTION)
    assert callable(fn)
    params = set(inspect.signature(fn).parameters) - {"self"}
    declared = set(spec["required"]) | set(spec.get("optional", {})) | set(spec.get("hidden", {}))
    accepts_kwargs = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    assert accepts_kwargs or declared <= params, f"{name}: inputs not accepted by {cls.FUNCTION}: {declared - params}"
    assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION) > 20
    assert cls.CATEGORY.startswith("FaceAdapter/")
    assert name in PACK.NODE_DISPLAY_NAME_MAPPINGS


# ComfyUI's own socket types (and the frontend's wildcard) a node may use as they are; every other
# type is the pack's and carries its prefix (FACE_ANALYSIS is ComfyUI core's, FACES another pack's).
STOCK_TYPES = PRIMITIVES | {"IMAGE", "MASK", "LATENT", "CONDITIONING", "MODEL", "CLIP", "VAE", "CONTROL_NET",
                            "CLIP_VISION", "CLIP_VISION_OUTPUT", "*"}


@pytest.mark.parametrize("name,cls", NODES, ids=[n for n, _ in NODES])
def test_custom_socket_types_carry_the_pack_prefix(name, cls):
    spec = cls.INPUT_TYPES()
    kinds = [entry[0] for section in ("required", "optional") for entry in spec.get(section, {}).values()
             if isinstance(entry[0], str)] + list(cls.RETURN_TYPES)
    custom = [k for k in kinds if k not in STOCK_TYPES]
    assert all(k.startswith("FACEADAPTER_") for k in custom), custom


def test_node_modules_do_no_comfy_imports():
    """Only the bridge (core/comfy_bridge*.py) may import comfy.* or folder_paths (tests and bench/ drive a
    ComfyUI from outside the pack and are harness code, not the pack)."""
    import re
    from pathlib import Path

    root = Path(PACK.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if "tests" in path.parts or "bench" in path.parts or path.name.startswith("comfy_bridge") or ".venv" in path.parts:
            continue
        text = path.read_text()
        if re.search(r"^\s*(import|from)\s+(comfy|folder_paths)\b", text, re.M):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []


MODEL_INPUTS = {"FaceAdapterLoad3DReconstructor": ("d3dfr_file", "bfm_file"),
                "FaceAdapterPredictAdaptingArea": ("area_model", "parsing_model"),
                "FaceAdapterLoadFaceAnalysis": ("insightface_model",),
                "FaceAdapterIdentitySimilarity": ("recognizer",)}


@pytest.mark.parametrize("name", sorted(MODEL_INPUTS))
def test_model_inputs_are_dropdowns_with_is_changed(name, tmp_path, monkeypatch):
    """Model files are picked from dropdowns (manifest name always valid) and feed ComfyUI's cache key."""
    from faceadapter_suite.core import comfy_bridge

    monkeypatch.setattr(comfy_bridge, "_standalone_models_dir", tmp_path)  # nothing installed
    cls = PACK.NODE_CLASS_MAPPINGS[name]
    required = cls.INPUT_TYPES()["required"]
    for input_name in MODEL_INPUTS[name]:
        choices, options = required[input_name]
        assert isinstance(choices, list) and options["default"] in choices
        assert not choices[0].startswith("("), "the manifest name comes first so saved workflows validate"
        assert options["default"].startswith("(not installed: "), "absent files are said to be absent"
    # ComfyUI calls IS_CHANGED with the widget values only (linked inputs are left out)
    values = {n: required[n][0][0] for n in MODEL_INPUTS[name]}
    key = cls.IS_CHANGED(**values)
    assert isinstance(key, str) and key == cls.IS_CHANGED(**values)
