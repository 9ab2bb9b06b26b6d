"""FaceAdapter Suite: Face-Adapter, FaceX and FADM as ComfyUI nodes.

ComfyUI imports this file by path; everything inside uses relative imports.
Nothing heavy happens here: model folders are registered and the node classes
are collected, models load only when a node runs.
"""
from .core.model_paths import register_model_folders
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
