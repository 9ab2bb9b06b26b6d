"""One benchmark report: run every bench/*.py, write docs/bench/latest.json and latest.md, and put the
table into README.md (between the bench-report markers).

Each bench prints one JSON document with its ratios measured side by side in one run; this script only
collects them, names the machine (CPU model, cores, load average while it ran: the CI machine is shared)
and turns the ratios the project tracks into one short table. A stage that does not exist yet, or a
number a bench could not measure here, is said so in the table, never filled in.

    python bench/report.py            # all benches (generation_native needs COMFYUI_PATH, else skipped)
    python bench/report.py --only face_detect cache
    python bench/report.py --from-json docs/bench/latest.json   # re-render the table only
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = REPO / "docs" / "bench"
README = REPO / "README.md"
BEGIN, END = "<!-- bench-report:begin -->", "<!-- bench-report:end -->"
# Arguments a bench gets from the report beyond its defaults (FADM: the 16 -> 256 frame RSS runs).
EXTRA_ARGS = {"fadm": ["--rss", "16", "256"]}


def bench_scripts() -> list[Path]:
    return sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_") and p.name != "report.py")


def parse_document(stdout: str) -> dict:
    """The bench's JSON document: the whole output, else its last line that parses."""
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        for line in reversed(stdout.strip().splitlines()):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON document in the bench's output")


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def run_bench(script: Path, args: list[str]) -> dict:
    measured = now_utc()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script), *args], cwd=REPO, capture_output=True, text=True)
    seconds = round(time.perf_counter() - start, 1)
    if proc.returncode != 0:
        if proc.returncode == -9:  # SIGKILL: the last stderr line is whatever a library logged, not the cause
            why = f"killed by the OS after {seconds} s (SIGKILL: out of memory?)"
        else:
            tail = proc.stderr.strip().splitlines()[-1:] if proc.stderr.strip() else [""]
            why = f"exit {proc.returncode}: {tail[0][-300:]}"
        return {"bench": script.stem, "error": why, "wall_s": seconds, "measured": measured}
    try:
        doc = parse_document(proc.stdout)
    except ValueError as exc:
        return {"bench": script.stem, "error": f"{exc}: {proc.stdout[-500:]}", "wall_s": seconds, "measured": measured}
    doc["wall_s"], doc["measured"] = seconds, measured
    return doc


def machine() -> dict:
    """Where the numbers come from."""
    cpu = platform.processor() or ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info: dict[str, Any] = {"cpu": cpu, "cpu_count": os.cpu_count(), "os": platform.platform(),
                            "python": platform.python_version()}
    try:
        info["load_average_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def _get(doc: Optional[dict], *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def _x(value: Any, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}×"


def _why(doc: Optional[dict]) -> str:
    if doc is None:
        return "not run"
    return f"skipped: {doc['skipped']}" if "skipped" in doc else f"failed: {doc.get('error', '?')[:120]}"


def table_rows(benches: dict[str, dict]) -> list[tuple[str, str, str, str]]:
    """(stage, measure, value, goal / note) rows from the bench documents."""
    fd, sp, ca, gen = (benches.get(n) for n in ("face_detect", "spatial", "cache", "generation_native"))
    rows: list[tuple[str, str, str, str]] = []
    if fd and "time" in fd:
        video, photos, single = (_get(fd, "time", k) for k in ("video_512", "sample_photos", "sample_photos_without_t1"))
        rows += [
            ("face analysis", "detect + select + crop ÷ bare mediapipe (detector + mesh), 512² video",
             _x(_get(video, "ratio_vs_bare_detection_plus_mesh")), "≤ 1.5 (issue goal)"),
            ("face analysis", "the same on the sample photos",
             _x(_get(photos, "ratio_vs_bare_detection_plus_mesh")),
             f"≤ 1.5 (issue goal); without t1 {_x(_get(single, 'ratio_vs_bare_detection_plus_mesh'))}: the bare mesh "
             "call finds none of t1's three small faces, ours meshes each"),
            ("face analysis", "the same on the sample photos ÷ the same mediapipe calls made directly (t1's "
             "three sub-image meshes included)",
             _x(_get(photos, "ratio_vs_bare_same_calls")),
             f"≤ 1.5; video {_x(_get(video, 'ratio_vs_bare_same_calls'))}, without t1 "
             f"{_x(_get(single, 'ratio_vs_bare_same_calls'))}"),
            ("face analysis", "the same job with the bare libraries (IMAGE → uint8, detector, mesh, cv2 crop)",
             f"video {_x(_get(video, 'ratio_vs_bare_job'))}, photos {_x(_get(photos, 'ratio_vs_bare_job'))}, "
             f"without t1 {_x(_get(single, 'ratio_vs_bare_job'))}", "fair baseline, ≤ 1.5"),
            ("face analysis", "working RSS growth from 16 to 256 frames",
             "—" if fd.get("working_memory_growth_16_to_256") is None
             else f"{100 * fd['working_memory_growth_16_to_256']:+.1f} %", "≤ +10 %"),
        ]
    else:
        rows.append(("face analysis", "face_detect.py", "—", _why(fd)))
    rows.append(("spatial condition", "whole stage ÷ bare mediapipe calls, per frame",
                 _x(_get(sp, "ratio_stage_vs_bare_mediapipe")) if sp and "error" not in sp else "—",
                 "" if sp and "error" not in sp else _why(sp)))
    if ca and "error" not in ca:
        rows.append(("model cache", "cold load ÷ warm fetch (D3DFR + BFM)", f"{ca['cold_over_warm']:,.0f}×",
                     f"{ca['cold_load_s']} s vs {ca['warm_fetch_s'] * 1e6:.0f} µs; graph loads per run "
                     f"{ca.get('graph_loads_per_run')}"))
    else:
        rows.append(("model cache", "cold ÷ warm", "—", _why(ca)))
    f1, f8 = _get(gen, "frames_1"), _get(gen, "frames_8")
    if f1:
        rows.append(("Face-Adapter generation", "Render per step ÷ bare UNet + ControlNet forwards",
                     _x(f1["ratio_render_per_step_over_bare"], 3),
                     f"≤ 1.10; {f1['render_s_per_step']} s/step at 512², batch 1"))
    else:
        rows.append(("Face-Adapter generation", "Render per step ÷ bare UNet + ControlNet", "—", _why(gen)))
    if f1 and f8:
        throughput = (8 / f8["render_s_per_step"]) / (1 / f1["render_s_per_step"])
        rows.append(("Face-Adapter generation", "batch-8 ÷ batch-1 throughput (frames per second of sampling)",
                     _x(throughput), ""))
    else:
        rows.append(("Face-Adapter generation", "batch-8 ÷ batch-1 throughput", "—",
                     "measured on a CUDA device only (generation_native.py --frames 1 8); on the 2-core CPU a "
                     "full-size batch-8 step takes minutes"))
    if gen and _get(gen, "machine", "peak_vram_mb") is not None:
        rows.append(("Face-Adapter generation", "peak VRAM", f"{gen['machine']['peak_vram_mb']:.0f} MB", ""))
    sa = benches.get("generation")
    sa1 = _get(sa, "frames_1")
    if sa1:
        rows.append(("Face-Adapter standalone", "diffusers path per step ÷ bare UNet + ControlNet forwards",
                     _x(sa1["ratio_standalone_per_step_over_bare"], 3),
                     f"≤ 1.10; {sa1['standalone_s_per_step']} s/step at 512², {sa.get('dtype', '?')}"))
        encodes = _get(sa, "one_source")
        if encodes:
            rows.append(("Face-Adapter standalone", f"identity encodes, one source driving {encodes['frames']} frames",
                         str(encodes["identity_encodes"]), "1"))
    else:
        rows.append(("Face-Adapter standalone", "generation.py", "—", _why(sa)))
    fa = benches.get("fadm")
    if fa and "error" not in fa and "skipped" not in fa:
        speedup = next((v for k, v in fa.items() if k.startswith("refine_speedup_batch_")), None)
        u1, u8 = fa.get("refine_usage_batch_1"), fa.get("refine_usage_batch_8")
        ceiling = (f"; CPU time per frame {u1['user_s_per_frame']} s user at batch 1, {u8['user_s_per_frame']} s at "
                   f"batch 8, and batch 1 already keeps {u1['busy_cores']} cores busy: no idle core for a batch to fill"
                   if u1 and u8 and not fa.get("device", "cpu").startswith("cuda") else "")
        vram = f"; peak VRAM batch 8 {u8['peak_vram_mb']:.0f} MB" if u8 and "peak_vram_mb" in u8 else ""
        rows.append(("FADM", "Refine batch-8 ÷ batch-1 frames/s", "—" if speedup is None else _x(speedup),
                     f"≥ 1.5 on CPU, ≥ 4 on a GPU (issue goal); batch 1 {fa.get('refine_frames_per_s_batch_1')} "
                     f"frames/s at {fa.get('steps')} step(s); Coarse Animate {fa.get('coarse_animate_frames_per_s')} "
                     f"frames/s{ceiling}{vram}"))
        if "rss_growth" in fa:
            peaks = sorted((int(k.split("_")[3]), v) for k, v in fa.items()  # peak_rss_mb_<frames>_frames
                           if k.startswith("peak_rss_mb_") and k.endswith("_frames"))
            short, long = peaks[0][1], peaks[-1][1]
            frames_mb = fa["rss_growth_of_frames_in_and_out_mb"]
            rows.append(("FADM", "peak RSS growth from 16 to 256 frames", f"{100 * fa['rss_growth']:+.1f} %",
                         f"≤ +10 % (issue goal); the extra frames in and out alone are {frames_mb} MB: without "
                         f"them {100 * ((long - frames_mb) / short - 1):+.1f} %"
                         + (f"; while it runs RSS grows {fa['rss_mb_per_frame_after_16']} MB per frame after the 16th "
                            f"(one output frame is {fa['output_frame_mb']} MB)" if "rss_mb_per_frame_after_16" in fa
                            else "")))
    else:
        rows.append(("FADM", "fadm.py", "—", _why(fa)))
    fx = benches.get("facex")
    if fx and "error" not in fx and "skipped" not in fx:
        rows.append(("FaceX", "Decompose ÷ the bare forwards it makes (ArcFace, ID2Token, CLIP vision, Image2Token)",
                     _x(fx.get("ratio_decompose_vs_bare_networks")),
                     "≤ 1.5; " + ", ".join(f"{k} {v['decompose_s']} s" for k, v in fx.get("per_photo", {}).items())
                     + f"; Assemble {fx.get('assemble_ms')} ms (no network of its own)"))
    else:
        rows.append(("FaceX", "facex.py", "—", _why(fx)))
    return rows


def markdown(report: dict) -> str:
    m = report["machine"]
    where = (f"{m.get('cpu') or 'unknown CPU'}, {m.get('cpu_count')} cores"
             + (f", CUDA {m['cuda']}" if m.get("cuda") else ", no GPU")
             + f", Python {m.get('python')}, torch {m.get('torch', '?')}"
             + (f", load average {m['load_average_1m']} when it started" if "load_average_1m" in m else ""))
    rerun = report.get("rerun")
    again = (f" ({', '.join(rerun['only'])} re-run then; the others earlier: each bench's own time is listed below)"
             if rerun else "")
    lines = [f"Measured {report['date']}{again} on: {where}. Full numbers: `docs/bench/latest.json`.", "",
             "| stage | measure | value | goal / note |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(cell.replace('|', '/') for cell in row)} |" for row in report["table"]]
    timings = ", ".join(f"{k} {v.get('wall_s', '?')} s" + (f" ({v['measured']})" if v.get("measured") else "")
                        for k, v in report["benches"].items())
    lines += ["", f"Bench run times (and when each ran): {timings}."]
    return "\n".join(lines) + "\n"


def update_readme(md: str) -> bool:
    text = README.read_text()
    if BEGIN not in text or END not in text:
        return False
    head, rest = text.split(BEGIN, 1)
    README.write_text(head + BEGIN + "\n" + md + rest[rest.index(END):])
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="bench names (file stems) to run")
    parser.add_argument("--from-json", type=Path, help="re-render latest.md and the README table from a report")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    args = parser.parse_args()
    if args.from_json:
        report = json.loads(args.from_json.read_text())
        report["table"] = table_rows(report["benches"])
    else:
        report = {"date": now_utc(), "machine": machine(),
                  "benches": {}}
        previous = OUT / "latest.json"
        if args.only and previous.is_file():  # re-run some benches, keep the others' last results
            report["benches"] = json.loads(previous.read_text())["benches"]
            report["rerun"] = {"only": args.only, "others_from": json.loads(previous.read_text())["date"]}
        for script in bench_scripts():
            if args.only and script.stem not in args.only:
                continue
            extra = EXTRA_ARGS.get(script.stem, [])
            if script.stem == "generation_native" and report["machine"].get("cuda"):
                extra = ["--frames", "1", "8"]
            print(f"== {script.name}", file=sys.stderr, flush=True)
            report["benches"][script.stem] = run_bench(script, extra)
        report["table"] = table_rows(report["benches"])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "latest.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    md = markdown(report)
    (OUT / "latest.md").write_text("# Benchmark report\n\n" + md)
    if not args.no_readme and not update_readme(md):
        print(f"README.md has no {BEGIN} ... {END} markers: the table was not placed there", file=sys.stderr)
    print(md)
    failed = [k for k, v in report["benches"].items() if "error" in v]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
