"""FaceX algebra on real photos (mediapipe mesh) and the maker's tiny models (d3dfr_bfm): decompose -> assemble
reproduces the spatial stage's own record bit for bit; taking only the pose from B changes only pose-dependent
fields; decompose reuses the cached networks; a mediapipe-only decomposition says what it lacks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faceadapter_suite.core import comfy_bridge
from faceadapter_suite.core.cache import MODEL_CACHE
from faceadapter_suite.core.images import uint8_to_image
from faceadapter_suite.face.analysis import detect_batch, load_analyzer
from faceadapter_suite.face.sample_photos import load_sample
from faceadapter_suite.facex import assemble as fx
from faceadapter_suite.generate.attributes import own_tower_hidden_states
from faceadapter_suite.generate.nets import FaceAdapterNets
from faceadapter_suite.models.d3dfr import COEFF_SLICES
from faceadapter_suite.nodes import facex as facex_nodes
from faceadapter_suite.nodes import generation, spatial_condition as spatial_nodes
from faceadapter_suite.spatial.pose import landmarks_pose
from faceadapter_suite.spatial.projectors import MeshProjector, load_bfm_projector

NAMES = ("astronaut", "grace_hopper")


@pytest.fixture(scope="module")
def tiny(tiny_models_dir):
    comfy_bridge.set_models_dir(tiny_models_dir)
    yield tiny_models_dir
    comfy_bridge.set_models_dir(None)
    MODEL_CACHE.clear()


def nets_of(root) -> FaceAdapterNets:
    fa = root / "faceadapter"
    return FaceAdapterNets(fa / "net_id2token.pth", fa / "net_image2token.pth",
                           fa / "third_party" / "insightface_glint360k.pth", fa / "vision_encoder",
                           fa / "empty_prompt_embedding.pth")


@pytest.fixture(scope="module")
def photos():
    analyzer = load_analyzer("mediapipe")
    out = {}
    for name in NAMES:
        image = uint8_to_image(load_sample(name))
        out[name] = (image, detect_batch(analyzer, image))
    return out


def decompose_node(photos, name, reconstructor, nets=None, regions=facex_nodes.MESH_REGIONS):
    image, faces = photos[name]
    return facex_nodes.FaceXDecompose().decompose(image, faces, reconstructor, 0, 0, 0.81, regions, nets)[0]


@pytest.fixture(scope="module")
def mesh_faces(tiny, photos):
    nets = nets_of(tiny)
    return {name: decompose_node(photos, name, MeshProjector(), nets) for name in NAMES}


def stage_record(photos, reconstructor, source, target, task):
    """What the spatial stage's own nodes make (landmark-hull area)."""
    (src_image, src_faces), (tgt_image, tgt_faces) = photos[source], photos[target]
    landmarks = spatial_nodes.FaceAdapterProject3DLandmarks().project(
        reconstructor, src_image, src_faces, tgt_image, tgt_faces, task, "pass_through", 0.81, None)[0]
    area = spatial_nodes.FaceAdapterPredictAdaptingArea().predict(landmarks, "landmark_hull", "", "")[0]
    return spatial_nodes.FaceAdapterComposeSpatialControl().compose(landmarks, area)[0]


def assemble_node(faces, reconstructor=None, **choices):
    recipe = {name: "A" for name in fx.COMPONENTS}
    recipe["hair"] = "background"
    recipe.update(choices)
    return facex_nodes.FaceXAssemble().assemble(*faces, reconstructor=reconstructor, **recipe)


def assert_same_record(ours, theirs):
    assert ours.task == theirs.task
    assert np.array_equal(ours.pts70, theirs.pts70)
    for name in ("control", "area", "blend"):
        assert torch.equal(getattr(ours, name), getattr(theirs, name)), name
    assert np.array_equal(ours.background(), theirs.background())


CASES = [  # (identity face, component choices, source, target, task of the spatial stage)
    ("astronaut", {}, "astronaut", "astronaut", "swap"),
    ("grace_hopper", {}, "grace_hopper", "grace_hopper", "swap"),
    ("astronaut", {"expression": "B", "pose": "B", "gaze": "B", "appearance": "B", "background": "B"},
     "astronaut", "grace_hopper", "swap"),
    ("astronaut", {"expression": "B", "pose": "B", "gaze": "B"}, "astronaut", "grace_hopper", "reenact"),
]


@pytest.mark.parametrize("case", CASES, ids=["self-astronaut", "self-hopper", "swap", "reenact"])
def test_assembly_reproduces_the_spatial_stage_exactly(tiny, photos, mesh_faces, case):
    first, choices, source, target, task = case
    second = "grace_hopper" if first == "astronaut" else "astronaut"
    spatial, identity, attributes, *_ = assemble_node([mesh_faces[first], mesh_faces[second]], **choices)
    record = stage_record(photos, MeshProjector(), source, target, task)
    assert_same_record(spatial, record)
    nets = nets_of(tiny)
    theirs_id = generation.FaceAdapterEncodeIdentity().encode(record, nets, "source")[0]
    theirs_attr = generation.FaceAdapterEncodeAttributes().encode(record, nets, "task")[0]
    assert torch.equal(identity.tokens, theirs_id.tokens) and torch.equal(identity.embeddings, theirs_id.embeddings)
    assert torch.equal(attributes.for_pairs(1), theirs_attr.for_pairs(1))


def test_pose_only_from_b_changes_only_pose_dependent_fields(mesh_faces):
    a, b = mesh_faces["astronaut"], mesh_faces["grace_hopper"]
    own = fx.composite(a, a, a, a)
    posed = fx.composite(a, a, b, a)
    changed = [name for name in ("shape", "expression", "gaze", "pose", "light", "texture", "identity_tokens",
                                 "appearance_tokens", "region_features", "parsing")
               if not _same(getattr(own, name), getattr(posed, name))]
    assert changed == ["pose"] and posed.view is b.view, "pose and the crop it lives in, nothing else"
    self_spatial, self_id, self_attr, *_ = assemble_node([a, b])
    pose_spatial, pose_id, pose_attr, *_ = assemble_node([a, b], pose="B")
    assert torch.equal(self_id.tokens, pose_id.tokens) and torch.equal(self_attr.tokens, pose_attr.tokens)
    assert pose_spatial.sources[0] is self_spatial.sources[0] and pose_spatial.targets[0] is b.view
    assert not np.array_equal(self_spatial.pts70, pose_spatial.pts70)
    # read back from the 2D points (in B's aligned crop) with A's own 3D shape, the head pose is B's
    read = landmarks_pose(pose_spatial.pts70[0], model=a.shape).angles
    assert np.abs(read - landmarks_pose(fx.own_points(b), model=b.shape).angles).max() < 2.0


def _same(x, y) -> bool:
    if x is None or y is None:
        return x is y
    return np.array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def bfm_projector(tiny):
    third = tiny / "faceadapter" / "third_party"
    return load_bfm_projector(third / "d3dfr_res50_nofc.pth", third / "BFM_model_front.mat")


def test_bfm_path_reproduces_the_stage_and_pose_only_changes_angles_and_translation(tiny, photos, bfm_projector):
    faces = {name: decompose_node(photos, name, bfm_projector) for name in NAMES}
    a, b = faces["astronaut"], faces["grace_hopper"]
    assert a.method == "d3dfr_bfm" and a.light.shape == (27,) and a.texture.shape == (80,)
    for choices, source, target, task in (({}, "astronaut", "astronaut", "swap"),
                                          ({"expression": "B", "pose": "B", "gaze": "B", "background": "B"},
                                           "astronaut", "grace_hopper", "swap")):
        spatial = fx.assemble([a, b], fx.Recipe(**{k: "AB".index(v) for k, v in choices.items()}),
                              need_tokens=False)[0]
        assert_same_record(spatial, stage_record(photos, bfm_projector, source, target, task))
    own, posed = fx.composite(a, a, a, a).coefficients(), fx.composite(a, a, b, a).coefficients()
    differs = (own != posed)[0].nonzero().flatten().tolist()
    pose_dims = set(range(224, 227)) | set(range(254, 257))
    assert differs and set(differs) <= pose_dims
    assert torch.equal(posed[0, COEFF_SLICES["angle"]], b.coefficients()[0, COEFF_SLICES["angle"]])
    # the edits in BFM units: degrees in spatial/pose.py's convention, pupil offsets, scaled expression
    turned = fx.offset_pose(a, 15.0, -5.0, 3.0)
    assert np.allclose(turned.angles - a.angles, [15.0, -5.0, 3.0], atol=1e-4)
    looked = fx.own_points(fx.offset_gaze(a, 0.1, -0.05), bfm_projector)
    assert np.nonzero(np.any(looked != fx.own_points(a, bfm_projector), axis=1))[0].tolist() == [68, 69]
    assert not fx.scale_expression(a, 0.0).expression.any()


def test_decompose_reuses_the_cached_networks(tiny, photos):
    nets = nets_of(tiny)
    nets.load_all()
    loads = MODEL_CACHE.stats.loads
    calls = []
    handle = nets.arcface().value.register_forward_hook(lambda *a: calls.append(1))
    try:
        face = decompose_node(photos, "grace_hopper", MeshProjector(), nets)
    finally:
        handle.remove()
    assert MODEL_CACHE.stats.loads == loads, "no second copy of ArcFace, ID2Token, Image2Token or CLIP"
    assert calls, "the identity came from the cached ArcFace"
    assert face.identity_tokens.shape == (77, 768) and face.appearance_tokens.shape == (77, 768)
    assert face.region_features.shape == (7, 64) and face.region_present.shape == (7,)


def test_region_features_are_clip_patches_pooled_over_the_regions(tiny, mesh_faces):
    face = mesh_faces["grace_hopper"]
    from faceadapter_suite.facex.regions import REGION_NAMES, region_mask
    from faceadapter_suite.models.clip_vision import clip_image_processor_pixels

    hidden = own_tower_hidden_states(nets_of(tiny))(clip_image_processor_pixels(face.view.crop512[None]))[0]
    present = dict(zip(REGION_NAMES, face.region_present.tolist()))
    assert present == {"brows": True, "eyes": True, "nose": True, "lips": True, "ears": False, "skin": True,
                       "hair": False}, "the mesh draws no ears or hair"
    grid = int((hidden.shape[0] - 1) ** 0.5)
    lips = torch.from_numpy(region_mask(face.parsing, "lips"))
    weight = torch.nn.functional.adaptive_avg_pool2d(lips[None, None], grid).reshape(-1)
    expected = (weight[:, None] * hidden[1:]).sum(0) / weight.sum()
    assert torch.allclose(face.region_features[REGION_NAMES.index("lips")], expected, atol=1e-5)


def test_mediapipe_only_decomposition_marks_what_it_lacks(photos):
    face = decompose_node(photos, "astronaut", MeshProjector(), nets=None)
    assert set(face.absent()) == {"identity_tokens", "identity_embedding", "appearance_tokens", "region_features",
                                  "light", "texture"}
    assert face.parsing is not None and face.expression.shape == (70, 3) and face.gaze.shape == (2, 3)
    with pytest.raises(ValueError, match="no identity_tokens.*connect Load Face-Adapter"):
        fx.assemble([face], fx.Recipe())
    spatial, identity, attributes, *_ = assemble_node([face])
    assert len(spatial) == 1 and identity is None and attributes is None
    from faceadapter_suite.generate.render import conditions_for

    with pytest.raises(ValueError, match="no identity tokens.*connect Encode Identity on the spatial record"):
        conditions_for(spatial, identity, attributes, torch.zeros(1, 77, 768))


def test_background_must_be_the_pose_or_the_identity_face(mesh_faces):
    a, b = mesh_faces["astronaut"], mesh_faces["grace_hopper"]
    with pytest.raises(ValueError, match="background must come from the pose face"):
        assemble_node([a, b, a], pose="B", background="C")
    with pytest.raises(ValueError, match="face C, which is not connected"):
        assemble_node([a, b], gaze="C")
    with pytest.raises(ValueError, match="hair from another face needs .*BiSeNet"):
        assemble_node([a, b], hair="B")


def test_hair_from_another_face_repaints_the_background_hair(tiny, photos, mesh_faces):
    """With BiSeNet regions on the background face, hair from another face adds its hair to the area."""
    from faceadapter_suite.facex.regions import region_mask

    background = decompose_node(photos, "grace_hopper", MeshProjector(), nets_of(tiny), "third_party/79999_iter.pth")
    assert background.parsing_source == "bisenet19"
    keep = fx.assemble([background, mesh_faces["astronaut"]], fx.Recipe(), need_tokens=False)[0]
    repaint = fx.assemble([background, mesh_faces["astronaut"]], fx.Recipe(hair=1), need_tokens=False)[0]
    hair = torch.from_numpy(region_mask(background.parsing, "hair"))
    assert torch.equal(repaint.area[0], torch.maximum(keep.area[0], hair))
    assert np.array_equal(repaint.pts70, keep.pts70) and torch.equal(repaint.blend[0] >= keep.blend[0],
                                                                     torch.ones_like(keep.blend[0], dtype=torch.bool))
