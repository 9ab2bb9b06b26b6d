"""Shared bench plumbing: import the pack by path, time things, print one JSON document."""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from standalone import load_pack  # noqa: E402

PACK = load_pack()


def best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Fastest wall time of ``repeat`` calls (seconds): the least noisy estimate on a shared CPU."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def machine() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["peak_vram_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)  # at emit: the bench's peak
    return info


def emit(name: str, results: dict) -> None:
    print(json.dumps({"bench": name, "machine": machine(), **results}, indent=1))
