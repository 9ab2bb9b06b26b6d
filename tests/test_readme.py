"""README promises that must stay true."""
from __future__ import annotations

import ast
import re
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


def _table(name: str) -> list[list[str]]:
    """Rows (cells) of the README table between <!-- name:begin --> and <!-- name:end -->, header excluded."""
    readme = (REPO / "README.md").read_text()
    body = readme.split(f"<!-- {name}:begin -->")[1].split(f"<!-- {name}:end -->")[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in body.strip().splitlines() if line.startswith("|")]
    return rows[2:]


def test_bad_input_table_rows_are_tests():
    """Every row of the bad-input table names a test in tests/test_bad_inputs.py, and every test there has a row."""
    tree = ast.parse((REPO / "tests" / "test_bad_inputs.py").read_text())
    tests = {f.name for f in tree.body if isinstance(f, ast.FunctionDef) and f.name.startswith("test_")}
    named = [re.fullmatch(r"`test_bad_inputs\.py::(test_\w+)`", row[-1].strip()) for row in _table("bad-inputs")]
    assert all(named), [row[-1] for row in _table("bad-inputs")]
    assert sorted(m[1] for m in named) == sorted(tests)


def test_templates_table_lists_every_template_with_its_picture():
    names = sorted(p.stem for p in (REPO / "workflows").glob("*.json"))
    rows = _table("templates")
    listed = [re.match(r"`(\w+)`", row[0])[1] for row in rows]
    assert sorted(listed) == names
    for name, row in zip(listed, rows):
        assert f'src="workflows/{name}.jpg"' in row[-1] and (REPO / "workflows" / f"{name}.jpg").is_file()


def test_licence_note_names_every_model():
    models = " ".join(row[0] for row in _table("licences"))
    for model in ("Face-Adapter", "Stable Diffusion 1.5", "sd-vae-ft-mse", "ArcFace", "insightface", "CLIP ViT-H",
                  "mediapipe", "D3DFR", "BFM", "BiSeNet"):
        assert model in models, model
    assert all(row[1].strip() for row in _table("licences"))
