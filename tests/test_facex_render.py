"""FaceX end to end on the maker's tiny models, without ComfyUI: two photos -> Decompose x2 -> Assemble (identity A,
pose and expression B) -> the generation stage's own render glue (conditions, batched sampling, blend, paste-back)
with a one-step diffusers sampler on the tiny UNet / ControlNet / VAE. Tier 2 runs the Render node in ComfyUI."""
from __future__ import annotations

import pytest
import torch

from faceadapter_suite.core import comfy_bridge
from faceadapter_suite.core.cache import MODEL_CACHE
from faceadapter_suite.core.images import uint8_to_image
from faceadapter_suite.face.analysis import detect_batch, load_analyzer
from faceadapter_suite.face.sample_photos import load_sample
from faceadapter_suite.generate.nets import FaceAdapterNets, negative_embedding
from faceadapter_suite.generate.render import blend_crops, conditions_for, sample_in_batches
from faceadapter_suite.nodes import facex as facex_nodes
from faceadapter_suite.spatial.projectors import MeshProjector
from faceadapter_suite.spatial.record import paste_generated


@pytest.fixture(scope="module")
def tiny(tiny_models_dir):
    comfy_bridge.set_models_dir(tiny_models_dir)
    yield tiny_models_dir
    comfy_bridge.set_models_dir(None)
    MODEL_CACHE.clear()


class OneStepSampler:
    """A CropSampler on the tiny diffusers folders: ControlNet (attribute tokens, hint) -> UNet (identity tokens)
    -> one denoising step -> VAE decode. Enough to run every tensor of the conditions through real networks."""

    def __init__(self, root):
        from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
        from safetensors.torch import load_file

        from faceadapter_suite.tools import sd15_layout as sd
        from faceadapter_suite.tools.random_models import VAE_FILE

        fa = root / "faceadapter"
        self.unet = UNet2DConditionModel.from_pretrained(str(fa / "pretrained_unet")).eval()
        self.controlnet = ControlNetModel.from_pretrained(str(fa / "controlnet")).eval()
        self.vae = AutoencoderKL(**sd.vae_config_of(root / VAE_FILE)).eval()
        self.vae.load_state_dict(load_file(str(root / VAE_FILE)), strict=True)
        self.seen = []

    @torch.no_grad()
    def __call__(self, conditions, noise, on_step):
        self.seen.append(conditions)
        t = torch.tensor(999)
        down, mid = self.controlnet(noise, t, encoder_hidden_states=conditions.controlnet_positive,
                                    controlnet_cond=conditions.hint, return_dict=False)
        eps = self.unet(noise, t, encoder_hidden_states=conditions.unet_positive, down_block_additional_residuals=down,
                        mid_block_additional_residual=mid).sample
        on_step()
        image = self.vae.decode((noise - eps) / self.vae.config.scaling_factor).sample
        return image.clamp(-1, 1).add(1).div(2).permute(0, 2, 3, 1)


def test_decompose_assemble_render_end_to_end(tiny):
    fa = tiny / "faceadapter"
    nets = FaceAdapterNets(fa / "net_id2token.pth", fa / "net_image2token.pth",
                           fa / "third_party" / "insightface_glint360k.pth", fa / "vision_encoder",
                           fa / "empty_prompt_embedding.pth")
    analyzer = load_analyzer("mediapipe")
    decompose = facex_nodes.FaceXDecompose().decompose
    images, faces = {}, {}
    for name in ("grace_hopper", "astronaut"):
        images[name] = uint8_to_image(load_sample(name))
        faces[name] = decompose(images[name], detect_batch(analyzer, images[name]), MeshProjector(), 0, 0, 0.81,
                                facex_nodes.MESH_REGIONS, nets)[0]
    spatial, identity, attributes, landmarks, preview, control = facex_nodes.FaceXAssemble().assemble(
        faces["grace_hopper"], faces["astronaut"], identity="A", expression="B", pose="B", gaze="B",
        appearance="A", hair="background", background="A")
    assert spatial.task == "reenact" and landmarks is spatial.landmarks and preview.shape == (1, 512, 512, 3)
    conditions = conditions_for(spatial, identity, attributes, negative_embedding(nets))
    sampler = OneStepSampler(tiny)
    steps = []
    crops = sample_in_batches(conditions, sampler, seed=3, on_step=lambda: steps.append(1))
    assert steps == [1] and crops.shape == (1, 512, 512, 3) and torch.isfinite(crops).all()
    (seen,) = sampler.seen
    assert torch.equal(seen.unet_positive[0], faces["grace_hopper"].identity_tokens), "identity A reaches the UNet"
    assert torch.equal(seen.controlnet_positive[0], faces["grace_hopper"].appearance_tokens)
    assert torch.equal(seen.hint, control.permute(0, 3, 1, 2) * 2 - 1)
    blended = blend_crops(spatial, crops)
    pasted, mask = paste_generated(spatial, images["grace_hopper"], crops)
    assert pasted.shape == images["grace_hopper"].shape and blended.shape == (1, 512, 512, 3)
    changed = (pasted - images["grace_hopper"]).abs().amax(-1)[0] > 1 / 255
    assert changed.any() and bool((mask[0] > 0)[changed].all()), "only the blend region of the photo changes"
    with pytest.raises(ValueError, match="IMAGE is not the source frames"):
        paste_generated(spatial, torch.zeros_like(images["grace_hopper"]), crops)
