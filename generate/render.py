"""The render loop both samplers share: conditions once, noise once, frames in batches, then blend.

A sampler (ComfyUI's KSampler through the bridge, or diffusers standalone) turns a batch of
:class:`FaceConditions` and its initial noise into 512 crops; everything around it is here, so the
two paths differ only in the loop that integrates the model function.
"""
from __future__ import annotations

from typing import Callable, Optional, Protocol

import torch

from ..spatial.record import FaceSpatial
from .attributes import FaceAttributes
from .conditioning import FaceConditions, face_conditions, initial_noise
from .identity import FaceIdentity


class CropSampler(Protocol):
    def __call__(self, conditions: FaceConditions, noise: torch.Tensor, on_step: Callable[[], None]) -> torch.Tensor:
        """(B,4,h,w) unit noise -> (B,H,W,3) generated crops in [0,1]; ``on_step`` after every step."""
        ...


def conditions_for(spatial: FaceSpatial, identity: FaceIdentity, attributes: FaceAttributes,
                   negative: torch.Tensor) -> FaceConditions:
    """Per face pair of the record: identity tokens, attribute tokens, the negative and the hint."""
    for name, record, node in (("identity", identity, "Encode Identity"),
                               ("attributes", attributes, "Encode Attribute Template")):
        if record is None:
            raise ValueError(f"FaceAdapter: no {name} tokens were given (a FaceX face decomposed without Load "
                             f"Face-Adapter has none); connect {node} on the spatial record instead")
    pairs = len(spatial)
    return face_conditions(identity.for_pairs(pairs), attributes.for_pairs(pairs), negative, spatial.control)


def blend_crops(spatial: FaceSpatial, crops: torch.Tensor) -> torch.Tensor:
    """Upstream step 10 in crop space: gen*blend + background*(1-blend), background = the crop the
    control image was built on (source for reenact, target for swap)."""
    if crops.shape[0] != len(spatial):
        raise ValueError(f"FaceAdapter: got {crops.shape[0]} generated crop(s) but the spatial record has "
                         f"{len(spatial)} face pair(s); connect the crops generated from this record")
    background = torch.from_numpy(spatial.background()).to(torch.float32).div(255.0)
    weight = spatial.blend.unsqueeze(-1).to(torch.float32)
    return crops.to(torch.float32).cpu() * weight + background * (1.0 - weight)


def sample_in_batches(conditions: FaceConditions, sampler: CropSampler, seed: int, *, shared_noise: bool = True,
                      frames_per_batch: int = 8, on_step: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """Generate every pair's crop, ``frames_per_batch`` at a time; the noise is drawn once for all
    frames, so a frame's result does not depend on the batch size."""
    noise = initial_noise(seed, len(conditions), conditions.latent_shape, shared=shared_noise)
    step = on_step or (lambda: None)
    out = []
    for start in range(0, len(conditions), max(int(frames_per_batch), 1)):
        stop = min(start + max(int(frames_per_batch), 1), len(conditions))
        out.append(sampler(conditions.rows(start, stop), noise[start:stop], step).to(torch.float32).cpu())
    return torch.cat(out) if out else torch.zeros(0, *conditions.hint.shape[-2:], 3)


SIDES = ("task", "source", "target")


def side_views(spatial: FaceSpatial, side: str) -> tuple:
    """The face views a side names, per pair: "task" = what upstream uses for the attribute template
    (source crop for reenact, target crop for swap)."""
    if side not in SIDES:
        raise ValueError(f"FaceAdapter: side must be one of {SIDES}, got {side!r}")
    if side == "task":
        return spatial.paste_views()
    return spatial.sources if side == "source" else spatial.targets
