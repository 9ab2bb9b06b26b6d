"""The README's main command: the offline demo runs end to end and writes its pictures."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]


def test_demo_writes_every_picture(tmp_path):
    spec = importlib.util.spec_from_file_location("faceadapter_demo", REPO / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--task", "swap", "--source", "tom_hanks", "--target", "grace_hopper"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["projector"] == "mediapipe_mesh" and summary["area_pixels"] > 10_000
    for name in ("control.png", "landmarks_overlay.png", "adapting_area.png", "blend_mask.png", "sheet.png"):
        image = cv2.imread(str(out / name))
        assert image is not None and image.std() > 1, name
    assert cv2.imread(str(out / "control.png")).shape == (512, 512, 3)
