"""Start a real ComfyUI headless on 127.0.0.1 with the pack, and talk to it over HTTP/websocket.

Used by the tier-2 tests only. The pack is added through an extra_model_paths.yaml
``custom_nodes:`` entry and every ComfyUI folder (models, input, output, user) lives
in a temporary base directory, so the ComfyUI tree is never written to.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parents[2]
PACK_DIR_NAME = "comfyui-faceadapter-suite"
LOOPBACK = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@dataclass
class RunResult:
    prompt_id: str
    messages: list[dict] = field(default_factory=list)

    def of_type(self, kind: str) -> list[dict]:
        return [m["data"] for m in self.messages if m.get("type") == kind]

    @property
    def succeeded(self) -> bool:
        return bool(self.of_type("execution_success"))

    @property
    def cached_nodes(self) -> set[str]:
        return {n for m in self.of_type("execution_cached") for n in m.get("nodes", [])}

    @property
    def executed_nodes(self) -> set[str]:
        return {m["node"] for m in self.of_type("executing") if m.get("node") is not None}

    def error(self) -> Optional[dict]:
        errors = self.of_type("execution_error")
        return errors[0] if errors else None


class ComfyServer:
    def __init__(self, comfy_path: Path, python: str, workdir: Path, models: dict[str, Path | list[Path]] | None = None):
        self.comfy_path, self.python, self.workdir = Path(comfy_path), python, Path(workdir)
        self.port = _free_port()
        self.client_id = uuid.uuid4().hex
        self.log_path = self.workdir / "comfyui.log"
        self.models_dir = self.workdir / "models"
        self._proc: Optional[subprocess.Popen] = None
        self._extra_models = models or {}

    # ------------------------------------------------------------ lifecycle
    def _write_config(self) -> Path:
        packs = self.workdir / "packs"
        packs.mkdir(parents=True, exist_ok=True)
        link = packs / PACK_DIR_NAME
        if not link.exists():
            link.symlink_to(REPO, target_is_directory=True)
        for sub in ("faceadapter", "fadm", "insightface", "mediapipe", "input", "output", "user", "custom_nodes"):
            (self.workdir / ("models/" + sub if sub in ("faceadapter", "fadm", "insightface", "mediapipe") else sub)).mkdir(parents=True, exist_ok=True)
        lines = ["faceadapter_tier2:", f"    custom_nodes: {packs}"]
        for kind, paths in self._extra_models.items():
            if isinstance(paths, (list, tuple)):  # several folders for one kind: a YAML block, one per line
                lines.append(f"    {kind}: |")
                lines += [f"        {p}" for p in paths]
            else:
                lines.append(f"    {kind}: {paths}")
        config = self.workdir / "extra_model_paths.yaml"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout: float = 180.0) -> "ComfyServer":
        config = self._write_config()
        cmd = [self.python, "main.py", "--cpu", "--listen", LOOPBACK, "--port", str(self.port),
               "--disable-auto-launch", "--base-directory", str(self.workdir),
               "--extra-model-paths-config", str(config),
               "--database-url", f"sqlite:///{self.workdir / 'comfyui.db'}"]
        env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        env.pop("FACEADAPTER_MODELS_DIR", None)
        self._log = open(self.log_path, "w")
        self._proc = subprocess.Popen(cmd, cwd=self.comfy_path, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self._proc.returncode}:\n{self.log()[-4000:]}")
            try:
                self.get("/system_stats", timeout=2)
                return self
            except (AssertionError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.5)
        raise TimeoutError(f"ComfyUI did not answer within {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if getattr(self, "_log", None):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # ------------------------------------------------------------ HTTP (loopback only, by construction)
    def _request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                 timeout: float = 30) -> bytes:
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status >= 400:
            raise AssertionError(f"{method} {path} -> {resp.status}: {data.decode(errors='replace')[:4000]}")
        return data

    def get(self, path: str, timeout: float = 30) -> Any:
        body = self._request("GET", path, timeout=timeout)
        return json.loads(body) if body[:1] in (b"{", b"[") else body

    def post(self, path: str, payload: dict, timeout: float = 30) -> Any:
        body = self._request("POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"}, timeout)
        return json.loads(body) if body else None

    def upload_image(self, png_path: Path) -> str:
        boundary = uuid.uuid4().hex
        data = png_path.read_bytes()
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{png_path.name}\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        reply = self._request("POST", "/upload/image", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return json.loads(reply)["name"]

    def view(self, image: dict) -> bytes:
        query = urllib.parse.urlencode({k: image[k] for k in ("filename", "subfolder", "type")})
        return self._request("GET", f"/view?{query}")

    # ------------------------------------------------------------ running prompts
    def run(self, prompt: dict, timeout: float = 600, workflow: Optional[dict] = None,
            on_message: Optional[Callable[[dict], None]] = None) -> RunResult:
        """Queue an API-format prompt and collect websocket messages until it ends (``on_message`` sees
        each one as it arrives, e.g. to interrupt at a given step)."""
        import websocket  # websocket-client

        ws = websocket.create_connection(f"ws://{LOOPBACK}:{self.port}/ws?clientId={self.client_id}", timeout=timeout)
        try:
            payload: dict = {"prompt": prompt, "client_id": self.client_id}
            if workflow is not None:
                payload["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
            reply = self.post("/prompt", payload)
            assert not reply.get("node_errors"), reply
            result = RunResult(reply["prompt_id"])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                raw = ws.recv()
                if isinstance(raw, bytes):
                    continue  # binary preview frames
                msg = json.loads(raw)
                if msg.get("data", {}).get("prompt_id") not in (None, result.prompt_id):
                    continue
                result.messages.append(msg)
                if on_message is not None:
                    on_message(msg)
                if msg["type"] in ("execution_success", "execution_error", "execution_interrupted"):
                    return result
            raise TimeoutError(f"prompt {result.prompt_id} did not finish in {timeout}s")
        finally:
            ws.close()

    def history(self, prompt_id: str, timeout: float = 15.0) -> dict:
        """The prompt's history entry; ComfyUI stores it just after execution_success, so poll briefly."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry is not None or time.monotonic() > deadline:
                if entry is None:
                    raise KeyError(f"no history for prompt {prompt_id} after {timeout}s")
                return entry
            time.sleep(0.1)


def upload_samples(comfy, folder: Path, prefix: str, samples=("grace_hopper", "astronaut")) -> list[str]:
    """Write the sample photos as PNGs named ``<prefix><sample>.png`` and upload them; returns their names."""
    import cv2

    from faceadapter_suite.face.sample_photos import load_sample

    names = []
    for sample in samples:
        path = folder / f"{prefix}{sample}.png"
        cv2.imwrite(str(path), load_sample(sample)[:, :, ::-1])
        names.append(comfy.upload_image(path))
    return names
