"""Tier 2: the metrics nodes' acceptance in a real ComfyUI on the sample photos.

- identity similarity of a photo with itself ≈ 1, with a recognizer present: the session server's full-size
  ArcFace IResNet-100 file (random weights from the model maker: no real weights can be fetched here, so a
  self score of 1 proves that detection, alignment, embedding and pairing are the same on both sides; the
  other-person pairs only show the score is not a constant);
- the flicker of a static batch ≈ 0, while a 3 px/frame pan of a photo changes inside and outside the face
  (and, being smooth, has little landmark jitter);
- the pose error of a face against itself ≈ 0, and clearly not 0 against another person.
"""
from __future__ import annotations

import numpy as np

from .comfy_server import upload_samples

PHOTOS = ("astronaut", "grace_hopper", "tom_hanks")
STILL_FRAMES = 6
PAN_PX, PAN_FRAMES = 3, 6


def _value(outputs: dict, node: str) -> float:
    return float(outputs[node]["text"][0])


def _preview(prompt: dict, node: str, source: list) -> None:
    prompt[node] = {"class_type": "PreviewAny", "inputs": {"source": source}}


def acceptance_prompt(names: list[str], pan: str) -> dict:
    """Per photo: identity and pose against itself, a still clip's flicker; identity and pose of each photo
    against the next one; the flicker of a pan. Every FLOAT goes to a Preview Any (node ids name them)."""
    prompt: dict = {"an": {"class_type": "FaceAdapterLoadFaceAnalysis", "inputs": {
        "backend": "mediapipe", "min_score": 0.5, "max_faces": 10, "landmarks": "auto", "recognition": False,
        "insightface_model": "antelopev2", "det_size": 640, "mediapipe_detector": "full_range", "device": "auto"}}}
    for i, name in enumerate(names):
        prompt[f"img{i}"] = {"class_type": "LoadImage", "inputs": {"image": name}}
    for i in range(len(names)):
        for tag, other in (("self", i), ("other", (i + 1) % len(names))):
            prompt[f"id_{tag}{i}"] = {"class_type": "FaceAdapterIdentitySimilarity", "inputs": {
                "image_a": [f"img{i}", 0], "image_b": [f"img{other}", 0], "analysis": ["an", 0],
                "recognizer": "third_party/insightface_glint360k.pth"}}
            _preview(prompt, f"sim_{tag}{i}", [f"id_{tag}{i}", 2])
            prompt[f"pose_{tag}{i}"] = {"class_type": "FaceAdapterExpressionPoseError", "inputs": {
                "result": [f"img{i}", 0], "driving": [f"img{other}", 0], "analysis": ["an", 0]}}
            _preview(prompt, f"deg_{tag}{i}", [f"pose_{tag}{i}", 2])
            _preview(prompt, f"nme_{tag}{i}", [f"pose_{tag}{i}", 3])
        prompt[f"still{i}"] = {"class_type": "RepeatImageBatch", "inputs": {"image": [f"img{i}", 0],
                                                                             "amount": STILL_FRAMES}}
        prompt[f"fl{i}"] = {"class_type": "FaceAdapterTemporalFlicker", "inputs": {
            "frames": [f"still{i}", 0], "analysis": ["an", 0]}}
        for out, what in ((2, "in"), (3, "out"), (4, "jitter")):
            _preview(prompt, f"fl_{what}{i}", [f"fl{i}", out])
    prompt["panimg"] = {"class_type": "LoadImage", "inputs": {"image": pan}}
    prompt["pan"] = {"class_type": "FaceAdapterTemporalFlicker", "inputs": {"frames": ["panimg", 0],
                                                                            "analysis": ["an", 0]}}
    for out, what in ((2, "in"), (3, "out"), (4, "jitter")):
        _preview(prompt, f"pan_{what}", ["pan", out])
    return prompt


def test_metrics_acceptance_on_sample_photos(comfy, tmp_path):
    from PIL import Image

    from faceadapter_suite.face.sample_photos import load_sample

    names = upload_samples(comfy, tmp_path, "metrics_", PHOTOS)
    face = load_sample("astronaut")
    frames = [Image.fromarray(np.ascontiguousarray(np.roll(face, PAN_PX * k, axis=1))) for k in range(PAN_FRAMES)]
    frames[0].save(tmp_path / "metrics_pan.tiff", save_all=True, append_images=frames[1:])  # LoadImage: every page
    pan = comfy.upload_image(tmp_path / "metrics_pan.tiff")
    result = comfy.run(acceptance_prompt(names, pan), timeout=600)
    assert result.succeeded, (result.error(), comfy.log()[-3000:])
    out = comfy.history(result.prompt_id)["outputs"]
    rows = []
    for i, photo in enumerate(PHOTOS):
        row = {k: _value(out, f"{k}{i}") for k in ("sim_self", "sim_other", "deg_self", "deg_other", "nme_self",
                                                    "nme_other", "fl_in", "fl_out", "fl_jitter")}
        rows.append(row)
        print(f"\n{photo}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()))
        assert row["sim_self"] > 0.999, (photo, row)
        assert row["deg_self"] < 1e-3 and row["nme_self"] < 1e-4, (photo, row)
        assert max(row["fl_in"], row["fl_out"], row["fl_jitter"]) < 1e-6, (photo, row)
        assert row["deg_other"] > 1.0 and row["nme_other"] > 0.02, (photo, row)  # a measure, not a constant
    assert max(r["sim_other"] for r in rows) < min(r["sim_self"] for r in rows) - 1e-3
    moving = {k: _value(out, f"pan_{k}") for k in ("in", "out", "jitter")}
    print(f"pan {PAN_PX} px/frame: change in {moving['in']:.3g}, out {moving['out']:.3g}, "
          f"jitter {moving['jitter']:.3g} px")
    assert moving["in"] > 1.0 and moving["out"] > 1.0 and moving["jitter"] < PAN_PX / 2, moving
