"""Spatial-condition stage: per-frame cost of the whole stage on a video, against the bare mediapipe calls.

Whole stage per target frame = Detect Faces + Select Face + Project 3D Landmarks (mediapipe mesh)
+ Predict Adapting Area (landmark hull) + Compose Spatial Control, run through the node classes on
a batch; the source photo is analysed once. Bare = mediapipe's face detection + face mesh called
directly on the same frames. Also reports the D3DFR+BFM projector with random full-size D3DFR weights.
"""
from __future__ import annotations

import time

import torch

from _common import emit, timed
from face_detect import bare_mediapipe, video

from faceadapter_suite.core.images import uint8_to_image  # noqa: E402
from faceadapter_suite.face.sample_photos import load_sample  # noqa: E402
from faceadapter_suite.nodes import face_analysis as fa  # noqa: E402
from faceadapter_suite.nodes import spatial_condition as sc  # noqa: E402

LOADER = dict(backend="mediapipe", min_score=0.5, max_faces=10, landmarks="auto", recognition=False,
              insightface_model="antelopev2", det_size=640, mediapipe_detector="full_range", device="auto")


def stage(analyzer, source_img, source_faces, frames, task: str = "reenact") -> float:
    start = time.perf_counter()
    image = uint8_to_image(frames)
    faces = fa.FaceAdapterDetectFaces().detect(image, analyzer, True, "off", 1.0, 0.5, False)[0]
    faces = fa.FaceAdapterSelectFace().select(faces, "largest", "left_to_right", 0, True, "pass_through", -1.0)[0]
    recon = sc.FaceAdapterLoad3DReconstructor().load(sc.MESH, "", "")[0]
    landmarks = sc.FaceAdapterProject3DLandmarks().project(recon, source_img, source_faces, image, faces, task,
                                                           "pass_through", 0.81)[0]
    area = sc.FaceAdapterPredictAdaptingArea().predict(landmarks, "landmark_hull", "", "")[0]
    sc.FaceAdapterComposeSpatialControl().compose(landmarks, area)
    return time.perf_counter() - start


def main(frames: int = 24, repeat: int = 3) -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    clip = video(frames)
    analyzer = fa.FaceAdapterLoadFaceAnalysis().load(**LOADER)[0]
    source_img = uint8_to_image(load_sample("grace_hopper"))
    source_faces = fa.FaceAdapterDetectFaces().detect(source_img, analyzer, False, "off", 1.0, 0.5, False)[0]
    stage(analyzer, source_img, source_faces, clip[:2])  # warm-up
    bare = bare_mediapipe()
    bare(list(clip[:2]))
    t_stage = min(stage(analyzer, source_img, source_faces, clip) for _ in range(repeat)) / frames
    t_bare = min(timed(lambda: bare(list(clip))) for _ in range(repeat)) / frames
    emit("spatial_condition", {
        "frames": frames, "frame_size": list(clip.shape[1:3]),
        "ms_per_frame_stage": round(t_stage * 1e3, 2),
        "ms_per_frame_bare_mediapipe": round(t_bare * 1e3, 2),
        "ratio_stage_vs_bare_mediapipe": round(t_stage / t_bare, 3),
        "note": "stage = detect + select + mesh projector + hull area + control composition, via node classes",
    })


if __name__ == "__main__":
    main()
