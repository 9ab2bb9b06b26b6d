"""Rewrite workflows/api/<name>.json from the UI templates (run after editing a template or a node's inputs).

The conversion is the one tests/test_workflows.py checks (ui_to_api: what the ComfyUI frontend sends).

    python scripts/workflow_api_twins.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import conftest  # noqa: E402,F401  (imports the pack as faceadapter_suite)
from test_workflows import API_DIR, UI_FILES, ui_to_api  # noqa: E402

if __name__ == "__main__":
    for path in UI_FILES:
        (API_DIR / path.name).write_text(json.dumps(ui_to_api(json.loads(path.read_text())), indent=2) + "\n")
        print("wrote", API_DIR / path.name)
