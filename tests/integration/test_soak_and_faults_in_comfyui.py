"""Tier 2: soak and fault tests in a real ComfyUI, on the cheapest real graph (mediapipe, no generation models).

One server of its own (a bare models folder the fault tests write bad files into), so nothing here depends
on the 6.7 GB random models. Measured numbers are printed (run with -s to see them):

- soak: 100 prompts of the spatial-condition template back to back over the API, each with other inputs
  (8 photos, source and target changing every prompt, a crop ratio per prompt), all succeed, server RSS after
  the last <= RSS after the 10th + 10 %;
- interrupt mid-batch (Detect Faces on 200 frames): Cancel stops within one frame (plus what is in flight on
  the socket), the next prompt succeeds, the face-analysis loader is not run (loaded) again;
- bad model files (a corrupted, a missing, and a code-carrying D3DFR .pth): the pack's clear error, the
  pickle's code never runs (a marker directory it would create stays absent), the next prompt succeeds;
- 64 frames of which 10 have no face: the batch finishes and Select Face flags exactly those 10;
- a 4096² photo (source, pasted back at 4096²) and a 16-bit PNG (target, its face found) through the template:
  they finish, with the server's peak RSS at most 8 float32 copies of the 4096² frame (1.5 GB) over idle.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from .comfy_server import ComfyServer

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "workflows" / "api" / "faceadapter_spatial_condition_reenact.json"
SOAK_PROMPTS = 100
RSS_GROWTH_LIMIT = 0.10
LARGE_SIDE = 4096
FRAME_MB = LARGE_SIDE * LARGE_SIDE * 3 * 4 / 2**20  # one float32 IMAGE of the 4096² photo: 192 MB
LARGE_PEAK_LIMIT_MB = 8 * FRAME_MB  # the stated bound: peak RSS over the idle server <= 8 float32 copies (1.5 GB)
FACELESS = (3, 9, 14, 20, 27, 33, 41, 48, 55, 62)
SOURCE, TARGET, RECONSTRUCTOR, PROJECT = "1", "2", "8", "9"  # node ids in the template
TARGET_SELECT, PASTED_SAVE = "7", "19"


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path("/proc/self/status").exists():
        pytest.skip("RSS is read from /proc (Linux)")
    work = tmp_path_factory.mktemp("comfyui_soak")
    srv = ComfyServer(Path(os.environ["COMFYUI_PATH"]), os.environ["COMFYUI_PYTHON"], work)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def photos(server, tmp_path_factory):
    """Eight uploaded photos: the four sample photos, three mirror images and one rescaled copy (mediapipe finds
    no face in Tom Hanks' 112 px photo mirrored or rescaled, so it appears once)."""
    import cv2

    from faceadapter_suite.face.sample_photos import SAMPLE_NAMES, load_sample

    folder = tmp_path_factory.mktemp("soak_photos")
    variants = {name: load_sample(name) for name in SAMPLE_NAMES}
    for name in ("astronaut", "grace_hopper", "t1"):
        variants[f"{name}_mirrored"] = np.ascontiguousarray(variants[name][:, ::-1])
    variants["grace_hopper_larger"] = cv2.resize(variants["grace_hopper"], None, fx=1.25, fy=1.25,
                                                 interpolation=cv2.INTER_CUBIC)
    names = []
    for name, rgb in variants.items():
        path = folder / f"soak_{name}.png"
        cv2.imwrite(str(path), rgb[:, :, ::-1])
        names.append(server.upload_image(path))
    return names


def template(source: str, target: str, crop_ratio: float = 0.81) -> dict:
    prompt = json.loads(TEMPLATE.read_text())
    roles = {SOURCE: "LoadImage", TARGET: "LoadImage", RECONSTRUCTOR: "FaceAdapterLoad3DReconstructor",
             PROJECT: "FaceAdapterProject3DLandmarks", TARGET_SELECT: "FaceAdapterSelectFace", PASTED_SAVE: "SaveImage"}
    assert {k: prompt[k]["class_type"] for k in roles} == roles, "the template's node ids changed"
    prompt[SOURCE]["inputs"]["image"], prompt[TARGET]["inputs"]["image"] = source, target
    prompt[PROJECT]["inputs"]["crop_ratio"] = round(crop_ratio, 4)
    return prompt


def ok(result) -> None:
    error = result.error() or {}
    assert result.succeeded, (error.get("node_type"), error.get("exception_message"))


def test_soak_100_prompts_rss_flat(server, photos):
    pid, rss, times = server._proc.pid, [], []
    for i in range(SOAK_PROMPTS):
        source, target = photos[i % len(photos)], photos[(3 * i + 1) % len(photos)]
        start = time.perf_counter()
        result = server.run(template(source, target, 0.70 + 0.004 * (i % 50)), timeout=120)
        times.append(time.perf_counter() - start)
        ok(result)
        assert PROJECT in result.executed_nodes, f"prompt {i} was answered from the cache"
        rss.append(rss_mb(pid))
    growth = rss[-1] / rss[9] - 1.0
    print(f"\nsoak: {SOAK_PROMPTS} prompts in {sum(times):.1f} s (median {np.median(times) * 1e3:.0f} ms); server RSS "
          f"after #10 {rss[9]:.0f} MB, after #{SOAK_PROMPTS} {rss[-1]:.0f} MB ({100 * growth:+.1f} %), "
          f"min {min(rss[9:]):.0f} / max {max(rss[9:]):.0f} MB")
    assert growth <= RSS_GROWTH_LIMIT, rss


def detect_batch_prompt(photo: str, frames: int) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": photo}},
        "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": frames}},
        "3": {"class_type": "FaceAdapterLoadFaceAnalysis", "inputs": template(photo, photo)["3"]["inputs"]},
        "4": {"class_type": "FaceAdapterDetectFaces", "inputs": {"image": ["2", 0], "analysis": ["3", 0],
              "tracking": True, "smoothing": "off", "min_cutoff": 1.0, "beta": 0.5, "preview": False}},
        "5": {"class_type": "FaceAdapterSelectFace", "inputs": {"faces": ["4", 0], "mode": "largest",
              "order": "left_to_right", "index": 0, "follow_track": True, "on_missing": "pass_through",
              "similarity_threshold": -1.0}},
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 1]}},
    }


def test_interrupt_mid_batch_stops_within_a_frame(server, photos):
    ready_lines = server.log().count("face analysis 'mediapipe' ready")
    seen: dict[str, float] = {}

    def on_message(msg):
        if msg["type"] == "progress" and msg["data"].get("node") == "4":
            seen["last"] = msg["data"]["value"]
            if msg["data"]["value"] >= 12 and "at_interrupt" not in seen:
                seen["at_interrupt"] = msg["data"]["value"]
                seen["t"] = time.perf_counter()
                server.post("/interrupt", {})

    frames = 200
    result = server.run(detect_batch_prompt(photos[0], frames), timeout=300, on_message=on_message)
    stopped = time.perf_counter() - seen["t"]
    assert result.of_type("execution_interrupted"), result.messages[-3:]
    extra = seen["last"] - seen["at_interrupt"]
    print(f"\ninterrupt: Cancel sent at frame {seen['at_interrupt']}/{frames}, last frame reported "
          f"{seen['last']}, interrupted message {stopped * 1e3:.0f} ms after Cancel")
    assert extra <= 3, "Cancel must stop Detect Faces at its next frame (plus frames already on the socket)"
    assert seen["last"] < frames
    nxt = server.run(detect_batch_prompt(photos[0], 8), timeout=120)
    ok(nxt)
    assert "3" in nxt.cached_nodes, "the face-analysis loader is reused, not run again"
    assert server.log().count("face analysis 'mediapipe' ready") - ready_lines <= 1, "the analyzer loaded twice"


class _RunsCode:
    """Pickles into a call of os.mkdir: loading the file with plain torch.load would create the marker."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_bad_model_files_fail_clearly_and_the_server_goes_on(server, photos, tmp_path):
    import torch

    third = server.models_dir / "faceadapter" / "third_party"
    third.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "tests" / "data" / "reference" / "parity" / "bfm_synthetic_front.mat",
                third / "BFM_model_front.mat")  # a real BFM file, so only the D3DFR file is at fault
    d3dfr = third / "d3dfr_res50_nofc.pth"
    marker = tmp_path / "pickle_code_ran"

    def corrupted():
        d3dfr.write_bytes(b"PK\x03\x04" + os.urandom(4096))

    def missing():
        d3dfr.unlink(missing_ok=True)

    def runs_code():
        torch.save({"conv1.weight": torch.zeros(1), "payload": _RunsCode(marker)}, d3dfr,
                   pickle_protocol=pickle.DEFAULT_PROTOCOL)

    cases = ((corrupted, "is corrupt"), (missing, "missing model"), (runs_code, "refused to load"))
    for k, (make, expected) in enumerate(cases):
        make()
        bad = template(photos[1], photos[0], 0.80 + 0.01 * k)
        bad[RECONSTRUCTOR]["inputs"]["method"] = "d3dfr_bfm (upstream, non-commercial)"
        result = server.run(bad, timeout=120)
        error = result.error()
        assert error is not None and error["node_id"] == RECONSTRUCTOR, result.messages[-2:]
        assert expected in error["exception_message"] and "d3dfr_res50_nofc.pth" in error["exception_message"]
        assert not marker.exists(), "the pickle's code ran"
        ok(server.run(template(photos[1], photos[0], 0.75 + 0.01 * k), timeout=120))
        print(f"\n{make.__name__}: {error['exception_message'].splitlines()[0]}")


def test_faceless_frames_finish_and_are_flagged(server, tmp_path):
    """A 64-frame multi-page TIFF (LoadImage reads every page) with 10 frames that hold no face."""
    import cv2
    from PIL import Image

    from faceadapter_suite.face.sample_photos import load_sample

    face = cv2.resize(load_sample("astronaut"), (256, 256), interpolation=cv2.INTER_AREA)
    ramp = np.tile(np.linspace(20, 200, 256, dtype=np.uint8)[None, :, None], (256, 1, 3))
    frames = [Image.fromarray(ramp if i in FACELESS else np.roll(face, 2 * (i % 5), axis=1)) for i in range(64)]
    path = tmp_path / "faceless64.tiff"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    name = server.upload_image(path)
    prompt = detect_batch_prompt(name, 1)
    prompt["4"]["inputs"]["image"] = ["1", 0]
    del prompt["2"]
    prompt["7"] = {"class_type": "FaceAdapterCropFaces", "inputs": {"image": ["1", 0], "faces": ["5", 0],
                   "crop": "faceadapter_512", "size": 512, "crop_ratio": 0.81}}
    prompt["8"] = {"class_type": "FaceAdapterPasteFaces", "inputs": {"image": ["1", 0], "crops": ["7", 0],
                   "transforms": ["7", 1], "feather": 0, "color_match": "off", "preserve_unchanged": True}}
    prompt["9"] = {"class_type": "PreviewAny", "inputs": {"source": ["8", 0]}}
    result = server.run(prompt, timeout=300)
    ok(result)
    report = server.history(result.prompt_id)["outputs"]["6"]["text"][0]
    flagged = tuple(int(line.split()[1].rstrip(":")) for line in report.splitlines() if "missing" in line)
    assert report.splitlines()[0] == "54/64 frames have the chosen face"
    assert flagged == FACELESS


def test_large_and_16_bit_images_finish_within_a_memory_bound(server, photos, tmp_path):
    import cv2
    from PIL import Image

    from faceadapter_suite.face.sample_photos import load_sample

    big = cv2.resize(load_sample("grace_hopper"), (LARGE_SIDE, LARGE_SIDE), interpolation=cv2.INTER_CUBIC)
    big_path = tmp_path / "large_4096.png"
    cv2.imwrite(str(big_path), big[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    deep_path = tmp_path / "astronaut_16bit.png"
    cv2.imwrite(str(deep_path), load_sample("astronaut")[:, :, ::-1].astype(np.uint16) * 257)
    assert cv2.imread(str(deep_path), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    big_name, deep_name = server.upload_image(big_path), server.upload_image(deep_path)
    pid = server._proc.pid
    base = rss_mb(pid)
    reset_peak(pid)
    start = time.perf_counter()
    prompt = template(big_name, deep_name, 0.81)
    prompt["90"] = {"class_type": "PreviewAny", "inputs": {"source": [TARGET_SELECT, 1]}}
    result = server.run(prompt, timeout=300)
    seconds = time.perf_counter() - start
    peak = rss_mb(pid, "VmHWM") - base
    ok(result)
    print(f"\nlarge: 4096² source + 16-bit PNG target in {seconds:.1f} s, peak RSS +{peak:.0f} MB over the idle "
          f"server ({base:.0f} MB); limit +{LARGE_PEAK_LIMIT_MB:.0f} MB")
    assert peak <= LARGE_PEAK_LIMIT_MB
    outputs = server.history(result.prompt_id)["outputs"]
    assert outputs["90"]["text"][0].splitlines()[0] == "1/1 frames have the chosen face", "16-bit PNG: no face"
    saved = outputs[PASTED_SAVE]["images"][0]
    with Image.open(server.workdir / saved["type"] / saved["subfolder"] / saved["filename"]) as pasted:
        assert pasted.size == (LARGE_SIDE, LARGE_SIDE), "the face is pasted back into the full 4096² frame"
