"""The README's main command: the offline demo runs end to end and writes its pictures."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def test_demo_writes_every_picture(tmp_path):
    spec = importlib.util.spec_from_file_location("faceadapter_demo", REPO / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--task", "swap", "--source", "tom_hanks", "--target", "grace_hopper",
                      "--models-dir", str(tmp_path / "no_models")]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["projector"] == "mediapipe_mesh" and summary["area_pixels"] > 10_000
    assert summary["generation"]["generated"] is False and "./dev.sh models" in summary["generation"]["how"]
    assert "net_id2token.pth" in summary["generation"]["why"] and not (out / "result.png").exists()
    for name in ("control.png", "landmarks_overlay.png", "adapting_area.png", "blend_mask.png", "sheet.png"):
        image = cv2.imread(str(out / name))
        assert image is not None and image.std() > 1, name
    assert cv2.imread(str(out / "control.png")).shape == (512, 512, 3)


def test_demo_generates_and_pastes_back_with_the_makers_models(tmp_path, tiny_models_dir):
    """The acceptance command's path: a models folder from the maker -> a generated face pasted back."""
    out = tmp_path / "demo"
    assert _load_demo().main(["--out", str(out), "--models-dir", str(tiny_models_dir), "--steps", "2"]) == 0
    generation = json.loads((out / "summary.json").read_text())["generation"]
    assert generation["generated"] and generation["steps"] == 2 and generation["frames"] == 1
    crop, result = cv2.imread(str(out / "generated_crop.png")), cv2.imread(str(out / "result.png"))
    assert crop.shape == (512, 512, 3) and crop.std() > 1
    from faceadapter_suite.face.sample_photos import load_sample

    original = load_sample("grace_hopper")  # reenact pastes into the source photo, at its size
    assert result.shape == original.shape and not np.array_equal(result[:, :, ::-1], original)


def _load_demo():
    spec = importlib.util.spec_from_file_location("faceadapter_demo", REPO / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


def test_help_needs_no_heavy_package():
    """`python demo.py --help` works outside the venv: numpy, torch, cv2 and mediapipe made unimportable."""
    import subprocess
    import sys

    blocker = ("import sys, runpy\n"
               "class Block:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] in ('numpy', 'torch', 'cv2', 'mediapipe', 'scipy'):\n"
               "            raise ImportError('blocked: ' + name)\n"
               "sys.meta_path.insert(0, Block())\n"
               f"sys.argv = ['demo.py', '--help']\nrunpy.run_path({str(REPO / 'demo.py')!r}, run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--source" in result.stdout and "grace_hopper" in result.stdout


def test_photo_without_a_face_ends_with_one_clear_line(tmp_path, capsys):
    import numpy as np

    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((480, 640, 3), 128, np.uint8))
    demo = _load_demo()
    assert demo.main(["--out", str(tmp_path / "out"), "--source", str(blank), "--target", "astronaut"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith("demo: ") and "source photo" in err and str(blank) in err
