"""Every network matches the official checkpoint layout exactly: keys, order, shapes, dtypes,
parameter count. Built on the meta device, so no memory or weights are needed."""
from __future__ import annotations

import pytest
import torch

from faceadapter_suite.models.adapting_area import AdaptingAreaPredictor
from faceadapter_suite.models.arcface import iresnet100
from faceadapter_suite.models.bisenet import BiSeNet
from faceadapter_suite.models.d3dfr import D3DFR
from faceadapter_suite.models.fadm.deca import EFlame
from faceadapter_suite.models.fadm.facevid import HEEstimator, KPDetector, OcclusionAwareGenerator
from faceadapter_suite.models.fadm.fomm import FOMMGenerator, FOMMKPDetector
from faceadapter_suite.models.fadm.renderer import FADMDiffusion
from faceadapter_suite.models.token_nets import ID2Token, Image2Token

NETWORKS = {
    "faceadapter.d3dfr_resnet50": D3DFR,
    "faceadapter.adapting_area_predictor": AdaptingAreaPredictor,
    "faceparsing.bisenet19": BiSeNet,
    "faceadapter.arcface_iresnet100": iresnet100,
    "faceadapter.id2token": ID2Token,
    "faceadapter.image2token": Image2Token,
    "fadm.facevid.kp_detector": KPDetector,
    "fadm.facevid.he_estimator": HEEstimator,
    "fadm.facevid.generator": OcclusionAwareGenerator,
    "fadm.fomm.kp_detector": FOMMKPDetector,
    "fadm.fomm.generator": FOMMGenerator,
    "fadm.deca.e_flame": EFlame,
    "fadm.diffusion": FADMDiffusion,
}


def _layout(module: torch.nn.Module) -> dict[str, dict]:
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
            for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_state_dict_layout_matches_official(name, official_keys):
    with torch.device("meta"):
        net = NETWORKS[name]()
    official = official_keys[name]
    mine = _layout(net)
    missing = sorted(set(official["keys"]) - set(mine))
    unexpected = sorted(set(mine) - set(official["keys"]))
    assert not missing and not unexpected, (missing[:5], unexpected[:5])
    wrong = {k: (mine[k], v) for k, v in official["keys"].items() if mine[k] != v}
    assert not wrong, list(wrong.items())[:5]
    assert list(mine) == list(official["keys"])  # same order as the official module
    assert len(mine) == official["num_keys"]
    assert sum(p.numel() for p in net.parameters()) == official["num_parameters"]


def test_d3dfr_heads_keep_official_typo_and_sizes():
    with torch.device("meta"):
        net = D3DFR()
    assert [h.out_channels for h in net.fianl_layers] == [80, 64, 80, 3, 27, 2, 1, 4]
    assert all(h.in_channels == 2048 and h.kernel_size == (1, 1) for h in net.fianl_layers)
