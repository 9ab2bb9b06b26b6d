"""Model-cache node: report what the shared cache holds, or free it."""
from __future__ import annotations

import json

from ..core.cache import MODEL_CACHE
from ..core import comfy_bridge as bridge

REQUIRES: tuple[str, ...] = ()
CATEGORY = "FaceAdapter/Models"


class FaceAdapterModelCache:
    DESCRIPTION = ("Shows what FaceAdapter's shared model cache holds (loads, hits, models) or unloads every "
                   "FaceAdapter network so its memory is freed (loader outputs only name files, so the next use "
                   "reloads). Face-analysis backends (Load Face Analysis: ONNX sessions, mediapipe graphs) are "
                   "not in this cache; they go when that node's output leaves ComfyUI's cache. "
                   "Runs every time it is queued.")
    CATEGORY = CATEGORY
    FUNCTION = "run"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("report",)
    OUTPUT_TOOLTIPS = ("JSON: cached models, loads and hits since start, device.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "action": (["report", "unload"], {
                    "default": "report",
                    "tooltip": "report: list cached models. unload: free every FaceAdapter model (GPU and RAM).",
                }),
            },
            "optional": {
                "after": ("*", {"tooltip": "Any output; connect it to run this node after that node."}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, **_kwargs):
        return float("nan")  # never cached: the report must be current

    @classmethod
    def VALIDATE_INPUTS(cls, input_types=None, **_kwargs):
        return True  # 'after' accepts any type

    def run(self, action: str, after=None):
        freed = MODEL_CACHE.clear() if action == "unload" else 0
        stats = MODEL_CACHE.stats
        report = {
            "action": action,
            "freed": freed,
            "cached": len(MODEL_CACHE),
            "loads": stats.loads,
            "hits": stats.hits,
            "models_loaded": stats.labels_loaded,
            "device": str(bridge.torch_device()),
        }
        text = json.dumps(report)
        return {"ui": {"text": [text]}, "result": (text,)}


NODE_CLASS_MAPPINGS = {"FaceAdapterModelCache": FaceAdapterModelCache}
NODE_DISPLAY_NAME_MAPPINGS = {"FaceAdapterModelCache": "FaceAdapter Model Cache (report / unload)"}
