"""Tier 2: the headless client, run as a subprocess (``python -m client``) against real ComfyUI servers.

- the spatial reenact template (UI format, converted with the live /object_info) with uploaded sample
  photos and --set overrides: exit 0, the saved images downloaded with the right sizes, and the PNGs
  carry the UI workflow (extra_pnginfo) and the overridden prompt;
- an override that makes a node raise: non-zero exit naming the node and the message; a prompt the
  server refuses (invalid_prompt): non-zero exit naming the node and the input;
- every API twin, as shipped, reaches success through the client with the sample photos uploaded;
- two servers (two ComfyUI processes): a 2-image batch spread round-robin / least-busy, one prompt on each;
- the captured stock /object_info and the twins agree with the live /object_info; --frames uploads.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from test_workflows import NAMES, SAMPLE_IMAGE

from .comfy_server import ComfyServer

TEMPLATE = REPO / "workflows" / "faceadapter_spatial_condition_reenact.json"


def url(server: ComfyServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def client(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "client", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    import cv2

    from faceadapter_suite.face.sample_photos import load_sample

    folder = tmp_path_factory.mktemp("client_photos")
    out = {}
    for sample in ("grace_hopper", "astronaut", "t1"):
        out[sample] = folder / f"client_{sample}.png"
        cv2.imwrite(str(out[sample]), load_sample(sample)[:, :, ::-1])
    return out


def test_client_runs_the_ui_template(comfy, photos, tmp_path):
    from PIL import Image

    out = tmp_path / "out"
    result = client("run", str(TEMPLATE), "--server", url(comfy), "--out", str(out),
                    "--set", f"Source: identity.image={photos['grace_hopper']}",
                    "--set", f"Target: pose and expression.image={photos['astronaut']}",
                    "--set", "Control image.filename_prefix=client/control",
                    "--set", "Pasted into the source image.filename_prefix=client/pasted",
                    "--set", "Select Face (source).mode=index", "--set", "Select Face (source).index=0")
    assert result.returncode == 0, result.stderr[-3000:]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert files == ["client/control_00001_.png", "client/pasted_00001_.png"], files
    assert sorted(result.stdout.split()) == sorted(str(out / f) for f in files)  # paths on stdout
    assert "Project 3D Landmarks" in result.stderr and "success" in result.stderr  # the progress lines
    control, pasted = (Image.open(out / f) for f in files)
    assert control.size == (512, 512)
    source = Image.open(photos["grace_hopper"])
    assert pasted.size == source.size  # a reenactment pastes back into the source image
    assert json.loads(pasted.info["workflow"]) == json.loads(TEMPLATE.read_text())  # extra_pnginfo
    sent = json.loads(pasted.info["prompt"])
    assert sent["6"]["inputs"]["mode"] == "index" and sent["1"]["inputs"]["image"] == photos["grace_hopper"].name
    diff = np.abs(np.asarray(pasted.convert("RGB"), np.int16) - np.asarray(source.convert("RGB"), np.int16))
    assert diff.max() > 0 and (diff.sum(-1) == 0).mean() > 0.2, "a face pasted in, the rest (about 40% here) untouched"


@pytest.mark.parametrize("name", NAMES)
def test_every_api_twin_runs_through_the_client(comfy, tmp_path, name):
    """API format as shipped: the sample photos uploaded under the names the twin uses (--upload)."""
    import cv2

    from faceadapter_suite.face.sample_photos import load_sample

    twin = REPO / "workflows" / "api" / f"{name}.json"
    prompt = json.loads(twin.read_text())
    uploads = []
    for node in prompt.values():
        if node["class_type"] == "LoadImage":
            path = tmp_path / node["inputs"]["image"]
            cv2.imwrite(str(path), load_sample(SAMPLE_IMAGE.match(path.name)["sample"])[:, :, ::-1])
            uploads += ["--upload", str(path)]
    quick = [arg for nid, node in prompt.items() if "steps" in node["inputs"] for arg in ("--set", f"{nid}.steps=1")]
    out = tmp_path / "out"
    result = client("run", str(twin), "--server", url(comfy), "--out", str(out), "--quiet", *uploads, *quick)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = [p.relative_to(out).as_posix() for p in out.rglob("*.png")]
    for node in prompt.values():
        if node["class_type"] == "SaveImage":
            prefix = node["inputs"]["filename_prefix"]
            assert any(f.startswith(prefix + "_") for f in saved), (prefix, saved)


def test_client_exits_nonzero_on_execution_error(comfy, photos, tmp_path):
    result = client("run", str(TEMPLATE), "--server", url(comfy), "--out", str(tmp_path), "--quiet",
                    "--set", f"Source: identity.image={photos['t1']}",
                    "--set", f"Target: pose and expression.image={photos['astronaut']}",
                    "--set", "Select Face (source).mode=index", "--set", "Select Face (source).index=7",
                    "--set", "Select Face (source).on_missing=error")
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
    assert "execution_error in node 6 (FaceAdapterSelectFace, 'Select Face (source)'): NoFaceError:" in result.stderr
    assert "no face matching 'index'" in result.stderr
    assert not list(tmp_path.rglob("*.png")), "nothing downloaded for a failed prompt"


def test_client_exits_nonzero_on_invalid_prompt(comfy, tmp_path):
    prompt = json.loads((REPO / "workflows" / "api" / TEMPLATE.name).read_text())
    prompt["3"]["inputs"]["backend"] = "no_such_backend"
    path = tmp_path / "bad_api.json"
    path.write_text(json.dumps(prompt))
    result = client("run", str(path), "--server", url(comfy), "--out", str(tmp_path), "--quiet")
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
    assert "invalid_prompt: prompt_outputs_failed_validation" in result.stderr
    assert "node 3 (FaceAdapterLoadFaceAnalysis, 'Load Face Analysis (FaceAdapter)') input 'backend'" in result.stderr


@pytest.fixture(scope="module")
def second_comfy(tmp_path_factory, configured_faceadapter_dir):
    server = ComfyServer(Path(os.environ["COMFYUI_PATH"]), os.environ["COMFYUI_PYTHON"],
                         tmp_path_factory.mktemp("comfyui_second"), models={"faceadapter": configured_faceadapter_dir})
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("schedule", ["round-robin", "least-busy"])
def test_batch_spread_over_two_servers(comfy, second_comfy, photos, tmp_path, schedule):
    batch = tmp_path / "batch"
    batch.mkdir()
    for sample in ("grace_hopper", "t1"):
        (batch / f"{sample}.png").write_bytes(photos[sample].read_bytes())
    before = {s.port: set(s.get("/history")) for s in (comfy, second_comfy)}
    out = tmp_path / "out"
    result = client("run", str(TEMPLATE), "--server", url(comfy), "--server", url(second_comfy),
                    "--schedule", schedule, "--out", str(out), "--quiet",
                    "--batch-dir", str(batch), "--batch-input", "Source: identity.image",
                    "--set", f"Target: pose and expression.image={photos['astronaut']}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2/2 prompts succeeded" in result.stderr
    ran = {s.port: set(s.get("/history")) - before[s.port] for s in (comfy, second_comfy)}
    assert [len(v) for v in ran.values()] == [1, 1], ran  # one prompt on each server
    for sample in ("grace_hopper", "t1"):
        saved = sorted(p.name for p in (out / sample).rglob("*.png"))
        assert len(saved) == 2 and any(n.startswith("pasted_reenact") for n in saved), (sample, saved)


# Stock inputs whose options are the files in a folder (input/, models/...): the capture's server had none
# (VAELoader keeps its built-in "pixel_space"); this session's server lists the random models.
FILE_DROPDOWNS = {"image", "ckpt_name", "vae_name", "control_net_name", "clip_name", "lora_name", "unet_name"}


def test_live_object_info_converts_every_template_to_its_twin(comfy):
    """The twins are written offline (pack classes + captured stock nodes); the live /object_info agrees."""
    from client_module import CLIENT
    from offline_object_info import stock_object_info

    live = comfy.get("/object_info")
    for name, captured in stock_object_info().items():
        served = json.loads(json.dumps(live[name]))
        for section, inputs in captured["input"].items():  # file dropdowns list this server's folders
            for key in FILE_DROPDOWNS & set(inputs):
                listed = served["input"][section][key][0]
                assert set(inputs[key][0]) <= set(listed), (name, key, listed)
                served["input"][section][key][0] = inputs[key][0]
        assert served == captured, f"{name}: rerun scripts/capture_client_fixtures.py"
    for path in sorted((REPO / "workflows").glob("*.json")):
        twin = json.loads((REPO / "workflows" / "api" / path.name).read_text())
        assert CLIENT.api_convert.ui_to_api(json.loads(path.read_text()), live) == twin, path.name


def test_frames_folder_is_uploaded_into_a_subfolder(comfy, photos, tmp_path):
    """--frames uploads every frame into input/<folder name>/, where LoadImage finds them by sub-path;
    --previews downloads the preview images as well."""
    frames = tmp_path / "clip_frames"
    frames.mkdir()
    for i, sample in enumerate(("astronaut", "t1", "grace_hopper")):
        (frames / f"frame_{i:03d}.png").write_bytes(photos[sample].read_bytes())
    out = tmp_path / "out"
    result = client("run", str(TEMPLATE), "--server", url(comfy), "--out", str(out), "--quiet", "--previews",
                    "--frames", str(frames), "--set", "Source: identity.image=clip_frames/frame_002.png",
                    "--set", "Target: pose and expression.image=clip_frames/frame_000.png")
    assert result.returncode == 0, result.stderr[-3000:]
    previews = list(out.glob("ComfyUI_temp_*.png"))  # --previews: the PreviewImage files too
    assert len(previews) == sum(n["class_type"] == "PreviewImage" for n in json.loads(
        (REPO / "workflows" / "api" / TEMPLATE.name).read_text()).values()), previews
    for frame in sorted(frames.iterdir()):  # every frame is on the server, byte for byte
        assert comfy.view({"filename": frame.name, "subfolder": "clip_frames", "type": "input"}) == frame.read_bytes()
