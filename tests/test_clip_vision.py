"""CLIP vision tower and pixels against transformers 4.37.1 (Face-Adapter's pin), run outside the pack
by scripts/make_clip_parity.py: CLIPImageProcessor() pixels, CLIPVisionModel last_hidden_state,
both key layouts, wrong files, and the full ViT-H/14 layout on the meta device."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from faceadapter_suite.core.errors import WrongModelFileError
from faceadapter_suite.face.sample_photos import load_sample
from faceadapter_suite.models import clip_vision as cv

from conftest import REPO  # noqa: E402

PARITY = "parity"
_spec = importlib.util.spec_from_file_location("make_token_parity", REPO / "scripts" / "make_token_parity.py")
maker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(maker)


@pytest.fixture(scope="module")
def fixture(reference_dir):
    data = np.load(reference_dir / PARITY / "clip.npz")
    return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def tiny_dir(reference_dir, fixture, tmp_path_factory):
    """The tiny model's 4.x folder as 4.37.1 saved it: its config.json, and its numpy-seeded weights
    regenerated in the script's order (the pack tracks no weight files)."""
    folder = tmp_path_factory.mktemp("clip_tiny")
    shutil.copy(reference_dir / PARITY / "clip_tiny_config.json", folder / "config.json")
    config = cv.VisionConfig.from_dict(json.loads((folder / "config.json").read_text()))
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in cv.CLIPVisionTower(config).state_dict().items()}
    keys = [str(k) for k in fixture["tiny_keys"]]
    assert sorted(keys) == sorted(shapes)  # the tower's keys are the ones 4.37.1 saved
    state = maker.seeded_state([(k, shapes[k], True) for k in keys], int(fixture["tiny_seed"]))
    save_file({k: torch.from_numpy(v) for k, v in state.items()}, str(folder / "model.safetensors"))
    return folder


def _crops(fixture, prefix: str = "") -> list[np.ndarray]:
    """The fixture's input crops rebuilt from the sample photos, checked against the stored hashes."""
    photos = [load_sample(str(name)) for name in fixture["sources"]]
    crops = []
    for (src, top, bottom, left, right), digest in zip(fixture[prefix + "crops"], fixture[prefix + "input_sha256"]):
        crop = np.ascontiguousarray(photos[src][top:bottom, left:right])
        assert hashlib.sha256(crop.tobytes()).hexdigest() == digest, \
            f"sample photo {fixture['sources'][src]} differs from the one the fixture was made from"
        crops.append(crop)
    return crops


def test_pixels_equal_clip_image_processor(fixture):
    crops = _crops(fixture)
    assert [c.shape[:2] for c in crops] == [(512, 512), (333, 487), (112, 97)]
    ours = torch.cat([cv.clip_image_processor_pixels(c[None]) for c in crops])
    reference = torch.from_numpy(fixture["pixel_values"])
    assert ours.dtype == torch.float32 and ours.shape == reference.shape == (3, 3, 224, 224)
    assert (ours - reference).abs().max().item() == 0.0  # bit for bit (<= 1e-6 asked)


def test_pixel_geometry_is_bit_exact(fixture):
    """Exactly 224, upscaled, odd long edges and offsets: sha256 of the float32 bytes as 4.37.1 wrote them."""
    for name, crop, digest in zip(fixture["geometry_names"], _crops(fixture, "geometry_"),
                                  fixture["geometry_pixel_sha256"]):
        ours = cv.clip_image_processor_pixels(crop[None])[0].numpy()
        assert hashlib.sha256(ours.tobytes()).hexdigest() == digest, name


def test_pixels_refuse_non_uint8():
    with pytest.raises(ValueError, match="uint8 RGB"):
        cv.clip_image_processor_pixels(np.zeros((1, 64, 64, 3), np.float32))


def test_resize_rounds_the_long_edge_down():
    assert cv._resize_shortest_edge(333, 487, 224) == (224, 327)  # 327.57 -> 327 (round() would give 328)
    assert cv._resize_shortest_edge(112, 97, 224) == (258, 224)  # 258.64 -> 258


def test_hidden_states_match_transformers(fixture, tiny_dir):
    tower = cv.load_clip_vision(tiny_dir)
    assert tower.config == cv.VisionConfig(64, 128, 2, 4, 224, 14, "gelu", 1e-5)
    reference = torch.from_numpy(fixture["last_hidden_state"])
    with torch.no_grad():
        from_stored = tower(torch.from_numpy(fixture["pixel_values"]))
        from_ours = tower(torch.cat([cv.clip_image_processor_pixels(c[None]) for c in _crops(fixture)]))
    assert from_stored.shape == (3, 257, 64) and reference.abs().mean() > 0.3  # O(1) values: 1e-5 is tight
    assert (from_stored - reference).abs().max().item() <= 1e-5
    assert (from_ours - reference).abs().max().item() <= 1e-5


def _output(path, **kw) -> torch.Tensor:
    torch.manual_seed(0)
    pixels = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        return cv.load_clip_vision(path, **kw)(pixels)


def test_both_key_layouts_and_full_clip_files_load(tmp_path, tiny_dir):
    reference = _output(tiny_dir)
    state = load_file(str(tiny_dir / "model.safetensors"))
    config = (tiny_dir / "config.json").read_text()

    v5 = tmp_path / "v5"  # transformers 5.x: no vision_model. prefix
    v5.mkdir()
    (v5 / "config.json").write_text(config)
    save_file({k.removeprefix("vision_model."): v for k, v in state.items()}, str(v5 / "model.safetensors"))
    assert torch.equal(_output(v5), reference)

    full = tmp_path / "full_clip_bin"  # a CLIPModel .bin with text tower, projections and old position_ids
    full.mkdir()
    (full / "config.json").write_text(json.dumps({"vision_config": json.loads(config), "text_config": {}}))
    extra = {"text_model.embeddings.token_embedding.weight": torch.zeros(8, 4),
             "visual_projection.weight": torch.zeros(4, 64), "text_projection.weight": torch.zeros(4, 4),
             "logit_scale": torch.tensor(1.0), "vision_model.embeddings.position_ids": torch.arange(257)[None]}
    torch.save({**state, **extra}, full / "pytorch_model.bin")
    assert torch.equal(_output(full), reference)

    single = tmp_path / "tiny.safetensors"
    shutil.copy(tiny_dir / "model.safetensors", single)
    tower_config = cv.VisionConfig.from_dict(json.loads(config))
    assert torch.equal(_output(single, config=tower_config), reference)
    with pytest.raises(ValueError, match="64-wide .*config.json"):
        cv.load_clip_vision(single)

    half = cv.load_clip_vision(tiny_dir, dtype=torch.float16)
    assert all(p.dtype == torch.float16 for p in half.parameters())


def test_wrong_files_name_their_keys(tmp_path, tiny_dir):
    state = load_file(str(tiny_dir / "model.safetensors"))
    folder = tmp_path / "wrong"
    folder.mkdir()
    shutil.copy(tiny_dir / "config.json", folder / "config.json")
    broken = {k: v for k, v in state.items() if "layers.1.mlp.fc2" not in k}
    broken["vision_model.encoder.layers.2.mlp.fc1.weight"] = torch.zeros(128, 64)
    broken["conv1.weight"] = torch.zeros(1)
    save_file(broken, str(folder / "model.safetensors"))
    with pytest.raises(WrongModelFileError) as err:
        cv.load_clip_vision(folder)
    text = str(err.value)
    assert str(folder) in text and "CLIPVisionTower" in text
    assert set(err.value.missing) == {"vision_model.encoder.layers.1.mlp.fc2.weight",
                                      "vision_model.encoder.layers.1.mlp.fc2.bias"}
    assert set(err.value.unexpected) == {"vision_model.encoder.layers.2.mlp.fc1.weight", "conv1.weight"}

    bigger = json.loads((tiny_dir / "config.json").read_text())
    bigger["intermediate_size"] = 256
    (folder / "config.json").write_text(json.dumps(bigger))
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(WrongModelFileError, match="wrong shape: vision_model.encoder.layers.0.mlp.fc1.weight"):
        cv.load_clip_vision(folder)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        cv.load_clip_vision(tmp_path)


def _meta_layout(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def test_full_size_vit_h14_layout_on_meta(reference_dir):
    committed = json.loads((reference_dir / PARITY / "clip_vit_h14_keys.json").read_text())
    assert committed["transformers"] == "4.37.1"
    with torch.device("meta"):
        ours = _meta_layout(cv.CLIPVisionTower(cv.VIT_H14))
    assert ours == committed["keys"]
    assert cv.VisionConfig.from_dict(committed["config"]) == cv.VIT_H14 and cv.is_vit_h(cv.VIT_H14)
    state = {k: torch.empty(v, device="meta") for k, v in committed["keys"].items()}
    assert cv.config_from_state(state) == cv.VIT_H14

    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        theirs = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**committed["config"]))
    layout = _meta_layout(theirs)
    if not next(iter(layout)).startswith(cv.LAYOUT_PREFIX):  # 5.x drops the prefix in its state dict
        layout = {cv.LAYOUT_PREFIX + k: v for k, v in layout.items()}
    assert layout == ours


def test_vit_h_check_names_the_encoder():
    assert not cv.is_vit_h(cv.VIT_L14)
    cv.require_vit_h(1280, 32)
    with pytest.raises(cv.WrongVisionEncoderError) as err:
        cv.require_vit_h(1024, 24)
    text = str(err.value)
    assert "ViT-L/14 (1024 wide, 24 layers)" in text and "ViT-H/14 (1280 wide, 32 layers)" in text
    assert "leave clip_vision unconnected" in text and "vision_encoder/" in text
    with pytest.raises(cv.WrongVisionEncoderError, match="ViT-bigG/14 \\(1664 wide, 48 layers\\)"):
        cv.require_vit_h(1664, 48)


def test_bridge_refuses_what_is_not_a_clip_vit():
    from faceadapter_suite.core import comfy_bridge
    from faceadapter_suite.core.errors import FaceAdapterError

    class Holder:  # the shape of comfy.clip_vision.ClipVisionModel, holding a non-CLIP encoder
        model = torch.nn.Linear(2, 2)

    with pytest.raises(FaceAdapterError, match="holds Linear, not a CLIP ViT"):
        comfy_bridge.clip_vision_width_layers(Holder())
