"""Write docs/facex_edit_sheet.jpg: FaceX's landmark previews on real photos, through the node classes.

Grace Hopper (A) and the astronaut (B), mediapipe path, no model files. Row 1: A's own landmarks, B's,
A with B's expression and pose (FaceX Assemble, the control image's landmarks), the control image.
Row 2, edits: A with B's expression at intensity 0 (mouth closed), A turned yaw +25, A's gaze 0.3 eye widths to
the right, A's mesh regions. Row 1 is also the FaceX template's thumbnail (workflows/faceadapter_facex_edit.jpg:
the nodes' own previews; the generated face needs real weights, random ones give noise).

    python scripts/make_facex_sheet.py
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from standalone import load_pack  # noqa: E402

load_pack()

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from faceadapter_suite.core.images import image_to_uint8, uint8_to_image  # noqa: E402
from faceadapter_suite.face.analysis import detect_batch, load_analyzer  # noqa: E402
from faceadapter_suite.face.sample_photos import load_sample  # noqa: E402
from faceadapter_suite.nodes import facex as nodes  # noqa: E402
from faceadapter_suite.spatial.projectors import MeshProjector  # noqa: E402

TILE = 256


def first(image) -> np.ndarray:
    return cv2.resize(image_to_uint8(image)[0], (TILE, TILE), interpolation=cv2.INTER_AREA)


def main() -> None:
    analyzer = load_analyzer("mediapipe")
    faces, previews, regions = {}, {}, {}
    for key, name in (("A", "grace_hopper"), ("B", "astronaut")):
        image = uint8_to_image(load_sample(name))
        faces[key], previews[key], regions[key] = nodes.FaceXDecompose().decompose(
            image, detect_batch(analyzer, image), MeshProjector(), 0, 0, 0.81, nodes.MESH_REGIONS)
    assemble = nodes.FaceXAssemble().assemble
    recipe = dict(identity="A", expression="B", pose="B", gaze="B", appearance="A", hair="background",
                  background="A")
    _, _, _, _, assembled, control = assemble(faces["A"], faces["B"], **recipe)
    closed = nodes.FaceXExpressionIntensity().edit(faces["B"], 0.0)[0]
    _, _, _, _, neutral, _ = assemble(faces["A"], closed, **recipe)
    turned = nodes.FaceXPoseOffset().edit(faces["A"], 25.0, 0.0, 0.0)[1]
    gaze = nodes.FaceXGazeDirection().edit(faces["A"], 0.3, 0.0)[1]
    rows = [[previews["A"], previews["B"], assembled, control], [neutral, turned, gaze, regions["A"]]]
    tiles = [[first(t) for t in row] for row in rows]
    sheet = np.concatenate([np.concatenate(row, axis=1) for row in tiles], axis=0)
    thumbnail = np.concatenate([np.concatenate(tiles[0][:2], axis=1), np.concatenate(tiles[0][2:], axis=1)], axis=0)
    for path, image in ((REPO / "docs" / "facex_edit_sheet.jpg", sheet),
                        (REPO / "workflows" / "faceadapter_facex_edit.jpg", thumbnail)):
        cv2.imwrite(str(path), image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
        print("wrote", path)


if __name__ == "__main__":
    main()
