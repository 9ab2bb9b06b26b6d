"""Generation nodes without ComfyUI, on real photos (mediapipe conditions) and the maker's tiny models:
identity and attributes are encoded once per distinct face, land on the right pairs, and Apply hands the
ControlNet the signed hint with its own context on both CFG halves. Sampling itself runs in tier 2."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faceadapter_suite.core import comfy_bridge
from faceadapter_suite.core.cache import MODEL_CACHE
from faceadapter_suite.core.images import uint8_to_image
from faceadapter_suite.face.analysis import detect_batch, load_analyzer
from faceadapter_suite.face.sample_photos import load_sample
from faceadapter_suite.generate.nets import FaceAdapterNets
from faceadapter_suite.nodes import generation, spatial_condition as spatial_nodes


@pytest.fixture(scope="module")
def tiny_models(tiny_models_dir):
    root = tiny_models_dir
    comfy_bridge.set_models_dir(root)
    yield root
    comfy_bridge.set_models_dir(None)
    MODEL_CACHE.clear()


@pytest.fixture(scope="module")
def records():
    """Grace Hopper drives a 3-frame video (astronaut, a black frame, astronaut shifted) in both tasks."""
    analyzer = load_analyzer("mediapipe")
    source = uint8_to_image(load_sample("grace_hopper"))
    astro = load_sample("astronaut")
    video = uint8_to_image(np.stack([astro, np.zeros_like(astro), np.roll(astro, 12, axis=1)]))
    recon = spatial_nodes.FaceAdapterLoad3DReconstructor().load(spatial_nodes.MESH, "x", "y")[0]
    out = {}
    for name, task, target in (("reenact", "reenact", video), ("swap", "swap", video),
                               ("single", "swap", video[:1])):
        landmarks = spatial_nodes.FaceAdapterProject3DLandmarks().project(
            recon, source, detect_batch(analyzer, source), target, detect_batch(analyzer, target), task,
            "pass_through", 0.81, None)[0]
        area = spatial_nodes.FaceAdapterPredictAdaptingArea().predict(landmarks, "landmark_hull", "", "")[0]
        out[name] = spatial_nodes.FaceAdapterComposeSpatialControl().compose(landmarks, area)[0]
    return out


def nets_of(root) -> FaceAdapterNets:
    fa = root / "faceadapter"
    return FaceAdapterNets(fa / "net_id2token.pth", fa / "net_image2token.pth",
                           fa / "third_party" / "insightface_glint360k.pth", fa / "vision_encoder",
                           fa / "empty_prompt_embedding.pth")


def count_calls(module: torch.nn.Module, calls: list) -> torch.utils.hooks.RemovableHandle:
    return module.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))


def test_identity_encoded_once_per_distinct_source(tiny_models, records):
    spatial, nets = records["reenact"], nets_of(tiny_models)
    arc_calls, tok_calls = [], []
    handles = [count_calls(nets.arcface().value, arc_calls), count_calls(nets.id2token().value, tok_calls)]
    try:
        identity, preview = generation.FaceAdapterEncodeIdentity().encode(spatial, nets, "source")
    finally:
        for h in handles:
            h.remove()
    assert len(spatial) == 2 and len(identity) == 1 and identity.index == (0, 0)
    assert tok_calls == [1], "one source photo driving two frames is one identity encode"
    assert arc_calls == [1, 1], "one tokens pass (128 px) + one embedding pass (112 px), one image each"
    assert identity.tokens.shape == (1, 77, 768) and identity.embeddings.shape == (1, 64)
    assert torch.isfinite(identity.tokens).all() and preview.shape == (1, 256, 256, 3)
    assert np.array_equal(identity.crops[0], spatial.sources[0].aligned256())
    assert identity.for_pairs(2).shape == (2, 77, 768)
    target, _ = generation.FaceAdapterEncodeIdentity().encode(spatial, nets, "target")
    assert len(target) == 2 and not torch.equal(target.tokens[0], identity.tokens[0])


@pytest.mark.parametrize("task", ["reenact", "swap"])
def test_attributes_follow_the_task_and_encode_each_crop_once(tiny_models, records, task):
    spatial, nets = records[task], nets_of(tiny_models)
    calls = []
    handle = count_calls(nets.vision_encoder().value, calls)
    try:
        attributes, preview = generation.FaceAdapterEncodeAttributes().encode(spatial, nets, "task")
    finally:
        handle.remove()
    views = spatial.sources if task == "reenact" else spatial.targets
    distinct = len({id(v) for v in views})
    assert calls == [distinct] and len(attributes) == distinct and attributes.encoder == "vision_encoder"
    assert np.array_equal(np.stack([attributes.crops[i] for i in attributes.index]), spatial.attribute_crops())
    assert preview.shape == (distinct, 512, 512, 3) and attributes.for_pairs(2).shape == (2, 77, 768)


class RecordingControlNet:
    """Stands in for ComfyUI's ControlNet object: records what Apply hands it (tier 2 runs the real one)."""

    def __init__(self):
        self.hints = []

    def copy(self):
        return self

    def set_cond_hint(self, hint, strength, percent, vae=None):
        self.hints.append((hint, strength, percent))
        return self


def test_apply_gives_both_halves_the_controlnet_and_its_own_context(tiny_models, records):
    spatial, nets = records["swap"], nets_of(tiny_models)
    identity, _ = generation.FaceAdapterEncodeIdentity().encode(spatial, nets, "source")
    attributes, _ = generation.FaceAdapterEncodeAttributes().encode(spatial, nets, "task")
    control = RecordingControlNet()
    positive, negative, latent = generation.FaceAdapterApply().apply(spatial, identity, attributes, control, nets,
                                                                     0.8, 0.1, 0.9)
    (hint, strength, percent), = control.hints
    assert torch.equal(hint, spatial.control.permute(0, 3, 1, 2) * 2 - 1) and hint.min() < 0
    assert (strength, percent) == (0.8, (0.1, 0.9))
    (pos_tokens, pos), (neg_tokens, neg) = positive[0], negative[0]
    assert pos["control"] is neg["control"] is control, "one ControlNet on both CFG halves"
    assert torch.equal(pos_tokens, identity.for_pairs(2)) and torch.equal(pos["cross_attn_controlnet"],
                                                                            attributes.for_pairs(2))
    empty = nets.negative()
    assert torch.equal(neg_tokens, empty.expand(2, 77, 768)) and torch.equal(neg["cross_attn_controlnet"], neg_tokens)
    assert latent["samples"].shape == (2, 4, 64, 64) and not latent["samples"].any()


def test_counts_that_disagree_name_both(tiny_models, records):
    nets = nets_of(tiny_models)
    two_faces, _ = generation.FaceAdapterEncodeIdentity().encode(records["swap"], nets, "target")
    attributes, _ = generation.FaceAdapterEncodeAttributes().encode(records["single"], nets, "task")
    assert len(two_faces) == 2 and len(records["single"]) == 1
    with pytest.raises(ValueError, match=r"the identity holds 2 face\(s\) but the control images hold 1 face pair"):
        generation.FaceAdapterApply().apply(records["single"], two_faces, attributes, RecordingControlNet(), nets,
                                            1.0, 0.0, 1.0)


def test_missing_negative_names_the_file_and_the_alternative(tiny_models, records):
    nets = nets_of(tiny_models)
    no_file = FaceAdapterNets(nets.id2token_path, nets.image2token_path, nets.arcface_path, nets.vision_encoder_path)
    from faceadapter_suite.generate.nets import negative_embedding

    with pytest.raises(FileNotFoundError, match="empty_prompt_embedding.pth(.|\n)*CLIPTextEncode"):
        negative_embedding(no_file)
    given = torch.randn(1, 77, 768)
    assert torch.equal(negative_embedding(no_file, [[given, {}]]), given)
    with pytest.raises(ValueError, match="one prompt"):
        negative_embedding(no_file, [[given, {}], [given, {}]])


def test_blend_is_upstream_step_10_and_the_paste_mask_pastes_it_whole(records):
    spatial = records["reenact"]
    generated = torch.rand(len(spatial), 512, 512, 3)
    blended, paste_mask = generation.FaceAdapterBlendFaces().blend(spatial, generated)
    background = torch.from_numpy(spatial.background()).float() / 255
    weight = spatial.blend[..., None]
    assert torch.allclose(blended, generated * weight + background * (1 - weight))
    assert torch.equal(paste_mask, torch.ones_like(spatial.blend))
    with pytest.raises(ValueError, match="1 generated crop.*2 face pair"):
        generation.FaceAdapterBlendFaces().blend(spatial, generated[:1])


@pytest.mark.parametrize("missing,named", [("net_id2token.pth", "net_id2token.pth"),
                                           ("controlnet", "controlnet")])
def test_load_names_a_missing_file_its_folder_kind_and_source(tiny_models, tmp_path, missing, named):
    import shutil

    from faceadapter_suite.core.errors import MissingModelError

    root = tmp_path / "models"
    shutil.copytree(tiny_models / "faceadapter", root / "faceadapter")
    target = root / "faceadapter" / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    comfy_bridge.set_models_dir(root)
    try:
        choices = {name: generation.FaceAdapterLoad.INPUT_TYPES()["required"][name][1]["default"]
                   for name in generation.FaceAdapterLoad.INPUT_TYPES()["required"]}
        assert choices[{"net_id2token.pth": "id2token_file", "controlnet": "controlnet"}[missing]].startswith(
            "(not installed"), "the dropdown says the file is missing and how to get it"
        with pytest.raises(MissingModelError) as err:
            generation.FaceAdapterLoad().load(**choices)
    finally:
        comfy_bridge.set_models_dir(tiny_models)
    message = str(err.value)
    assert str(target) in message and "folder kind 'faceadapter'" in message
    assert "huggingface.co/FaceAdapter/FaceAdapter" in message
