"""What Face-Adapter's UNet and ControlNet see at every step, computed once per image.

Upstream (``StableDiffusionFaceAdapterPipeline`` called from infer.py) runs classifier-free guidance
as one batch of [negative, positive]:
- UNet context: the empty-prompt embedding | the identity tokens (ID2Token of the source);
- ControlNet context: the empty-prompt embedding | the attribute tokens (Image2Token of the source
  crop for reenactment, of the target crop for swapping);
- ControlNet hint: the control image in [-1,1] on both halves;
- noise = uncond + cfg * (cond - uncond).
Both samplers take a :class:`FaceConditions`; only their loops differ.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

PROMPT_TOKENS = 77  # SD1.5 prompt length: both token networks and the empty prompt (768 wide at full size)
LATENT_CHANNELS = 4
VAE_SCALE = 8


def signed_hint(control: torch.Tensor) -> torch.Tensor:
    """Control IMAGE (N,H,W,3) in [0,1] -> ControlNet hint (N,3,H,W) in [-1,1], as upstream's
    ToTensor + Normalize(0.5, 0.5) leave it (diffusers passes tensor hints through unchanged)."""
    if control.ndim != 4 or control.shape[-1] != 3:
        raise ValueError(f"FaceAdapter: the control image must be an IMAGE (N,H,W,3), got {tuple(control.shape)}")
    return control.movedim(-1, 1).to(torch.float32).mul(2.0).sub(1.0).contiguous()


def empty_prompt(embedding: torch.Tensor, count: int, width: int) -> torch.Tensor:
    """The (1,77,768) empty-prompt embedding (fp16 on disk) as fp32 (count,77,768)."""
    tokens = embedding.reshape(-1, *embedding.shape[-2:]).to(torch.float32)
    if tuple(tokens.shape) != (1, PROMPT_TOKENS, width):
        raise ValueError(f"FaceAdapter: the negative embedding must be 1x{PROMPT_TOKENS}x{width} (CLIP-L of the "
                         f"empty prompt, as wide as the identity tokens), got {tuple(embedding.shape)}")
    return tokens.expand(count, PROMPT_TOKENS, width)


def per_pair(tokens: torch.Tensor, index: tuple[int, ...], what: str, pairs: int) -> torch.Tensor:
    """Rows of ``tokens`` for each of ``pairs`` face pairs: ``index`` maps pairs to rows; one row serves all."""
    if len(index) == pairs:
        return tokens[list(index)]
    if tokens.shape[0] == 1:
        return tokens.expand(pairs, *tokens.shape[1:])
    raise ValueError(f"FaceAdapter: {what} holds {len(index)} face(s) but the control images hold {pairs} face "
                     f"pair(s); encode {what} from the same spatial record, or from a single face to use it for all")


@dataclass(frozen=True, eq=False)
class FaceConditions:
    """Per face pair, everything the model function needs (fp32, CPU); never changes once made."""

    unet_positive: torch.Tensor  # (N,77,768) identity tokens
    controlnet_positive: torch.Tensor  # (N,77,768) attribute tokens
    negative: torch.Tensor  # (N,77,768) empty prompt, for UNet and ControlNet alike
    hint: torch.Tensor  # (N,3,512,512) in [-1,1]

    def __len__(self) -> int:
        return self.hint.shape[0]

    def rows(self, start: int, stop: int) -> "FaceConditions":
        return FaceConditions(self.unet_positive[start:stop], self.controlnet_positive[start:stop],
                              self.negative[start:stop], self.hint[start:stop])

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (LATENT_CHANNELS, self.hint.shape[-2] // VAE_SCALE, self.hint.shape[-1] // VAE_SCALE)


def face_conditions(identity_tokens: torch.Tensor, attribute_tokens: torch.Tensor, negative: torch.Tensor,
                    control: torch.Tensor) -> FaceConditions:
    """Build the conditions of N pairs from per-pair tokens (N,77,768), the (1,77,768) negative and
    the control IMAGE (N,512,512,3)."""
    count, width = control.shape[0], identity_tokens.shape[-1]
    for name, tokens in (("identity", identity_tokens), ("attributes", attribute_tokens)):
        if tuple(tokens.shape) != (count, PROMPT_TOKENS, width):
            raise ValueError(f"FaceAdapter: {name} tokens are {tuple(tokens.shape)} for {count} control image(s); "
                             f"expected ({count}, {PROMPT_TOKENS}, {width})")
    return FaceConditions(identity_tokens.to(torch.float32), attribute_tokens.to(torch.float32),
                          empty_prompt(negative, count, width), signed_hint(control))


def guided(uncond: torch.Tensor, cond: torch.Tensor, cfg: float) -> torch.Tensor:
    """Classifier-free guidance as upstream combines the two halves."""
    return uncond + cfg * (cond - uncond)


def initial_noise(seed: int, count: int, shape: tuple[int, ...], shared: bool = True) -> torch.Tensor:
    """Unit Gaussian latents (count, *shape), CPU fp32, from ``seed``.

    shared: one noise for every frame (FADM's trick for temporal consistency: identical conditions
    give identical frames). Otherwise frame k gets noise drawn from seed + k, so a frame's result does
    not depend on which chunk or batch it ran in."""
    if shared:
        one = torch.randn((1, *shape), generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float32)
        return one.expand(count, *shape).contiguous()
    return torch.cat([torch.randn((1, *shape), generator=torch.Generator().manual_seed(int(seed) + k),
                                  dtype=torch.float32) for k in range(count)]) if count else torch.zeros(0, *shape)
