"""The standalone sampler: diffusers' UNet, ControlNet, Euler scheduler and VAE behind :class:`CropSampler`.

For the demo, scripts and anything that runs without ComfyUI. It computes what upstream's
``StableDiffusionFaceAdapterPipeline`` (infer.py) computes: classifier-free guidance as one batch of
[negative, positive] through the ControlNet (its own context: empty prompt | attribute tokens, the hint in
[-1,1] on both halves) and the UNet (empty prompt | identity tokens), SD1.5's EulerDiscreteScheduler,
latents started at ``noise * init_noise_sigma``, images decoded as ``(x / 2 + 0.5).clamp(0, 1)``.
The conditions, noise, batching and blending are generate/render.py's, shared with the native sampler.
diffusers is imported only when a network is loaded, so the pack itself does not need it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from ..core import comfy_bridge as bridge
from ..core.cache import MODEL_CACHE
from ..core.errors import MissingModelError
from ..core.loading import check_keys, load_diffusers_folder, load_state_dict
from .conditioning import FaceConditions, guided

DIFFUSION_DTYPE = torch.float32
# SD1.5's scheduler config (runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json), from which
# upstream builds its EulerDiscreteScheduler.
SD15_SCHEDULER: dict[str, Any] = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                                  "beta_schedule": "scaled_linear", "trained_betas": None, "steps_offset": 1,
                                  "prediction_type": "epsilon", "timestep_spacing": "linspace"}
INSTALL_HINT = "the standalone (non-ComfyUI) path needs diffusers: pip install diffusers"
VAE_NAME = "vae-ft-mse-840000-ema-pruned.safetensors"  # in a 'vae' model folder, as upstream's sd-vae-ft-mse
VAE_SOURCE = ("https://huggingface.co/stabilityai/sd-vae-ft-mse-original (the vae-ft-mse-840000-ema-pruned."
              "safetensors file) or the diffusers folder https://huggingface.co/stabilityai/sd-vae-ft-mse, as "
              "upstream uses")


def diffusers_module():
    """diffusers, or an ImportError saying the standalone path needs it (the nodes do not)."""
    try:
        import diffusers
    except ImportError as exc:
        raise ImportError(f"FaceAdapter: {INSTALL_HINT} ({exc})") from exc
    return diffusers


def euler_scheduler():
    """A fresh EulerDiscreteScheduler with SD1.5's config (it holds per-call state: one per sampling run)."""
    return diffusers_module().EulerDiscreteScheduler.from_config(SD15_SCHEDULER)


def sigma_at(timestep: float) -> float:
    """The Euler scheduler's sigma at a (possibly fractional) training timestep, as EulerDiscreteScheduler
    computes it: sqrt((1 - a) / a) from its float32 cumulative alphas, linearly interpolated between
    integer timesteps (linspace spacing gives fractional ones)."""
    sigmas = _training_sigmas()
    return float(np.interp(float(timestep), np.arange(len(sigmas)), sigmas))


@lru_cache(maxsize=1)
def _training_sigmas() -> np.ndarray:
    alphas = euler_scheduler().alphas_cumprod
    return (((1 - alphas) / alphas) ** 0.5).numpy()


def _strict_module(kind: str, config: dict, state: dict[str, torch.Tensor], source: str) -> torch.nn.Module:
    """A diffusers model built on the meta device and given exactly ``state`` (missing or unexpected keys
    are named), in fp32, eval mode."""
    cls = {"unet": "UNet2DConditionModel", "controlnet": "ControlNetModel", "vae": "AutoencoderKL"}[kind]
    with torch.device("meta"):
        module = getattr(diffusers_module(), cls).from_config(config)
    check_keys(module, state, source)
    module.load_state_dict({k: v.to(DIFFUSION_DTYPE) for k, v in state.items()}, strict=True, assign=True)
    leftover = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if leftover:
        raise RuntimeError(f"FaceAdapter: {source} left {len(leftover)} tensor(s) unset, e.g. {leftover[:3]}")
    return module.eval().requires_grad_(False)


def _diffusers_folder(kind: str, folder: Path) -> torch.nn.Module:
    config, state = load_diffusers_folder(folder)
    return _strict_module(kind, {k: v for k, v in config.items() if not k.startswith("_")}, state, str(folder))


def load_vae(path: Path) -> torch.nn.Module:
    """SD's VAE from a diffusers folder, or one .safetensors/.pt file with diffusers or original (LDM) keys
    (sd-vae-ft-mse-original's ``vae-ft-mse-840000-ema-pruned``): one architecture, two namings."""
    from ..tools import sd15_layout as sd

    path = Path(path)
    if path.is_dir():
        return _diffusers_folder("vae", path)
    state = load_state_dict(path, strip_prefixes=(sd.CHECKPOINT_PREFIXES["vae"],))
    config = sd.vae_config_of(path) if path.suffix == ".safetensors" else dict(sd.SD_VAE_CONFIG)
    if "encoder.conv_in.weight" in state and "encoder.down.0.block.0.norm1.weight" in state:
        levels = len(config["block_out_channels"])
        renamed = {}
        for key in sd.diffusers_layout("vae", config):
            name, from_conv = sd.vae_ldm_key(key, levels)
            if name in state:
                value = state[name]
                renamed[key] = value.flatten(1) if from_conv and value.ndim == 4 else value
        extra = set(state) - {sd.vae_ldm_key(k, levels)[0] for k in renamed}
        state = {**renamed, **{k: state[k] for k in extra}}  # leftovers show up as unexpected keys
    return _strict_module("vae", config, state, str(path))


class _Held(torch.nn.Module):
    """A diffusers model inside a plain Module, for the model cache: inside ComfyUI's process the cache hands
    networks to ComfyUI's ModelPatcher, which assigns ``.device`` on them (read-only on diffusers' ModelMixin)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net


@dataclass
class DiffusionNets:
    unet: torch.nn.Module
    controlnet: torch.nn.Module
    vae: torch.nn.Module
    device: torch.device


@dataclass(frozen=True)
class DiffusionFiles:
    """Where the diffusion networks live: Face-Adapter's pretrained_unet/ and controlnet/ folders and SD's
    VAE (a diffusers folder or a single file). Loaded once through the pack's model cache."""

    unet_dir: Path
    controlnet_dir: Path
    vae_file: Path
    device: Optional[torch.device] = None

    @classmethod
    def in_models_dir(cls, models: Path, vae: Optional[Path] = None, device: Optional[torch.device] = None
                      ) -> "DiffusionFiles":
        """The layout of a ComfyUI models folder (and of scripts/make_random_models.py's output)."""
        fa = Path(models) / "faceadapter"
        return cls(fa / "pretrained_unet", fa / "controlnet", Path(vae) if vae else Path(models) / "vae" / VAE_NAME,
                   device)

    @classmethod
    def found(cls, vae: Optional[str] = None, device: Optional[torch.device] = None) -> "DiffusionFiles":
        """Found in the model folders as the nodes find files (ComfyUI's, or $FACEADAPTER_MODELS_DIR /
        comfy_bridge.set_models_dir outside); ``vae``: a name in the 'vae' folders or a path."""
        from ..core.model_paths import require_model, resolve_user_file

        return cls(require_model("faceadapter.pretrained_unet"), require_model("faceadapter.controlnet"),
                   resolve_user_file("vae", vae or VAE_NAME, VAE_SOURCE), device)

    def check(self) -> None:
        """MissingModelError naming the first missing file, its folder kind and where it comes from."""
        from ..core.manifest import entry

        for model_id, path in (("faceadapter.pretrained_unet", self.unet_dir),
                               ("faceadapter.controlnet", self.controlnet_dir)):
            if not (Path(path) / "config.json").is_file():
                e = entry(model_id)
                raise MissingModelError(e.path, [Path(path)], e.kind, e.source)
        if not Path(self.vae_file).exists():
            raise MissingModelError("SD1.5 VAE", [Path(self.vae_file)], "vae", VAE_SOURCE)

    def load(self) -> DiffusionNets:
        self.check()
        device = self.device or bridge.torch_device()

        def get(label: str, path: Path, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
            files = sorted(p for p in Path(path).iterdir() if p.is_file()) if Path(path).is_dir() else [Path(path)]
            item = MODEL_CACHE.get(label, files, lambda: _Held(build()), dtype=DIFFUSION_DTYPE, device=device)
            return item.ready().net

        return DiffusionNets(get("diffusers_unet", self.unet_dir, lambda: _diffusers_folder("unet", self.unet_dir)),
                             get("diffusers_controlnet", self.controlnet_dir,
                                 lambda: _diffusers_folder("controlnet", self.controlnet_dir)),
                             get("diffusers_vae", self.vae_file, lambda: load_vae(self.vae_file)), device)


@torch.no_grad()
def cfg_noise_prediction(nets: DiffusionNets, latent: torch.Tensor, timestep: float, conditions: FaceConditions,
                         cfg: float, strength: float = 1.0, model_input_scale: Optional[float] = None) -> torch.Tensor:
    """The model function at one step: [negative, positive] in one ControlNet and one UNet forward, then
    CFG. ``latent`` is the scheduler's sample; its input scaling 1/sqrt(sigma^2+1) is applied here unless
    ``model_input_scale`` is given."""
    device = nets.device
    scale = model_input_scale if model_input_scale is not None else (sigma_at(timestep) ** 2 + 1.0) ** -0.5
    x = torch.cat([latent, latent]).to(device, DIFFUSION_DTYPE) * scale
    t = torch.as_tensor(timestep, device=device)
    unet_context = torch.cat([conditions.negative, conditions.unet_positive]).to(device, DIFFUSION_DTYPE)
    control_context = torch.cat([conditions.negative, conditions.controlnet_positive]).to(device, DIFFUSION_DTYPE)
    hint = torch.cat([conditions.hint, conditions.hint]).to(device, DIFFUSION_DTYPE)
    down, mid = nets.controlnet(x, t, encoder_hidden_states=control_context, controlnet_cond=hint,
                                conditioning_scale=float(strength), guess_mode=False, return_dict=False)
    eps = nets.unet(x, t, encoder_hidden_states=unet_context, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid, return_dict=False)[0]
    uncond, cond = eps.chunk(2)
    return guided(uncond, cond, cfg)


@torch.no_grad()
def decode(nets: DiffusionNets, latents: torch.Tensor) -> torch.Tensor:
    """Latents -> (B,H,W,3) images in [0,1], as diffusers' image processor denormalises them."""
    scaling = float(nets.vae.config.scaling_factor)
    images = nets.vae.decode(latents.to(nets.device, DIFFUSION_DTYPE) / scaling, return_dict=False)[0]
    return (images / 2 + 0.5).clamp(0, 1).movedim(1, -1).float().cpu()


@dataclass
class DiffusersSampler:
    """CropSampler on diffusers; ``strength``, ``start`` and ``end`` act like the native ControlSettings."""

    files: DiffusionFiles
    steps: int = 25
    cfg: float = 5.0
    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0
    calls: list = field(default_factory=list)  # one entry per model call: the batch size (for tests/benches)

    def latents(self, conditions: FaceConditions, noise: torch.Tensor, on_step: Callable[[], None]) -> torch.Tensor:
        nets = self.files.load()
        scheduler = euler_scheduler()
        scheduler.set_timesteps(int(self.steps), device=nets.device)
        latents = noise.to(nets.device, DIFFUSION_DTYPE) * scheduler.init_noise_sigma
        count = len(scheduler.timesteps)
        for i, t in enumerate(scheduler.timesteps):
            keep = not (i / count < self.start or (i + 1) / count > self.end)  # upstream's controlnet_keep
            model_input = scheduler.scale_model_input(latents, t)
            eps = cfg_noise_prediction(nets, model_input, float(t), conditions, self.cfg,
                                       self.strength if keep else 0.0, model_input_scale=1.0)
            self.calls.append(latents.shape[0])
            latents = scheduler.step(eps, t, latents, return_dict=False)[0]
            on_step()
            bridge.check_interrupt()
        return latents

    def __call__(self, conditions: FaceConditions, noise: torch.Tensor, on_step: Callable[[], None]) -> torch.Tensor:
        latents = self.latents(conditions, noise, on_step)
        return decode(self.files.load(), latents)


@dataclass(frozen=True)
class StandaloneResult:
    pasted: torch.Tensor  # (F,H,W,3) the paste side's frames with the generated faces
    crops: torch.Tensor  # (N,512,512,3) blended crops, one per face pair
    mask: torch.Tensor  # (F,H,W) blend weights used per output frame
    raw_crops: torch.Tensor  # (N,512,512,3) what the sampler generated, before blending


def render_standalone(spatial, nets, sampler: DiffusersSampler, image: torch.Tensor, *, seed: int = 0,
                      frames_per_batch: int = 8, shared_noise: bool = True,
                      on_step: Optional[Callable[[], None]] = None) -> StandaloneResult:
    """What Face-Adapter Render does, without ComfyUI: identity (source) and attributes (source for reenact,
    target for swap) encoded once per distinct crop, sampled on diffusers, blended and pasted back.
    ``nets`` is a FaceAdapterNets with its vision encoder and empty prompt; ``image`` the paste side's frames
    (reenact: the source image; swap: the target frames); ``on_step`` is called after every sampling step
    (``frames_per_batch`` pairs at a time)."""
    from ..spatial.record import paste_generated
    from .attributes import encode_attributes, own_tower_hidden_states
    from .identity import encode_identity
    from .nets import negative_embedding
    from .render import blend_crops, conditions_for, sample_in_batches, side_views

    spatial.check_frames(image)
    identity = encode_identity(side_views(spatial, "source"), nets)
    attributes = encode_attributes(side_views(spatial, "task"), nets, own_tower_hidden_states(nets),
                                   "vision_encoder")
    conditions = conditions_for(spatial, identity, attributes, negative_embedding(nets))
    crops = sample_in_batches(conditions, sampler, seed, shared_noise=shared_noise,
                              frames_per_batch=frames_per_batch, on_step=on_step)
    pasted, mask = paste_generated(spatial, image, crops)
    return StandaloneResult(pasted, blend_crops(spatial, crops), mask, crops)
