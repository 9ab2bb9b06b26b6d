"""The random model maker's FADM files: the released layouts at full size (meta device, against
official_state_dicts.json), and a tiny set that the pack's FADM loaders read and run finite."""
from __future__ import annotations

import pytest
import torch

from faceadapter_suite.models.fadm.animate import animate, load_facevid
from faceadapter_suite.models.fadm.deca import load_e_flame
from faceadapter_suite.models.fadm.fomm import fomm_animate, load_fomm
from faceadapter_suite.models.fadm.renderer import load_fadm_diffusion, make_noise, render, schedule
from faceadapter_suite.tools import random_models as rm
from faceadapter_suite.tools.fadm_layouts import fadm_planned_layout, fadm_tiny_configs

OFFICIAL = {("fadm_diffusion", None): "fadm.diffusion",
            ("fadm_facevid", "kp_detector"): "fadm.facevid.kp_detector",
            ("fadm_facevid", "he_estimator"): "fadm.facevid.he_estimator",
            ("fadm_facevid", "generator"): "fadm.facevid.generator",
            ("fadm_fomm", "kp_detector"): "fadm.fomm.kp_detector",
            ("fadm_fomm", "generator"): "fadm.fomm.generator",
            ("fadm_deca", "E_flame"): "fadm.deca.e_flame"}


def test_full_size_files_have_the_released_layouts(official_keys):
    planned = {name: fadm_planned_layout(name) for name in rm.GROUPS["fadm"]}
    assert set(planned["fadm_facevid"]) == {"kp_detector", "he_estimator", "generator"}
    assert set(planned["fadm_fomm"]) == {"kp_detector", "generator"}
    assert set(planned["fadm_deca"]) == {"E_flame", "E_detail", "D_detail"}
    for (name, part), layout_id in OFFICIAL.items():
        official = {k: tuple(v["shape"]) for k, v in official_keys[layout_id]["keys"].items()}
        assert planned[name][part] == official, layout_id
    detail = planned["fadm_deca"]
    assert detail["E_detail"]["layers.2.weight"] == (128, 1024)
    assert detail["D_detail"]["l1.0.weight"] == (8192, 181)
    assert detail["D_detail"]["conv_blocks.21.weight"] == (1, 16, 3, 3)
    assert set(rm.resolve_components(None, tiny=False)) >= set(rm.GROUPS["fadm"])
    assert not set(rm.resolve_components(None, tiny=True)) & set(rm.GROUPS["fadm"])


@pytest.fixture(scope="module")
def tiny_fadm(tmp_path_factory):
    out = tmp_path_factory.mktemp("random_fadm")
    rm.make_random_models(out, tiny=True, only=["fadm"])
    return out


@torch.no_grad()
def test_tiny_files_load_and_run(tiny_fadm):
    configs = fadm_tiny_configs()
    manifest = rm.read_manifest(tiny_fadm)["components"]
    assert {rel for name in rm.GROUPS["fadm"] for rel in manifest[name]["files"]} == {
        "fadm/diffusion.pth", "fadm/Facevid.pth", "fadm/FOMM.pth", "fadm/deca_model.tar"}
    source, driving = torch.rand(1, 3, 64, 64), torch.rand(2, 3, 64, 64)
    facevid = load_facevid(tiny_fadm / "fadm" / "Facevid.pth", configs["facevid"])
    fomm = load_fomm(tiny_fadm / "fadm" / "FOMM.pth", configs["fomm"])
    for coarse in (animate(facevid, source, driving, relative=True),
                   fomm_animate(fomm, source, driving, relative=True)):
        assert coarse.shape == (2, 3, 64, 64) and torch.isfinite(coarse).all()
    assert torch.equal(fomm.kp_detector.jacobian.bias, torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(4))
    params = load_e_flame(tiny_fadm / "fadm" / "deca_model.tar")(torch.rand(1, 3, 224, 224))
    assert params.shape == (1, 236) and torch.isfinite(params).all()
    model = load_fadm_diffusion(tiny_fadm / "fadm" / "diffusion.pth", configs["renderer"])
    assert torch.equal(model.diffusion.ddim_c1, schedule(100)["ddim_c1"].float())
    refined = render(model, torch.rand(2, 3, 32, 32), torch.randn(2, 56), make_noise(0, 32, 100), steps=2)
    assert refined.shape == (2, 3, 32, 32) and torch.isfinite(refined).all()
