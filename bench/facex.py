"""FaceX on full-size random weights (the maker's files): FaceX Decompose per face against the bare network
forwards it makes, and FaceX Assemble per recipe.

Decompose = Face-Adapter's crop and view, the mesh projector's canonical fit, mesh regions, ArcFace + ID2Token
(identity), the CLIP vision tower + Image2Token (appearance) and region pooling, through the node class.
Bare = the time spent inside those four networks' own forwards during the same calls (forward hooks), so the
ratio is what FaceX adds on top of the networks it reuses (goal of the measuring issue: pipeline ÷ bare model
call, <= 1.5 like the face stage). Assemble (A's identity and appearance, B's expression, pose and gaze) has
no network of its own: it is timed in ms, together with its share of a Decompose.

    python bench/facex.py [--repeat 3] [--models DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _common import RANDOM_MODELS_CACHE, best_of, emit, timed

from faceadapter_suite.core import comfy_bridge  # noqa: E402
from faceadapter_suite.core.images import uint8_to_image  # noqa: E402
from faceadapter_suite.face.analysis import detect_batch, load_analyzer  # noqa: E402
from faceadapter_suite.face.sample_photos import load_sample  # noqa: E402
from faceadapter_suite.generate.nets import FaceAdapterNets  # noqa: E402
from faceadapter_suite.nodes import facex as facex_nodes  # noqa: E402
from faceadapter_suite.spatial.projectors import MeshProjector  # noqa: E402
from faceadapter_suite.tools.random_models import ensure_random_models  # noqa: E402
from generation_native import ForwardClock  # noqa: E402

PHOTOS = ("grace_hopper", "astronaut")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="a folder from scripts/make_random_models.py (default: the tier-2 cache)")
    parser.add_argument("--repeat", type=int, default=3, help="timed Decompose calls per photo (best is kept)")
    args = parser.parse_args()
    models = Path(args.models) if args.models else ensure_random_models(RANDOM_MODELS_CACHE / "fp16", dtype="fp16")
    comfy_bridge.set_models_dir(models)
    nets = FaceAdapterNets.found()
    analyzer = load_analyzer("mediapipe")
    inputs = {}
    for name in PHOTOS:
        image = uint8_to_image(load_sample(name))
        inputs[name] = (image, detect_batch(analyzer, image))
    node, projector = facex_nodes.FaceXDecompose(), MeshProjector()

    def decompose(name: str):
        image, faces = inputs[name]
        return node.decompose(image, faces, projector, 0, 0, 0.81, facex_nodes.MESH_REGIONS, nets)[0]

    faces = {name: decompose(name) for name in PHOTOS}  # loads every network once (not timed)
    clocks = {"arcface": ForwardClock(nets.arcface().value), "id2token": ForwardClock(nets.id2token().value),
              "vision_encoder": ForwardClock(nets.vision_encoder().value),
              "image2token": ForwardClock(nets.image2token().value)}
    per_photo = {}
    for name in PHOTOS:
        best_wall, best_bare = float("inf"), float("inf")
        for _ in range(args.repeat):
            inside = sum(c.seconds for c in clocks.values())
            wall = timed(lambda: decompose(name))
            if wall < best_wall:
                best_wall, best_bare = wall, sum(c.seconds for c in clocks.values()) - inside
        per_photo[name] = {"decompose_s": round(best_wall, 3), "bare_networks_s": round(best_bare, 3),
                           "ratio": round(best_wall / best_bare, 3)}
    assemble = facex_nodes.FaceXAssemble().assemble
    recipe = {"identity": "A", "expression": "B", "pose": "B", "gaze": "B", "appearance": "A",
              "hair": "background", "background": "A"}
    pair = (faces["grace_hopper"], faces["astronaut"])
    assemble(*pair, **recipe)
    assemble_s = best_of(lambda: assemble(*pair, **recipe), args.repeat)
    wall = sum(v["decompose_s"] for v in per_photo.values())
    bare = sum(v["bare_networks_s"] for v in per_photo.values())
    emit("facex", {
        "models": str(models), "photos": list(PHOTOS), "per_photo": per_photo,
        "ratio_decompose_vs_bare_networks": round(wall / bare, 3), "goal": "<= 1.5",
        "network_calls_per_decompose": {k: c.calls / (len(PHOTOS) * args.repeat) for k, c in clocks.items()},
        "assemble_ms": round(assemble_s * 1e3, 1),
        "note": "networks: ArcFace, ID2Token, CLIP vision tower, Image2Token (full-size random weights, fp32 CPU "
                "unless a GPU is found); the rest is crop, mesh fit, regions and pooling",
    })


if __name__ == "__main__":
    main()
