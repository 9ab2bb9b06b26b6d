"""insightface backend with tiny ONNX models that have antelopev2's real input/output signatures.

The models are built here with the onnx helper API, so routing, letterboxing,
normalisation, SCRFD decoding, NMS, ArcFace alignment and the provider code all
run for real. The tiny detector fires on non-black 32x32 cells of its stride-32
grid; the tiny recogniser returns a projection of the crop's per-channel maximum.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from conftest import PACK  # noqa: E402,F401

from faceadapter_suite.core import comfy_bridge  # noqa: E402
from faceadapter_suite.core.errors import MissingModelError  # noqa: E402
from faceadapter_suite.core.images import uint8_to_image  # noqa: E402
from faceadapter_suite.face import analysis, backend_insightface as bi, select, track  # noqa: E402
from faceadapter_suite.face.records import INSIGHTFACE_106  # noqa: E402

# Offsets of the five points from the anchor, in stride units (eyes, nose, mouth corners).
KPS_OFFSETS = np.array([[-0.3, -0.2], [0.3, -0.2], [0.0, 0.1], [-0.25, 0.45], [0.25, 0.45]], np.float32)
# Output names as in scrfd_10g_bnkps (scores, boxes, points for strides 8/16/32); the decoder routes by shape.
SCRFD_OUTPUTS = {"score": ("448", "471", "494"), "bbox": ("451", "474", "497"), "kps": ("454", "477", "500")}


def _save(graph, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build_scrfd(path: Path) -> Path:
    nodes, inits, outputs = [], [], []
    inits.append(numpy_helper.from_array(np.array([-1, 1], np.int64), "shape1"))
    inits.append(numpy_helper.from_array(np.array([-1, 4], np.int64), "shape4"))
    inits.append(numpy_helper.from_array(np.array([-1, 10], np.int64), "shape10"))
    for level, stride in enumerate((8, 16, 32)):
        pool = f"pool{stride}"
        nodes.append(helper.make_node("AveragePool", ["input.1"], [pool], kernel_shape=[stride, stride],
                                      strides=[stride, stride]))
        for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
            weight = np.zeros((2 * width, 3, 1, 1), np.float32)
            if kind == "score":
                bias = np.full(2, -20.0, np.float32)
                if stride == 32:  # logit 10*(r+g+b)+25: black cells ~0, any saturated primary ~1
                    weight[:] = 10.0
                    bias[:] = 25.0
            elif kind == "bbox":
                bias = np.ones(8, np.float32)  # one stride on every side
            else:
                bias = np.tile(KPS_OFFSETS.reshape(-1), 2)
            name = f"{kind}{stride}"
            inits += [numpy_helper.from_array(weight, f"{name}_w"), numpy_helper.from_array(bias, f"{name}_b")]
            nodes.append(helper.make_node("Conv", [pool, f"{name}_w", f"{name}_b"], [f"{name}_conv"]))
            last = f"{name}_conv"
            if kind == "score":
                nodes.append(helper.make_node("Sigmoid", [last], [f"{name}_sig"]))
                last = f"{name}_sig"
            nodes.append(helper.make_node("Transpose", [last], [f"{name}_t"], perm=[0, 2, 3, 1]))
            out = SCRFD_OUTPUTS[kind][level]
            nodes.append(helper.make_node("Reshape", [f"{name}_t", f"shape{width}"], [out]))
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        for out in SCRFD_OUTPUTS[kind]:
            outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [f"n{out}", width]))
    # ONNX wants outputs in the real model's order: scores, boxes, points.
    graph = helper.make_graph(nodes, "scrfd_tiny", [helper.make_tensor_value_info(
        "input.1", TensorProto.FLOAT, [1, 3, "?", "?"])], outputs, inits)
    return _save(graph, path)


def build_arcface(path: Path, seed: int = 0) -> Path:
    projection = np.random.default_rng(seed).normal(size=(3, 512)).astype(np.float32)
    nodes = [helper.make_node("GlobalMaxPool", ["input.1"], ["gmp"]),
             helper.make_node("Flatten", ["gmp"], ["flat"]),
             helper.make_node("MatMul", ["flat", "proj"], ["683"])]
    graph = helper.make_graph(nodes, "arcface_tiny",
                              [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
                              [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", 512])],
                              [numpy_helper.from_array(projection, "proj")])
    return _save(graph, path)


LANDMARKS_106 = np.stack([np.linspace(-0.5, 0.5, 106), np.linspace(-0.4, 0.4, 106)], axis=1).astype(np.float32)


def build_2d106(path: Path) -> Path:
    nodes = [helper.make_node("GlobalAveragePool", ["data"], ["gap"]),
             helper.make_node("Flatten", ["gap"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["mm"]),
             helper.make_node("Add", ["mm", "b"], ["fc1"])]
    graph = helper.make_graph(nodes, "lmk_tiny",
                              [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 192, 192])],
                              [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 212])],
                              [numpy_helper.from_array(np.zeros((3, 212), np.float32), "w"),
                               numpy_helper.from_array(LANDMARKS_106.reshape(1, -1), "b")])
    return _save(graph, path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("antelopev2")
    build_scrfd(folder / "scrfd_10g_bnkps.onnx")
    build_arcface(folder / "glintr100.onnx")
    build_2d106(folder / "2d106det.onnx")
    return folder


@pytest.fixture(scope="module")
def analyzer(model_dir):
    return analysis.load_analyzer("insightface", model_dir=model_dir, device="cpu")


def scene(height=960, width=1280, squares=(((256, 256), (255, 0, 0)), ((704, 448), (0, 0, 255)))) -> np.ndarray:
    """Black frame with 64x64 coloured squares at (x, y); at 1280x960 each fills one stride-32 cell."""
    rgb = np.zeros((height, width, 3), np.uint8)
    for (x, y), colour in squares:
        rgb[y:y + 64, x:x + 64] = colour
    return rgb


def test_routing_by_name_and_provider(analyzer, model_dir):
    assert {r: p.name for r, p in analyzer.paths.items()} == {"detection": "scrfd_10g_bnkps.onnx",
                                                               "recognition": "glintr100.onnx"}
    assert analyzer.provider == "CPUExecutionProvider"
    assert "CPUExecutionProvider" in analysis.describe(analyzer)


def test_detection_decodes_boxes_points_and_embeddings(analyzer):
    frame = analyzer.detect(scene())
    assert (frame.height, frame.width) == (960, 1280) and len(frame.faces) == 2
    red, blue = sorted(frame.faces, key=lambda f: f.bbox[0])
    # Anchor at the cell's top-left (128,128) in the 640 letterbox, one stride each side, scale 0.5 back.
    np.testing.assert_allclose(red.bbox, [192, 192, 320, 320], atol=1e-3)
    np.testing.assert_allclose(blue.bbox, [640, 384, 768, 512], atol=1e-3)
    np.testing.assert_allclose(red.kps5, np.array([256, 256]) + KPS_OFFSETS * 64, atol=1e-3)
    assert red.score > 0.99
    for face in (red, blue):
        assert face.embedding.shape == (512,) and np.isclose(np.linalg.norm(face.embedding), 1.0, atol=1e-5)
    assert float(red.embedding @ blue.embedding) < 0.0, "different crops, different identities"
    again = analyzer.detect(scene(squares=(((448, 512), (255, 0, 0)),))).faces[0]
    assert float(red.embedding @ again.embedding) == pytest.approx(1.0, abs=1e-5)


def test_large_gray_and_tiny_frames(analyzer):
    big = np.zeros((4000, 6000, 3), np.uint8)
    big[1000:1400, 3000:3400] = (0, 255, 0)  # 400 px square -> one cell after the 640 letterbox
    faces = analyzer.detect(big).faces
    assert len(faces) >= 1 and all(f.bbox[0] > 2500 and f.bbox[2] < 3900 for f in faces)
    assert analyzer.detect(np.zeros((32, 32, 3), np.uint8)).faces == ()
    gray = uint8_to_image(scene()).mean(dim=-1, keepdim=True)
    assert len(analysis.detect_batch(analyzer, gray).frames[0].faces) == 2


def test_routing_by_signature_when_files_are_renamed(model_dir, tmp_path):
    shutil.copy(model_dir / "scrfd_10g_bnkps.onnx", tmp_path / "a.onnx")
    shutil.copy(model_dir / "glintr100.onnx", tmp_path / "b.onnx")
    renamed = bi.InsightFaceAnalyzer(tmp_path, landmarks="none")
    assert {r: p.name for r, p in renamed.paths.items()} == {"detection": "a.onnx", "recognition": "b.onnx"}


def test_a_file_whose_name_lies_is_refused(model_dir, tmp_path):
    shutil.copy(model_dir / "glintr100.onnx", tmp_path / "scrfd_10g_bnkps.onnx")
    with pytest.raises(ValueError, match="looks like a detection model by name"):
        bi.InsightFaceAnalyzer(tmp_path)


def test_missing_models_are_named(model_dir, tmp_path):
    shutil.copy(model_dir / "glintr100.onnx", tmp_path / "glintr100.onnx")
    with pytest.raises(MissingModelError, match="scrfd_10g_bnkps.onnx"):
        bi.InsightFaceAnalyzer(tmp_path)
    detector_only = tmp_path / "det"
    detector_only.mkdir()
    shutil.copy(model_dir / "scrfd_10g_bnkps.onnx", detector_only / "scrfd_10g_bnkps.onnx")
    assert "recognition" not in bi.InsightFaceAnalyzer(detector_only, recognition=False).sessions
    with pytest.raises(MissingModelError, match="glintr100.onnx"):
        bi.InsightFaceAnalyzer(detector_only, recognition=True)


def test_dense_106_landmarks(model_dir):
    lmk = bi.InsightFaceAnalyzer(model_dir, recognition=False, landmarks="2d106")
    face = lmk.detect(scene()).faces[0]
    assert face.landmark_format == INSIGHTFACE_106 and face.landmarks.shape == (106, 2)
    # The crop is 1.5 box sides around the box centre: -0.5..0.5 spans 0.75 box widths.
    width = face.bbox[2] - face.bbox[0]
    np.testing.assert_allclose(np.ptp(face.landmarks[:, 0]), 0.75 * width, rtol=1e-3)
    np.testing.assert_allclose(face.landmarks.mean(axis=0), face.center, atol=1e-2)


def test_providers_follow_the_torch_device(monkeypatch, caplog):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with caplog.at_level(logging.WARNING, logger="FaceAdapter"):
        assert bi.providers_for(torch.device("cuda", 0)) == ["CPUExecutionProvider"]
    assert "onnxruntime-gpu" in caplog.text
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert bi.providers_for("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert bi.providers_for("cpu") == ["CPUExecutionProvider"]


def test_reference_and_tracking_use_embeddings(analyzer):
    red_left = scene(squares=(((256, 256), (255, 0, 0)), ((704, 448), (0, 0, 255))))
    red_right = scene(squares=(((704, 448), (255, 0, 0)), ((256, 256), (0, 0, 255))))
    blue_only = scene(squares=(((704, 448), (0, 0, 255)),))
    video = uint8_to_image(np.stack([red_left, red_right, blue_only]))
    faces = analysis.detect_batch(analyzer, video, per_frame=track.FaceTracker())
    reference = analysis.detect_batch(analyzer, uint8_to_image(scene(squares=(((448, 512), (255, 0, 0)),))))
    chosen = select.select_faces(faces, "reference", reference=reference)
    assert chosen.found() == (True, True, False), "the red 'person' is absent from the last frame"
    assert chosen.frames[0].faces[0].bbox[0] < 400 and chosen.frames[1].faces[0].bbox[0] > 600
    assert chosen.frames[0].faces[0].track_id == chosen.frames[1].faces[0].track_id, "ids follow identity"


@pytest.mark.parametrize("nested", [False, True])
def test_loader_node_finds_antelopev2_in_the_models_folder(model_dir, tmp_path, nested):
    from faceadapter_suite.nodes.face_analysis import FaceAdapterLoadFaceAnalysis

    folder = tmp_path / "insightface" / "models" / "antelopev2"
    if nested:  # the release zip unpacked into its own folder
        folder = folder / "antelopev2"
    folder.mkdir(parents=True)
    for name in ("scrfd_10g_bnkps.onnx", "glintr100.onnx"):
        shutil.copy(model_dir / name, folder / name)
    comfy_bridge.set_models_dir(tmp_path)
    try:
        loaded, info = FaceAdapterLoadFaceAnalysis().load("insightface", 0.5, 10, "auto", True, "antelopev2", 640,
                                                          "full_range", "cpu")
        assert loaded.model_dir == folder and "CPUExecutionProvider" in info
        shutil.rmtree(tmp_path / "insightface")
        with pytest.raises(MissingModelError, match="antelopev2"):
            FaceAdapterLoadFaceAnalysis().load("insightface", 0.5, 10, "auto", True, "antelopev2", 640,
                                               "full_range", "cpu")
    finally:
        comfy_bridge.set_models_dir(None)


def test_no_onnx_package_is_a_clear_error_not_a_guess(tmp_path, monkeypatch):
    """Without onnx the (mean, std) of a model cannot be read: say so instead of assuming 127.5."""
    import builtins

    from faceadapter_suite.core.errors import CorruptModelFileError, FaceAdapterError
    from faceadapter_suite.face import backend_insightface as bi

    path = tmp_path / "glintr100.onnx"
    build_arcface(path)
    assert bi.input_normalisation(path, (127.5, 127.5)) in ((0.0, 1.0), (127.5, 127.5))
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx":
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(FaceAdapterError, match="needs the 'onnx' package to read how glintr100.onnx normalises"):
        bi.input_normalisation(path, (127.5, 127.5))
    monkeypatch.setattr(builtins, "__import__", real_import)
    garbled = tmp_path / "2d106det.onnx"
    garbled.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CorruptModelFileError, match="2d106det.onnx"):
        bi.input_normalisation(garbled, (127.5, 128.0))
