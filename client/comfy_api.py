"""ComfyUI's HTTP API over urllib: object_info, upload, queue a prompt, queue size, history, view."""
from __future__ import annotations

import json
import mimetypes
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Optional

from .ws import WebSocket

DEFAULT_SERVER = "http://127.0.0.1:8188"


class ServerError(ConnectionError):
    """The server is unreachable or answered an error status (message says which URL)."""

    def __init__(self, message: str, status: Optional[int] = None, body: Any = None):
        super().__init__(message)
        self.status, self.body = status, body


class PromptRejected(Exception):
    """``POST /prompt`` refused the prompt (validation): ``reply`` holds error and node_errors."""

    def __init__(self, reply: dict):
        super().__init__(str((reply.get("error") or {}).get("message") or reply))
        self.reply = reply


class ComfyAPI:
    """One ComfyUI server at ``base`` (any URL, a path prefix behind a proxy included)."""

    def __init__(self, base: str = DEFAULT_SERVER, timeout: float = 60.0):
        if "://" not in base:
            base = "http://" + base
        self.base = base.rstrip("/") + "/"
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex

    def __repr__(self) -> str:
        return f"ComfyAPI({self.base!r})"

    def url(self, path: str, query: Optional[dict] = None) -> str:
        return urllib.parse.urljoin(self.base, path.lstrip("/")) + (f"?{urllib.parse.urlencode(query)}" if query else "")

    def request(self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[dict] = None,
                query: Optional[dict] = None) -> bytes:
        url = self.url(path, query)
        req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as reply:
                return reply.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed: Any = json.loads(raw)
            except ValueError:
                parsed = raw.decode(errors="replace")
            raise ServerError(f"{method} {url} -> HTTP {exc.code}: {str(parsed)[:2000]}", exc.code, parsed) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerError(f"{method} {url}: cannot reach the server ({reason})") from None

    def get_json(self, path: str, query: Optional[dict] = None) -> Any:
        return json.loads(self.request("GET", path, query=query))

    def post_json(self, path: str, payload: dict) -> Any:
        raw = self.request("POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"})
        return json.loads(raw) if raw.strip() else None

    # ------------------------------------------------------------------ endpoints
    def object_info(self) -> dict:
        return self.get_json("/object_info")

    def upload_image(self, path: Path, subfolder: str = "", overwrite: bool = True) -> str:
        """Upload ``path`` into the server's input folder; returns the name LoadImage takes."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"upload: no such file {path}")
        boundary = uuid.uuid4().hex
        fields = {"type": "input", "overwrite": "true" if overwrite else "false", "subfolder": subfolder}
        body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
                        for k, v in fields.items())
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{path.name}\"\r\n"
                 f"Content-Type: {kind}\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        reply = json.loads(self.request("POST", "/upload/image", body,
                                        {"Content-Type": f"multipart/form-data; boundary={boundary}"}))
        return f"{reply['subfolder']}/{reply['name']}" if reply.get("subfolder") else reply["name"]

    def queue_prompt(self, prompt: dict, workflow: Optional[dict] = None) -> str:
        """Queue an API prompt for this client's websocket; returns the prompt id."""
        payload: dict = {"prompt": prompt, "client_id": self.client_id}
        if workflow is not None:
            payload["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
        try:
            reply = self.post_json("/prompt", payload)
        except ServerError as exc:
            if isinstance(exc.body, dict) and ("node_errors" in exc.body or "error" in exc.body):
                raise PromptRejected(exc.body) from None
            raise
        if reply.get("node_errors"):
            raise PromptRejected(reply)
        return reply["prompt_id"]

    def queue_length(self) -> int:
        """Running + pending prompts (for least-busy scheduling)."""
        queue = self.get_json("/queue")
        return len(queue.get("queue_running", [])) + len(queue.get("queue_pending", []))

    def history(self, prompt_id: str) -> Optional[dict]:
        return self.get_json(f"/history/{urllib.parse.quote(prompt_id)}").get(prompt_id)

    def view(self, filename: str, subfolder: str = "", kind: str = "output") -> bytes:
        return self.request("GET", "/view", query={"filename": filename, "subfolder": subfolder, "type": kind})

    def websocket(self, timeout: Optional[float] = 30.0) -> WebSocket:
        parts = urllib.parse.urlsplit(self.url("/ws", {"clientId": self.client_id}))
        url = urllib.parse.urlunsplit(("wss" if parts.scheme == "https" else "ws",) + tuple(parts[1:]))
        try:
            return WebSocket(url, timeout=timeout)
        except OSError as exc:  # refused, unreachable, or not a websocket endpoint
            raise ServerError(f"websocket {url}: cannot connect ({exc})") from None
