"""README promises that must stay true."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_model_table_matches_manifest():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "model_table.py"), "--check"])
    assert result.returncode == 0, "README model table is stale: run python scripts/model_table.py"


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "./dev.sh test" in readme and "./dev.sh test" in ci


def test_pack_ships_no_weights():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    if not tracked:  # not a git checkout (e.g. an sdist)
        tracked = [str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file()]
    weights = [f for f in tracked if f.endswith((".pth", ".pt", ".safetensors", ".onnx", ".tar", ".ckpt", ".bin", ".mat"))]
    # The only model-format file allowed is the synthetic 600-vertex BFM parity fixture (random data, < 2 MB).
    fixtures = [f for f in weights if f.startswith("tests/data/") and (REPO / f).stat().st_size < 2_000_000]
    assert fixtures in ([], ["tests/data/reference/parity/bfm_synthetic_front.mat"])
    assert [f for f in weights if f not in fixtures] == []
