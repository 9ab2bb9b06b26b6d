"""Real photos that ship inside installed packages (no download needed).

Used by the demo, the tests and the benches so every geometric stage runs on
real faces offline.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import numpy as np

SAMPLE_NAMES = ("astronaut", "grace_hopper", "tom_hanks", "t1")


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"sample photo needs the '{package}' package (pip install {package})")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"sample photo not found at {path}")
    return path


def read_rgb(path: Path | str) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB (OpenCV reads BGR)."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"could not read image {path}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _astronaut,
    "grace_hopper": lambda: read_rgb(_package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")),
    "tom_hanks": lambda: read_rgb(_package_file("insightface", "data", "images", "Tom_Hanks_54745.png")),
    "t1": lambda: read_rgb(_package_file("insightface", "data", "images", "t1.jpg")),
}


def load_sample(name: str) -> np.ndarray:
    """Return a sample photo as HxWx3 uint8 RGB. Names: SAMPLE_NAMES."""
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise KeyError(f"unknown sample photo {name!r}; choose one of {', '.join(SAMPLE_NAMES)}") from None
    return loader()
