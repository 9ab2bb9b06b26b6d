"""The README's bad-input table, row by row: what the face and spatial nodes do with no face, several faces,
tiny, huge, grayscale or RGBA images and mismatched batches (mediapipe, real photos, offline).

Each test's name is the row it backs (tests/test_readme.py checks every row names a test here).
"""
from __future__ import annotations

import pytest
import torch

from test_face_support import mediapipe_available, photo_image

from faceadapter_suite.core.errors import NoFaceError
from faceadapter_suite.nodes import face_analysis as face_nodes
from faceadapter_suite.nodes import spatial_condition as spatial_nodes

pytestmark = mediapipe_available
MESH = "mediapipe_mesh (licence-clean)"


@pytest.fixture(scope="module")
def analyzer():
    return face_nodes.FaceAdapterLoadFaceAnalysis().load("mediapipe", 0.5, 10, "auto", True, "antelopev2", 640,
                                                         "full_range", "auto")[0]


@pytest.fixture(scope="module")
def reconstructor():
    return spatial_nodes.FaceAdapterLoad3DReconstructor().load(MESH, "", "")[0]


def detect(analyzer, image: torch.Tensor, tracking: bool = False):
    return face_nodes.FaceAdapterDetectFaces().detect(image, analyzer, tracking, "off", 1.0, 0.5, True)


def select(faces, mode: str = "largest", on_missing: str = "pass_through"):
    return face_nodes.FaceAdapterSelectFace().select(faces, mode, "left_to_right", 0, True, on_missing, -1.0)[0]


def crop(image, faces, mode: str = "faceadapter_512"):
    return face_nodes.FaceAdapterCropFaces().crop(image, faces, mode, 256, 0.81)


def paste(image, crops, transforms):
    return face_nodes.FaceAdapterPasteFaces().paste(image, crops, transforms, 8, "off", True)


def project(reconstructor, source, source_faces, target, target_faces, task="swap", on_missing="pass_through"):
    return spatial_nodes.FaceAdapterProject3DLandmarks().project(reconstructor, source, source_faces, target,
                                                                 target_faces, task, on_missing, 0.81)


def resized(image: torch.Tensor, side: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(image.permute(0, 3, 1, 2), size=(side, side), mode="bilinear",
                                           align_corners=False).permute(0, 2, 3, 1).contiguous()


# ------------------------------------------------------------------ no face
def test_no_face(analyzer, reconstructor):
    """Detect reports 0 faces; Select passes the frame through or, on_missing=error, names it; Crop and
    Project 3D Landmarks stop with a NoFaceError that says which side has no face."""
    blank = torch.full((1, 256, 256, 3), 0.5)
    faces, preview, summary = detect(analyzer, blank)
    assert faces.count() == 0 and "0 face(s)" in summary and preview.shape == blank.shape
    assert select(faces).found() == (False,)
    with pytest.raises(NoFaceError, match=r"frame\(s\) 0 of 1"):
        select(faces, on_missing="error")
    with pytest.raises(NoFaceError, match="no face to crop"):
        crop(blank, faces)
    face = photo_image("grace_hopper")
    with pytest.raises(NoFaceError, match="source image has no face"):
        project(reconstructor, blank, faces, face, select(detect(analyzer, face)[0]))
    with pytest.raises(NoFaceError, match="target frame"):
        project(reconstructor, face, select(detect(analyzer, face)[0]), blank, faces)


# ------------------------------------------------------------------ several faces
def test_several_faces(analyzer, reconstructor):
    """A group photo: Detect finds every face; Select keeps one (largest / index / reference) or all; Crop
    makes one crop per kept face; a swap puts the source face onto every kept target face."""
    group = photo_image("t1")
    faces, _, summary = detect(analyzer, group)
    assert faces.count() >= 3, summary
    assert select(faces).count() == 1
    everyone = select(faces, "all")
    assert everyone.count() == faces.count()
    crops, transforms, _ = crop(group, everyone)
    assert crops.shape[0] == faces.count()
    out, _ = paste(group, crops, transforms)
    assert (out - group).abs().max() <= 2 / 255, "unchanged crops go back as they were"
    source = photo_image("grace_hopper")
    landmarks = project(reconstructor, source, select(detect(analyzer, source)[0]), group, everyone)[0]
    assert len(landmarks) == faces.count(), "one face pair per target face (group swap)"


# ------------------------------------------------------------------ tiny
def test_tiny_image(analyzer):
    """A 40x40 frame: no crash; the face is too small for the detector, so it is a no-face frame."""
    tiny = resized(photo_image("astronaut"), 40)
    faces, preview, _ = detect(analyzer, tiny)
    assert faces.count() == 0 and preview.shape == tiny.shape
    assert select(faces).found() == (False,)


def test_small_face_is_upscaled_to_the_crop(analyzer):
    """A 112x112 face photo (the smallest sample): found, and cropped up to 512."""
    small = photo_image("tom_hanks")
    faces, _, _ = detect(analyzer, small)
    assert faces.count() == 1
    crops, transforms, _ = crop(small, faces)
    assert crops.shape == (1, 512, 512, 3)
    out, _ = paste(small, crops, transforms)
    assert out.shape == small.shape


# ------------------------------------------------------------------ huge
def test_huge_image(analyzer):
    """A 3072x3072 frame: found (the detector works on a downscaled copy), cropped at 512 and pasted back at
    full resolution; the preview is scaled down to 1024."""
    huge = resized(photo_image("astronaut"), 3072)
    faces, preview, _ = detect(analyzer, huge)
    assert faces.count() == 1 and preview.shape == (1, 1024, 1024, 3)
    x0, y0, x1, y1 = faces.frames[0].faces[0].bbox
    assert x1 - x0 > 400, "the box is in full-resolution pixels (92 px at 512)"
    crops, transforms, _ = crop(huge, faces)
    assert crops.shape == (1, 512, 512, 3)
    out, _ = paste(huge, crops, transforms)
    assert out.shape == huge.shape and (out - huge).abs().max() <= 2 / 255


# ------------------------------------------------------------------ grayscale / RGBA
@pytest.mark.parametrize("channels", [1, 4])
def test_grayscale_and_rgba_images(analyzer, reconstructor, channels):
    """1-channel (gray) and 4-channel (RGBA) IMAGEs: gray is expanded, alpha dropped; every output is RGB.
    Gray or RGBA *crops* given to Paste Faces are accepted too."""
    rgb = photo_image("grace_hopper")
    image = rgb.mean(dim=-1, keepdim=True) if channels == 1 else torch.cat([rgb, torch.ones_like(rgb[..., :1])], -1)
    faces, preview, _ = detect(analyzer, image)
    assert faces.count() == 1 and preview.shape[-1] == 3
    crops, transforms, _ = crop(image, faces)
    assert crops.shape[-1] == 3
    odd_crops = crops.mean(dim=-1, keepdim=True) if channels == 1 else torch.cat([crops, crops[..., :1]], -1)
    out, mask = paste(image, odd_crops, transforms)
    assert out.shape == (*image.shape[:3], 3) and mask.max() == 1
    if channels == 1:  # a gray crop pasted into a gray frame changes nothing
        assert (out - image.expand(-1, -1, -1, 3)).abs().max() <= 2 / 255
    landmarks, overlay, drawn = project(reconstructor, image, faces, image, faces, task="reenact")
    assert len(landmarks) == 1 and overlay.shape[-1] == 3 and drawn.shape[-1] == 3


# ------------------------------------------------------------------ mismatched batches
def test_mismatched_batches(analyzer, reconstructor):
    """IMAGE and faces / crops from different batches stop with a ValueError naming both sides' counts and
    sizes: Crop Faces, Paste Faces, Project 3D Landmarks (source and target), and a source video whose
    length is neither 1 nor the target's."""
    face = photo_image("grace_hopper")
    other = photo_image("astronaut")
    faces = select(detect(analyzer, face)[0])
    with pytest.raises(ValueError, match=r"IMAGE has 1 frame\(s\) of 512x512.*detected on 1 frame\(s\) of 512x600"):
        crop(other, faces)
    with pytest.raises(ValueError, match=r"IMAGE has 2 frame\(s\)"):
        crop(torch.cat([face, face]), faces)
    crops, transforms, _ = crop(face, faces)
    with pytest.raises(ValueError, match="got 2 crop images but the transforms describe 1"):
        paste(face, torch.cat([crops, crops]), transforms)
    with pytest.raises(ValueError, match="transforms were made for 1 frame"):
        paste(other, crops, transforms)
    other_faces = select(detect(analyzer, other)[0])
    with pytest.raises(ValueError, match="source_image has 1 frame"):
        project(reconstructor, other, faces, other, other_faces)
    with pytest.raises(ValueError, match="target_image has 1 frame"):
        project(reconstructor, face, faces, face, other_faces)
    video = torch.cat([other] * 3)
    video_faces = select(detect(analyzer, video, tracking=True)[0])
    two = torch.cat([face, face])
    with pytest.raises(ValueError, match="source has 2 frames, target 3"):
        project(reconstructor, two, select(detect(analyzer, two)[0]), video, video_faces)
