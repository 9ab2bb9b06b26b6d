"""Face analysis: per-frame cost of detect+select+crop against the bare mediapipe calls, and memory
for short vs long videos (the frame loop must keep working memory flat).

- time ratio: our mediapipe backend (full-range BlazeFace, mediapipe's own mesh pipeline on the
  whole frame, and a sub-image mesh pass for each face that pass misses) + select + 512 crop, per
  frame, divided by the same two mediapipe calls made directly on the frame (goal <= 1.5). Ours runs
  the detector and the full-frame mesh at the same time (two single-threaded graphs), the bare calls one
  after the other, as a script calling mediapipe would; the same-calls ratio below is what a frame with
  faces the full-frame pass misses costs on top (t1: three sub-image mesh passes the bare call never makes); also
  against the mesh call alone. The video has one face, found by the full-frame pass, so ours does
  the bare work plus select and crop; the sample photos include t1, whose three faces the bare
  mesh call misses and we mesh with one sub-image pass each (hence the third set, without t1).
- fair ratio: the same job done with the bare libraries, from what a node gets (a float IMAGE tensor):
  convert to uint8, the two mediapipe calls, take the largest detection and cut its 512 crop out of the
  float frame with cv2.warpAffine. The literal goal compares against the two mediapipe calls alone, which
  leave out two costs every node pays (the IMAGE -> uint8 conversion mediapipe needs, and the crop).
- same-calls ratio: the bare baseline makes every mediapipe call ours makes, and only those: the detector, the
  full-frame mesh (as many faces as ours allows), and for each detection beyond the meshes that pass found, the
  mesh on a 4x box around it cut from the frame. On one-face frames this is the literal baseline; on t1 it adds
  the three sub-image passes the literal one leaves out, so the ratio is the pack's overhead, not its extra work.
- timing: each frame's best of 5 (video) or 12 (photos) repeats, all variants interleaved frame by frame;
  ms per frame is the mean of those bests, so a neighbour's load on the shared CPU costs repeats, not numbers.
- memory: peak RSS of detect+select+crop+paste on 16 and 256 frames of 512x512, each in a fresh
  process, above the RSS just before the call (peak mark reset), minus the outputs' own bytes
  (crops, frames, masks, face records: proportional to the frame count by nature), best of two
  processes. Goal: this working memory
  grows <= 10 % from 16 to 256 frames.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys

import numpy as np

from _common import emit, status_mb, timed  # imports the pack as faceadapter_suite

from faceadapter_suite.core.images import uint8_to_image
from faceadapter_suite.face import align, analysis, paste, sample_photos, select
from faceadapter_suite.face.backend_mediapipe import MESH_CONTEXT


def video(frames: int, size: int = 512) -> np.ndarray:
    """A real photo drifting and zooming: a synthetic camera move, uint8 [N, size, size, 3]."""
    import cv2

    rgb = cv2.resize(sample_photos.load_sample("astronaut"), (size, size), interpolation=cv2.INTER_AREA)
    out = np.empty((frames, size, size, 3), np.uint8)
    for i in range(frames):
        s = 1.0 + 0.1 * np.sin(i / 9.0)
        dx, dy = 12.0 * np.sin(i / 7.0), 8.0 * np.cos(i / 11.0)
        m = np.array([[s, 0.0, dx - (s - 1) * size / 2], [0.0, s, dy - (s - 1) * size / 2]])
        out[i] = cv2.warpAffine(rgb, m, (size, size), borderMode=cv2.BORDER_REFLECT)
    return out


def reset_peak() -> float:
    """Reset the kernel's peak-RSS mark (Linux) and return the current RSS in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return status_mb("VmRSS")


def peak_mb() -> float:
    peak = status_mb("VmHWM")
    return peak if peak == peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_memory(frames: int) -> dict:
    """Run in a fresh process: peak RSS growth of the whole frame loop on ``frames`` frames."""
    analyzer = analysis.load_analyzer("mediapipe")
    image = uint8_to_image(video(frames))
    analyzer.detect(video(1)[0])  # warm the graphs
    before = reset_peak()
    faces = analysis.detect_batch(analyzer, image)
    chosen = select.select_faces(faces, "largest")
    crops, transforms = align.crop_batch(image, chosen, "faceadapter_512")
    out, mask = paste.paste_batch(image, crops, transforms)
    records = sum(a.nbytes for fr in faces.frames for f in fr.faces
                  for a in (f.bbox, f.kps5, f.landmarks, f.embedding) if a is not None)
    outputs_mb = (sum(t.numel() * t.element_size() for t in (crops, out, mask)) + records) / 2 ** 20
    peak = peak_mb()
    return {"frames": frames, "faces": chosen.count(), "input_mb": round(image.numel() * 4 / 2 ** 20, 1),
            "outputs_mb": round(outputs_mb, 1), "peak_rss_mb": round(peak, 1),
            "working_mb": round(peak - before - outputs_mb, 1)}


def bare_mediapipe():
    """The reference: mediapipe's BlazeFace (full range) and 478-point mesh called directly.

    Returns ``bare(rgbs, with_detector=True)`` that runs them on a list of uint8 RGB frames."""
    import mediapipe as mp

    detector = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
    mesher = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)

    def bare(rgbs, with_detector=True):
        for rgb in rgbs:
            if with_detector:
                detector.process(rgb)
            mesher.process(rgb)

    return bare


def bare_same_calls(max_faces: int = 10):
    """The same mediapipe calls as ours, made directly (module doc): detector, full-frame mesh, and one mesh
    call per detection the full-frame pass did not find, on a MESH_CONTEXT-times box cut from the frame."""
    import mediapipe as mp

    detector = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
    mesher = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max_faces, refine_landmarks=True)

    def bare(rgbs):
        for rgb in rgbs:
            found = detector.process(rgb).detections or []
            meshes = mesher.process(rgb).multi_face_landmarks or []
            h, w = rgb.shape[:2]
            for det in found[len(meshes):]:
                b = det.location_data.relative_bounding_box
                half = MESH_CONTEXT * max(b.width * w, b.height * h) / 2
                cx, cy = (b.xmin + b.width / 2) * w, (b.ymin + b.height / 2) * h
                y0, y1, x0, x1 = (max(0, round(cy - half)), min(h, round(cy + half)),
                                  max(0, round(cx - half)), min(w, round(cx + half)))
                mesher.process(np.ascontiguousarray(rgb[y0:y1, x0:x1]))

    return bare


def bare_job():
    """The fair reference: IMAGE -> uint8, bare detector + mesh, largest box -> 512 crop by cv2.warpAffine."""
    import cv2
    import mediapipe as mp

    detector = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
    mesher = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)

    def job(images):
        for image in images:
            frame = image[0].numpy()
            rgb = (frame * 255.0 + 0.5).astype(np.uint8)
            found = detector.process(rgb).detections or []
            mesher.process(rgb)
            if not found:
                continue
            h, w = rgb.shape[:2]
            box = max(found, key=lambda d: d.location_data.relative_bounding_box.width).location_data
            b = box.relative_bounding_box
            side = max(b.width * w, b.height * h) * 2 * 0.81 * 512 / 352  # the box framed as Face-Adapter frames it
            cx, cy = (b.xmin + b.width / 2) * w, (b.ymin + b.height / 2) * h
            s = 512 / side
            m = np.array([[s, 0.0, 256 - s * cx], [0.0, s, 256 - s * cy]])
            cv2.warpAffine(frame, m, (512, 512), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    return job


def timing(frames: int = 48) -> dict:
    clip = video(frames)
    photos = [sample_photos.load_sample(n) for n in sample_photos.SAMPLE_NAMES]
    analyzer = analysis.load_analyzer("mediapipe")
    bare = bare_mediapipe()
    same = bare_same_calls(analyzer.max_faces)
    job = bare_job()

    def ours(images):
        for image in images:  # one frame per call; the nodes get IMAGE tensors, converted beforehand
            faces = analysis.detect_batch(analyzer, image)
            chosen = select.select_faces(faces, "largest")
            if chosen.count():
                align.crop_batch(image, chosen, "faceadapter_512")

    results = {}
    single = [rgb for name, rgb in zip(sample_photos.SAMPLE_NAMES, photos) if name != "t1"]
    for label, rgbs, repeats in (("video_512", list(clip), 5), ("sample_photos", photos, 12),
                                 ("sample_photos_without_t1", single, 12)):
        images = [uint8_to_image(rgb) for rgb in rgbs]
        bare(rgbs[:4]), same(rgbs[:4]), ours(images[:4]), job(images[:4])  # warm-up
        runs = {"bare": lambda i: bare(rgbs[i:i + 1]), "mesh": lambda i: bare(rgbs[i:i + 1], False),
                "ours": lambda i: ours(images[i:i + 1]), "job": lambda i: job(images[i:i + 1]),
                "same": lambda i: same(rgbs[i:i + 1])}
        # Each frame's best of ``repeats``, the variants interleaved frame by frame: on a shared CPU a
        # neighbour's burst then costs a repeat, not the measurement (a whole-list best of 5 at load 8
        # on 2 cores put ours at 2-3x its quiet time and the bare calls at 1.5x).
        best = {k: [float("inf")] * len(rgbs) for k in runs}
        for _ in range(repeats):
            for i in range(len(rgbs)):
                for k, fn in runs.items():
                    best[k][i] = min(best[k][i], timed(lambda: fn(i)))
        best = {k: sum(v) for k, v in best.items()}
        t_bare, t_mesh, t_ours, t_job, t_same = (best[k] / len(rgbs) for k in ("bare", "mesh", "ours", "job", "same"))
        results[label] = {"frames": len(rgbs), "repeats": repeats, "ms_per_frame_ours": round(t_ours * 1e3, 2),
                          "ms_per_frame_bare_detection_plus_mesh": round(t_bare * 1e3, 2),
                          "ms_per_frame_bare_mesh_only": round(t_mesh * 1e3, 2),
                          "ratio_vs_bare_detection_plus_mesh": round(t_ours / t_bare, 3),
                          "ms_per_frame_bare_job": round(t_job * 1e3, 2),
                          "ratio_vs_bare_mesh_only": round(t_ours / t_mesh, 3),
                          "ratio_vs_bare_job": round(t_ours / t_job, 3),
                          "ms_per_frame_bare_same_calls": round(t_same * 1e3, 2),
                          "ratio_vs_bare_same_calls": round(t_ours / t_same, 3)}
    return results


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--memory":
        print(json.dumps(child_memory(int(sys.argv[2]))))
        return
    times = timing()
    memory = []
    for frames in (16, 256):  # best of two fresh processes: allocator noise is a few MB either way
        runs = [json.loads(subprocess.run([sys.executable, __file__, "--memory", str(frames)], capture_output=True,
                                          text=True, check=True).stdout.strip().splitlines()[-1]) for _ in range(2)]
        memory.append(min(runs, key=lambda r: r["working_mb"]))
    short, long = memory
    growth = (long["working_mb"] - short["working_mb"]) / max(short["working_mb"], 1.0)
    emit("face_detect", {
        "time": times,
        "time_goal": "ratio_vs_bare_detection_plus_mesh <= 1.5 (literal); ratio_vs_bare_same_calls <= 1.5 (the same "
                     "mediapipe calls); ratio_vs_bare_job <= 1.5 (same job)",
        "memory": memory,
        "working_memory_growth_16_to_256": round(growth, 3),
        "memory_goal": "working_memory_growth_16_to_256 <= 0.10",
    })


if __name__ == "__main__":
    main()
