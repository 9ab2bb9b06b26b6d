"""FaceRepr files: one safetensors file per face (tensors) with a JSON header (everything else).

Users keep a decomposed face and reuse it, like ReActor's face models but with the parts separate.
Arrays keep their dtype, so a save / load round trip is exact. A file with a missing, extra-absent
or misshapen field is refused with the file and the field named: a half-read face would silently
change results.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..face.records import Face
from ..spatial.condition import FaceView
from .representation import METHOD_BFM, METHOD_MESH, METHODS, OPTIONAL_FIELDS, FaceRepr

FORMAT = "faceadapter.face_repr"
VERSION = 1
KIND = "faces"  # the model folder kind (ComfyUI/models/faces/)
SUFFIX = ".safetensors"

# Tensor key -> expected shape (None: any) for fields whose shape does not depend on the method.
_VIEW = {"view.crop512": (512, 512, 3), "view.matrix512": (2, 3), "view.warp256": (2, 3), "view.kps512": (5, 2),
         "face.bbox": (4,), "face.kps5": (5, 2)}
_MOTION = {METHOD_BFM: {"shape": (80,), "expression": (64,), "pose": (6,), "gaze": (4,), "light": (27,),
                        "texture": (80,)},
           METHOD_MESH: {"shape": (70, 3), "expression": (70, 3), "pose": (13,), "gaze": (2, 3)}}
_TORCH_FIELDS = ("identity_tokens", "identity_embedding", "appearance_tokens", "region_features", "region_present")
_NUMPY_OPTIONAL = ("light", "texture", "parsing")


def _tensor(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().contiguous().clone()
    return torch.from_numpy(np.ascontiguousarray(value).copy())


def to_tensors(face: FaceRepr) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, JSON header) of a face."""
    v, f = face.view, face.view.face
    tensors = {"view.crop512": v.crop512, "view.matrix512": v.matrix512, "view.warp256": v.warp256,
               "view.kps512": v.kps512, "face.bbox": f.bbox, "face.kps5": f.kps5, "shape": face.shape,
               "expression": face.expression, "pose": face.pose, "gaze": face.gaze}
    for name, value in (("face.landmarks", f.landmarks), ("face.embedding", f.embedding)):
        if value is not None:
            tensors[name] = value
    for name in OPTIONAL_FIELDS + ("region_present",):
        if getattr(face, name) is not None:
            tensors[name] = getattr(face, name)
    header = {"format": FORMAT, "version": VERSION, "method": face.method, "frame_size": list(face.frame_size),
              "frame_index": v.frame_index, "redetected": v.redetected, "crop_ratio": v.crop_ratio,
              "score": f.score, "landmark_format": f.landmark_format, "track_id": f.track_id,
              "appearance_encoder": face.appearance_encoder, "parsing_source": face.parsing_source,
              "edits": list(face.edits), "absent": list(face.absent())}
    return {k: _tensor(val) for k, val in tensors.items()}, header


def save_face(face: FaceRepr, path: Path) -> Path:
    """Write ``face`` to ``path`` (atomically: a half-written file never has the final name)."""
    from safetensors.torch import save_file

    tensors, header = to_tensors(face)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    save_file(tensors, str(tmp), metadata={FORMAT: json.dumps(header)})
    os.replace(tmp, path)
    return path


def _fail(path: Path, what: str) -> ValueError:
    return ValueError(f"FaceAdapter: {path} is not a usable FaceX face file: {what}")


def _get(tensors: dict, path: Path, key: str, shape: Optional[tuple] = None, optional: bool = False):
    if key not in tensors:
        if optional:
            return None
        raise _fail(path, f"missing field '{key}'")
    value = tensors[key]
    if shape is not None and tuple(value.shape) != shape:
        raise _fail(path, f"field '{key}' has shape {tuple(value.shape)}, expected {shape}")
    return value


def _np(value: Optional[torch.Tensor]) -> Optional[np.ndarray]:
    if value is None:
        return None
    array = value.numpy()
    array.setflags(write=False)
    return array


def from_tensors(tensors: dict[str, torch.Tensor], header: dict, path: Path = Path("<memory>")) -> FaceRepr:
    """The inverse of :func:`to_tensors`; ValueError naming the field when anything is off."""
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise _fail(path, f"header says format {header.get('format')!r} version {header.get('version')!r}, expected "
                          f"{FORMAT!r} version {VERSION}")
    method = header.get("method")
    if method not in METHODS:
        raise _fail(path, f"unknown method {method!r} (expected one of {', '.join(METHODS)})")
    for key in ("frame_size", "frame_index", "redetected", "crop_ratio", "score", "absent", "edits"):
        if key not in header:
            raise _fail(path, f"missing header field '{key}'")
    absent = set(header["absent"])
    for name in OPTIONAL_FIELDS:
        if name not in absent and name not in tensors and not (method == METHOD_MESH and name in ("light", "texture")):
            raise _fail(path, f"missing field '{name}' (the header does not list it as absent)")
    view_parts = {key: _np(_get(tensors, path, key, shape)) for key, shape in _VIEW.items()}
    motion = {key: _np(_get(tensors, path, key, shape, optional=key in _NUMPY_OPTIONAL))
              for key, shape in _MOTION[method].items()}
    if view_parts["view.crop512"].dtype != np.uint8:
        raise _fail(path, f"field 'view.crop512' is {view_parts['view.crop512'].dtype}, expected uint8")
    face = Face(view_parts["face.bbox"], float(header["score"]), view_parts["face.kps5"],
                _np(tensors.get("face.landmarks")), header.get("landmark_format"), _np(tensors.get("face.embedding")),
                header.get("track_id"))
    view = FaceView(face, int(header["frame_index"]), view_parts["view.crop512"], view_parts["view.matrix512"],
                    view_parts["view.warp256"], view_parts["view.kps512"], bool(header["redetected"]),
                    float(header["crop_ratio"]))
    parsing = _np(_get(tensors, path, "parsing", (512, 512), optional=True))
    optional = {name: _get(tensors, path, name, optional=True) for name in _TORCH_FIELDS}
    if optional["region_features"] is not None and optional["region_present"] is None:
        raise _fail(path, "missing field 'region_present' (region_features are stored)")
    height, width = (int(x) for x in header["frame_size"])
    return FaceRepr(view=view, frame_size=(height, width), method=method, parsing=parsing,
                    appearance_encoder=header.get("appearance_encoder", ""),
                    parsing_source=header.get("parsing_source", ""), edits=tuple(header["edits"]), **motion,
                    **optional)


def load_face(path: Path) -> FaceRepr:
    """Read a face file written by :func:`save_face`."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FaceAdapter: no face file at {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except SafetensorError as exc:
        raise _fail(path, f"not a safetensors file ({exc})") from exc
    if FORMAT not in metadata:
        raise _fail(path, f"no '{FORMAT}' header (a safetensors file, but not a saved face)")
    try:
        header = json.loads(metadata[FORMAT])
    except json.JSONDecodeError as exc:
        raise _fail(path, f"its header is not JSON ({exc})") from exc
    return from_tensors(tensors, header, path)
