"""Paste-back: crop -> paste round trips, edited crops, masks, several faces per frame."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from test_face_support import detected, mediapipe_available, photo_image

from faceadapter_suite.face import align, paste
from faceadapter_suite.face.records import FaceBatch, FrameFaces

pytestmark = mediapipe_available


def _crop(name: str, mode: str):
    image = photo_image(name)
    faces = FaceBatch(frames=(detected(name),))
    crops, transforms = align.crop_batch(image, faces, mode)
    return image, crops, transforms


def _outside_band(mask: torch.Tensor) -> torch.Tensor:
    return (mask == 0) | (mask >= 1.0 - 1e-6)


@pytest.mark.parametrize("name,mode", [("astronaut", "faceadapter_512"), ("grace_hopper", "aligned_256"),
                                       ("t1", "faceadapter_512"), ("tom_hanks", "aligned_256")])
def test_round_trip_with_an_unchanged_crop_reproduces_the_frame(name, mode):
    image, crops, transforms = _crop(name, mode)
    before = image.clone()
    out, mask = paste.paste_batch(image, crops, transforms, feather=16)
    assert torch.equal(image, before), "the input IMAGE is not modified"
    assert out.shape == image.shape and mask.shape == image.shape[:3]
    assert (mask > 0.999).sum() > 500, "the face interior is fully pasted"
    diff = (out - image).abs().amax(dim=-1)
    assert diff[_outside_band(mask)].max() <= 2 / 255
    # A crop that went through 8-bit storage (SaveImage/LoadImage) still round-trips.
    quantised = (crops * 255).round() / 255
    out8, mask8 = paste.paste_batch(image, quantised, transforms, feather=16)
    assert (out8 - image).abs().amax(dim=-1)[_outside_band(mask8)].max() <= 2 / 255


def test_plain_resampling_paste_is_close_but_not_exact():
    """Without preserve_unchanged the crop is resampled twice; the error is the resampling loss."""
    image, crops, transforms = _crop("astronaut", "faceadapter_512")
    out, mask = paste.paste_batch(image, crops, transforms, feather=16, preserve_unchanged=False)
    inside = mask >= 1.0 - 1e-6
    diff = (out - image).abs().amax(dim=-1)[inside]
    assert diff.mean() < 4 / 255 and diff.max() < 0.5


def test_an_edited_crop_lands_where_its_transform_says():
    image, crops, transforms = _crop("grace_hopper", "aligned_256")
    edited = crops.clone()
    edited[0, 120:150, 110:150] = torch.tensor([1.0, 0.0, 0.0])  # a red patch on the nose
    out, mask = paste.paste_batch(image, edited, transforms, feather=8)
    centre = transforms.crops[0].inverse() @ np.array([130.0, 135.0, 1.0])
    x, y = (int(round(v)) for v in centre)
    np.testing.assert_allclose(out[0, y, x].numpy(), [1.0, 0.0, 0.0], atol=0.02)
    assert mask[0, y, x] == pytest.approx(1.0)
    far = (mask[0] == 0)
    assert torch.equal(out[0][far], image[0][far]), "pixels outside the mask are untouched"


def test_several_faces_in_one_frame_and_faceless_frames_pass_through():
    name = "t1"
    image1 = photo_image(name)
    image = torch.cat([image1, image1 * 0.5])
    frame = detected(name)
    faces = FaceBatch(frames=(frame, FrameFaces(height=frame.height, width=frame.width)))
    crops, transforms = align.crop_batch(image, faces, "faceadapter_512")
    white = torch.ones_like(crops)
    out, mask = paste.paste_batch(image, white, transforms, feather=4)
    assert torch.equal(out[1], image[1]) and mask[1].max() == 0, "a frame without crops is unchanged"
    for face in frame.faces:  # every face centre turned white in the one pass
        cx, cy = (int(v) for v in face.center)
        assert out[0, cy, cx].min() > 0.99 and mask[0, cy, cx] > 0.99


def test_given_mask_and_colour_matching():
    image, crops, transforms = _crop("astronaut", "faceadapter_512")
    box = torch.zeros((1, 512, 512))
    box[0, 200:300, 200:300] = 1.0
    darker = crops * 0.6
    out, mask = paste.paste_batch(image, darker, transforms, mask=box, feather=0, preserve_unchanged=False)
    assert mask.max() == 1.0 and 0 < (mask > 0).sum() < 0.2 * mask.numel()
    matched, _ = paste.paste_batch(image, darker, transforms, mask=box, feather=0, color_match="mean_std",
                                   preserve_unchanged=False)
    inside = mask[0] >= 1.0
    plain_error = (out[0][inside] - image[0][inside]).abs().mean()
    matched_error = (matched[0][inside] - image[0][inside]).abs().mean()
    assert matched_error < 0.5 * plain_error


def test_feathered_weights_are_one_deep_inside_and_fade_to_zero():
    hard = np.zeros((64, 64), np.float32)
    hard[8:56, 8:56] = 1
    weights = paste.feather_mask(hard, 6)
    assert weights[32, 32] == 1.0 and weights[8, 32] < 0.2 and weights[0, 0] == 0
    assert weights[14 + 1, 32] == 1.0
    border = paste.feather_mask(np.ones((32, 32), np.float32), 4)
    assert border[0].max() == 0 and border[16, 16] == 1, "a feathered paste fades at the crop border"


def _soft_mask(side: int = 512) -> np.ndarray:
    """Upstream's blend mask (pad 16, maxpool 17, avgpool 17) of an elliptical area: soft at its edge."""
    from faceadapter_suite.spatial.area import paste_blend_mask

    yy, xx = np.mgrid[:side, :side]
    area = (((xx - 250) / 150.0) ** 2 + ((yy - 270) / 190.0) ** 2 <= 1).astype(np.float32)
    return paste_blend_mask(torch.from_numpy(area)[None])[0].numpy()


def test_soft_mask_is_used_as_given_with_feather_zero():
    """No threshold: every soft value of the mask is the blend weight (it was cut at 0.5 before)."""
    soft = _soft_mask()
    assert ((soft > 0) & (soft < 1)).sum() > 5000, "the mask has a soft edge"
    assert np.array_equal(paste.feather_mask(soft, 0), soft)
    feathered = paste.feather_mask(soft, 8)
    assert (feathered <= soft + 1e-7).all() and feathered[270, 250] == soft[270, 250] == 1.0
    small = soft[(soft > 0) & (soft < 0.05)]
    assert small.size and (paste.feather_mask(soft, 0)[(soft > 0) & (soft < 0.05)] == small).all()


@pytest.mark.parametrize("preserve_unchanged", [False, True])
def test_paste_reproduces_upstreams_blend_on_a_known_crop(preserve_unchanged):
    """An integer-translation 512 crop of a larger frame, a generated crop and upstream's soft blend mask:
    the pasted frame equals gen*m + bg*(1-m) computed in crop space, and is the frame outside the crop."""
    from faceadapter_suite.face.records import Face, FaceCrop, CropBatch

    rng = np.random.default_rng(0)
    frame = rng.random((600, 700, 3), dtype=np.float32)
    x0, y0 = 130, 50
    matrix = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]])
    face = Face(bbox=np.array([x0 + 100, y0 + 100, x0 + 400, y0 + 400], np.float32), score=1.0,
                kps5=np.zeros((5, 2), np.float32))
    crops = CropBatch(crops=(FaceCrop(0, 0, matrix, 512, face),), frame_sizes=((600, 700),))
    background = frame[y0:y0 + 512, x0:x0 + 512]
    generated = np.clip(background + rng.normal(0, 0.2, background.shape).astype(np.float32), 0, 1)
    generated[200:300, 200:300] = background[200:300, 200:300]  # an unchanged patch inside the face
    m = _soft_mask()
    expected = generated * m[..., None] + background * (1.0 - m[..., None])
    out, weights = paste.paste_batch(torch.from_numpy(frame)[None], torch.from_numpy(generated)[None], crops,
                                     mask=torch.from_numpy(m)[None], feather=0, preserve_unchanged=preserve_unchanged)
    got = out[0, y0:y0 + 512, x0:x0 + 512].numpy()
    np.testing.assert_allclose(got, expected, atol=2e-6)
    np.testing.assert_array_equal(weights[0, y0:y0 + 512, x0:x0 + 512].numpy(), m)
    outside = np.ones((600, 700), bool)
    outside[y0:y0 + 512, x0:x0 + 512] = False
    assert np.array_equal(out[0].numpy()[outside], frame[outside])


def test_mismatched_inputs_are_explained():
    image, crops, transforms = _crop("astronaut", "faceadapter_512")
    with pytest.raises(ValueError, match="crop images"):
        paste.paste_batch(image, torch.cat([crops, crops]), transforms)
    with pytest.raises(ValueError, match="transforms were made for"):
        paste.paste_batch(image[:, :100], crops, transforms)


def test_rescaled_crops_are_accepted():
    image, crops, transforms = _crop("astronaut", "faceadapter_512")
    small = torch.nn.functional.interpolate(crops.movedim(-1, 1), size=256, mode="bilinear",
                                            antialias=True).movedim(1, -1)
    out, mask = paste.paste_batch(image, small, transforms, feather=16, preserve_unchanged=False)
    inside = mask >= 1.0 - 1e-6
    assert (out - image).abs().amax(dim=-1)[inside].mean() < 6 / 255


def test_default_mask_from_five_points_covers_the_face():
    """Faces without dense landmarks (insightface without a landmark model) get an oval from the five points."""
    from dataclasses import replace

    _, _, transforms = _crop("grace_hopper", "aligned_256")
    crop = transforms.crops[0]
    bare = replace(crop, face=replace(crop.face, landmarks=None, landmark_format=None))
    oval, hull = paste.face_mask(bare), paste.face_mask(crop)
    for x, y in np.round(bare.to_crop(bare.face.kps5)).astype(int):
        assert oval[y, x] == 1.0
    overlap = (oval * hull).sum() / np.maximum(oval, hull).sum()
    assert overlap > 0.7, "the oval and the mesh hull describe the same face region"


def test_paste_back_does_not_depend_on_the_installed_opencvs_warp(monkeypatch):
    """The crop and its way back use the pack's warp (OpenCV 4.x's values on any OpenCV): pasting must not call
    cv2.warpAffine, and an unchanged crop still comes back as the frame."""
    import cv2

    image, crops, transforms = _crop("astronaut", "faceadapter_512")

    def refuse(*args, **kwargs):
        raise AssertionError("paste-back called cv2.warpAffine")

    monkeypatch.setattr(cv2, "warpAffine", refuse)
    out, _ = paste.paste_batch(image, crops, transforms)
    assert torch.equal(out, image)
