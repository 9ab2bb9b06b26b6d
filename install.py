#!/usr/bin/env python3
"""FaceAdapter Suite installer, run by ComfyUI-Manager after requirements.txt.

- Installs onnxruntime-gpu when torch sees CUDA, else onnxruntime (idempotent).
- Never downloads models unless asked: ``python install.py --models faceadapter.d3dfr_resnet50 'insightface.*'``
  downloads manifest entries into ComfyUI's models folder (or --models-dir), resuming partial
  files, verifying sha256 where the manifest knows it, and renaming into place atomically.
- ``--list`` prints the manifest. Exits non-zero with a clear message on failure.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "core" / "model_manifest.json"
CHUNK = 1 << 20


class InstallError(RuntimeError):
    pass


# ------------------------------------------------------------------ onnxruntime
def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def onnxruntime_plan(has_cuda: bool, have_cpu: bool, have_gpu: bool) -> list[str]:
    """pip arguments that give the right onnxruntime flavour ([] when nothing to do)."""
    if has_cuda:
        return [] if have_gpu else ["onnxruntime-gpu"]
    return [] if (have_cpu or have_gpu) else ["onnxruntime"]


def ensure_onnxruntime(dry_run: bool = False) -> list[str]:
    plan = onnxruntime_plan(cuda_available(), _installed("onnxruntime"), _installed("onnxruntime-gpu"))
    if plan and not dry_run:
        result = subprocess.run([sys.executable, "-m", "pip", "install", *plan])
        if result.returncode != 0:
            raise InstallError(f"pip install {' '.join(plan)} failed (exit {result.returncode}); "
                               "install it by hand into ComfyUI's Python")
    return plan


# ------------------------------------------------------------------ models
def load_manifest() -> list[dict]:
    return json.loads(MANIFEST.read_text())["models"]


def default_models_dir() -> Path:
    """ComfyUI's models/ when the pack sits in ComfyUI/custom_nodes/<pack>."""
    if os.environ.get("FACEADAPTER_MODELS_DIR"):
        return Path(os.environ["FACEADAPTER_MODELS_DIR"])
    candidate = HERE.parent.parent / "models"
    if (HERE.parent.name == "custom_nodes") and candidate.is_dir():
        return candidate
    raise InstallError("cannot tell where ComfyUI's models folder is; pass --models-dir PATH")


def select(entries: list[dict], patterns: list[str]) -> list[dict]:
    chosen = [e for e in entries if any(fnmatch.fnmatch(e["id"], p) for p in patterns)]
    unknown = [p for p in patterns if not any(fnmatch.fnmatch(e["id"], p) for e in entries)]
    if unknown:
        raise InstallError(f"no model matches {', '.join(unknown)}; see install.py --list")
    return chosen


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, sha256: str | None = None, timeout: float = 60) -> Path:
    """Resumable download to ``dest.part``, checked, then renamed into place atomically."""
    if dest.exists():
        if sha256 and sha256_of(dest) != sha256:
            raise InstallError(f"{dest} exists but its sha256 differs from the manifest; delete it and retry")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            resumed = have and resp.status == 206
            with open(part, "ab" if resumed else "wb") as out:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    out.write(block)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # already complete
            pass
        else:
            raise InstallError(f"download of {url} failed: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise InstallError(f"download of {url} failed: {exc}; run the same command again to resume") from exc
    if sha256:
        got = sha256_of(part)
        if got != sha256:
            part.unlink()
            raise InstallError(f"sha256 mismatch for {dest.name}: expected {sha256}, got {got}; partial file removed")
    os.replace(part, dest)
    return dest


def install_models(patterns: list[str], models_dir: Path) -> list[Path]:
    done = []
    for e in select(load_manifest(), patterns):
        url = e["source"]
        if e.get("folder") or not url.startswith("https://") or " " in url:
            raise InstallError(f"{e['id']} cannot be downloaded automatically; get it from {url} and put it at "
                               f"{models_dir / e['kind'] / e['path']}")
        dest = models_dir / e["kind"] / e["path"]
        print(f"[FaceAdapter] {e['id']} -> {dest}" + ("  (NON-COMMERCIAL licence: " + e["licence"] + ")" if e["non_commercial"] else ""))
        path = download(url, dest, e.get("sha256"))
        if not e.get("sha256"):
            print(f"[FaceAdapter]   no published sha256; computed {sha256_of(path)}")
        done.append(path)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", metavar="ID", help="manifest ids or globs to download")
    parser.add_argument("--models-dir", type=Path, help="ComfyUI models folder (default: ../../models)")
    parser.add_argument("--list", action="store_true", help="list every model file the pack can use")
    parser.add_argument("--skip-onnxruntime", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for e in load_manifest():
                flag = " [non-commercial]" if e["non_commercial"] else ""
                print(f"{e['id']:45s} {e['kind']}/{e['path']}{flag}")
            return 0
        if not args.skip_onnxruntime:
            plan = ensure_onnxruntime()
            print(f"[FaceAdapter] onnxruntime: {'installed ' + ' '.join(plan) if plan else 'already fine'}")
        if args.models:
            install_models(args.models, args.models_dir or default_models_dir())
        return 0
    except InstallError as exc:
        print(f"[FaceAdapter] install failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
