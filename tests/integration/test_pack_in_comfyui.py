"""The pack inside a real ComfyUI: import, /object_info, a smoke prompt queued twice."""
from __future__ import annotations

import json

from conftest import PACK


def _input_names(spec: dict) -> dict[str, set[str]]:
    return {section: set(spec.get(section, {})) for section in ("required", "optional")}


def test_no_import_failure(comfy):
    log = comfy.log()
    # ComfyUI's own optional nodes (nodes_audio without torchaudio) may fail; ours must not.
    ours = [line for line in log.splitlines() if "IMPORT FAILED" in line and "faceadapter" in line.lower()]
    assert ours == [], log[-3000:]
    assert "comfyui-faceadapter-suite" in log
    assert "FaceAdapter: '" not in log, "a stage was skipped for a missing package:\n" + log[-3000:]


def test_object_info_lists_every_node_with_same_inputs(comfy):
    info = comfy.get("/object_info")
    for name, cls in PACK.NODE_CLASS_MAPPINGS.items():
        assert name in info, f"{name} missing from /object_info"
        served = info[name]
        expected = cls.INPUT_TYPES()
        assert _input_names(served["input"]) == _input_names(expected), name
        for section in ("required", "optional"):
            for key, entry in expected.get(section, {}).items():
                kind = entry[0]
                got = served["input"][section][key][0]
                if isinstance(kind, list):
                    assert isinstance(got, list), key  # dropdown contents may differ (model folders)
                else:
                    assert got == kind, (name, key)
        assert served["output"] == list(cls.RETURN_TYPES)
        assert served["category"] == cls.CATEGORY
        assert served["description"] == cls.DESCRIPTION
        assert served["display_name"] == PACK.NODE_DISPLAY_NAME_MAPPINGS[name]


def test_cache_node_smoke_prompt(comfy):
    prompt = {"1": {"class_type": "FaceAdapterModelCache", "inputs": {"action": "report"}}}
    first = comfy.run(prompt, timeout=120)
    assert first.succeeded, first.error()
    outputs = comfy.history(first.prompt_id)["outputs"]["1"]
    report = json.loads(outputs["text"][0])
    assert report["device"] == "cpu" and report["action"] == "report"
