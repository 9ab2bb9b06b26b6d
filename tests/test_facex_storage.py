"""FaceX face files: safetensors + JSON header in the 'faces' model folder. The round trip is exact (every
field, dtype and the assembled conditions), for a mesh face with tokens and regions and for a d3dfr_bfm face;
a file with a missing, misshapen or foreign field is refused with the file and the field named."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from faceadapter_suite.core import comfy_bridge
from faceadapter_suite.core.cache import MODEL_CACHE
from faceadapter_suite.core.images import uint8_to_image
from faceadapter_suite.face.analysis import detect_batch, load_analyzer
from faceadapter_suite.face.sample_photos import load_sample
from faceadapter_suite.facex import assemble as fx
from faceadapter_suite.facex import storage
from faceadapter_suite.generate.nets import FaceAdapterNets
from faceadapter_suite.nodes import facex as facex_nodes
from faceadapter_suite.spatial.projectors import MeshProjector, load_bfm_projector


@pytest.fixture(scope="module")
def tiny(tiny_models_dir):
    comfy_bridge.set_models_dir(tiny_models_dir)
    yield tiny_models_dir
    comfy_bridge.set_models_dir(None)
    MODEL_CACHE.clear()


@pytest.fixture(scope="module")
def faces(tiny):
    fa = tiny / "faceadapter"
    nets = FaceAdapterNets(fa / "net_id2token.pth", fa / "net_image2token.pth",
                           fa / "third_party" / "insightface_glint360k.pth", fa / "vision_encoder")
    bfm = load_bfm_projector(fa / "third_party" / "d3dfr_res50_nofc.pth", fa / "third_party" / "BFM_model_front.mat")
    image = uint8_to_image(load_sample("astronaut"))
    batch = detect_batch(load_analyzer("mediapipe"), image)
    decompose = facex_nodes.FaceXDecompose().decompose
    mesh = decompose(image, batch, MeshProjector(), 0, 0, 0.81, facex_nodes.MESH_REGIONS, nets)[0]
    edited = fx.offset_gaze(fx.offset_pose(fx.scale_expression(mesh, 0.5), yaw=10.0), 0.1, 0.0)
    bisenet = decompose(image, batch, bfm, 0, 0, 0.81, "third_party/79999_iter.pth", nets)[0]
    return {"mesh": mesh, "edited": edited, "bfm": bisenet}


def assert_identical(a, b):
    from dataclasses import fields

    for f in fields(a):
        if f.name in ("view", "bfm"):
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, torch.Tensor):
            assert isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y), f.name
        elif isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray) and x.dtype == y.dtype and np.array_equal(x, y), f.name
        else:
            assert x == y, f.name
    for name in ("frame_index", "redetected", "crop_ratio"):
        assert getattr(a.view, name) == getattr(b.view, name), name
    for name in ("crop512", "matrix512", "warp256", "kps512"):
        x, y = getattr(a.view, name), getattr(b.view, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    fa, fb = a.view.face, b.view.face
    assert fa.score == fb.score and fa.landmark_format == fb.landmark_format and fa.track_id == fb.track_id
    for name in ("bbox", "kps5", "landmarks"):
        assert np.array_equal(getattr(fa, name), getattr(fb, name)) and getattr(fa, name).dtype == getattr(fb, name).dtype


@pytest.mark.parametrize("which", ["mesh", "edited", "bfm"])
def test_round_trip_is_exact(tiny, faces, tmp_path, which):
    face = faces[which]
    comfy_bridge.set_models_dir(tmp_path)
    try:
        path = facex_nodes.FaceXSaveFace().save(face, f"people/{which}", False)["result"][0]
        assert path == str(tmp_path / "faces" / "people" / f"{which}.safetensors")
        assert f"people/{which}.safetensors" in facex_nodes.FaceXLoadFace.INPUT_TYPES()["required"]["face_file"][0]
        bfm = faces["bfm"].bfm if which == "bfm" else None
        loaded, preview = facex_nodes.FaceXLoadFace().load(f"people/{which}.safetensors", bfm)
        with pytest.raises(FileExistsError, match="exists"):
            facex_nodes.FaceXSaveFace().save(face, f"people/{which}", False)
    finally:
        comfy_bridge.set_models_dir(tiny)
    assert_identical(face, loaded)
    assert torch.equal(preview, facex_nodes._preview(face))
    ours = fx.assemble([loaded], fx.Recipe(), need_tokens=True)
    theirs = fx.assemble([face], fx.Recipe(), need_tokens=True)
    assert np.array_equal(ours[0].pts70, theirs[0].pts70) and torch.equal(ours[0].control, theirs[0].control)
    assert torch.equal(ours[1].tokens, theirs[1].tokens) and torch.equal(ours[2].tokens, theirs[2].tokens)


def test_absent_fields_stay_absent(tmp_path):
    image = uint8_to_image(load_sample("grace_hopper"))
    batch = detect_batch(load_analyzer("mediapipe"), image)
    face = facex_nodes.FaceXDecompose().decompose(image, batch, MeshProjector(), 0, 0, 0.81, facex_nodes.NO_REGIONS)[0]
    loaded = storage.load_face(storage.save_face(face, tmp_path / "bare.safetensors"))
    assert loaded.absent() == face.absent() and "identity_tokens" in loaded.absent() and loaded.parsing is None
    header = json.loads(_header(tmp_path / "bare.safetensors"))
    assert set(header["absent"]) == set(face.absent()) and header["method"] == "mediapipe_mesh"


def _header(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata()[storage.FORMAT]


def _rewrite(src, dst, drop=(), replace=None, header=None):
    tensors = {k: v for k, v in load_file(str(src)).items() if k not in drop}
    tensors.update(replace or {})
    meta = json.loads(_header(src))
    meta.update(header or {})
    save_file(tensors, str(dst), metadata={storage.FORMAT: json.dumps(meta)})
    return dst


@pytest.mark.parametrize("change,message", [
    ({"drop": ["expression"]}, "missing field 'expression'"),
    ({"drop": ["identity_tokens"]}, "missing field 'identity_tokens' \\(the header does not list it as absent\\)"),
    ({"drop": ["view.crop512"]}, "missing field 'view.crop512'"),
    ({"replace": {"pose": torch.zeros(6, dtype=torch.float64)}}, "field 'pose' has shape \\(6,\\), expected \\(13,\\)"),
    ({"replace": {"view.crop512": torch.zeros(512, 512, 3)}}, "field 'view.crop512' is float32, expected uint8"),
    ({"header": {"method": "flame"}}, "unknown method 'flame'"),
    ({"header": {"version": 7}}, "header says format .faceadapter.face_repr. version 7"),
])
def test_a_wrong_or_missing_field_is_named(faces, tmp_path, change, message):
    good = storage.save_face(faces["mesh"], tmp_path / "good.safetensors")
    bad = _rewrite(good, tmp_path / "bad.safetensors", **change)
    with pytest.raises(ValueError, match=f"{tmp_path / 'bad.safetensors'} is not a usable FaceX face file: {message}"):
        storage.load_face(bad)


def test_foreign_files_are_refused(tmp_path):
    save_file({"x": torch.zeros(2)}, str(tmp_path / "lora.safetensors"))
    with pytest.raises(ValueError, match="no 'faceadapter.face_repr' header"):
        storage.load_face(tmp_path / "lora.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="not a safetensors file"):
        storage.load_face(tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError, match="no face file"):
        storage.load_face(tmp_path / "nothing.safetensors")
    with pytest.raises(ValueError, match="not a usable face file name"):
        facex_nodes.FaceXSaveFace().save(None, "../escape", False)
