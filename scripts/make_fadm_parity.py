"""Write tests/data/reference/parity/fadm.npz by running upstream FADM's own modules.

Upstream: zengbohan0217/FADM at commit 090f0ae443f8e174415c9e4aa7cd9220d54305b1 (its face-vid2vid and DECA
code live in the same repository, modules/Facevid and modules/deca). Check it out OUTSIDE this repo; nothing
of it is copied here, its classes are imported from that checkout at run time:

    git --git-dir <mirror> archive 090f0ae | tar -x -C /work/scratch/fadm/upstream
    <venv>/bin/python scripts/make_fadm_parity.py /work/scratch/fadm/upstream

The venv needs torch, torchvision, numpy, scikit-image and matplotlib (run here with Python 3.11, torch
2.14.1, torchvision 0.29.1; upstream's ``import imp`` needs Python <= 3.11). Everything runs on the CPU in
float32 with seeded random weights (tools/seeded_weights.py, loaded by path; the test regenerates them
rather than committing them), one frame at a time as upstream's demo does:

- face-vid2vid at a tiny config (CONFIG["facevid"]; the generator's dense-motion network, hard-coded at
  full size in upstream's generator, is swapped for upstream's own DenseMotionNetwork class at the tiny
  config) on 64x64 crops of the sample photos: canonical keypoints, head-pose/expression outputs, source
  and driving keypoints (demo's absolute mode, keypoint_transformation without jacobians) and the coarse
  frames.
- FOMM at a tiny config (CONFIG["fomm"]) on the same crops: keypoints with jacobians, and the coarse frames
  driven by the driving keypoints as they are (upstream's kp_driving, no relative normalisation).
- DECA's E_flame (upstream ResnetEncoder, full size) on 256x256 crops resized to 224 without antialiasing
  (torchvision Resize(antialias=False): what Resize did on tensors in FADM's torch 1.8 era).
- The renderer at a tiny UNet (CONFIG["unet"]) on 32x32 coarse frames with T = 100: the conditioning
  network's output at two steps, one denoiser output, and the full 100-step generalized_steps trajectory
  (11 snapshots) with shared seeded noise. A short schedule cannot be used: upstream scales the linear betas
  by 1000/T, so T < 5 gives betas >= 1 and NaN.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "reference" / "parity" / "fadm.npz"
UPSTREAM_COMMIT = "090f0ae443f8e174415c9e4aa7cd9220d54305b1"
NOISE_SEED = 7
TIMESTEPS = 100
CONDITION_STEPS = (99, 0)
DENOISER_STEP = 50
CONFIG = {
    "facevid": {"num_kp": 5, "feature_channel": 8, "kp_block_expansion": 8, "kp_max_features": 32,
                "kp_num_blocks": 3, "kp_reshape_channel": 128, "kp_reshape_depth": 4, "kp_scale_factor": 0.25,
                "temperature": 0.1, "he_block_expansion": 16, "num_bins": 66, "block_expansion": 8,
                "max_features": 32, "num_down_blocks": 2, "reshape_channel": 8, "reshape_depth": 4,
                "num_resblocks": 2, "estimate_occlusion_map": True,
                "dense_motion": {"block_expansion": 8, "max_features": 32, "num_blocks": 3, "reshape_depth": 4,
                                 "compress": 2}},
    "fomm": {"num_kp": 4, "num_channels": 3, "temperature": 0.1, "kp_block_expansion": 8, "kp_max_features": 32,
             "kp_num_blocks": 3, "kp_scale_factor": 0.25, "block_expansion": 8, "max_features": 32,
             "num_down_blocks": 2, "num_bottleneck_blocks": 1, "estimate_occlusion_map": True,
             "dm_block_expansion": 8, "dm_max_features": 32, "dm_num_blocks": 3, "dm_scale_factor": 0.25},
    "unet": {"inner_channel": 16, "norm_groups": 8, "channel_mults": [1, 2], "attn_res": [16], "res_blocks": 1,
             "image_size": 32},
    "facevid_size": 64, "e_flame_size": 256,
}


def sample_frames() -> dict[str, np.ndarray]:
    """uint8 HWC 256x256 loose face crops: astronaut (source), grace_hopper and the mirrored astronaut
    (two driving frames)."""
    from matplotlib import cbook
    from skimage import data, io, transform

    astronaut = data.astronaut()
    hopper = io.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))

    def crop(img: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        out = transform.resize(img[y0:y1, x0:x1, :3], (256, 256), anti_aliasing=True)
        return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)

    src = crop(astronaut, 0, 300, 110, 410)
    return {"source": src, "driving0": crop(hopper, 20, 420, 56, 456), "driving1": src[:, ::-1].copy()}


def _seeded():
    spec = importlib.util.spec_from_file_location("seeded_weights", REPO / "tools" / "seeded_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(upstream: Path) -> None:
    sys.path.insert(0, str(upstream))
    import torch
    import torch.nn.functional as F
    from torchvision import transforms

    from modules.deca.decalib.models.encoders import ResnetEncoder
    from modules.diffusion.core_net import UNet
    from modules.diffusion.diffusion import GaussianDiffusion
    from modules.Facevid.dense_motion import DenseMotionNetwork
    from modules.FOMM.generator import OcclusionAwareGenerator_FOMM
    from modules.FOMM.keypoint_detector import KPDetector_FOMM
    from modules.Facevid.generator_facevid import OcclusionAwareGenerator
    from modules.Facevid.keypoint_detector import HEEstimator, KPDetector
    from modules.Facevid.keypoint_transform import keypoint_transformation

    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    seeded = _seeded()

    def seed(net, name):
        net.load_state_dict(seeded.seeded_state_dict(net.state_dict(), name), strict=True)
        return net.eval()

    fv = CONFIG["facevid"]
    common = dict(num_kp=fv["num_kp"], feature_channel=fv["feature_channel"], image_channel=3, estimate_jacobian=False)
    kp_detector = seed(KPDetector(block_expansion=fv["kp_block_expansion"], max_features=fv["kp_max_features"],
                                  reshape_channel=fv["kp_reshape_channel"], reshape_depth=fv["kp_reshape_depth"],
                                  num_blocks=fv["kp_num_blocks"], temperature=fv["temperature"],
                                  scale_factor=fv["kp_scale_factor"], **common), "fadm_kp_detector")
    he_estimator = seed(HEEstimator(block_expansion=fv["he_block_expansion"], max_features=2048,
                                    num_bins=fv["num_bins"], **common), "fadm_he_estimator")
    generator = OcclusionAwareGenerator(block_expansion=fv["block_expansion"], max_features=fv["max_features"],
                                        num_down_blocks=fv["num_down_blocks"], reshape_channel=fv["reshape_channel"],
                                        reshape_depth=fv["reshape_depth"], num_resblocks=fv["num_resblocks"],
                                        estimate_occlusion_map=fv["estimate_occlusion_map"], **common)
    generator.dense_motion_network = DenseMotionNetwork(num_kp=fv["num_kp"], feature_channel=fv["feature_channel"],
                                                        estimate_occlusion_map=True, **fv["dense_motion"])
    generator = seed(generator, "fadm_generator")

    frames = sample_frames()
    out: dict[str, np.ndarray] = {f"frame_{k}": v for k, v in frames.items()}

    def tensor(img: np.ndarray, size: int) -> torch.Tensor:
        t = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]
        return t if size == img.shape[0] else F.interpolate(t, size=(size, size), mode="area")

    size = CONFIG["facevid_size"]
    source = tensor(frames["source"], size)
    out["facevid_source"] = source.numpy()
    kp_canonical = kp_detector(source)
    he_source = he_estimator(source)
    out["kp_canonical"] = kp_canonical["value"].numpy()
    for key in ("yaw", "pitch", "roll", "t", "exp"):
        out[f"he_source_{key}"] = he_source[key].numpy().copy()
    kp_source = keypoint_transformation(kp_canonical, he_source, False)
    out["kp_source"] = kp_source["value"].numpy()
    driving, he_drv, kp_drv, coarse = [], {k: [] for k in ("yaw", "pitch", "roll", "t", "exp")}, [], []
    for name in ("driving0", "driving1"):
        frame = tensor(frames[name], size)
        driving.append(frame)
        he = he_estimator(frame)
        for key in he_drv:
            he_drv[key].append(he[key].numpy().copy())
        kp = keypoint_transformation(kp_canonical, he, False)
        kp_drv.append(kp["value"])
        coarse.append(generator(source, kp_source=kp_source, kp_driving=kp)["prediction"])
    out["facevid_driving"] = torch.cat(driving).numpy()
    for key, values in he_drv.items():
        out[f"he_driving_{key}"] = np.concatenate(values)
    out["kp_driving"] = torch.cat(kp_drv).numpy()
    out["coarse"] = torch.cat(coarse).numpy()

    fo = CONFIG["fomm"]
    fomm_kp = seed(KPDetector_FOMM(block_expansion=fo["kp_block_expansion"], num_kp=fo["num_kp"],
                                   num_channels=fo["num_channels"], max_features=fo["kp_max_features"],
                                   num_blocks=fo["kp_num_blocks"], temperature=fo["temperature"],
                                   estimate_jacobian=True, scale_factor=fo["kp_scale_factor"]), "fadm_fomm_kp_detector")
    fomm_gen = seed(OcclusionAwareGenerator_FOMM(
        num_channels=fo["num_channels"], num_kp=fo["num_kp"], block_expansion=fo["block_expansion"],
        max_features=fo["max_features"], num_down_blocks=fo["num_down_blocks"],
        num_bottleneck_blocks=fo["num_bottleneck_blocks"], estimate_occlusion_map=fo["estimate_occlusion_map"],
        dense_motion_params={"block_expansion": fo["dm_block_expansion"], "max_features": fo["dm_max_features"],
                             "num_blocks": fo["dm_num_blocks"], "scale_factor": fo["dm_scale_factor"]},
        estimate_jacobian=True), "fadm_fomm_generator")
    fomm_src = fomm_kp(source)
    out["fomm_kp_source_value"] = fomm_src["value"].numpy()
    out["fomm_kp_source_jacobian"] = fomm_src["jacobian"].numpy()
    fomm_drv = [fomm_kp(frame) for frame in driving]
    out["fomm_kp_driving_value"] = torch.cat([k["value"] for k in fomm_drv]).numpy()
    out["fomm_kp_driving_jacobian"] = torch.cat([k["jacobian"] for k in fomm_drv]).numpy()
    out["fomm_coarse"] = torch.cat([fomm_gen(source, kp_driving=k, kp_source=fomm_src)["prediction"]
                                    for k in fomm_drv]).numpy()

    e_flame = seed(ResnetEncoder(outsize=236), "fadm_e_flame")
    resize = transforms.Resize((224, 224), antialias=False)
    params = [e_flame(resize(tensor(frames[n], CONFIG["e_flame_size"]))) for n in ("source", "driving0", "driving1")]
    out["e_flame"] = torch.cat(params).numpy()
    exp_pose = [torch.cat((p[:, 150:200], p[:, 200:206]), dim=1) for p in params]
    attribute = torch.cat([exp_pose[0] - exp_pose[1], exp_pose[0] - exp_pose[2]])
    out["attribute"] = attribute.numpy()

    u = CONFIG["unet"]
    unet = UNet(in_channel=6, out_channel=3, inner_channel=u["inner_channel"], norm_groups=u["norm_groups"],
                channel_mults=tuple(u["channel_mults"]), attn_res=tuple(u["attn_res"]), res_blocks=u["res_blocks"],
                dropout=0, image_size=u["image_size"])
    wrapper = torch.nn.Module()
    wrapper.diffusion = GaussianDiffusion(unet, image_size=u["image_size"], timesteps=TIMESTEPS, conditional=True,
                                          device="cpu")
    wrapper = seed(wrapper, "fadm_diffusion")
    s = u["image_size"]
    render_coarse = F.interpolate(torch.cat(coarse), size=(s, s), mode="area")
    out["render_coarse"] = render_coarse.numpy()
    noise = torch.from_numpy(seeded.seeded_noise(NOISE_SEED, (1, 3, s, s), TIMESTEPS + 1))
    noise_list = list(noise[1:])
    cond_out, denoised, trajectories = [], [], []
    for k in range(render_coarse.shape[0]):
        d = render_coarse[k:k + 1]
        # upstream demo.get_result's inputs, at 1/8, 1/4, 1/2 of the image size (32/64/128 at 256)
        low_feat = [F.interpolate(d, size=(s // 8, s // 8)), F.interpolate(d, size=(s // 4, s // 4)),
                    F.interpolate(d, size=(s // 2, s // 2))]
        g = F.interpolate(d, size=(s // 8, s // 8))
        g_dict = {"generated": F.interpolate(g, size=(s, s)), "driving": F.interpolate(g, size=(s, s))}
        condition = {"generated": g_dict, "warping": low_feat, "attribute": attribute[k:k + 1], "source": None}
        for step in CONDITION_STEPS:
            emb = unet.time_mlp(torch.tensor([step]))
            c, _ = unet.condition_conv(warp_source=low_feat, color_cond=g_dict, attribute=attribute[k:k + 1], t=emb)
            cond_out.append(c)
        et, _ = unet(noise[0], torch.tensor([DENOISER_STEP]), condition)
        denoised.append(et)
        trajectories.append(wrapper.diffusion.generalized_steps(noise[0], conditional_input=condition,
                                                                continous=True, noise_list=noise_list))
    out["condition"] = torch.stack(cond_out).reshape(render_coarse.shape[0], len(CONDITION_STEPS), 3, s, s).numpy()
    out["denoiser"] = torch.cat(denoised).numpy()
    out["trajectory"] = torch.stack(trajectories).numpy()  # (frames, 11, 3, s, s)
    out["config"] = np.array(json.dumps({**CONFIG, "noise_seed": NOISE_SEED, "timesteps": TIMESTEPS,
                                         "condition_steps": list(CONDITION_STEPS), "denoiser_step": DENOISER_STEP,
                                         "upstream_commit": UPSTREAM_COMMIT}))
    for key, value in out.items():
        if value.dtype == np.float64:
            out[key] = value.astype(np.float32)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB); trajectory max |x| "
          f"{float(np.abs(out['trajectory']).max()):.1f}, "
          f"coarse range {out['coarse'].min():.3f}..{out['coarse'].max():.3f}, "
          f"FOMM {out['fomm_coarse'].min():.3f}..{out['fomm_coarse'].max():.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]).resolve())
