"""Model cache: cold load vs warm fetch of a full-size network, and loads for a two-node graph run twice.

Weights are random (same compute and I/O as the real ones), written in the real file
formats to a temporary models folder.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch

from _common import REPO, best_of, emit

from faceadapter_suite.core import comfy_bridge  # noqa: E402
from faceadapter_suite.core.cache import MODEL_CACHE  # noqa: E402
from faceadapter_suite.core.images import uint8_to_image  # noqa: E402
from faceadapter_suite.face.analysis import detect_batch, load_analyzer  # noqa: E402
from faceadapter_suite.face.sample_photos import load_sample  # noqa: E402
from faceadapter_suite.models.d3dfr import D3DFR  # noqa: E402
from faceadapter_suite.nodes.spatial_condition import (BFM, FaceAdapterLoad3DReconstructor,  # noqa: E402
                                                       FaceAdapterProject3DLandmarks)
from faceadapter_suite.spatial.projectors import load_bfm_projector  # noqa: E402

SYNTHETIC_BFM = REPO / "tests" / "data" / "reference" / "parity" / "bfm_synthetic_front.mat"


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="fa_bench_cache_"))
    try:
        third = root / "faceadapter" / "third_party"
        third.mkdir(parents=True)
        d3dfr_path, bfm_path = third / "d3dfr_res50_nofc.pth", third / "BFM_model_front.mat"
        net = D3DFR()
        for p in net.parameters():
            p.data.mul_(0.05)
        torch.save(net.state_dict(), d3dfr_path)
        shutil.copy(SYNTHETIC_BFM, bfm_path)
        comfy_bridge.set_models_dir(root)

        MODEL_CACHE.clear()
        start = time.perf_counter()
        load_bfm_projector(d3dfr_path, bfm_path, torch.device("cpu"))
        cold = time.perf_counter() - start
        warm = best_of(lambda: load_bfm_projector(d3dfr_path, bfm_path, torch.device("cpu")), repeat=20)

        analyzer = load_analyzer("mediapipe")
        image = uint8_to_image(load_sample("astronaut"))
        faces = detect_batch(analyzer, image)
        MODEL_CACHE.clear()
        MODEL_CACHE.reset_stats()
        loads_per_run = []
        for _ in range(2):  # the graph: Load 3D Face Reconstructor -> Project 3D Landmarks
            before = MODEL_CACHE.stats.loads
            recon = FaceAdapterLoad3DReconstructor().load(BFM, "third_party/d3dfr_res50_nofc.pth",
                                                          "third_party/BFM_model_front.mat")[0]
            FaceAdapterProject3DLandmarks().project(recon, image, faces, image, faces, "swap", "pass_through", 0.81)
            loads_per_run.append(MODEL_CACHE.stats.loads - before)
        emit("cache", {
            "network": "D3DFR ResNet-50 (96 MB .pth) + BFM .mat",
            "cold_load_s": round(cold, 4),
            "warm_fetch_s": round(warm, 6),
            "cold_over_warm": round(cold / max(warm, 1e-9), 1),
            "graph_loads_per_run": loads_per_run,
            "cache_hits_total": MODEL_CACHE.stats.hits,
        })
    finally:
        comfy_bridge.set_models_dir(None)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
