"""install.py: dependency plans per platform/Python (offline), model downloads without pip (served on
127.0.0.1), sample photos for the templates."""
from __future__ import annotations

import hashlib
import json
import http.server
import threading
from pathlib import Path

import pytest

from standalone import load_installer

REPO = Path(__file__).resolve().parents[1]
install = load_installer()

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class RangeHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/file.bin"
    httpd.shutdown()


def test_resume_verify_atomic(server, tmp_path):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    dest = tmp_path / "faceadapter" / "file.bin"
    dest.parent.mkdir()
    (dest.parent / "file.bin.part").write_bytes(PAYLOAD[:1000])  # an interrupted earlier run
    assert install.download(server, dest, sha) == dest
    assert dest.read_bytes() == PAYLOAD and not (dest.parent / "file.bin.part").exists()
    assert install.download(server, dest, sha) == dest  # idempotent


def test_bad_checksum_leaves_no_file(server, tmp_path):
    dest = tmp_path / "x.bin"
    with pytest.raises(install.InstallError, match="sha256 mismatch"):
        install.download(server, dest, "0" * 64)
    assert not dest.exists() and not (tmp_path / "x.bin.part").exists()


def test_cli_errors_are_clear(tmp_path, capsys):
    assert install.main(["--models", "no.such.model", "--models-dir", str(tmp_path)]) == 1
    assert "no model matches no.such.model" in capsys.readouterr().err
    assert install.main(["--models", "fadm.diffusion", "--models-dir", str(tmp_path)]) == 1
    assert "cannot be downloaded automatically" in capsys.readouterr().err
    assert install.main(["--list"]) == 0
    assert "faceadapter.d3dfr_resnet50" in capsys.readouterr().out


def test_models_never_run_pip(server, tmp_path, monkeypatch, capsys):
    def no_pip(*args, **kwargs):
        raise AssertionError(f"--models ran a subprocess: {args}")

    monkeypatch.setattr(install.subprocess, "run", no_pip)
    entry = {"id": "test.file", "kind": "faceadapter", "path": "file.bin", "source": server, "sha256": None,
             "sha256_note": "no checksum published", "licence": "test", "non_commercial": False}
    monkeypatch.setattr(install, "load_manifest", lambda: [entry])
    assert install.main(["--models", "test.file", "--models-dir", str(tmp_path)]) == 0
    assert (tmp_path / "faceadapter" / "file.bin").read_bytes() == PAYLOAD
    out = capsys.readouterr().out
    assert "no checksum published; computed " + hashlib.sha256(PAYLOAD).hexdigest() in out


def test_every_manifest_entry_has_a_checksum_or_says_why():
    for e in json.loads((REPO / "core" / "model_manifest.json").read_text())["models"]:
        assert e.get("sha256") or e.get("sha256_note"), e["id"]
        if e.get("sha256"):
            assert len(e["sha256"]) == 64 and int(e["sha256"], 16) >= 0, e["id"]


def test_sample_photos_copied_as_png(tmp_path, monkeypatch):
    import cv2

    report = install.copy_sample_photos(tmp_path)
    assert set(report) == set(install.SAMPLE_PHOTOS)
    for name, what in report.items():
        assert what.startswith("copied from"), (name, what)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        image = cv2.imread(str(tmp_path / name))
        assert image is not None and image.ndim == 3 and min(image.shape[:2]) >= 100, name
    assert install.copy_sample_photos(tmp_path)["faceadapter_t1.png"] == "already there"
    real_find_spec = install.importlib.util.find_spec
    monkeypatch.setattr(install.importlib.util, "find_spec",
                        lambda name, *a: None if name == "insightface" else real_find_spec(name, *a))
    report = install.copy_sample_photos(tmp_path / "fresh")
    assert report["faceadapter_t1.png"] == "not copied: package 'insightface' is not installed (pip install insightface)"
    assert report["faceadapter_astronaut.png"].startswith("copied from")
