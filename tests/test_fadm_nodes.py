"""FADM's nodes on the maker's tiny FADM files (64² coarse generators, a 32² renderer, full-size E_flame):
seeded determinism, chunked = unchunked, shared noise really shared, Cancel within one step, loader errors,
and an 8-frame video of real photo crops end to end, pasted back."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import PACK  # noqa: F401  (imports the pack as faceadapter_suite)

from faceadapter_suite.animate.models import CoarseGenerator, DecaEncoder, FadmRenderer
from faceadapter_suite.core import comfy_bridge
from faceadapter_suite.core.errors import MissingModelError
from faceadapter_suite.models.fadm import renderer as renderer_mod
from faceadapter_suite.nodes import fadm as nodes
from faceadapter_suite.tools import random_models as rm
from faceadapter_suite.tools.fadm_layouts import fadm_tiny_configs

STEPS = 3
# Batch size changes float32 rounding in E_flame's ResNet-50 (upstream's own floor: ~1.2e-5 relative), which
# random denoiser weights amplify; a real difference in noise or condition moves frames by > 0.05.
BATCH_ROUNDING = 1e-3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = rm.make_random_models(tmp_path_factory.mktemp("tiny_fadm"), tiny=True, only=["fadm"]) / "fadm"
    configs = fadm_tiny_configs()
    return {"facevid": CoarseGenerator("face-vid2vid", out / "Facevid.pth", facevid_config=configs["facevid"],
                                       image_size=64),
            "fomm": CoarseGenerator("fomm", out / "FOMM.pth", fomm_config=configs["fomm"], image_size=64),
            "fadm": FadmRenderer(out / "diffusion.pth", configs["renderer"]),
            "deca": DecaEncoder(out / "deca_model.tar")}


def frames(count: int, seed: int, size: int = 256) -> torch.Tensor:
    return torch.rand(count, size, size, 3, generator=torch.Generator().manual_seed(seed))


def coarse_animate(generator, source, driving, motion="relative", per_batch=8):
    return nodes.FaceAdapterCoarseAnimate().animate(generator, source, driving, motion, per_batch)[0]


def refine(tiny, coarse, seed=0, shared=True, per_batch=8, source=None, steps=STEPS, attribute_from="coarse",
           driving=None):
    return nodes.FaceAdapterFADMRefine().refine(tiny["fadm"], tiny["deca"], coarse, seed, steps, shared, per_batch,
                                                attribute_from, source, driving)[0]


def test_refine_is_deterministic_for_a_seed_and_chunking_changes_nothing(tiny):
    """Same seed: the same frames; another seed: other frames. frames_per_batch 2 (two chunks, the last
    short) equals one batch. Unshared noise: frame k draws seed + k wherever it sits, so frames 1.. of seed 7
    are frames 0.. of seed 8."""
    source, coarse = frames(1, 1, 64), frames(3, 2, 64)
    first = refine(tiny, coarse, seed=7, source=source)
    assert first.shape == (3, 32, 32, 3) and torch.isfinite(first).all()
    assert torch.equal(first, refine(tiny, coarse, seed=7, source=source))
    assert (first - refine(tiny, coarse, seed=8, source=source)).abs().max() > 0.05
    torch.testing.assert_close(refine(tiny, coarse, seed=7, source=source, per_batch=2), first, atol=BATCH_ROUNDING,
                               rtol=0)
    own = refine(tiny, coarse, seed=7, source=source, shared=False, per_batch=2)
    assert (own - first).abs().max() > 0.05, "unshared noise is not the shared noise"
    torch.testing.assert_close(refine(tiny, coarse[1:], seed=8, source=source, shared=False), own[1:],
                               atol=BATCH_ROUNDING, rtol=0)
    top = refine(tiny, coarse[:2], seed=2**64 - 1, source=source, shared=False)  # frame 1 wraps to seed 0
    assert torch.isfinite(top).all()


def test_shared_noise_is_really_shared(tiny):
    """Two identical coarse frames refine to identical frames with shared noise (their conditions are equal),
    and to different frames when every frame draws its own noise."""
    coarse = frames(3, 3, 64)
    coarse[2] = coarse[0]
    shared = refine(tiny, coarse, source=frames(1, 4, 64))
    torch.testing.assert_close(shared[2], shared[0], atol=1e-6, rtol=0)
    assert (shared[1] - shared[0]).abs().max() > 1e-3
    own = refine(tiny, coarse, source=frames(1, 4, 64), shared=False)
    assert (own[2] - own[0]).abs().max() > 0.05


def test_direct_mode_and_driving_attributes(tiny):
    """No source: the first coarse frame is the source (upstream's 'direct' pattern). attribute_from=driving
    measures the driving frames instead, and says so when they are missing or miscounted."""
    coarse = frames(2, 5, 64)
    direct = refine(tiny, coarse)
    assert torch.equal(direct, refine(tiny, coarse, source=coarse[:1]))
    assert not torch.equal(refine(tiny, coarse, attribute_from="driving", driving=frames(2, 6)), direct)
    with pytest.raises(ValueError, match="needs the driving frames"):
        refine(tiny, coarse, attribute_from="driving")
    with pytest.raises(ValueError, match="1 driving frame"):
        refine(tiny, coarse, attribute_from="driving", driving=coarse[:1])
    with pytest.raises(ValueError, match="must be one image, got a batch of 2"):
        refine(tiny, coarse, source=coarse)


@pytest.mark.parametrize("kind", ["facevid", "fomm"])
def test_coarse_animate_chunks_equal_one_batch(tiny, kind, monkeypatch):
    """Relative motion is measured against the video's first driving frame in every chunk (not the chunk's
    first), so chunks change nothing; absolute passes no reference. Output: the generator's size."""
    from faceadapter_suite.animate import video

    seen = []
    name = "animate" if kind == "facevid" else "fomm_animate"
    real = getattr(video, name)

    def spy(nets, state, driving, *, relative, reference):
        seen.append((relative, reference))
        return real(nets, state, driving, relative=relative, reference=reference)

    monkeypatch.setattr(video, name, spy)
    source, driving = frames(1, 10), frames(5, 11)
    whole = coarse_animate(tiny[kind], source, driving)
    assert whole.shape == (5, 64, 64, 3) and float(whole.min()) >= 0 and float(whole.max()) <= 1
    torch.testing.assert_close(coarse_animate(tiny[kind], source, driving, per_batch=2), whole, atol=2e-5, rtol=0)
    first = video.to_frames(driving[:1], 64)
    assert len(seen) == 4 and all(rel and torch.equal(ref, first) for rel, ref in seen)
    coarse_animate(tiny[kind], source, driving, "absolute")
    assert seen[-1] == (False, None)


def test_refine_progress_counts_steps_and_cancel_stops_within_one_step(tiny, monkeypatch):
    """The bar advances once per denoiser call (chunks x steps); Cancel raised at step 4 of 2x3 stops there."""
    calls, ticks = [], []
    real_sample = renderer_mod.sample

    def counting_denoiser(model, condition, noise, **kw):
        denoiser = model.diffusion.denoise_fn
        original = denoiser.forward
        denoiser.forward = lambda *a, **k: (calls.append(1), original(*a, **k))[1]
        try:
            return real_sample(model, condition, noise, **kw)
        finally:
            del denoiser.forward

    class Interrupted(Exception):
        pass

    def check():
        ticks.append(1)
        if len(ticks) == 5:  # the bar's own check + 4 step updates
            raise Interrupted

    monkeypatch.setattr(renderer_mod, "sample", counting_denoiser)
    monkeypatch.setattr(comfy_bridge, "check_interrupt", check)
    with pytest.raises(Interrupted):
        refine(tiny, frames(4, 12, 64), per_batch=2, source=frames(1, 13, 64))
    assert len(calls) == 4, "stopped right after the step during which Cancel was pressed"


def test_loaders_name_the_missing_file(tmp_path, monkeypatch):
    """Nothing installed: dropdowns default to 'not installed', loaders raise naming path, folder kind and
    source; IS_CHANGED is stable."""
    monkeypatch.setattr(comfy_bridge, "_standalone_models_dir", tmp_path)
    cases = [(nodes.FaceAdapterLoadFADM, {"diffusion_file": None}, "diffusion.pth"),
             (nodes.FaceAdapterLoadCoarseGenerator, {"generator": "fomm", "facevid_file": None, "fomm_file": None},
              "FOMM.pth"),
             (nodes.FaceAdapterLoadCoarseGenerator, {"generator": "face-vid2vid", "facevid_file": None,
                                                     "fomm_file": None}, "Facevid.pth"),
             (nodes.FaceAdapterLoadDECA, {"deca_file": None}, "deca_model.tar")]
    for cls, values, name in cases:
        required = cls.INPUT_TYPES()["required"]
        for key in values:
            if values[key] is None:
                choices, options = required[key]
                assert choices[0].endswith((".pth", ".tar")) and options["default"].startswith("(not installed: ")
                values[key] = options["default"]
        assert cls.IS_CHANGED(**values) == cls.IS_CHANGED(**values)
        with pytest.raises(MissingModelError) as err:
            cls().load(**values)
        text = str(err.value)
        assert str(tmp_path / "fadm" / name) in text and "'fadm'" in text and "zengbohan0217/FADM" in text


def test_loaders_reject_a_file_of_another_network(tiny, tmp_path, monkeypatch):
    """The loaders load at once, so a wrong file fails at the loader (here: FOMM.pth picked as diffusion.pth)."""
    monkeypatch.setattr(comfy_bridge, "_standalone_models_dir", tmp_path)
    (tmp_path / "fadm").mkdir()
    (tmp_path / "fadm" / "diffusion.pth").write_bytes(tiny["fomm"].path.read_bytes())
    with pytest.raises(Exception, match="diffusion.pth"):
        nodes.FaceAdapterLoadFADM().load("diffusion.pth")


def test_eight_frame_video_of_real_photo_crops_end_to_end(tiny):
    """Grace Hopper's VoxCeleb crop driven by 8 frames of the astronaut under a camera move (shot crop):
    Coarse Animate -> FADM Refine -> Repeat Source For Frames -> Paste Faces puts 8 different faces into 8
    copies of the source photo, and leaves the photo alone far from the face."""
    pytest.importorskip("mediapipe")
    from test_face_support import detected, mp_analyzer, photo, photo_image, similarity_video

    from faceadapter_suite.core.images import uint8_to_image
    from faceadapter_suite.face.records import FaceBatch, FrameFaces
    from faceadapter_suite.nodes import face_analysis as face_nodes

    source_image = photo_image("grace_hopper")
    found = detected("grace_hopper")
    source_faces = FaceBatch(frames=(FrameFaces(found.height, found.width, found.faces[:1]),))
    source_crop, source_tf, _ = face_nodes.FaceAdapterCropFaces().crop(source_image, source_faces, "voxceleb_256",
                                                                       256, 0.81)
    video = similarity_video(photo("astronaut"), frames=8, shift=6.0)
    seen = [mp_analyzer().detect(f) for f in video]
    driving_faces = FaceBatch(frames=tuple(FrameFaces(f.height, f.width, f.faces[:1]) for f in seen))
    driving_crops, _, _ = face_nodes.FaceAdapterCropFaces().crop(uint8_to_image(np.stack(video)), driving_faces,
                                                                 "voxceleb_256_shot", 256, 0.81)
    assert source_crop.shape == (1, 256, 256, 3) and driving_crops.shape == (8, 256, 256, 3)
    coarse = coarse_animate(tiny["facevid"], source_crop, driving_crops, "absolute", per_batch=4)
    refined = refine(tiny, coarse, source=source_crop, per_batch=4)
    assert coarse.shape == (8, 64, 64, 3) and refined.shape == (8, 32, 32, 3) and torch.isfinite(refined).all()
    image, transforms = nodes.FaceAdapterRepeatSourceForFrames().repeat(source_image, source_tf, refined)
    assert image.shape == (8, *source_image.shape[1:]) and image.untyped_storage().data_ptr() == \
        source_image.untyped_storage().data_ptr(), "the photo is repeated as a view, not copied"
    pasted, mask = face_nodes.FaceAdapterPasteFaces().paste(image, refined, transforms, 8, "off", True)
    assert pasted.shape == image.shape and mask.shape == image.shape[:3]
    inside = mask > 0.99
    assert inside.any(dim=(1, 2)).all(), "every frame got its face"
    for k in range(8):
        assert (pasted[k][inside[k]] - source_image[0][inside[k]]).abs().mean() > 0.02
        outside = mask[k] == 0
        torch.testing.assert_close(pasted[k][outside], source_image[0][outside], atol=1e-6, rtol=0)
