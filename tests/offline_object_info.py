"""``/object_info`` without a server: the pack's node classes described the way ComfyUI's server does
(server.py node_info), plus the stock nodes captured from a real ComfyUI (tests/data/client/).

The client converts UI workflows with it offline; scripts/workflow_api_twins.py writes the API twins
with it, and the tier-2 test checks the captured stock entries against a live server.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "client"
STOCK_OBJECT_INFO = DATA / "object_info_stock.json"


def node_info(name: str, cls: type, display_name: str) -> dict[str, Any]:
    """One class's /object_info entry (the fields ComfyUI serves for a V1 node), JSON-normalised."""
    spec = cls.INPUT_TYPES()
    info = {
        "input": spec,
        "input_order": {key: list(value) for key, value in spec.items()},
        "output": list(cls.RETURN_TYPES),
        "output_is_list": list(getattr(cls, "OUTPUT_IS_LIST", [False] * len(cls.RETURN_TYPES))),
        "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
        "name": name,
        "display_name": display_name,
        "description": getattr(cls, "DESCRIPTION", ""),
        "category": getattr(cls, "CATEGORY", "sd"),
        "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
    }
    return json.loads(json.dumps(info))


def pack_object_info(pack: Any) -> dict[str, dict]:
    return {name: node_info(name, cls, pack.NODE_DISPLAY_NAME_MAPPINGS.get(name, name))
            for name, cls in pack.NODE_CLASS_MAPPINGS.items()}


def stock_object_info() -> dict[str, dict]:
    return json.loads(STOCK_OBJECT_INFO.read_text())


def offline_object_info(pack: Any) -> dict[str, dict]:
    """Stock nodes (captured) + the pack's nodes (from the classes)."""
    return {**stock_object_info(), **pack_object_info(pack)}
