"""FADM on videos: coarse animation and refinement, streamed in chunks of ``frames_per_batch`` frames.

Frames arrive as ComfyUI IMAGE tensors (B,H,W,C in [0,1]) and are resized to the networks' 256 squares
(upstream's demo resizes every frame to 256 too). What a frame's result depends on is fixed before the
chunks are cut, so a chunked run equals an unchunked one:

- the source's state (face-vid2vid volume and keypoints, DECA parameters) is computed once per video;
- relative driving measures every frame against the video's first driving frame, not the chunk's;
- shared noise is one initial noise and one per-step list for the whole video (upstream); unshared noise
  gives frame k the noise of seed + k whatever chunk it falls in.

Only one chunk's activations and noise live at a time; the output is one full-video tensor, allocated once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F

from ..models.fadm.animate import animate, prepare_source
from ..models.fadm.deca import attribute_vector
from ..models.fadm.fomm import fomm_animate
from ..models.fadm.renderer import RendererNoise, make_noise, render, step_timesteps
from .models import VOX_SIZE, CoarseGenerator, DecaEncoder, FadmRenderer, network_device

ATTRIBUTE_SOURCES = ("coarse", "driving")
SEED_RANGE = 2**64  # torch.Generator seeds; seed + k wraps like ComfyUI's 64-bit seed widget
Step = Callable[[], None]


def image_count(image: torch.Tensor) -> int:
    return 1 if image.ndim == 3 else int(image.shape[0])


def as_batch(image: torch.Tensor) -> torch.Tensor:
    """IMAGE with a batch axis (a single (H,W,C) image becomes a batch of one)."""
    return image.unsqueeze(0) if image.ndim == 3 else image


def to_frames(image: torch.Tensor, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """IMAGE (B,H,W,C) or (H,W,C) -> (B,3,size,size) float32 on ``device`` (gray expanded, alpha dropped;
    antialiased bilinear resize when the side differs)."""
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"FaceAdapter: expected an IMAGE [B,H,W,C] with 1, 3 or 4 channels, got {tuple(image.shape)}")
    frames = image[..., :3].to(device, torch.float32).permute(0, 3, 1, 2)
    if frames.shape[1] == 1:
        frames = frames.expand(-1, 3, -1, -1)
    if frames.shape[-2:] != (size, size):
        frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return frames.contiguous()


def to_image(frames: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) -> IMAGE (B,H,W,3) float32 on the CPU, clamped to [0,1]."""
    return frames.detach().clamp(0, 1).permute(0, 2, 3, 1).to("cpu", torch.float32).contiguous()


def chunk_slices(count: int, frames_per_batch: int) -> Iterator[slice]:
    per = max(int(frames_per_batch), 1)
    for start in range(0, count, per):
        yield slice(start, min(start + per, count))


class FrameWriter:
    """The output video, allocated once at its full length and filled chunk by chunk (concatenating the
    chunks at the end would hold the video twice at its peak)."""

    def __init__(self, count: int):
        self.count, self.video = count, None

    def write(self, part: slice, frames: torch.Tensor) -> None:
        image = to_image(frames)
        if self.video is None:
            self.video = image.new_empty((self.count, *image.shape[1:]))
        self.video[part] = image

    def result(self) -> torch.Tensor:
        if self.video is None:
            raise ValueError("FaceAdapter: the video has no frames (an empty IMAGE batch)")
        return self.video


def one_source(source: torch.Tensor, what: str = "source") -> torch.Tensor:
    """A single image: a batch of several is refused (which one was meant is not ours to guess)."""
    if image_count(source) != 1:
        raise ValueError(f"FaceAdapter: the {what} must be one image, got a batch of {image_count(source)}; "
                         "pick one (e.g. with ImageFromBatch) or crop the source photo with Crop Faces")
    return source


@torch.no_grad()
def coarse_animate(generator: CoarseGenerator, source: torch.Tensor, driving: torch.Tensor, *, relative: bool,
                   frames_per_batch: int = 8, step: Optional[Step] = None) -> torch.Tensor:
    """The source face moved like each driving frame -> IMAGE (N, S, S, 3), S = the generator's size.

    ``relative``: motion relative to the first driving frame (keeps the source's own pose); otherwise
    upstream's absolute driving (the driving head pose and expression on the source's keypoints)."""
    nets = generator.nets()
    device, size, driving = network_device(nets), generator.image_size, as_batch(driving)
    src = to_frames(one_source(source), size, device)
    reference = to_frames(driving[:1], size, device) if relative else None
    state = prepare_source(nets, src) if generator.kind == "face-vid2vid" else src
    out = FrameWriter(image_count(driving))
    for part in chunk_slices(image_count(driving), frames_per_batch):
        drv = to_frames(driving[part], size, device)
        if generator.kind == "face-vid2vid":
            frames = animate(nets, state, drv, relative=relative, reference=reference)
        else:
            frames = fomm_animate(nets, state, drv, relative=relative, reference=reference)
        out.write(part, frames)
        if step is not None:
            step()
    return out.result()


@dataclass(frozen=True)
class RefineSettings:
    seed: int = 0
    steps: Optional[int] = None  # None or >= T: upstream's full schedule
    shared_noise: bool = True
    frames_per_batch: int = 8
    attribute_from: str = "coarse"  # upstream inference: the coarse frame; "driving": the real driving frame

    def __post_init__(self) -> None:
        if self.attribute_from not in ATTRIBUTE_SOURCES:
            raise ValueError(f"FaceAdapter: attribute_from must be one of {ATTRIBUTE_SOURCES}, "
                             f"got {self.attribute_from!r}")


def refine_steps(renderer: FadmRenderer, steps: Optional[int]) -> int:
    """How many denoiser calls one chunk takes (for progress bars)."""
    return len(step_timesteps(renderer.config.timesteps, steps))


def chunk_noise(settings: RefineSettings, frames: slice, size: int, timesteps: int,
                device: torch.device, shared: Optional[RendererNoise]) -> RendererNoise:
    """The noise of a chunk: the video's shared noise, or each frame's own (seed + frame index)."""
    if shared is not None:
        return shared
    own = [make_noise((settings.seed + k) % SEED_RANGE, size, timesteps, device=device)
           for k in range(frames.start, frames.stop)]
    return RendererNoise(torch.cat([n.initial for n in own]), torch.cat([n.per_step for n in own], dim=1))


@torch.no_grad()
def refine(renderer: FadmRenderer, deca: DecaEncoder, coarse: torch.Tensor, settings: RefineSettings, *,
           source: Optional[torch.Tensor] = None, driving: Optional[torch.Tensor] = None,
           step: Optional[Step] = None) -> torch.Tensor:
    """FADM's renderer on coarse frames -> IMAGE (N, S, S, 3), S = the renderer's size (256 released).

    The attribute of frame k is [exp, pose] of the source minus that of coarse frame k (upstream), or of
    driving frame k with ``attribute_from="driving"``. No ``source``: the first coarse frame is the source
    (upstream's "direct" pattern: refine an existing animation). ``step`` runs after every denoiser call."""
    model, e_flame = renderer.model(), deca.model()
    device, size, timesteps = network_device(model), model.image_size, model.diffusion.num_timesteps
    coarse = as_batch(coarse)
    count, attribute_frames = image_count(coarse), coarse
    if settings.attribute_from == "driving":
        if driving is None:
            raise ValueError("FaceAdapter: attribute_from='driving' needs the driving frames connected to FADM Refine")
        if image_count(driving) != count:
            raise ValueError(f"FaceAdapter: {image_count(driving)} driving frame(s) for {count} coarse frame(s); "
                             "connect the driving frames the coarse frames were made from")
        attribute_frames = as_batch(driving)
    src = one_source(coarse[:1] if source is None else source)
    deca_device = network_device(e_flame)
    source_params = e_flame(to_frames(src, VOX_SIZE, deca_device))
    shared = make_noise(settings.seed, size, timesteps, device=device) if settings.shared_noise else None
    callback = (lambda done, total: step()) if step is not None else None
    out = FrameWriter(count)
    for part in chunk_slices(count, settings.frames_per_batch):
        frames = to_frames(coarse[part], size, device)
        params = e_flame(to_frames(attribute_frames[part], VOX_SIZE, deca_device))
        attribute = attribute_vector(source_params, params).to(device)
        noise = chunk_noise(settings, part, size, timesteps, device, shared)
        out.write(part, render(model, frames, attribute, noise, steps=settings.steps, callback=callback))
    return out.result()
