"""Crops with Face-Adapter's constants: the 512 box crop and the 256 five-point aligned crop."""
from __future__ import annotations

import numpy as np
import pytest

from test_face_support import detected, mediapipe_available, mp_analyzer, photo, photo_image

from faceadapter_suite.face import align
from faceadapter_suite.face.records import Face, FaceBatch, FrameFaces, transform_points

PHOTOS = ("astronaut", "grace_hopper", "tom_hanks", "t1")


def _face(kps5: np.ndarray, bbox=(0, 0, 10, 10)) -> Face:
    return Face(bbox=np.asarray(bbox, np.float32), score=1.0, kps5=np.asarray(kps5, np.float32))


def test_template_is_the_arcface_template_rescaled():
    np.testing.assert_allclose(align.TEMPLATE_256, align.ARCFACE_112 * 2 + [16, 0], atol=0.01)


def test_512_crop_maps_the_square_onto_80_432():
    bbox = np.array([100.0, 50.0, 200.0, 190.0])  # w 100, h 140: the side uses the width only (upstream)
    m = align.faceadapter512_matrix(bbox)
    side = 2 * 0.81 * 100
    corners = np.array([[150 - side / 2, 120 - side / 2], [150 + side / 2, 120 + side / 2]])
    np.testing.assert_allclose(transform_points(corners, m), [[80, 80], [432, 432]], atol=1e-9)
    assert m[0, 1] == 0 and m[1, 0] == 0, "no rotation in the box crop"


@pytest.mark.parametrize("angle,scale,shift", [(0.0, 1.0, (0, 0)), (23.0, 0.37, (400, -80)), (-140.0, 2.5, (3, 9))])
def test_least_squares_similarity_recovers_an_exact_similarity(angle, scale, shift):
    rad = np.deg2rad(angle)
    forward = np.array([[scale * np.cos(rad), -scale * np.sin(rad), shift[0]],
                        [scale * np.sin(rad), scale * np.cos(rad), shift[1]]])
    kps = transform_points(align.TEMPLATE_256, np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2])
    m = align.aligned_matrix(kps, 256)
    # upstream's solver takes float32 keypoints (as the detector gives them): exact up to that rounding
    np.testing.assert_allclose(m[:, :2], forward[:, :2], atol=1e-5)
    np.testing.assert_allclose(m[:, 2], forward[:, 2], atol=1e-3)
    assert align.alignment_error(_face(kps), m, 256) < 1e-3  # Face stores float32


def test_least_squares_fit_is_optimal_for_noisy_points():
    rng = np.random.default_rng(0)
    kps = align.TEMPLATE_256 * 0.6 + 40 + rng.normal(0, 3, (5, 2))
    m = align.aligned_matrix(kps, 256)
    best = align.alignment_error(_face(kps), m, 256)
    for _ in range(50):  # no nearby 4-DOF similarity does better (mean error is convex enough here)
        a, b = m[0, 0] + rng.normal(0, 1e-3), m[1, 0] + rng.normal(0, 1e-3)
        trial = np.array([[a, -b, m[0, 2] + rng.normal(0, 0.05)], [b, a, m[1, 2] + rng.normal(0, 0.05)]])
        sq = np.sum((transform_points(kps, trial) - align.TEMPLATE_256) ** 2)
        assert sq >= np.sum((transform_points(kps, m) - align.TEMPLATE_256) ** 2) - 1e-9
    assert best < 10


@mediapipe_available
@pytest.mark.parametrize("name", PHOTOS)
def test_256_alignment_puts_redetected_points_where_the_transform_says(name):
    """The 256 crop is the frame warped by its 2x3 transform: re-detecting the five points in the crop
    lands within 2 px of the transformed frame points (and so of the template, up to the least-squares
    residual, which is the face's own deviation from the mean face)."""
    image = photo_image(name)
    frame = detected(name)
    crops, batch = align.crop_batch(image, FaceBatch(frames=(frame,)), "aligned_256")
    assert crops.shape == (len(frame.faces), 256, 256, 3) and batch.mode == align.ALIGNED_256
    for k, crop in enumerate(batch.crops):
        again = mp_analyzer().detect((crops[k].numpy() * 255).round().astype(np.uint8))
        assert again.faces, "the aligned crop still shows a face"
        found = max(again.faces, key=lambda f: f.area)
        error = np.linalg.norm(found.kps5 - crop.to_crop(crop.face.kps5), axis=1).mean()
        assert error < 2.0, f"{name} face {k}: {error:.2f} px"
        residual = align.alignment_error(crop.face, crop.matrix, 256)
        to_template = np.linalg.norm(found.kps5 - align.TEMPLATE_256, axis=1).mean()
        assert abs(to_template - residual) < 2.0


@mediapipe_available
def test_frontal_face_aligns_close_to_the_template():
    face = detected("grace_hopper").faces[0]
    assert align.alignment_error(face, align.aligned_matrix(face.kps5, 256), 256) < 3.5


@mediapipe_available
def test_crops_carry_transforms_that_map_back():
    frame = detected("t1")
    crops, batch = align.crop_batch(photo_image("t1"), FaceBatch(frames=(frame,)), "faceadapter_512")
    assert crops.shape[1:] == (512, 512, 3) and len(batch) == len(frame.faces)
    for crop in batch.crops:
        pts = crop.face.kps5
        back = transform_points(crop.to_crop(pts), crop.inverse())
        np.testing.assert_allclose(back, pts, atol=1e-4)
        x1, _, x2, _ = crop.face.bbox
        assert np.isclose(crop.matrix[0, 0], 352 / (2 * 0.81 * (x2 - x1)))


def test_generic_aligned_crop_any_size():
    frame = FrameFaces(height=300, width=300, faces=(_face(align.TEMPLATE_256 * 0.5 + 60, (40, 40, 200, 220)),))
    image = photo_image("astronaut")[:, :300, :300]
    for mode, size in (("aligned_custom", 384), ("arcface_custom", 112)):
        crops, batch = align.crop_batch(image, FaceBatch(frames=(frame,)), mode, size)
        assert crops.shape == (1, size, size, 3)
        template = "arcface" if mode == "arcface_custom" else "faceadapter"
        mapped = batch.crops[0].to_crop(frame.faces[0].kps5)
        np.testing.assert_allclose(mapped, align.template_points(size, template), atol=0.7 * size / 256)
    with pytest.raises(ValueError, match="unknown crop mode"):
        align.crop_batch(image, FaceBatch(frames=(frame,)), "nope")


def test_voxceleb_framing_is_the_box_grown_a_tenth_per_side_and_squared():
    """video-preprocessing's aspect-preserved box: each side grows by max(0.1, what makes it square), so a
    w100 x h140 box becomes the 168-px square around its centre, resized to 256."""
    bbox = np.array([100.0, 50.0, 200.0, 190.0])
    m = align.voxceleb_matrix(bbox)
    corners = np.array([[150 - 84, 120 - 84], [150 + 84, 120 + 84]])
    np.testing.assert_allclose(transform_points(corners, m), [[0, 0], [256, 256]], atol=1e-9)
    assert align.crop_size("voxceleb_256", 999) == align.crop_size("voxceleb_256_shot", 7) == 256


@mediapipe_available
def test_voxceleb_shot_crop_holds_still_while_per_frame_crop_follows_the_face():
    """A real photo under a camera move: the shot crop is one square around the union of the face's boxes
    (the face stays inside on every frame and moves within the crop); the per-frame crop keeps the face
    where it is. Both show the whole face box with at least VoxCeleb's margin around it."""
    from test_face_support import similarity_video
    from faceadapter_suite.core.images import uint8_to_image
    from faceadapter_suite.face.records import FaceBatch

    frames = similarity_video(photo("grace_hopper"), frames=6, shift=8.0)
    found = tuple(mp_analyzer().detect(frame) for frame in frames)
    batch = FaceBatch(frames=tuple(FrameFaces(f.height, f.width, f.faces[:1]) for f in found))
    image = uint8_to_image(np.stack(frames))
    shot_crops, shot = align.crop_batch(image, batch, "voxceleb_256_shot")
    each_crops, each = align.crop_batch(image, batch, "voxceleb_256")
    assert shot_crops.shape == each_crops.shape == (6, 256, 256, 3) and shot.mode == each.mode == align.VOXCELEB_256
    assert all(np.array_equal(c.matrix, shot.crops[0].matrix) for c in shot.crops), "one box for the shot"
    in_shot = [c.to_crop(c.face.kps5).mean(axis=0) for c in shot.crops]
    in_each = [c.to_crop(c.face.kps5).mean(axis=0) for c in each.crops]
    assert np.linalg.norm(in_shot[-1] - in_shot[0]) > 10, "the face moves inside the still shot crop"
    assert max(np.linalg.norm(p - in_each[0]) for p in in_each) < 3, "the per-frame crop follows the face"
    for plans, widest in ((shot, 1 / 1.2), (each, 1 / 1.2)):
        for plan in plans.crops:
            x1, y1, x2, y2 = transform_points(plan.face.bbox.reshape(2, 2), plan.matrix).ravel()
            assert min(x1, y1) > 0 and max(x2, y2) < 256, "the whole face box is inside the crop"
            longer = max(x2 - x1, y2 - y1) / 256
            assert longer <= widest + 1e-6, "at least VoxCeleb's 10 % margin on every side"
    longest = [max(np.ptp(transform_points(c.face.bbox.reshape(2, 2), c.matrix), axis=0)) / 256 for c in each.crops]
    np.testing.assert_allclose(longest, 1 / 1.2, atol=1e-5)  # per frame: exactly the margin
    assert shot_crops.std() > 0.05 and each_crops.std() > 0.05
