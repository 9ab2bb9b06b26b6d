#!/usr/bin/env bash
# FaceAdapter Suite developer entry point (works on a fresh clone, offline beyond PyPI).
#   ./dev.sh demo [demo.py options]   set up .venv on first use, run the offline demo -> demo_out/
#   ./dev.sh test [pytest options]    set up .venv on first use, run the whole test suite
#   ./dev.sh bench                    run every bench/*.py, print JSON
#   ./dev.sh report                   run every bench, write docs/bench/latest.{json,md} and the README table
#   ./dev.sh models OUT [--tiny ...]  write random-weight Face-Adapter / SD1.5 models (scripts/make_random_models.py)
#   ./dev.sh setup                    only build .venv
# The venv gets its dependencies the way a ComfyUI user does: requirements.txt, then install.py
# (mediapipe, OpenCV, onnxruntime), plus tests/requirements.txt. EXTRA_REQUIREMENTS (a file) goes in
# first, e.g. ComfyUI's requirements for tier 2. Tier-2 tests run when COMFYUI_PATH and COMFYUI_PYTHON are set.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${FACEADAPTER_VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.14.1}

setup() {
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  local extra=${EXTRA_REQUIREMENTS:-}
  local stamp="$VENV/.deps-$(cat requirements.txt tests/requirements.txt install.py ${extra:+"$extra"} | sha256sum | cut -c1-16)-$(echo "$TORCH_SPEC" | sha256sum | cut -c1-8)"
  if [ ! -f "$stamp" ]; then
    local pip=("$VENV/bin/python" -m pip install -q)
    # shellcheck disable=SC2086
    "${pip[@]}" $TORCH_SPEC
    [ -z "$extra" ] || "${pip[@]}" -r "$extra"
    "${pip[@]}" -r requirements.txt -r tests/requirements.txt
    "$VENV/bin/python" install.py
    rm -f "$VENV"/.deps-*
    touch "$stamp"
  fi
}

cmd=${1:-test}
shift || true
case "$cmd" in
  demo)  setup; exec "$VENV/bin/python" demo.py "$@" ;;
  test)  setup; exec "$VENV/bin/python" -m pytest tests "$@" ;;
  bench) setup; for b in bench/[!_]*.py; do [ "$b" = bench/report.py ] || { echo "== $b" >&2; "$VENV/bin/python" "$b"; }; done ;;
  report) setup; exec "$VENV/bin/python" bench/report.py "$@" ;;
  models) setup; exec "$VENV/bin/python" scripts/make_random_models.py "$@" ;;
  setup) setup ;;
  *) echo "usage: ./dev.sh demo|test|bench|report|models|setup" >&2; exit 2 ;;
esac
