#!/usr/bin/env bash
# FaceAdapter Suite developer entry point (works on a fresh clone, offline beyond PyPI).
#   ./dev.sh demo [demo.py options]   set up .venv on first use, run the offline demo -> demo_out/
#   ./dev.sh test [pytest options]    set up .venv on first use, run the whole test suite
#   ./dev.sh bench                    run every bench/*.py, print JSON
# Tier-2 tests (real ComfyUI) run when COMFYUI_PATH and COMFYUI_PYTHON are set, else they skip.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${FACEADAPTER_VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

setup() {
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  local stamp="$VENV/.deps-$(cat requirements.txt tests/requirements.txt | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    "$VENV/bin/python" -c "import torch" 2>/dev/null || "$VENV/bin/python" -m pip install -q "$TORCH_SPEC"
    "$VENV/bin/python" -m pip install -q -r requirements.txt -r tests/requirements.txt
    touch "$stamp"
  fi
}

cmd=${1:-test}
shift || true
case "$cmd" in
  demo)  setup; exec "$VENV/bin/python" demo.py "$@" ;;
  test)  setup; exec "$VENV/bin/python" -m pytest tests "$@" ;;
  bench) setup; for b in bench/[!_]*.py; do echo "== $b" >&2; "$VENV/bin/python" "$b"; done ;;
  setup) setup ;;
  *) echo "usage: ./dev.sh demo|test|bench|setup" >&2; exit 2 ;;
esac
