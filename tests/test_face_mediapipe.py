"""mediapipe backend on real photos with the real models shipped in the wheel (offline)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from test_face_support import detected, mediapipe_available, mp_analyzer, photo, photo_image

from faceadapter_suite.face import analysis
from faceadapter_suite.face.backend_mediapipe import kps5_from_blazeface, kps5_from_mesh
from faceadapter_suite.face.records import MEDIAPIPE_478

pytestmark = mediapipe_available


@pytest.mark.parametrize("name,minimum,maximum", [("astronaut", 1, 1), ("grace_hopper", 1, 1),
                                                   ("tom_hanks", 1, 1), ("t1", 3, 10)])
def test_face_counts_on_real_photos(name, minimum, maximum):
    faces = detected(name).faces
    assert minimum <= len(faces) <= maximum


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper", "tom_hanks", "t1"])
def test_records_carry_mesh_in_frame_pixels(name):
    frame = detected(name)
    h, w = photo(name).shape[:2]
    assert (frame.height, frame.width) == (h, w)
    for face in frame.faces:
        assert face.landmark_format == MEDIAPIPE_478 and face.landmarks.shape == (478, 3)
        x1, y1, x2, y2 = face.bbox
        inside = ((face.kps5[:, 0] > x1) & (face.kps5[:, 0] < x2) & (face.kps5[:, 1] > y1) & (face.kps5[:, 1] < y2))
        assert inside.all(), "five points lie inside the face box"
        # ArcFace order on upright faces: image-left eye first, mouth below the eyes.
        assert face.kps5[0, 0] < face.kps5[1, 0] and face.kps5[3, 0] < face.kps5[4, 0]
        assert face.kps5[3:, 1].mean() > face.kps5[:2, 1].mean()
        # z is in x's pixel units: the mesh depth range is comparable to the face width.
        depth = np.ptp(face.landmarks[:, 2])
        assert 0.2 * (x2 - x1) < depth < 1.5 * (x2 - x1)
        np.testing.assert_allclose(kps5_from_mesh(face.landmarks), face.kps5, atol=1e-4)


def test_blazeface_fallback_points_follow_the_template_shape():
    six = np.array([[100, 100], [140, 100], [120, 125], [120, 150], [80, 110], [160, 110]], np.float32)
    kps = kps5_from_blazeface(six)
    assert kps[3, 0] < 120 < kps[4, 0] and np.allclose(kps[3:, 1], 150)
    assert np.isclose(kps[4, 0] - kps[3, 0], 0.828 * 40, atol=0.1)


def test_tiny_image_has_no_usable_face_and_does_not_crash():
    """BlazeFace does fire on a 32x32 thumbnail, but a 5 px face is below MIN_FACE_SIZE."""
    tiny = cv2.resize(photo("astronaut"), (32, 32), interpolation=cv2.INTER_AREA)
    frame = mp_analyzer().detect(tiny)
    assert frame.faces == () and (frame.height, frame.width) == (32, 32)


def test_blank_image_has_no_face():
    assert mp_analyzer().detect(np.full((256, 256, 3), 127, np.uint8)).faces == ()


def test_6000x4000_frame_is_detected_at_native_coordinates():
    small = detected("astronaut").faces[0]
    big = np.zeros((4000, 6000, 3), np.uint8)
    patch = cv2.resize(photo("astronaut"), (2048, 2048), interpolation=cv2.INTER_CUBIC)
    big[1000:3048, 2500:4548] = patch
    faces = mp_analyzer().detect(big).faces
    assert len(faces) == 1
    expected = small.kps5 * 4.0 + np.array([2500, 1000])
    assert np.abs(faces[0].kps5 - expected).max() < 12.0, "native-resolution keypoints (about 1.5 px at 512)"


def test_gray_and_rgba_images_go_through_image_to_uint8():
    rgb = photo_image("grace_hopper")
    gray = rgb.mean(dim=-1, keepdim=True)
    rgba = torch.cat([rgb, torch.ones_like(rgb[..., :1])], dim=-1)
    for image in (gray, rgba):
        before = image.clone()
        batch = analysis.detect_batch(mp_analyzer(), image)
        assert len(batch) == 1 and len(batch.frames[0].faces) == 1
        assert torch.equal(image, before), "inputs are never modified"


def test_batch_with_faceless_frames():
    face = photo_image("astronaut")
    blank = torch.zeros_like(face)
    batch = analysis.detect_batch(mp_analyzer(), torch.cat([face, blank, face]))
    assert [len(f.faces) for f in batch.frames] == [1, 0, 1]
    assert batch.backend == "mediapipe" and batch.count() == 2


def test_loader_lists_only_importable_backends(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    assert analysis.available_backends() == ["mediapipe"]
    with pytest.raises(ImportError, match="onnxruntime"):
        analysis.load_analyzer("insightface", model_dir=".")


def test_tasks_api_without_model_file_names_the_fix(monkeypatch):
    import mediapipe as mp

    from faceadapter_suite.face.backend_mediapipe import MediaPipeAnalyzer

    monkeypatch.delattr(mp, "solutions", raising=False)
    with pytest.raises(FileNotFoundError, match="face_landmarker.task"):
        MediaPipeAnalyzer(task_file=None)


def _stand_in_task(path):
    """A .task bundle (uncompressed zip) made of the wheel's own tflite files. It is NOT the real
    face_landmarker.task (its landmark numbers are meaningless): it only lets the Tasks API code
    path run offline."""
    import zipfile
    from pathlib import Path

    import mediapipe as mp

    modules = Path(mp.__file__).parent / "modules"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as bundle:
        bundle.write(modules / "face_detection" / "face_detection_short_range.tflite", "face_detector.tflite")
        bundle.write(modules / "face_landmark" / "face_landmark.tflite", "face_landmarks_detector.tflite")
    return path


def test_tasks_api_path_runs_with_a_task_file_from_the_models_folder(monkeypatch, tmp_path):
    import mediapipe as mp

    from faceadapter_suite.core import comfy_bridge
    from faceadapter_suite.nodes.face_analysis import FaceAdapterLoadFaceAnalysis

    (tmp_path / "mediapipe").mkdir()
    _stand_in_task(tmp_path / "mediapipe" / "face_landmarker.task")
    monkeypatch.delattr(mp, "solutions", raising=False)
    comfy_bridge.set_models_dir(tmp_path)
    try:
        analyzer, info = FaceAdapterLoadFaceAnalysis().load("mediapipe", 0.5, 4, "auto", True, "antelopev2", 640,
                                                            "full_range", "auto")
    finally:
        comfy_bridge.set_models_dir(None)
    assert "Tasks" in info
    faces = analyzer.detect(photo("astronaut")).faces
    assert len(faces) == 1
    face = faces[0]
    assert face.landmark_format == MEDIAPIPE_478 and face.landmarks.shape == (478, 3)
    np.testing.assert_allclose(face.bbox[:2], face.landmarks[:, :2].min(axis=0), atol=1e-3)


def test_concurrent_detector_and_mesh_give_the_sequential_result(monkeypatch):
    """The detector runs on the analyzer's worker thread while the mesh runs on the caller's, and t1's three
    sub-image passes go two at a time (the worker with a second mesh graph); the records must be exactly those
    of one detector and one mesh graph called one after the other (and faceless frames still give none)."""
    from faceadapter_suite.face import backend_mediapipe

    frames = [photo(n) for n in ("astronaut", "grace_hopper", "tom_hanks", "t1")] + [np.zeros((64, 64, 3), np.uint8)]
    concurrent_analyzer = analysis.load_analyzer("mediapipe")
    concurrent = [concurrent_analyzer.detect(f) for f in frames]
    assert concurrent_analyzer._worker is not None, "the detector ran on the worker thread"
    assert concurrent_analyzer._worker_mesher is not None, "t1's missed faces used the worker's mesh graph"
    assert len(concurrent[3].faces) >= 3 and all(f.landmarks is not None for f in concurrent[3].faces)

    class Done:
        def __init__(self, value):
            self.value = value

        def result(self):
            return self.value

    monkeypatch.setattr(backend_mediapipe.MediaPipeAnalyzer, "_in_worker", lambda self, fn, *a: Done(fn(*a)))
    monkeypatch.setattr(backend_mediapipe.MediaPipeAnalyzer, "_mesher_for_worker", lambda self: self._mesher)
    sequential_analyzer = analysis.load_analyzer("mediapipe")
    sequential = [sequential_analyzer.detect(f) for f in frames]
    assert [len(r.faces) for r in concurrent] == [len(r.faces) for r in sequential] and len(concurrent[-1].faces) == 0
    for a, b in zip(concurrent, sequential):
        for fa, fb in zip(a.faces, b.faces):
            for field in ("bbox", "kps5", "landmarks"):
                np.testing.assert_array_equal(getattr(fa, field), getattr(fb, field))
            assert fa.score == fb.score
    assert sequential_analyzer._worker_mesher is None, "the reference used one mesh graph"
    concurrent_analyzer.close()
    assert concurrent_analyzer._worker is None and concurrent_analyzer._worker_mesher is None


def test_frame_to_uint8_is_the_rounding_formula_on_ties_edges_and_random_values():
    """One OpenCV pass must give rint(clip(x * 255, 0, 255)) exactly: half-way values (k + 0.5) / 255 and
    their float neighbours round half to even, out-of-range values saturate (the full sweep of (-2, 2) is
    scripts/check_uint8_conversion.py)."""
    from faceadapter_suite.core.images import frame_to_uint8

    ties = ((np.arange(256) + 0.5) / 255).astype(np.float32)
    values = np.concatenate([ties, np.nextafter(ties, np.float32(2)), np.nextafter(ties, np.float32(-2)),
                             np.float32([-1.0, -1e-8, 0.0, 1.0, 1.0 + 1e-7, 1.5, 1e6]),
                             np.random.default_rng(0).random(30000, dtype=np.float32)])
    values = values[: len(values) // 3 * 3].reshape(1, -1, 3)

    def formula(x: np.ndarray) -> np.ndarray:
        return np.rint(np.clip(x * np.float32(255.0), 0, 255)).astype(np.uint8)

    np.testing.assert_array_equal(frame_to_uint8(torch.from_numpy(values.copy())[None], 0), formula(values))
    doubled = np.concatenate([values, values], axis=1)
    strided = torch.from_numpy(doubled.copy())[None, :, ::2]  # a view that is not contiguous
    np.testing.assert_array_equal(frame_to_uint8(strided, 0), formula(doubled[:, ::2]))
