"""The five face nodes wired as in a ComfyUI graph, on real photos (mediapipe, offline)."""
from __future__ import annotations

import pytest
import torch

from test_face_support import mediapipe_available, photo_image

from faceadapter_suite.core import comfy_bridge
from faceadapter_suite.core.errors import NoFaceError
from faceadapter_suite.face.records import CropBatch, FaceBatch
from faceadapter_suite.nodes import face_analysis as nodes

pytestmark = mediapipe_available


@pytest.fixture(scope="module")
def mp_node_analyzer():
    analyzer, info = nodes.FaceAdapterLoadFaceAnalysis().load("mediapipe", 0.5, 10, "auto", True, "antelopev2", 640,
                                                              "full_range", "auto")
    assert "mediapipe" in info and "CPU" in info
    return analyzer


def _detect(analyzer, image, **kw):
    args = dict(tracking=True, smoothing="off", min_cutoff=1.0, beta=0.5, preview=True)
    args.update(kw)
    return nodes.FaceAdapterDetectFaces().detect(image, analyzer, **args)


def _select(faces, mode="largest", **kw):
    args = dict(order="left_to_right", index=0, follow_track=True, on_missing="pass_through",
                similarity_threshold=-1.0)
    args.update(kw)
    return nodes.FaceAdapterSelectFace().select(faces, mode, **args)


def test_loader_lists_backends():
    choices = nodes.FaceAdapterLoadFaceAnalysis.INPUT_TYPES()["required"]["backend"][0]
    assert "mediapipe" in choices


def test_detect_select_crop_paste_graph(mp_node_analyzer):
    image = photo_image("astronaut")
    before = image.clone()
    faces, preview, summary = _detect(mp_node_analyzer, image)
    assert isinstance(faces, FaceBatch) and faces.count() == 1 and "1 face(s)" in summary
    assert preview.shape == image.shape and not torch.equal(preview, image)
    chosen, report = _select(faces)
    assert chosen.found() == (True,) and "1/1" in report
    assert nodes.FaceAdapterSelectFace.RETURN_TYPES == ("FACEADAPTER_FACES", "STRING"), "no FACE_STATUS socket"
    crops, transforms, masks = nodes.FaceAdapterCropFaces().crop(image, chosen, "faceadapter_512", 512, 0.81)
    assert crops.shape == (1, 512, 512, 3) and isinstance(transforms, CropBatch) and masks.shape == (1, 512, 512)
    assert 0.1 < masks.mean() < 0.6
    out, mask = nodes.FaceAdapterPasteFaces().paste(image, crops, transforms, 16, "off", True)
    assert out.shape == image.shape and mask.shape == (1, 512, 512)
    assert (out - image).abs().max() <= 2 / 255
    assert torch.equal(image, before), "no node modifies its input"


def test_video_with_a_faceless_frame(mp_node_analyzer):
    face = photo_image("grace_hopper")
    video = torch.cat([face, torch.zeros_like(face), face])
    faces, preview, _ = _detect(mp_node_analyzer, video, smoothing="one_euro")
    assert preview.shape[0] == 3
    chosen, report = _select(faces)
    assert chosen.found() == (True, False, True) and "frame 1: missing" in report
    with pytest.raises(NoFaceError, match=r"frame\(s\) 1 of 3"):
        _select(faces, on_missing="error")
    crops, transforms, _ = nodes.FaceAdapterCropFaces().crop(video, chosen, "aligned_256", 512, 0.81)
    assert crops.shape[0] == 2
    out, mask = nodes.FaceAdapterPasteFaces().paste(video, torch.ones_like(crops), transforms, 8, "off", True)
    assert torch.equal(out[1], video[1]) and mask[1].max() == 0
    assert mask[0].max() == 1 and mask[2].max() == 1


def test_crop_without_any_face_says_so(mp_node_analyzer):
    blank = torch.zeros((2, 128, 128, 3))
    faces, _, _ = _detect(mp_node_analyzer, blank, preview=False)
    with pytest.raises(NoFaceError, match="no face to crop in any of the 2 frame"):
        nodes.FaceAdapterCropFaces().crop(blank, faces, "faceadapter_512", 512, 0.81)


def test_gray_and_rgba_inputs_through_the_nodes(mp_node_analyzer):
    rgb = photo_image("tom_hanks")
    for image in (rgb.mean(dim=-1, keepdim=True), torch.cat([rgb, torch.ones_like(rgb[..., :1])], dim=-1)):
        faces, preview, _ = _detect(mp_node_analyzer, image)
        assert faces.count() == 1 and preview.shape[-1] == 3
        crops, transforms, _ = nodes.FaceAdapterCropFaces().crop(image, faces, "aligned_custom", 128, 0.81)
        out, _ = nodes.FaceAdapterPasteFaces().paste(image, crops, transforms, 8, "mean_std", True)
        assert out.shape == (*image.shape[:3], 3)


def test_progress_and_interrupt(mp_node_analyzer, monkeypatch):
    updates, checks = [], []

    class Bar:
        def update(self, n=1):
            updates.append(n)

    monkeypatch.setattr(comfy_bridge, "progress", lambda total, desc="": Bar())

    def interrupt():
        checks.append(1)
        if len(checks) > 2:
            raise InterruptedError("cancelled")

    image = photo_image("astronaut").repeat(5, 1, 1, 1)
    monkeypatch.setattr(comfy_bridge, "check_interrupt", lambda: None)
    _detect(mp_node_analyzer, image, preview=False)
    assert len(updates) == 5
    monkeypatch.setattr(comfy_bridge, "check_interrupt", interrupt)
    with pytest.raises(InterruptedError):
        _detect(mp_node_analyzer, image, preview=False)
    assert len(checks) == 3, "stops within a frame of the interrupt"
