"""Spatial-condition stage end to end on real photos (mediapipe detection), D3DFR+BFM path
with random full-size weights in the real file formats, areas and control composition."""
from __future__ import annotations

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
from faceadapter_suite.spatial.condition import CROP


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
    landmarks, preview, drawn = nodes.FaceAdapterProject3DLandmarks().project(
        recon, src_img, src_faces, vid_img, vid_faces, "pass_through")
    hook.remove()
    assert sum(seen) == 3, "1 source crop + 2 target crops with a face: the source is encoded once"
    assert landmarks.found == (True, False, True)
    assert np.isfinite(landmarks.pts70[[0, 2]]).all() and np.isnan(landmarks.pts70[1]).all()
    assert preview.shape == drawn.shape == (2, CROP, CROP, 3), "one entry per found frame"
    assert drawn.reshape(2, -1).amax(dim=1).min() > 0
    # same source as target -> the target's own reconstruction
    self_lm, _, _ = nodes.FaceAdapterProject3DLandmarks().project(
        recon, vid_img[:1], type(vid_faces)(vid_faces.frames[:1]), vid_img[:1],
        type(vid_faces)(vid_faces.frames[:1]), "pass_through")
    coeffs = recon.coefficients([self_lm.targets[0]])
    own = recon.bfm().value.get_lm70(coeffs).numpy()
    np.testing.assert_allclose(self_lm.pts70[0], own[0], atol=1e-4)


def test_missing_face_policy_error_names_frame(photos, models_dir):
    src_img, src_faces = photos["astronaut"]
    vid_img, vid_faces = photos["video"]
    with pytest.raises(errors.NoFaceError, match="no target face in frame 1"):
        nodes.FaceAdapterProject3DLandmarks().project(_bfm_reconstructor(), src_img, src_faces, vid_img,
                                                      vid_faces, "error")


@pytest.fixture(scope="module")
def video_landmarks(photos, models_dir):
    src_img, src_faces = photos["grace_hopper"]
    vid_img, vid_faces = photos["video"]
    return nodes.FaceAdapterProject3DLandmarks().project(_bfm_reconstructor(), src_img, src_faces, vid_img,
                                                         vid_faces, "pass_through")[0]


@pytest.mark.parametrize("task,method", [("reenact", "adapting_area_net"), ("swap", "landmark_hull")])
def test_area_methods(video_landmarks, task, method):
    area, preview = nodes.FaceAdapterPredictAdaptingArea().predict(
        video_landmarks, task, method, "net_seg_res18.pth", "third_party/79999_iter.safetensors")
    assert area.shape == (2, CROP, CROP) and preview.shape == (2, CROP, CROP, 3), "found frames only"
    assert set(torch.unique(area).tolist()) <= {0.0, 1.0}
    if method == "landmark_hull":
        assert area.sum(dim=(1, 2)).min() > 0


def test_face_parsing_area_from_safetensors(video_landmarks):
    area, _ = nodes.FaceAdapterPredictAdaptingArea().predict(
        video_landmarks, "swap", "face_parsing", "net_seg_res18.pth", "third_party/79999_iter.safetensors")
    assert area.shape == (2, CROP, CROP)


def test_auto_falls_back_and_forced_missing_model_errors(video_landmarks, models_dir):
    node = nodes.FaceAdapterPredictAdaptingArea()
    assert node._choose("swap", "auto", "net_seg_res18.pth", "third_party/79999_iter.pth") == "landmark_hull"
    assert node._choose("reenact", "auto", "net_seg_res18.pth", "x") == "adapting_area_net"
    with pytest.raises(errors.MissingModelError) as info:
        node.predict(video_landmarks, "swap", "face_parsing", "net_seg_res18.pth", "third_party/79999_iter.pth")
    assert str(models_dir / "faceadapter" / "third_party" / "79999_iter.pth") in str(info.value)


@pytest.mark.parametrize("task", ["reenact", "swap"])
def test_compose_control(video_landmarks, task):
    area = torch.zeros(2, CROP, CROP)
    area[:, 100:400, 120:380] = 1.0
    control, area_out, blend, background, transforms = nodes.FaceAdapterComposeSpatialControl().compose(
        video_landmarks, area, task)
    assert [c.frame_index for c in transforms.crops] == [0, 2] and transforms.frame_sizes[0] == (512, 512)
    drawn = uint8_to_image(video_landmarks.landmark_images())
    inside, outside = area.bool(), ~area.bool()
    assert torch.equal(control[inside], drawn[inside])
    assert torch.equal(control[outside], background[outside])
    expected_bg = video_landmarks.crops("source" if task == "reenact" else "target")
    assert torch.equal(background, torch.from_numpy(expected_bg).float() / 255)
    assert blend.shape == area.shape and 0 < blend[0, 250, 250] <= 1 and blend[0, 5, 5] == 0
    assert blend[0, 95, 250] > 0, "the blend mask grows past the area"
    with pytest.raises(ValueError, match="1 masks but the landmarks have 2 found"):
        nodes.FaceAdapterComposeSpatialControl().compose(video_landmarks, area[:1], task)


def test_generated_crops_paste_back_into_the_target_frames(photos, video_landmarks):
    """The stage's transforms close the loop: crops go back through Paste Faces; faceless frames pass through."""
    from faceadapter_suite.nodes.face_analysis import FaceAdapterPasteFaces

    vid_img, _ = photos["video"]
    area = torch.ones(2, CROP, CROP)
    _, _, _, background, transforms = nodes.FaceAdapterComposeSpatialControl().compose(video_landmarks, area, "swap")
    unchanged, _ = FaceAdapterPasteFaces().paste(vid_img, background, transforms, 16, "off", True)
    assert (unchanged - vid_img).abs().max() <= 2 / 255, "the target's own crops paste back to the frames"
    edited = background.clone()
    edited[:, 200:300, 200:300] = torch.tensor([1.0, 0.0, 0.0])
    pasted, weights = FaceAdapterPasteFaces().paste(vid_img, edited, transforms, 16, "off", True)
    assert torch.equal(pasted[1], vid_img[1]) and weights[1].sum() == 0, "the faceless frame is untouched"
    changed = (pasted - vid_img).abs().amax(dim=-1) > 0.2
    assert changed[0].any() and changed[2].any()
    ys, xs = torch.nonzero(changed[0], as_tuple=True)
    centre = transforms.crops[0].inverse() @ np.array([250.0, 250.0, 1.0])
    assert abs(xs.float().mean() - centre[0]) < 15 and abs(ys.float().mean() - centre[1]) < 15


def test_mesh_projector_fits_one_source_once(photos, monkeypatch):
    """One source image driving a video: its canonical fit is computed once, not per frame."""
    from faceadapter_suite.spatial import projector_mesh

    calls = []
    real = projector_mesh.source_canonical
    monkeypatch.setattr(projector_mesh, "source_canonical", lambda face: calls.append(1) or real(face))
    src_img, src_faces = photos["grace_hopper"]
    vid_img, vid_faces = photos["video"]
    landmarks = nodes.FaceAdapterProject3DLandmarks().project(
        nodes.FaceAdapterLoad3DReconstructor().load(nodes.MESH, "", "")[0], src_img, src_faces, vid_img, vid_faces,
        "pass_through")[0]
    assert landmarks.found == (True, False, True) and len(calls) == 1


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
