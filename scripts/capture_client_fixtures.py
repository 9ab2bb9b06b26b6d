"""Capture the headless client's tier-1 fixtures from a real ComfyUI (run after a ComfyUI upgrade).

Starts the ComfyUI at COMFYUI_PATH (with COMFYUI_PYTHON) through the tier-2 harness, then writes
tests/data/client/:

- object_info_stock.json: ``/object_info`` of the stock nodes the workflows use, plus ImageBatch, KSampler /
  KSamplerAdvanced (seed widgets with control_after_generate) and ImageScale (combos);
- messages_success.json / messages_execution_error.json: the websocket messages of the spatial
  reenact template queued as is, and with Select Face asked for a 8th face that is not there
  (on_missing=error): the message sequences the client's exit codes are tested on;
- invalid_prompt.json: ``POST /prompt``'s 400 reply for a combo value the node does not offer.

    COMFYUI_PATH=/work/ComfyUI COMFYUI_PYTHON=.venv/bin/python .venv/bin/python scripts/capture_client_fixtures.py
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from standalone import load_pack  # noqa: E402
from client_module import CLIENT  # noqa: E402
from integration.comfy_server import ComfyServer, upload_samples  # noqa: E402
from offline_object_info import DATA, STOCK_OBJECT_INFO  # noqa: E402

PACK = load_pack()  # imports the pack as faceadapter_suite
EXTRA_STOCK = ("KSampler", "KSamplerAdvanced", "ImageScale", "ImageBatch", "CheckpointLoaderSimple", "LoraLoader",
               "VAELoader", "VAEDecode", "CLIPTextEncode", "UNETLoader", "ControlNetLoader", "CLIPVisionLoader")
TEMPLATE = REPO / "workflows" / "api" / "faceadapter_spatial_condition_reenact.json"


def _post_raw(server: ComfyServer, path: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", json.dumps(payload).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = ComfyServer(Path(os.environ["COMFYUI_PATH"]), os.environ["COMFYUI_PYTHON"], Path(tmp)).start()
        try:
            info = server.get("/object_info")
            stock = {name for p in (REPO / "workflows").glob("*.json") for name in CLIENT.api_convert.used_classes(json.loads(p.read_text()))
                     if name not in PACK.NODE_CLASS_MAPPINGS} | set(EXTRA_STOCK)
            STOCK_OBJECT_INFO.write_text(json.dumps({k: info[k] for k in sorted(stock)}, indent=1) + "\n")
            print("wrote", STOCK_OBJECT_INFO, sorted(stock))

            upload_samples(server, Path(tmp), "faceadapter_")
            prompt = json.loads(TEMPLATE.read_text())
            run = server.run(prompt, timeout=600)
            assert run.succeeded, run.error()
            (DATA / "messages_success.json").write_text(json.dumps(run.messages, indent=1) + "\n")

            broken = json.loads(json.dumps(prompt))
            broken["6"]["inputs"].update(mode="index", index=7, on_missing="error")
            run = server.run(broken, timeout=600)
            assert run.error(), "expected an execution_error"
            (DATA / "messages_execution_error.json").write_text(json.dumps(run.messages, indent=1) + "\n")

            invalid = json.loads(json.dumps(prompt))
            invalid["3"]["inputs"]["backend"] = "no_such_backend"
            status, reply = _post_raw(server, "/prompt", {"prompt": invalid, "client_id": "fixture"})
            assert status == 400, (status, reply)
            (DATA / "invalid_prompt.json").write_text(json.dumps(reply, indent=1) + "\n")
            print("wrote message fixtures to", DATA)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
