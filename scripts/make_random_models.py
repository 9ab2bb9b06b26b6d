#!/usr/bin/env python3
"""Write a models folder of random full-size (or ``--tiny``) Face-Adapter, SD1.5 checkpoint and VAE files.

    python scripts/make_random_models.py OUT_MODELS_DIR [--tiny] [--dtype fp16|fp32] [--seed N]
                                         [--only NAME ...] [--cache]

The logic lives in the pack (tools/random_models.py) so tests and benches call it directly
(``ensure_random_models``); this script only loads the pack by path, as ComfyUI does.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from standalone import load_pack  # noqa: E402

if __name__ == "__main__":
    load_pack()
    from faceadapter_suite.tools.random_models import main

    sys.exit(main())
