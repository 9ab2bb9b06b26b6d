"""BFM landmark projection against the output of the official code (parity/bfm_lm68.npz)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from faceadapter_suite.models.bfm import BFM, BFM_FOCAL, add_gaze_points, mix_coefficients


@pytest.fixture(scope="module")
def parity(reference_dir):
    return np.load(reference_dir / "parity" / "bfm_lm68.npz")


@pytest.fixture(scope="module")
def mat_path(reference_dir):
    return reference_dir / "parity" / "bfm_synthetic_front.mat"


def test_camera_constants_match_the_parity_run(parity):
    assert BFM_FOCAL == pytest.approx(float(parity["focal"]))
    assert int(parity["image_size"]) == 256 and float(parity["camera_distance"]) == 10.0


def test_mix_coefficients_takes_identity_from_source(parity):
    source, target = torch.from_numpy(parity["coeff_source"]), torch.from_numpy(parity["coeff_target"])
    mixed = mix_coefficients(source, target)
    np.testing.assert_array_equal(mixed.numpy(), parity["mixed_coeff"])
    np.testing.assert_array_equal(target.numpy(), parity["coeff_target"])  # input untouched


@pytest.mark.parametrize("landmarks_only", [True, False])
def test_lm68_matches_official(parity, mat_path, landmarks_only):
    bfm = BFM.from_mat(mat_path, landmarks_only=landmarks_only)
    lm68 = bfm.get_lm68(torch.from_numpy(parity["mixed_coeff"]))
    assert lm68.shape == (2, 68, 2) and lm68.dtype == torch.float32
    err = np.abs(lm68.numpy() - parity["lm68"]).max()
    assert err < 1e-4, err


def test_landmarks_only_keeps_just_68_vertices(mat_path):
    small = BFM.from_mat(mat_path)
    full = BFM.from_mat(mat_path, landmarks_only=False)
    assert small.meanshape.shape == (68, 3) and small.id_base.shape == (204, 80)
    assert full.meanshape.shape == (600, 3)
    assert full.meanshape.mean(dim=0).abs().max() < 1e-5  # re-centred


def test_rotation_is_rz_ry_rx():
    angles = torch.tensor([[0.3, -0.2, 0.1]])
    x, y, z = angles[0].tolist()
    rx = torch.tensor([[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]])
    ry = torch.tensor([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = torch.tensor([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]])
    torch.testing.assert_close(BFM.rotation(angles)[0], rz @ ry @ rx)


def test_gaze_points_scale_with_eye_width():
    lm68 = torch.zeros(1, 68, 2)
    lm68[0, 36], lm68[0, 39] = torch.tensor([100.0, 120.0]), torch.tensor([130.0, 80.0])  # width 50
    lm68[0, 42], lm68[0, 45] = torch.tensor([150.0, 100.0]), torch.tensor([170.0, 100.0])  # width 20
    pupil = torch.tensor([[0.1, -0.2, 0.5, 1.0]])
    pts = add_gaze_points(lm68, pupil)
    assert pts.shape == (1, 70, 2)
    torch.testing.assert_close(pts[0, 68], torch.tensor([115.0 + 5.0, 100.0 - 10.0]))
    torch.testing.assert_close(pts[0, 69], torch.tensor([160.0 + 10.0, 100.0 + 20.0]))
    torch.testing.assert_close(pts[:, :68], lm68)


def test_lm70_uses_pupil_coefficients(parity, mat_path):
    bfm = BFM.from_mat(mat_path)
    coeff = torch.from_numpy(parity["mixed_coeff"])
    lm70 = bfm.get_lm70(coeff)
    torch.testing.assert_close(lm70[:, :68], bfm.get_lm68(coeff))
    torch.testing.assert_close(lm70, add_gaze_points(bfm.get_lm68(coeff), coeff[:, 257:261]))


def test_rejects_a_mat_without_bfm_fields(tmp_path):
    from scipy.io import savemat

    path = tmp_path / "other.mat"
    savemat(path, {"foo": np.zeros(3)})
    with pytest.raises(ValueError, match="BFM_model_front"):
        BFM.from_mat(path)
