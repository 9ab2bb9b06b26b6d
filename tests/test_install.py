"""install.py: onnxruntime choice and a resumable, verified, atomic download (served on 127.0.0.1)."""
from __future__ import annotations

import hashlib
import http.server
import importlib.util
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("faceadapter_install", REPO / "install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)

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


def test_onnxruntime_plan():
    assert install.onnxruntime_plan(True, False, False) == ["onnxruntime-gpu"]
    assert install.onnxruntime_plan(True, True, True) == []
    assert install.onnxruntime_plan(False, False, False) == ["onnxruntime"]
    assert install.onnxruntime_plan(False, True, False) == []


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
    assert install.main(["--skip-onnxruntime", "--models", "no.such.model", "--models-dir", str(tmp_path)]) == 1
    assert "no model matches no.such.model" in capsys.readouterr().err
    assert install.main(["--skip-onnxruntime", "--models", "fadm.diffusion", "--models-dir", str(tmp_path)]) == 1
    assert "cannot be downloaded automatically" in capsys.readouterr().err
    assert install.main(["--list"]) == 0
    assert "faceadapter.d3dfr_resnet50" in capsys.readouterr().out
