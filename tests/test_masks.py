"""Mask maths of the official pipeline, checked on hand-built label maps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faceadapter_suite.spatial import masks as M


def _labels(size: int = 128, fill: int = 0) -> torch.Tensor:
    return torch.full((1, 1, size, size), fill, dtype=torch.long)


def test_label_groups_follow_the_celebamask_scheme():
    labels = torch.arange(19).view(1, 1, 1, 19)
    face, face_ears, occ = (g[0, 0, 0].nonzero().flatten().tolist() for g in M.label_groups(labels))
    assert face == [1, 2, 3, 4, 5, 10, 11, 12, 13]
    assert face_ears == [1, 2, 3, 4, 5, 7, 8, 10, 11, 12, 13]
    assert occ == [6, 9, 15, 18]


def test_swap_mask_grows_face_by_34_px_and_ears_by_2():
    labels = _labels()
    labels[..., 60:70, 60:70] = 1  # skin block
    labels[..., 64, 10] = 7  # lone ear pixel far away
    mask = M.swap_mask_from_labels(labels)[0, 0]
    rows = mask[:, 65].nonzero().flatten()
    assert rows.min() == 60 - 32 - 2 and rows.max() == 69 + 32 + 2
    assert mask.sum() == (10 + 68) ** 2 + 5 * 5 - 0  # face square grown 34 px each side + ear 5x5
    assert mask[64, 8:13].all() and not mask[64, 7]
    assert set(mask.unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("occluder", [6, 9, 15, 18])
def test_occluders_are_cut_out_before_the_last_dilation(occluder):
    labels = _labels(fill=1)
    labels[..., 40:50, 40:50] = occluder
    mask = M.swap_mask_from_labels(labels)[0, 0]
    # a 10x10 hole shrinks by 2 px per side under the final 5x5 max-pool
    assert mask[42:48, 42:48].sum() == 0
    assert mask[41, 41] == 1 and mask[40:50, 40:50].sum() == 100 - 36


def test_hair_neck_cloth_are_not_editable_unless_near_the_face():
    labels = _labels(fill=17)
    assert M.swap_mask_from_labels(labels).sum() == 0
    labels[..., 0:20, :] = 14
    assert M.swap_mask_from_labels(labels).sum() == 0


def test_swap_mask_equals_the_comparison_form_on_random_labels():
    """The official code builds the groups from range comparisons and subtractions."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 19, (2, 1, 96, 96), generator=g)
    labels = torch.nn.functional.interpolate(labels.float(), size=(192, 192), mode="nearest").long()
    l = labels
    face = (((l > 0) & (l < 7)) | ((l > 9) & (l < 14))).float() - (l == 6).float()
    face_ears = ((l > 0) & (l < 14)).float() - (l == 9).float() - (l == 6).float()
    occ = ((l == 6) | (l == 9) | (l == 15) | (l == 18)).float()
    pool = torch.nn.functional.max_pool2d
    expected = pool(torch.maximum(face_ears, pool(face, 65, 1, 32)) * (1 - occ), 5, 1, 2)
    assert torch.equal(M.swap_mask_from_labels(labels), expected)


def test_blend_mask_is_a_soft_ramp_around_the_mask():
    mask = torch.zeros(1, 1, 128, 128)
    mask[..., 50:78, 50:78] = 1
    blend = M.blend_mask(mask)[0, 0]
    assert blend.shape == (128, 128)
    assert blend[64, 64] == 1 and blend[64, 50] == 1 and blend[64, 49] < 1
    ramp = blend[64, 26:58]
    assert torch.all(ramp[1:] >= ramp[:-1])  # monotone up towards the face
    # 8 px growth (edge at 42) then a 17-wide box: ramp from 34 (1/17) to 50 (1)
    torch.testing.assert_close(blend[64, 42], torch.tensor(9 / 17))
    torch.testing.assert_close(blend[64, 34], torch.tensor(1 / 17))
    assert blend[64, 33] == 0


def test_blend_mask_at_the_border_uses_zero_padding():
    mask = torch.ones(1, 1, 64, 64)
    blend = M.blend_mask(mask)[0, 0]
    assert blend[32, 32] == 1
    torch.testing.assert_close(blend[32, 0], torch.tensor(1.0))  # padding 16 > growth 8
    full = M.blend_mask(torch.ones(1, 1, 64, 64), pad=0)[0, 0]
    assert full[32, 0] < 1  # without the pad the avg-pool sees zeros


def test_adapting_area_threshold_is_strict():
    prob = torch.tensor([0.2, 0.5, 0.5001, 0.9]).view(1, 1, 1, 4)
    assert M.adapting_area_mask(prob).flatten().tolist() == [0, 0, 1, 1]


def test_parsing_labels_resizes_then_argmax():
    logits = torch.zeros(1, 19, 4, 4)
    logits[:, 1, :, :2] = 5
    logits[:, 17, :, 2:] = 5
    labels = M.parsing_labels(logits, size=8)
    assert labels.shape == (1, 1, 8, 8) and labels.dtype == torch.long
    assert (labels[..., :3] == 1).all() and (labels[..., 5:] == 17).all()


def test_label_png_groups_round_value_times_20_over_255():
    values = torch.tensor([round(i * 255 / 20) for i in range(21)]).view(1, 1, 1, 21)
    face, face_ears, occ = (g.flatten().nonzero().flatten().tolist() for g in M.label_png_groups(values))
    assert face == list(range(2, 12)) and face_ears == list(range(2, 14)) and occ == list(range(15, 20))


def _square_face_points(center=(256.0, 280.0), half=80.0) -> np.ndarray:
    cx, cy = center
    pts = np.zeros((68, 2))
    t = np.linspace(0, np.pi, 17)
    pts[:17] = np.stack([cx - half * np.cos(t), cy + half * np.sin(t) * 0.5], 1)  # jaw, chin at 8
    pts[17:27] = np.stack([np.linspace(cx - half, cx + half, 10), np.full(10, cy - 60)], 1)  # brows
    pts[27:68] = (cx, cy)
    return pts


def test_landmark_hull_mask_covers_face_and_forehead():
    pts = _square_face_points()[None]
    face = M.landmark_hull_mask(pts, size=512, grow=False)[0, 0]
    assert face[280, 256] == 1 and face[10, 10] == 0
    chin_y, brow_y = 280 + 40, 280 - 60
    lifted = brow_y - 0.3 * (chin_y - brow_y)
    rows = face[:, 256].nonzero().flatten()
    assert abs(rows.min().item() - lifted) <= 1 and abs(rows.max().item() - chin_y) <= 1
    grown = M.landmark_hull_mask(pts, size=512)[0, 0]
    rows_grown = grown[:, 256].nonzero().flatten()
    assert rows_grown.min() == rows.min() - 34 and rows_grown.max() == rows.max() + 34


def test_landmark_hull_mask_maps_points_from_the_256_crop():
    pts512 = _square_face_points()
    warp = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])
    pts256 = pts512 * 0.5
    direct = M.landmark_hull_mask(pts512[None], size=512, grow=False)
    via_warp = M.landmark_hull_mask(np.concatenate([pts256, np.zeros((2, 2))])[None], size=512,
                                    warp_mat256=warp[None], grow=False)
    assert (direct != via_warp).sum() == 0


def test_fast_pools_equal_square_pools():
    """The OpenCV (CPU) and separable (GPU) grow used for speed, and the blend, must equal torch's square
    pools bit for bit (upstream's ops)."""
    import torch.nn.functional as F

    from faceadapter_suite.spatial import masks

    torch.manual_seed(0)
    m = (torch.rand(2, 1, 96, 80) > 0.97).float()
    for k in (5, 17, 65):
        square = F.max_pool2d(m, kernel_size=k, stride=1, padding=k // 2)
        assert torch.equal(masks._grow(m, k), square)
        assert torch.equal(masks._grow_separable(m, k), square)
        assert torch.equal(masks._box_mean(m, k), F.avg_pool2d(m, k, 1, k // 2, count_include_pad=True))
    grown = F.max_pool2d(F.pad(m, (16,) * 4), 17, 1, 8)
    square_soft = F.avg_pool2d(grown, 17, 1, 8, count_include_pad=True)[:, :, 16:-16, 16:-16]
    assert torch.equal(masks.blend_mask(m), square_soft)
