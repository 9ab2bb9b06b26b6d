"""bench/report.py turns each bench's JSON into the README's table: the FADM and standalone rows read the
fields their benches print, and a bench that did not run says so instead of showing a number."""
from __future__ import annotations

import importlib.util
from pathlib import Path

REPORT = Path(__file__).resolve().parents[1] / "bench" / "report.py"


def _report():
    spec = importlib.util.spec_from_file_location("bench_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(rows, stage, measure_start):
    return next(r for r in rows if r[0] == stage and r[1].startswith(measure_start))


def test_fadm_and_standalone_rows_read_their_benches():
    report = _report()
    benches = {
        "fadm": {"steps": 1, "coarse_animate_frames_per_s": 0.55, "refine_frames_per_s_batch_1": 0.64,
                 "refine_frames_per_s_batch_8": 0.45, "refine_speedup_batch_8_vs_1": 0.703,
                 "refine_usage_batch_1": {"user_s_per_frame": 2.68, "system_s_per_frame": 0.44, "busy_cores": 1.99},
                 "refine_usage_batch_8": {"user_s_per_frame": 2.65, "system_s_per_frame": 2.25, "busy_cores": 1.83},
                 "peak_rss_mb_16_frames": 1828.0, "peak_rss_mb_256_frames": 2164.0,
                 "rss_growth": 0.1838, "rss_growth_of_frames_in_and_out_mb": 376.9,
                 "rss_mb_per_frame_after_16": 0.781, "output_frame_mb": 0.75},
        "generation": {"dtype": "torch.float32", "one_source": {"frames": 16, "identity_encodes": 1},
                       "frames_1": {"ratio_standalone_per_step_over_bare": 1.001, "standalone_s_per_step": 38.8}},
    }
    benches["facex"] = {"ratio_decompose_vs_bare_networks": 1.08, "assemble_ms": 41.5,
                        "per_photo": {"grace_hopper": {"decompose_s": 2.1}, "astronaut": {"decompose_s": 2.0}}}
    rows = report.table_rows(benches)
    assert _row(rows, "FaceX", "Decompose")[2] == "1.08×"
    assert "grace_hopper 2.1 s" in _row(rows, "FaceX", "Decompose")[3] and "41.5 ms" in _row(rows, "FaceX", "Decompose")[3]
    assert _row(rows, "FADM", "Refine batch-8")[2] == "0.70×"
    assert _row(rows, "FADM", "peak RSS growth")[2] == "+18.4 %"
    assert "376.9 MB" in _row(rows, "FADM", "peak RSS growth")[3]
    assert "without them -2.2 %" in _row(rows, "FADM", "peak RSS growth")[3]  # (2164 - 376.9) / 1828 - 1
    assert "grows 0.781 MB per frame after the 16th (one output frame is 0.75 MB)" in _row(rows, "FADM", "peak RSS")[3]
    assert "2.68 s user at batch 1, 2.65 s at batch 8" in _row(rows, "FADM", "Refine batch-8")[3]
    assert "1.99 cores busy" in _row(rows, "FADM", "Refine batch-8")[3]
    assert _row(rows, "Face-Adapter standalone", "diffusers path")[2] == "1.001×"
    assert _row(rows, "Face-Adapter standalone", "identity encodes")[2] == "1"


def test_a_bench_that_did_not_run_says_so():
    rows = _report().table_rows({"fadm": {"error": "killed (SIGKILL)"}})
    assert _row(rows, "FADM", "fadm.py")[3].startswith("failed: killed")
    assert _row(rows, "Face-Adapter standalone", "generation.py")[3] == "not run"
    assert _row(rows, "FaceX", "facex.py")[3] == "not run"
    assert report_args_for_fadm() == ["--rss", "16", "256"]


def report_args_for_fadm():
    return _report().EXTRA_ARGS["fadm"]
