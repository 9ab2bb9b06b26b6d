"""One model cache for the whole process.

Every node that needs the same network gets the same object: the key is the
resolved file path(s) with size and mtime (so a replaced file reloads), plus the
dtype and device. Inside ComfyUI each cached network is wrapped in a ModelPatcher
so ComfyUI loads it to the GPU when used and may offload it under VRAM pressure.
"""
from __future__ import annotations

import ctypes
import gc
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Optional

import torch

from . import comfy_bridge as bridge
from .model_paths import file_identity

log = logging.getLogger("FaceAdapter")


def release_freed_memory() -> None:
    """Linux/glibc: hand freed heap pages back to the OS (malloc_trim), so RSS really drops.

    Without it glibc keeps the arenas of freed tensors mapped; elsewhere this is a no-op.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # musl or another libc: nothing to trim
        pass


@dataclass
class CachedModel:
    """A loaded model and where it should run. Call :meth:`ready` before using a network."""

    label: str
    value: Any
    device: torch.device
    dtype: Optional[torch.dtype]
    patcher: Any = None
    load_seconds: float = 0.0

    def ready(self) -> Any:
        """The object, with a network moved to its device (via ComfyUI's manager inside ComfyUI)."""
        if isinstance(self.value, torch.nn.Module):
            if self.patcher is not None:
                bridge.load_managed(self.patcher)
            else:
                self.value.to(self.device)
        return self.value


@dataclass
class CacheStats:
    loads: int = 0
    hits: int = 0
    load_seconds: float = 0.0
    labels_loaded: list[str] = field(default_factory=list)


class ModelCache:
    def __init__(self) -> None:
        self._items: dict[Hashable, CachedModel] = {}
        self._lock = threading.RLock()
        self.stats = CacheStats()

    def get(self, label: str, paths: Iterable[Path], builder: Callable[[], Any], *,
            dtype: Optional[torch.dtype] = None, device: Optional[torch.device] = None,
            extra_key: Hashable = ()) -> CachedModel:
        """Return the cached object for these files, building it once.

        ``builder`` loads on the CPU in ``dtype`` (networks) or returns any other
        object (an ONNX session, a morphable model).
        """
        paths = list(paths)
        device = torch.device(device) if device is not None else bridge.torch_device()
        identity = file_identity(paths)
        key = (label, identity, str(dtype), str(device), extra_key)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self.stats.hits += 1
                return hit
            self._drop_stale(label, paths, identity, extra_key)
            start = time.perf_counter()
            value = builder()
            seconds = time.perf_counter() - start
            patcher = None
            if isinstance(value, torch.nn.Module):
                value.eval().requires_grad_(False)
                patcher = bridge.manage(value, device, bridge.offload_device())
            item = CachedModel(label, value, device, dtype, patcher, seconds)
            self._items[key] = item
            self.stats.loads += 1
            self.stats.load_seconds += seconds
            self.stats.labels_loaded.append(label)
            log.info("FaceAdapter: loaded %s in %.2fs (%s, %s)", label, seconds, device, dtype)
            return item

    def _drop_stale(self, label: str, paths: list[Path], identity: tuple, extra_key: Hashable) -> None:
        """A file that changed on disk replaces its old entries instead of piling up."""
        roots = tuple(str(Path(p).resolve()) for p in paths)
        for key in [k for k in self._items if k[0] == label and k[4] == extra_key and k[1] != identity]:
            if any(entry[0].startswith(roots) for entry in key[1]):
                del self._items[key]

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> int:
        """Forget every model (ComfyUI's references too); returns how many were freed."""
        with self._lock:
            patchers = [i.patcher for i in self._items.values() if i.patcher is not None]
            count = len(self._items)
            self._items.clear()
        bridge.unload_managed(patchers)
        del patchers
        gc.collect()
        bridge.soft_empty_cache()
        release_freed_memory()
        return count

    def reset_stats(self) -> None:
        self.stats = CacheStats()


MODEL_CACHE = ModelCache()
