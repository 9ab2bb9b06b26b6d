"""FADM file layouts for the random model maker: which module each entry of ``diffusion.pth``, ``Facevid.pth``,
``FOMM.pth`` and ``deca_model.tar`` holds, at full size or at the ``--tiny`` configs, and the tensors in them
that are not learned (so a random file still has a valid schedule, blur kernels and invertible jacobians).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch

__all__ = ["fadm_tiny_configs", "fadm_parts", "fadm_planned_layout"]


def fadm_tiny_configs() -> dict[str, Any]:
    """The configs of the ``--tiny`` FADM files (pass them to the loaders): 64x64 coarse generators, a 32x32
    renderer (T = 100). E_flame and face-vid2vid's head-pose trunk have fixed architectures (full size)."""
    from ..models.fadm.facevid import DenseMotionConfig, FacevidConfig
    from ..models.fadm.fomm import FOMMConfig
    from ..models.fadm.renderer import RendererConfig
    from ..models.fadm.unet import UNetConfig

    return {"facevid": FacevidConfig(num_kp=5, feature_channel=8, kp_block_expansion=8, kp_max_features=32,
                                     kp_num_blocks=3, kp_reshape_channel=128, kp_reshape_depth=4, he_block_expansion=16,
                                     block_expansion=8, max_features=32, reshape_channel=8, reshape_depth=4,
                                     num_resblocks=1, dense_motion=DenseMotionConfig(8, 32, 3, 4, 2)),
            "fomm": FOMMConfig(num_kp=4, kp_block_expansion=8, kp_max_features=32, kp_num_blocks=3, block_expansion=8,
                               max_features=32, num_bottleneck_blocks=1, dm_block_expansion=8, dm_max_features=32,
                               dm_num_blocks=3),
            "renderer": RendererConfig(unet=UNetConfig(inner_channel=16, norm_groups=8, channel_mults=(1, 2),
                                                       attn_res=(16,), res_blocks=1, image_size=32))}


def fadm_parts(name: str, tiny: bool) -> dict[Optional[str], tuple[Callable[[], torch.nn.Module], dict]]:
    """Entry in the file (None: the whole file) -> (module builder, fixed tensors that are not learned:
    the schedule, sinusoid frequencies, anti-alias kernels, FOMM's identity jacobian bias)."""
    from ..models.fadm import deca, facevid, fomm, renderer
    from ..models.fadm.blocks import AntiAliasDownsample
    from ..models.fadm.diffusion_blocks import TimeEmbedding

    configs = fadm_tiny_configs() if tiny else {"facevid": facevid.FacevidConfig(), "fomm": fomm.FOMMConfig(),
                                                 "renderer": renderer.RendererConfig()}
    blur = lambda scale: AntiAliasDownsample(3, scale).weight  # noqa: E731
    if name == "fadm_diffusion":
        rc = configs["renderer"]
        fixed = {f"diffusion.{k}": v.float() for k, v in renderer.schedule(rc.timesteps).items()}
        fixed["diffusion.denoise_fn.time_mlp.0.inv_freq"] = TimeEmbedding(rc.unet.inner_channel).inv_freq
        return {None: (lambda: renderer.FADMDiffusion(rc), fixed)}
    if name == "fadm_facevid":
        fc = configs["facevid"]
        return {"kp_detector": (lambda: facevid.KPDetector(fc), {"down.weight": blur(fc.kp_scale_factor)}),
                "he_estimator": (lambda: facevid.HEEstimator(fc), {}),
                "generator": (lambda: facevid.OcclusionAwareGenerator(fc), {})}
    if name == "fadm_fomm":
        oc = configs["fomm"]
        identity = torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(oc.num_kp)
        return {"kp_detector": (lambda: fomm.FOMMKPDetector(oc), {"down.weight": blur(oc.kp_scale_factor),
                                                                   "jacobian.bias": identity}),
                "generator": (lambda: fomm.FOMMGenerator(oc),
                              {"dense_motion_network.down.weight": blur(oc.dm_scale_factor)})}
    if name == "fadm_deca":
        parts = {"E_flame": (deca.EFlame, {}), "D_detail": (_deca_detail_decoder, {})}
        if not tiny:  # the detail encoder (E_flame's trunk, 128 outputs) is never read: full size only
            parts["E_detail"] = (lambda: _with_outputs(deca.EFlame(), 128), {})
        return parts
    raise ValueError(f"FaceAdapter: {name!r} is not an FADM component")


def _with_outputs(net: torch.nn.Module, n: int) -> torch.nn.Module:
    net.layers[2] = torch.nn.Linear(1024, n)
    return net


def _deca_detail_decoder() -> torch.nn.Module:
    """DECA's D_detail layout (latent 128 + 53 -> 8x8x128 -> five upsampling convs -> 1 channel), keys only."""
    nn = torch.nn
    blocks: list[nn.Module] = [nn.BatchNorm2d(128)]
    for cin, cout in ((128, 128), (128, 64), (64, 64), (64, 32), (32, 16)):
        blocks += [nn.Upsample(scale_factor=2), nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout, 0.8),
                   nn.LeakyReLU(0.2)]
    blocks += [nn.Conv2d(16, 1, 3, padding=1), nn.Tanh()]
    decoder = nn.Module()
    decoder.l1 = nn.Sequential(nn.Linear(181, 128 * 8 * 8))
    decoder.conv_blocks = nn.Sequential(*blocks)
    return decoder


def fadm_planned_layout(name: str, tiny: bool = False) -> dict[Optional[str], dict[str, tuple]]:
    """Entry -> key -> shape of an FADM file the maker writes (meta device)."""
    out = {}
    for entry_name, (build, _) in fadm_parts(name, tiny).items():
        with torch.device("meta"):
            out[entry_name] = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    return out
