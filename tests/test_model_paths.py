"""Model folders, the manifest, and missing-model errors."""
from __future__ import annotations

import pytest

from faceadapter_suite.core import comfy_bridge, errors, manifest, model_paths


@pytest.fixture
def models_dir(tmp_path):
    comfy_bridge.set_models_dir(tmp_path)
    yield tmp_path
    comfy_bridge.set_models_dir(None)


def test_manifest_is_complete():
    entries = manifest.entries()
    for required in ("net_id2token.pth", "net_image2token.pth", "net_seg_res18.pth", "controlnet",
                     "pretrained_unet", "vision_encoder", "third_party/79999_iter.pth",
                     "third_party/BFM_model_front.mat", "third_party/d3dfr_res50_nofc.pth",
                     "third_party/insightface_glint360k.pth"):
        assert any(e.kind == "faceadapter" and e.path == required for e in entries.values()), required
    for required in ("diffusion.pth", "Facevid.pth", "FOMM.pth", "deca_model.tar"):
        assert any(e.kind == "fadm" and e.path == required for e in entries.values()), required
    for e in entries.values():
        assert e.source and e.licence
    nc = {e.id for e in entries.values() if e.non_commercial}
    assert {"faceparsing.bisenet19", "faceadapter.bfm_front", "fadm.deca"} <= nc
    assert any(i.startswith("insightface.") for i in nc)


def test_missing_model_names_expected_path(models_dir):
    with pytest.raises(errors.MissingModelError) as info:
        model_paths.require_model("faceadapter.d3dfr_resnet50")
    text = str(info.value)
    expected = models_dir / "faceadapter" / "third_party" / "d3dfr_res50_nofc.pth"
    assert str(expected) in text and "'faceadapter'" in text and "huggingface.co/FaceAdapter" in text
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"x")
    assert model_paths.require_model("faceadapter.d3dfr_resnet50") == expected


def test_insightface_dir_accepts_extra_nesting(models_dir):
    with pytest.raises(errors.MissingModelError) as info:
        model_paths.find_insightface_model_dir("antelopev2")
    assert str(models_dir / "insightface" / "models" / "antelopev2") in str(info.value)
    nested = models_dir / "insightface" / "models" / "antelopev2" / "antelopev2"
    nested.mkdir(parents=True)
    (nested / "scrfd_10g_bnkps.onnx").write_bytes(b"x")
    assert model_paths.find_insightface_model_dir("antelopev2") == nested
    flat = nested.parent
    (flat / "scrfd_10g_bnkps.onnx").write_bytes(b"x")
    assert model_paths.find_insightface_model_dir("antelopev2") == flat


def test_env_var_models_dir(tmp_path, monkeypatch):
    comfy_bridge.set_models_dir(None)
    monkeypatch.setenv("FACEADAPTER_MODELS_DIR", str(tmp_path))
    assert comfy_bridge.folder_paths_for("fadm") == [tmp_path / "fadm"]


def test_standalone_device_and_dtype():
    assert not comfy_bridge.in_comfyui()
    assert comfy_bridge.preferred_dtype(comfy_bridge.torch.device("cpu")) == comfy_bridge.torch.float32
    bar = comfy_bridge.progress(3)
    for _ in range(3):
        comfy_bridge.check_interrupt()
        bar.update()
    assert bar.done == 3


def test_model_fingerprint_changes_when_a_file_is_installed_or_replaced(tmp_path):
    import os

    from faceadapter_suite.core.model_paths import model_fingerprint

    target = tmp_path / "net.pth"
    absent = model_fingerprint([target])
    assert model_fingerprint([target]) == absent, "stable while nothing changes"
    target.write_bytes(b"1234")
    installed = model_fingerprint([target])
    assert installed != absent, "installing the file changes the key"
    target.write_bytes(b"12345")
    assert model_fingerprint([target]) != installed, "replacing it changes the key"
    os.remove(target)
    assert model_fingerprint([target]) == absent


def test_model_dropdown_lists_folder_files_default_first(models_dir):
    e = manifest.entry("faceadapter.adapting_area_predictor")
    choices, default = model_paths.model_choices(e)
    label = model_paths.not_installed_label(e)
    assert choices == [e.path, label] and default == label, "absent: manifest path stays valid, label is default"
    assert "net_seg_res18.pth" in label and "install.py --models faceadapter.adapting_area_predictor" in label
    with pytest.raises(errors.MissingModelError) as info:
        model_paths.resolve_model_choice(e, label)
    text = str(info.value)
    assert str(models_dir / "faceadapter" / "net_seg_res18.pth") in text and "'faceadapter'" in text
    assert e.source in text
    folder = models_dir / "faceadapter"
    (folder / "sub").mkdir(parents=True)
    (folder / "net_seg_res18.pth").write_bytes(b"x")
    (folder / "sub" / "finetuned.safetensors").write_bytes(b"x")
    (folder / "notes.txt").write_text("not a model")
    choices, default = model_paths.model_choices(e)
    assert choices == [e.path, "sub/finetuned.safetensors"] and default == e.path
    assert model_paths.resolve_model_choice(e, "sub/finetuned.safetensors") == folder / "sub" / "finetuned.safetensors"


def test_choices_fingerprint_follows_installation(models_dir):
    before = model_paths.choices_fingerprint(("faceadapter.adapting_area_predictor", "net_seg_res18.pth"))
    label = model_paths.not_installed_label("faceadapter.adapting_area_predictor")
    assert model_paths.choices_fingerprint(("faceadapter.adapting_area_predictor", label)) == before
    (models_dir / "faceadapter").mkdir()
    (models_dir / "faceadapter" / "net_seg_res18.pth").write_bytes(b"x")
    assert model_paths.choices_fingerprint(("faceadapter.adapting_area_predictor", "net_seg_res18.pth")) != before


def test_insightface_dropdown(models_dir):
    choices, default = model_paths.insightface_model_choices()
    assert choices[0] == "antelopev2" and default.startswith(model_paths.NOT_INSTALLED)
    (models_dir / "insightface" / "models" / "buffalo_l" / "buffalo_l").mkdir(parents=True)
    (models_dir / "insightface" / "models" / "buffalo_l" / "buffalo_l" / "det.onnx").write_bytes(b"x")
    (models_dir / "insightface" / "models" / "antelopev2").mkdir(parents=True)
    (models_dir / "insightface" / "models" / "antelopev2" / "det.onnx").write_bytes(b"x")
    assert model_paths.insightface_model_choices() == (["antelopev2", "buffalo_l"], "antelopev2")


def test_load_face_analysis_is_changed_when_models_are_installed(models_dir):
    from faceadapter_suite.nodes.face_analysis import FaceAdapterLoadFaceAnalysis as node

    before = node.IS_CHANGED(insightface_model="antelopev2", backend="insightface")
    folder = models_dir / "insightface" / "models" / "antelopev2"
    folder.mkdir(parents=True)
    (folder / "scrfd_10g_bnkps.onnx").write_bytes(b"x")
    after_onnx = node.IS_CHANGED(insightface_model="antelopev2", backend="insightface")
    assert after_onnx != before
    task_entry = manifest.entry("mediapipe.face_landmarker")
    task = models_dir / task_entry.kind / task_entry.path
    task.parent.mkdir(parents=True, exist_ok=True)
    task.write_bytes(b"x")
    assert node.IS_CHANGED(insightface_model="antelopev2") != after_onnx, "the mediapipe .task file counts too"
