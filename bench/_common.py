"""Shared bench plumbing: import the pack by path, time things, print one JSON document."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from standalone import load_pack  # noqa: E402

PACK = load_pack()

# The maker's random models (tools/random_models.py) shared with tier 2; FACEADAPTER_RANDOM_MODELS_CACHE moves it.
RANDOM_MODELS_CACHE = Path(os.environ.get("FACEADAPTER_RANDOM_MODELS_CACHE",
                                          Path.home() / ".cache" / "faceadapter-suite" / "random-models"))


def timed(fn: Callable[[], Any]) -> float:
    """Wall time of one call (seconds)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Fastest wall time of ``repeat`` calls (seconds): the least noisy estimate on a shared CPU."""
    return min(timed(fn) for _ in range(repeat))


def status_mb(field: str) -> float:
    """A size field of /proc/self/status (VmRSS, VmHWM, ...) in MB; NaN where there is none (not Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def machine() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["peak_vram_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)  # at emit: the bench's peak
    return info


def emit(name: str, results: dict) -> None:
    print(json.dumps({"bench": name, "machine": machine(), **results}, indent=1))
