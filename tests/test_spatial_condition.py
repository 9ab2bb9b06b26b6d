"""Spatial-condition stage end to end on real photos (mediapipe detection), D3DFR+BFM path
with random full-size weights in the real file formats, areas and control composition."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from faceadapter_suite.core import comfy_bridge, errors
from faceadapter_suite.core.cache import MODEL_CACHE
from faceadapter_suite.core.images import uint8_to_image
from faceadapter_suite.face.analysis import detect_batch, load_analyzer
from faceadapter_suite.face.sample_photos import load_sample
from faceadapter_suite.models.adapting_area import AdaptingAreaPredictor
from faceadapter_suite.models.bisenet import BiSeNet
from faceadapter_suite.models.d3dfr import D3DFR
from faceadapter_suite.nodes import spatial_condition as nodes
from faceadapter_suite.face.records import FaceBatch, FrameFaces
from faceadapter_suite.spatial.condition import CROP
from faceadapter_suite.spatial.record import FaceSpatial


@pytest.fixture(scope="session")
def photos():
    analyzer = load_analyzer("mediapipe")
    out = {}
    for name in ("astronaut", "grace_hopper"):
        image = uint8_to_image(load_sample(name))
        out[name] = (image, detect_batch(analyzer, image))
    # a 3-frame "video": astronaut, a faceless black frame, astronaut shifted
    astro = load_sample("astronaut")
    video = np.stack([astro, np.zeros_like(astro), np.roll(astro, 12, axis=1)])
    image = uint8_to_image(video)
    out["video"] = (image, detect_batch(analyzer, image))
    return out


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, reference_dir):
    root = tmp_path_factory.mktemp("models")
    third = root / "faceadapter" / "third_party"
    third.mkdir(parents=True)
    torch.manual_seed(0)
    d3dfr = D3DFR()
    for p in d3dfr.parameters():  # keep coefficients small so the synthetic face stays in frame
        p.data.mul_(0.05)
    torch.save({"module." + k: v for k, v in d3dfr.state_dict().items()}, third / "d3dfr_res50_nofc.pth")
    shutil.copy(reference_dir / "parity" / "bfm_synthetic_front.mat", third / "BFM_model_front.mat")
    torch.save(AdaptingAreaPredictor().state_dict(), root / "faceadapter" / "net_seg_res18.pth")
    save_file(BiSeNet().state_dict(), str(third / "79999_iter.safetensors"))
    comfy_bridge.set_models_dir(root)
    yield root
    comfy_bridge.set_models_dir(None)


def _bfm_reconstructor():
    return nodes.FaceAdapterLoad3DReconstructor().load(nodes.BFM, "third_party/d3dfr_res50_nofc.pth",
                                                       "third_party/BFM_model_front.mat")[0]


def _project(recon, src_img, src_faces, tgt_img, tgt_faces, task="swap", on_missing="pass_through", crop_ratio=0.81,
             analysis=None):
    return nodes.FaceAdapterProject3DLandmarks().project(recon, src_img, src_faces, tgt_img, tgt_faces, task,
                                                         on_missing, crop_ratio, analysis)


def test_bfm_projection_source_identity_computed_once(photos, models_dir):
    MODEL_CACHE.clear()
    MODEL_CACHE.reset_stats()
    recon = _bfm_reconstructor()
    assert _bfm_reconstructor().d3dfr() is recon.d3dfr(), "second load comes from the shared cache"
    assert (MODEL_CACHE.stats.loads, MODEL_CACHE.stats.hits) == (2, 4), "2 loads; 2 loader hits + 2 d3dfr() lookups"
    seen = []
    hook = recon.d3dfr().value.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    src_img, src_faces = photos["grace_hopper"]
    vid_img, vid_faces = photos["video"]
    landmarks, preview, drawn = _project(recon, src_img, src_faces, vid_img, vid_faces)
    hook.remove()
    assert sum(seen) == 3, "1 source crop + 2 target crops with a face: the source is encoded once"
    assert [p.frame_index for p in landmarks.pairs] == [0, 2] and landmarks.pts70.shape == (2, 70, 2)
    assert np.isfinite(landmarks.pts70).all() and landmarks.sources[0] is landmarks.sources[1]
    assert preview.shape == drawn.shape == (2, CROP, CROP, 3), "one entry per found frame"
    assert drawn.reshape(2, -1).amax(dim=1).min() > 0
    # same source as target -> the target's own reconstruction
    self_lm, _, _ = _project(recon, vid_img[:1], type(vid_faces)(vid_faces.frames[:1]), vid_img[:1],
                             type(vid_faces)(vid_faces.frames[:1]))
    coeffs = recon.coefficients([self_lm.targets[0]])
    own = recon.bfm().value.get_lm70(coeffs).numpy()
    np.testing.assert_allclose(self_lm.pts70[0], own[0], atol=1e-4)


def test_missing_face_policy_error_names_frame(photos, models_dir):
    src_img, src_faces = photos["astronaut"]
    vid_img, vid_faces = photos["video"]
    with pytest.raises(errors.NoFaceError, match=r"no target face in frame\(s\) 1 of 3"):
        _project(_bfm_reconstructor(), src_img, src_faces, vid_img, vid_faces, on_missing="error")


@pytest.mark.parametrize("on_missing", ["error", "pass_through"])
def test_a_faceless_source_is_named_as_the_source(photos, on_missing):
    """The source photo has no face: the message says so (it used to blame the target frames)."""
    blank = torch.zeros(1, 256, 256, 3)
    no_faces = FaceBatch(frames=(FrameFaces(256, 256),))
    vid_img, vid_faces = photos["video"]
    recon = nodes.FaceAdapterLoad3DReconstructor().load(nodes.MESH, "", "")[0]
    with pytest.raises(errors.NoFaceError) as info:
        _project(recon, blank, no_faces, vid_img, vid_faces, on_missing=on_missing)
    text = str(info.value)
    assert "source" in text and "target" not in text and "frame" in text, text


@pytest.mark.parametrize("on_missing", ["error", "pass_through"])
def test_faceless_target_frames_are_named_as_the_target(photos, on_missing):
    src_img, src_faces = photos["grace_hopper"]
    blank = torch.zeros(2, 256, 256, 3)
    no_faces = FaceBatch(frames=(FrameFaces(256, 256),) * 2)
    recon = nodes.FaceAdapterLoad3DReconstructor().load(nodes.MESH, "", "")[0]
    with pytest.raises(errors.NoFaceError, match=r"no target face in frame\(s\) 0, 1 of 2|none of the 2 target"):
        _project(recon, src_img, src_faces, blank, no_faces, on_missing=on_missing)


@pytest.fixture(scope="module")
def video_landmarks(photos, models_dir):
    src_img, src_faces = photos["grace_hopper"]
    vid_img, vid_faces = photos["video"]
    return _project(_bfm_reconstructor(), src_img, src_faces, vid_img, vid_faces)[0]


@pytest.mark.parametrize("task,method", [("reenact", "adapting_area_net"), ("swap", "landmark_hull")])
def test_area_methods(photos, models_dir, task, method):
    src_img, src_faces = photos["grace_hopper"]
    vid_img, vid_faces = photos["video"]
    landmarks = _project(_bfm_reconstructor(), src_img, src_faces, vid_img, vid_faces, task)[0]
    area, preview = nodes.FaceAdapterPredictAdaptingArea().predict(
        landmarks, method, "net_seg_res18.pth", "third_party/79999_iter.safetensors")
    assert area.shape == (2, CROP, CROP) and preview.shape == (2, CROP, CROP, 3), "found frames only"
    assert set(torch.unique(area).tolist()) <= {0.0, 1.0}
    if method == "landmark_hull":
        assert area.sum(dim=(1, 2)).min() > 0


def test_face_parsing_area_from_safetensors(video_landmarks):
    area, _ = nodes.FaceAdapterPredictAdaptingArea().predict(
        video_landmarks, "face_parsing", "net_seg_res18.pth", "third_party/79999_iter.safetensors")
    assert area.shape == (2, CROP, CROP)


def test_auto_falls_back_and_forced_missing_model_errors(video_landmarks, models_dir):
    node = nodes.FaceAdapterPredictAdaptingArea()
    assert node._choose("swap", "auto", "net_seg_res18.pth", "third_party/79999_iter.pth") == "landmark_hull"
    assert node._choose("reenact", "auto", "net_seg_res18.pth", "x") == "adapting_area_net"
    with pytest.raises(errors.MissingModelError) as info:
        node.predict(video_landmarks, "face_parsing", "net_seg_res18.pth", "third_party/79999_iter.pth")
    assert str(models_dir / "faceadapter" / "third_party" / "79999_iter.pth") in str(info.value)


@pytest.mark.parametrize("task", ["reenact", "swap"])
def test_compose_control_makes_one_record(photos, models_dir, task):
    src_img, src_faces = photos["grace_hopper"]
    vid_img, vid_faces = photos["video"]
    landmarks = _project(_bfm_reconstructor(), src_img, src_faces, vid_img, vid_faces, task)[0]
    area = torch.zeros(2, CROP, CROP)
    area[:, 100:400, 120:380] = 1.0
    spatial, control, area_out, blend = nodes.FaceAdapterComposeSpatialControl().compose(landmarks, area)
    assert isinstance(spatial, FaceSpatial) and spatial.task == task and len(spatial) == 2
    assert control is spatial.control and blend is spatial.blend and torch.equal(area_out, area)
    drawn = uint8_to_image(landmarks.landmark_images())
    background = torch.from_numpy(spatial.background()).float() / 255
    inside, outside = area.bool(), ~area.bool()
    assert torch.equal(control[inside], drawn[inside])
    assert torch.equal(control[outside], background[outside])
    side = "source" if task == "reenact" else "target"
    assert np.array_equal(spatial.attribute_crops(), landmarks.crops(side)), "Image2Token's input per task"
    assert spatial.paste_side == side
    transforms = spatial.paste_transforms()
    assert [c.frame_index for c in transforms.crops] == [0, 2] and len(transforms.frame_sizes) == 3
    views = spatial.sources if task == "reenact" else spatial.targets
    assert all(c.matrix is v.matrix512 for c, v in zip(transforms.crops, views))
    assert spatial.paste_frame_of() == ([0, 0, 0] if task == "reenact" else [0, 1, 2])
    assert blend.shape == area.shape and 0 < blend[0, 250, 250] <= 1 and blend[0, 5, 5] == 0
    assert blend[0, 95, 250] > 0, "the blend mask grows past the area"
    assert spatial.sources[0].aligned256().shape == (256, 256, 3) and spatial.pts70.shape == (2, 70, 2)
    views, index = spatial.distinct_sources()
    assert len(views) == 1 and index == [0, 0], "one source photo: one identity to encode for both frames"
    with pytest.raises(ValueError, match="1 mask.* but the landmarks have 2 face pair"):
        nodes.FaceAdapterComposeSpatialControl().compose(landmarks, area[:1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        spatial.landmarks = None
    for array in (spatial.sources[0].crop512, spatial.targets[0].matrix512, spatial.pts70):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0


def _paste(spatial, image, crops, feather=0):
    return nodes.FaceAdapterPasteGenerated().paste(spatial, image, crops, feather, "off", True)


@pytest.mark.parametrize("task", ["reenact", "swap"])
def test_generated_crops_go_back_into_the_right_frames(photos, models_dir, task):
    """reenact: into the SOURCE photo, one output per driving frame; swap: into the TARGET frames.
    Faceless driving frames give the untouched base frame; the soft blend mask is used as given."""
    src_img, src_faces = photos["grace_hopper"]
    vid_img, vid_faces = photos["video"]
    landmarks = _project(_bfm_reconstructor(), src_img, src_faces, vid_img, vid_faces, task)[0]
    area = torch.zeros(2, CROP, CROP)
    area[:, 150:380, 160:360] = 1.0
    spatial = nodes.FaceAdapterComposeSpatialControl().compose(landmarks, area)[0]
    base = src_img if task == "reenact" else vid_img
    wrong = vid_img if task == "reenact" else src_img.repeat(3, 1, 1, 1)
    unchanged = torch.from_numpy(spatial.background()).float() / 255
    out, _ = _paste(spatial, base, unchanged)
    expected = base.expand(3, -1, -1, -1) if task == "reenact" else base
    assert out.shape == (3,) + tuple(base.shape[1:]) and (out - expected).abs().max() <= 2 / 255
    red = unchanged.clone()
    red[:] = torch.tensor([1.0, 0.0, 0.0])
    pasted, weights = _paste(spatial, base, red)
    assert torch.equal(pasted[1], expected[1]) and weights[1].sum() == 0, "the faceless driving frame is untouched"
    for row, fi in enumerate((0, 2)):
        outside = weights[fi] == 0
        assert torch.equal(pasted[fi][outside], expected[fi][outside]), "outside the mask: the frame itself"
        assert ((weights[fi] > 0.05) & (weights[fi] < 0.95)).sum() > 200, "a soft edge"
        centre = spatial.paste_views()[row].matrix512
        cx, cy = (np.linalg.inv(np.vstack([centre, [0, 0, 1]])) @ [265.0, 265.0, 1.0])[:2]
        assert pasted[fi, int(cy), int(cx), 0] > 0.95 and pasted[fi, int(cy), int(cx), 1] < 0.05
    with pytest.raises(ValueError, match="SOURCE image" if task == "reenact" else "TARGET frames"):
        _paste(spatial, wrong, red)
    with pytest.raises(ValueError, match="not the (source|target) frames this spatial record was made from"):
        _paste(spatial, torch.flip(base, dims=[1]), red)  # same size and count, other pictures


def test_group_swap_and_group_reenact_on_t1(photos):
    """t1.jpg holds three faces (mediapipe): a swap puts one source face onto each of them, a reenactment
    drives each of them; every pasted face lands on its own person."""
    from faceadapter_suite.face.select import select_faces

    analyzer = load_analyzer("mediapipe")
    group = uint8_to_image(load_sample("t1"))
    faces = select_faces(detect_batch(analyzer, group), "all")
    assert len(faces.frames[0].faces) == 3
    src_img, src_faces = photos["grace_hopper"]
    recon = nodes.FaceAdapterLoad3DReconstructor().load(nodes.MESH, "", "")[0]
    swap = _project(recon, src_img, src_faces, group, faces, "swap")[0]
    assert [(p.frame_index, p.face_index) for p in swap.pairs] == [(0, 0), (0, 1), (0, 2)]
    assert len({id(p.source) for p in swap.pairs}) == 1 and len({id(p.target) for p in swap.pairs}) == 3
    reenact = _project(recon, group, faces, src_img, src_faces, "reenact")[0]
    assert len({id(p.source) for p in reenact.pairs}) == 3 and len({id(p.target) for p in reenact.pairs}) == 1
    for landmarks, base in ((swap, group), (reenact, group)):
        area = nodes.FaceAdapterPredictAdaptingArea().predict(landmarks, "landmark_hull", "x.pth", "y.pth")[0]
        spatial = nodes.FaceAdapterComposeSpatialControl().compose(landmarks, area)[0]
        white = torch.ones(3, CROP, CROP, 3)
        pasted, weights = _paste(spatial, base, white)
        assert pasted.shape == base.shape
        for face in faces.frames[0].faces:
            cx, cy = (int(v) for v in face.center)
            assert weights[0, cy, cx] > 0.99 and pasted[0, cy, cx].min() > 0.99, (landmarks.task, cx, cy)


def test_mesh_projector_fits_one_source_once(photos, monkeypatch):
    """One source image driving a video: its canonical fit is computed once, not per frame."""
    from faceadapter_suite.spatial import projector_mesh

    calls = []
    real = projector_mesh.source_canonical
    monkeypatch.setattr(projector_mesh, "source_canonical", lambda face: calls.append(1) or real(face))
    src_img, src_faces = photos["grace_hopper"]
    vid_img, vid_faces = photos["video"]
    landmarks = _project(nodes.FaceAdapterLoad3DReconstructor().load(nodes.MESH, "", "")[0], src_img, src_faces,
                         vid_img, vid_faces)[0]
    assert [p.frame_index for p in landmarks.pairs] == [0, 2] and len(calls) == 1


def test_project_honours_crop_ratio_and_redetects_with_the_analyzer(photos):
    src_img, src_faces = photos["grace_hopper"]
    vid_img, vid_faces = photos["video"]
    recon = nodes.FaceAdapterLoad3DReconstructor().load(nodes.MESH, "", "")[0]
    plain = _project(recon, src_img, src_faces, vid_img, vid_faces)[0]
    framed = _project(recon, src_img, src_faces, vid_img, vid_faces, crop_ratio=1.0,
                      analysis=load_analyzer("mediapipe"))[0]
    for a, b in zip(plain.pairs, framed.pairs):
        for va, vb in ((a.source, b.source), (a.target, b.target)):
            assert not va.redetected and vb.redetected and vb.crop_ratio == 1.0
            assert vb.matrix512[0, 0] == pytest.approx(va.matrix512[0, 0] * 0.81)
    assert np.abs(framed.pts70 - plain.pts70).max() < 8, "the 256-frame landmarks hardly move"


def test_unload_frees_networks_held_by_reconstructor_output(models_dir):
    """The loader's output is a handle: after unload + gc no network is alive; the next use reloads."""
    import gc
    import weakref

    MODEL_CACHE.clear()
    recon = _bfm_reconstructor()
    net_ref = weakref.ref(recon.d3dfr().value)
    bfm_ref = weakref.ref(recon.bfm().value)
    assert net_ref() is not None
    MODEL_CACHE.clear()
    gc.collect()
    assert net_ref() is None and bfm_ref() is None, "the node output must not keep networks alive"
    assert recon.d3dfr().value is not None and len(MODEL_CACHE) == 1, "next use reloads transparently"


def test_model_inputs_are_dropdowns_and_is_changed_follows_files(tmp_path, monkeypatch):
    """IS_CHANGED changes when the chosen model file is installed, so ComfyUI re-runs the node."""
    monkeypatch.setattr(comfy_bridge, "_standalone_models_dir", tmp_path)
    node = nodes.FaceAdapterPredictAdaptingArea
    choices, opts = node.INPUT_TYPES()["required"]["area_model"]
    assert isinstance(choices, list) and choices[0] == "net_seg_res18.pth" and opts["default"] in choices
    before = node.IS_CHANGED(area_model="net_seg_res18.pth", parsing_model="third_party/79999_iter.pth")
    assert node._choose("reenact", "auto", "net_seg_res18.pth", "x") == "landmark_hull"
    (tmp_path / "faceadapter").mkdir()
    (tmp_path / "faceadapter" / "net_seg_res18.pth").write_bytes(b"x")
    after = node.IS_CHANGED(area_model="net_seg_res18.pth", parsing_model="third_party/79999_iter.pth")
    assert after != before
    assert node._choose("reenact", "auto", "net_seg_res18.pth", "x") == "adapting_area_net"
    recon = nodes.FaceAdapterLoad3DReconstructor
    assert recon.IS_CHANGED(d3dfr_file="third_party/d3dfr_res50_nofc.pth", bfm_file=None) == \
        recon.IS_CHANGED(d3dfr_file="third_party/d3dfr_res50_nofc.pth", bfm_file=None)
    with pytest.raises(errors.MissingModelError, match="d3dfr_res50_nofc.pth"):
        recon().load(nodes.BFM, recon.INPUT_TYPES()["required"]["d3dfr_file"][1]["default"],
                     "third_party/BFM_model_front.mat")
