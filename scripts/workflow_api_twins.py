"""Rewrite workflows/api/<name>.json from the UI templates (run after editing a template or a node's inputs).

The conversion is the headless client's (client/api_convert.py: what the ComfyUI frontend sends), fed
with an /object_info built offline from the pack's node classes plus the stock nodes captured from a
real ComfyUI (tests/offline_object_info.py). tests/test_workflows.py checks the twins match.

    python scripts/workflow_api_twins.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from client_module import CLIENT  # noqa: E402
from offline_object_info import offline_object_info  # noqa: E402
from standalone import load_pack  # noqa: E402

if __name__ == "__main__":
    object_info = offline_object_info(load_pack())
    api_dir = REPO / "workflows" / "api"
    for path in sorted((REPO / "workflows").glob("*.json")):
        (api_dir / path.name).write_text(json.dumps(CLIENT.api_convert.ui_to_api(json.loads(path.read_text()), object_info), indent=2) + "\n")
        print("wrote", api_dir / path.name)
