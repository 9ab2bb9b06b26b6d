"""Write the Face-Adapter generation templates (workflows/<name>.json, UI format) from compact specs.

Sockets, widget order and output types come from the node classes (and the stock-node contracts the
tier-1 workflow tests keep), so a template always matches the nodes it shows. Afterwards run
``python scripts/workflow_api_twins.py`` for the API twins.

    python scripts/build_workflows.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import conftest  # noqa: E402,F401  (imports the pack as faceadapter_suite)
from test_workflows import WORKFLOW_DIR, contract  # noqa: E402
from faceadapter_suite.core.model_paths import NOT_INSTALLED  # noqa: E402

Node = tuple[int, str, tuple[int, int], Optional[str], dict[str, Any]]
Link = tuple[int, int, int, str]  # from node, from slot, to node, to input name

MESH = "mediapipe_mesh (licence-clean)"
VAE_NAME = "vae-ft-mse-840000-ema-pruned.safetensors"
CHECKPOINT_NAME = "v1-5-pruned-emaonly.safetensors"  # SD1.5's usual file name (ComfyUI's default graph uses it too)
LORA_NAME = "sd15_lora.safetensors"  # a stand-in: the user picks one of theirs


def build(nodes: list[Node], links: list[Link], groups: list[tuple[str, list[int], str]]) -> dict:
    """A UI workflow (version 0.4) from nodes, links and groups (title, [x, y, w, h], colour)."""
    contracts = {nid: contract(kind) for nid, kind, *_ in nodes}
    link_rows = []
    inputs: dict[int, list[dict]] = {}
    outputs: dict[int, list[dict]] = {}
    for nid, kind, *_ in nodes:
        c = contracts[nid]
        inputs[nid] = [{"name": name, "type": kind_, "link": None} for name, (kind_, _) in c.sockets.items()]
        outputs[nid] = [{"name": name, "type": kind_, "links": None, "slot_index": i}
                        for i, (name, kind_) in enumerate(c.outputs)]
    for lid, (src, slot, dst, name) in enumerate(links, start=1):
        kind = contracts[src].outputs[slot][1]
        index = next(i for i, s in enumerate(inputs[dst]) if s["name"] == name)
        inputs[dst][index]["link"] = lid
        outputs[src][slot]["links"] = (outputs[src][slot]["links"] or []) + [lid]
        link_rows.append([lid, src, slot, dst, index, kind])
    order = _topological(nodes, links)
    ui_nodes = []
    for nid, kind, pos, title, values in nodes:
        c = contracts[nid]
        widgets = [_widget_value(w, values) for w in c.widgets]
        height = 46 + 26 * max(len(inputs[nid]), len(outputs[nid])) + 26 * len(widgets)
        node = {"id": nid, "type": kind, "pos": list(pos), "size": [320, height], "flags": {},
                "order": order[nid], "mode": 0, "inputs": inputs[nid], "outputs": outputs[nid],
                "properties": {"Node name for S&R": kind}, "widgets_values": widgets}
        if title:
            node["title"] = title
        ui_nodes.append(node)
    return {"last_node_id": max(n[0] for n in nodes), "last_link_id": len(link_rows), "nodes": ui_nodes,
            "links": link_rows,
            "groups": [{"id": i, "title": t, "bounding": b, "color": col, "font_size": 24, "flags": {}}
                       for i, (t, b, col) in enumerate(groups, start=1)],
            "config": {}, "extra": {"ds": {"scale": 0.6, "offset": [200, 100]}}, "version": 0.4}


def _widget_value(w, values: dict) -> Any:
    if w.name in values:
        return values[w.name]
    if w.name == "control_after_generate":
        return "fixed"
    if w.name == "upload":
        return "image"
    if "default" in w.options and not str(w.options["default"]).startswith(NOT_INSTALLED):
        return w.options["default"]  # (a model dropdown's default says "not installed" here: take its manifest path)
    if w.choices:
        return w.choices[0]
    raise KeyError(f"no value for widget {w.name}")


def _topological(nodes: list[Node], links: list[Link]) -> dict[int, int]:
    pending = {n[0] for n in nodes}
    deps = {n[0]: {src for src, _, dst, _ in links if dst == n[0]} for n in nodes}
    order: dict[int, int] = {}
    while pending:
        ready = sorted(n for n in pending if deps[n] <= set(order))
        for n in ready:
            order[n] = len(order)
        pending -= set(ready)
    return order


def two_faces(source_title: str, target_title: str) -> tuple[list[Node], list[Link]]:
    """Nodes 1-8: two photos, mediapipe analysis, a face detected and selected in each, the mesh reconstructor."""
    nodes: list[Node] = [
        (1, "LoadImage", (0, 60), source_title, {"image": "faceadapter_grace_hopper.png"}),
        (2, "LoadImage", (0, 520), target_title, {"image": "faceadapter_astronaut.png"}),
        (3, "FaceAdapterLoadFaceAnalysis", (300, 360), None, {"backend": "mediapipe", "recognition": False}),
        (4, "FaceAdapterDetectFaces", (660, 60), None, {"preview": False}),
        (5, "FaceAdapterDetectFaces", (660, 520), None, {"preview": False}),
        (6, "FaceAdapterSelectFace", (1000, 60), None, {}),
        (7, "FaceAdapterSelectFace", (1000, 520), None, {}),
        (8, "FaceAdapterLoad3DReconstructor", (1000, 900), None, {"method": MESH}),
    ]
    links: list[Link] = [(1, 0, 4, "image"), (3, 0, 4, "analysis"), (2, 0, 5, "image"), (3, 0, 5, "analysis"),
                         (4, 0, 6, "faces"), (5, 0, 7, "faces")]
    return nodes, links


def spatial_part(task: str) -> tuple[list[Node], list[Link]]:
    """Faces and the spatial condition: the part every Face-Adapter template shares."""
    source_title = "Source: identity" if task == "swap" else "Source: the face to animate"
    target_title = "Target: the face to replace" if task == "swap" else "Target: pose and expression"
    nodes, links = two_faces(source_title, target_title)
    nodes += [
        (9, "FaceAdapterProject3DLandmarks", (1360, 60), None, {"task": task}),
        (10, "FaceAdapterPredictAdaptingArea", (1360, 520), None, {}),
        (11, "FaceAdapterComposeSpatialControl", (1720, 60), None, {}),
    ]
    links += [(8, 0, 9, "reconstructor"), (1, 0, 9, "source_image"), (6, 0, 9, "source_faces"),
              (2, 0, 9, "target_image"), (7, 0, 9, "target_faces"), (9, 0, 10, "landmarks"),
              (9, 0, 11, "landmarks"), (10, 0, 11, "area")]
    return nodes, links


def encoders() -> tuple[list[Node], list[Link]]:
    nodes: list[Node] = [
        (12, "FaceAdapterLoad", (1720, 520), None, {}),
        (13, "FaceAdapterLoadUNet", (1720, 980), None, {}),
        (14, "VAELoader", (1720, 1120), None, {"vae_name": VAE_NAME}),
        (15, "FaceAdapterEncodeIdentity", (2080, 60), None, {}),
        (16, "FaceAdapterEncodeAttributes", (2080, 360), None, {}),
    ]
    links: list[Link] = [(11, 0, 15, "spatial"), (12, 0, 15, "face_adapter"),
                         (11, 0, 16, "spatial"), (12, 0, 16, "face_adapter")]
    return nodes, links


GROUPS = [("Faces", [-10, -10, 1330, 1240], "#3f789e"), ("Spatial condition", [1340, -10, 720, 1240], "#A88"),
          ("Face-Adapter", [2070, -10, 1480, 1240], "#8A8")]


def sample_blend_paste(result: str, prefix: str, model: tuple[int, int], vae: tuple[int, int],
                       paste_image: int) -> tuple[list[Node], list[Link]]:
    """Nodes 17-24 of the node-by-node generation templates: Apply (spatial 11, encoders 15/16, Face-Adapter
    12) -> stock KSampler (upstream: euler, 25 steps, CFG 5) -> VAE Decode -> Blend -> Paste Generated Faces
    into ``paste_image``, with the result, control image and generated crop shown."""
    nodes: list[Node] = [
        (17, "FaceAdapterApply", (2440, 60), None, {}),
        (18, "KSampler", (2800, 60), None, {"seed": 0, "steps": 25, "cfg": 5.0, "sampler_name": "euler",
                                             "scheduler": "normal", "denoise": 1.0}),
        (19, "VAEDecode", (3160, 60), None, {}),
        (20, "FaceAdapterBlendFaces", (3160, 220), None, {}),
        (21, "FaceAdapterPasteGenerated", (3160, 420), None, {}),
        (22, "SaveImage", (3520, 60), result, {"filename_prefix": prefix}),
        (23, "PreviewImage", (2080, 700), "Control image", {}),
        (24, "PreviewImage", (3520, 520), "Generated crop", {}),
    ]
    links: list[Link] = [
        (11, 0, 17, "spatial"), (15, 0, 17, "identity"), (16, 0, 17, "attributes"), (12, 1, 17, "control_net"),
        (12, 0, 17, "face_adapter"),
        (*model, 18, "model"), (17, 0, 18, "positive"), (17, 1, 18, "negative"), (17, 2, 18, "latent_image"),
        (18, 0, 19, "samples"), (*vae, 19, "vae"),
        (11, 0, 20, "spatial"), (19, 0, 20, "images"),
        (11, 0, 21, "spatial"), (paste_image, 0, 21, "image"), (20, 0, 21, "crops"), (20, 1, 21, "mask"),
        (21, 0, 22, "images"), (11, 1, 23, "images"), (20, 0, 24, "images"),
    ]
    return nodes, links


def reenact_native() -> dict:
    """Reenactment node by node: Apply -> stock KSampler (upstream: euler, 25 steps, CFG 5) -> VAE Decode
    -> Blend -> Paste Generated Faces into the source image."""
    nodes, links = spatial_part("reenact")
    more, more_links = encoders()
    tail, tail_links = sample_blend_paste("Result: source animated", "FaceAdapter/reenact", model=(13, 0),
                                          vae=(14, 0), paste_image=1)
    nodes += more + tail
    links += more_links + tail_links
    return build(nodes, links, GROUPS)


def swap_render() -> dict:
    """Swapping with the one-node renderer: Render samples, decodes, blends and pastes into the target."""
    nodes, links = spatial_part("swap")
    more, more_links = encoders()
    nodes += more + [
        (17, "FaceAdapterRender", (2440, 60), None, {"seed": 0, "steps": 25, "cfg": 5.0}),
        (18, "SaveImage", (2800, 60), "Result: swapped", {"filename_prefix": "FaceAdapter/swap"}),
        (19, "PreviewImage", (2800, 520), "Generated crop", {}),
        (20, "PreviewImage", (2080, 700), "Control image", {}),
    ]
    links += more_links + [
        (11, 0, 17, "spatial"), (15, 0, 17, "identity"), (16, 0, 17, "attributes"), (12, 1, 17, "control_net"),
        (12, 0, 17, "face_adapter"), (2, 0, 17, "image"), (13, 0, 17, "model"), (14, 0, 17, "vae"),
        (17, 0, 18, "images"), (17, 1, 19, "images"), (11, 1, 20, "images"),
    ]
    return build(nodes, links, GROUPS)


def multi_face_video_swap() -> dict:
    """Swap over a video of several people: Select Face keeps, in every frame, the face most like a reference
    photo and follows its track; Render swaps the source identity into those faces, frame by frame."""
    nodes: list[Node] = [
        (1, "LoadImage", (0, 60), "Source: the new identity", {"image": "faceadapter_grace_hopper.png"}),
        (2, "LoadImage", (0, 520), "Video frame (stand-in for a video loader)", {"image": "faceadapter_t1.png"}),
        (3, "RepeatImageBatch", (0, 900), "Frames (replace with a video loader)", {"amount": 3}),
        (4, "LoadImage", (0, 1100), "Reference: a photo of the person to replace", {"image": "faceadapter_t1.png"}),
        (5, "FaceAdapterLoadFaceAnalysis", (300, 360), None, {"backend": "mediapipe", "recognition": True}),
        (6, "FaceAdapterDetectFaces", (660, 60), None, {"tracking": False, "preview": False}),
        (7, "FaceAdapterDetectFaces", (660, 520), "Detect Faces in the video (tracking)",
         {"tracking": True, "smoothing": "one_euro", "preview": True}),
        (8, "FaceAdapterDetectFaces", (660, 1100), "Detect the reference face", {"tracking": False, "preview": False}),
        (9, "FaceAdapterSelectFace", (1000, 60), None, {}),
        (10, "FaceAdapterSelectFace", (1000, 520), "Select the reference person in every frame",
         {"mode": "reference", "follow_track": True}),
        (11, "FaceAdapterLoad3DReconstructor", (1000, 1100), None, {"method": MESH}),
        (12, "FaceAdapterProject3DLandmarks", (1360, 60), None, {"task": "swap"}),
        (13, "FaceAdapterPredictAdaptingArea", (1360, 520), None, {}),
        (14, "FaceAdapterComposeSpatialControl", (1720, 60), None, {}),
        (15, "FaceAdapterLoad", (1720, 520), None, {}),
        (16, "FaceAdapterLoadUNet", (1720, 980), None, {}),
        (17, "VAELoader", (1720, 1120), None, {"vae_name": VAE_NAME}),
        (18, "FaceAdapterEncodeIdentity", (2080, 60), None, {}),
        (19, "FaceAdapterEncodeAttributes", (2080, 360), None, {}),
        (20, "FaceAdapterRender", (2440, 60), None, {"seed": 0, "steps": 25, "cfg": 5.0}),
        (21, "SaveImage", (2800, 60), "Result: the chosen face swapped in every frame",
         {"filename_prefix": "FaceAdapter/multi_face_swap"}),
        (22, "PreviewImage", (2800, 520), "Generated crops, one per frame", {}),
        (23, "PreviewImage", (1000, 900), "Tracked faces in the video", {}),
        (24, "PreviewImage", (2080, 700), "Control image", {}),
    ]
    links: list[Link] = [
        (2, 0, 3, "image"), (1, 0, 6, "image"), (5, 0, 6, "analysis"), (3, 0, 7, "image"), (5, 0, 7, "analysis"),
        (4, 0, 8, "image"), (5, 0, 8, "analysis"), (6, 0, 9, "faces"), (7, 0, 10, "faces"), (8, 0, 10, "reference"),
        (11, 0, 12, "reconstructor"), (1, 0, 12, "source_image"), (9, 0, 12, "source_faces"),
        (3, 0, 12, "target_image"), (10, 0, 12, "target_faces"), (12, 0, 13, "landmarks"), (12, 0, 14, "landmarks"),
        (13, 0, 14, "area"),
        (14, 0, 18, "spatial"), (15, 0, 18, "face_adapter"), (14, 0, 19, "spatial"), (15, 0, 19, "face_adapter"),
        (14, 0, 20, "spatial"), (18, 0, 20, "identity"), (19, 0, 20, "attributes"), (15, 1, 20, "control_net"),
        (15, 0, 20, "face_adapter"), (3, 0, 20, "image"), (16, 0, 20, "model"), (17, 0, 20, "vae"),
        (20, 0, 21, "images"), (20, 1, 22, "images"), (7, 1, 23, "images"), (14, 1, 24, "images"),
    ]
    return build(nodes, links, [("Faces: source, video, reference", [-10, -10, 1330, 1500], "#3f789e"),
                                ("Spatial condition", [1340, -10, 720, 1500], "#A88"),
                                ("Face-Adapter", [2070, -10, 1110, 1500], "#8A8")])


def native_checkpoint_lora() -> dict:
    """The native path: a stock SD1.5 checkpoint and a LoRA give the MODEL, Apply Face-Adapter the
    conditioning, the stock KSampler samples, the checkpoint's VAE decodes; Blend and Paste finish the swap."""
    nodes, links = spatial_part("swap")
    nodes += [
        (12, "FaceAdapterLoad", (1720, 520), None, {}),
        (13, "CheckpointLoaderSimple", (1720, 980), "Any SD1.5 checkpoint", {"ckpt_name": CHECKPOINT_NAME}),
        (14, "LoraLoader", (2080, 980), "LoRA (pick yours; strength 0 = off)",
         {"lora_name": LORA_NAME, "strength_model": 1.0, "strength_clip": 1.0}),
        (15, "FaceAdapterEncodeIdentity", (2080, 60), None, {}),
        (16, "FaceAdapterEncodeAttributes", (2080, 360), None, {}),
    ]
    links += [
        (11, 0, 15, "spatial"), (12, 0, 15, "face_adapter"), (11, 0, 16, "spatial"), (12, 0, 16, "face_adapter"),
        (13, 0, 14, "model"), (13, 1, 14, "clip"),
    ]
    tail, tail_links = sample_blend_paste("Result: swapped (checkpoint + LoRA)", "FaceAdapter/native",
                                          model=(14, 0), vae=(13, 2), paste_image=2)
    nodes += tail
    links += tail_links
    return build(nodes, links, GROUPS)


def metrics() -> dict:
    """Measure a result: identity against the source, expression and pose against the driving frame, flicker
    of the result frames, and one before/after grid with the numbers printed on it. The result defaults to
    a photo of another person so every number is visibly non-trivial; load your generated image (or a
    video's frames) there."""
    nodes: list[Node] = [
        (1, "LoadImage", (0, 60), "Source: identity", {"image": "faceadapter_grace_hopper.png"}),
        (2, "LoadImage", (0, 520), "Driving: pose and expression", {"image": "faceadapter_astronaut.png"}),
        (3, "LoadImage", (0, 980), "Result: your generated image", {"image": "faceadapter_tom_hanks.png"}),
        (4, "FaceAdapterLoadFaceAnalysis", (340, 360), None, {"backend": "mediapipe", "recognition": False}),
        (5, "FaceAdapterIdentitySimilarity", (700, 60), None, {}),
        (6, "FaceAdapterExpressionPoseError", (700, 420), None, {}),
        (7, "RepeatImageBatch", (340, 980), "Result frames (a video; here 4 x one photo: a still clip)",
         {"amount": 4}),
        (8, "FaceAdapterTemporalFlicker", (700, 760), None, {}),
        (9, "FaceAdapterBeforeAfterGrid", (1080, 60), None, {"cell_size": 256}),
        (10, "SaveImage", (1440, 60), "Before / after with the numbers", {"filename_prefix": "FaceAdapter/metrics"}),
        (11, "PreviewImage", (1080, 520), "Identity table", {}),
        (12, "PreviewImage", (1080, 760), "Expression and pose table", {}),
        (13, "PreviewImage", (1080, 1000), "Flicker table", {}),
    ]
    links: list[Link] = [
        (3, 0, 5, "image_a"), (1, 0, 5, "image_b"), (4, 0, 5, "analysis"),
        (3, 0, 6, "result"), (2, 0, 6, "driving"), (4, 0, 6, "analysis"),
        (3, 0, 7, "image"), (7, 0, 8, "frames"), (4, 0, 8, "analysis"),
        (3, 0, 9, "result"), (1, 0, 9, "source"), (2, 0, 9, "target"),
        (5, 0, 9, "report_1"), (6, 0, 9, "report_2"), (8, 0, 9, "report_3"),
        (9, 0, 10, "images"), (5, 1, 11, "images"), (6, 1, 12, "images"), (8, 1, 13, "images"),
    ]
    return build(nodes, links, [("Inputs", [-10, -10, 680, 1440], "#3f789e"),
                                ("Metrics", [690, -10, 1120, 1440], "#A88")])



def fadm_video() -> dict:
    """FADM video reenactment: VoxCeleb crops -> Coarse Animate (face-vid2vid) -> FADM Refine (upstream's 100
    steps) -> pasted back into the source photo, once per driving frame. Load Image + Repeat Image Batch stand
    for a driving clip (any IMAGE batch, e.g. a video loader's frames)."""
    nodes: list[Node] = [
        (1, "LoadImage", (0, 60), "Source: the face to animate", {"image": "faceadapter_grace_hopper.png"}),
        (2, "LoadImage", (0, 520), "Driving clip (replace with your frames)", {"image": "faceadapter_astronaut.png"}),
        (3, "RepeatImageBatch", (0, 900), None, {"amount": 4}),
        (4, "FaceAdapterLoadFaceAnalysis", (300, 360), None, {"backend": "mediapipe", "recognition": False}),
        (5, "FaceAdapterDetectFaces", (660, 60), None, {"tracking": False, "preview": False}),
        (6, "FaceAdapterDetectFaces", (660, 520), None, {"preview": False}),
        (7, "FaceAdapterSelectFace", (1000, 60), None, {}),
        (8, "FaceAdapterSelectFace", (1000, 520), None, {}),
        (9, "FaceAdapterCropFaces", (1360, 60), "Crop Faces (source, VoxCeleb)", {"crop": "voxceleb_256"}),
        (10, "FaceAdapterCropFaces", (1360, 520), "Crop Faces (driving, one box per shot)",
         {"crop": "voxceleb_256_shot"}),
        (11, "FaceAdapterLoadCoarseGenerator", (1360, 900), None, {}),
        (12, "FaceAdapterLoadFADM", (1720, 900), None, {}),
        (13, "FaceAdapterLoadDECA", (1720, 1060), None, {}),
        (14, "FaceAdapterCoarseAnimate", (1720, 60), None, {}),
        (15, "FaceAdapterFADMRefine", (2080, 60), None, {"seed": 0, "steps": 100}),
        (16, "FaceAdapterRepeatSourceForFrames", (2440, 60), None, {}),
        (17, "FaceAdapterPasteFaces", (2800, 60), None, {}),
        (18, "SaveImage", (3160, 60), "Result: source animated", {"filename_prefix": "FaceAdapter/fadm"}),
        (19, "PreviewImage", (2080, 620), "Coarse frames", {}),
        (20, "PreviewImage", (2440, 620), "Refined crops", {}),
    ]
    links: list[Link] = [
        (2, 0, 3, "image"), (1, 0, 5, "image"), (4, 0, 5, "analysis"), (3, 0, 6, "image"), (4, 0, 6, "analysis"),
        (5, 0, 7, "faces"), (6, 0, 8, "faces"), (1, 0, 9, "image"), (7, 0, 9, "faces"), (3, 0, 10, "image"),
        (8, 0, 10, "faces"), (11, 0, 14, "coarse_generator"), (9, 0, 14, "source"), (10, 0, 14, "driving"),
        (12, 0, 15, "fadm"), (13, 0, 15, "deca"), (14, 0, 15, "coarse"), (9, 0, 15, "source"),
        (1, 0, 16, "image"), (9, 1, 16, "transforms"), (15, 0, 16, "frames"),
        (16, 0, 17, "image"), (15, 0, 17, "crops"), (16, 1, 17, "transforms"),
        (17, 0, 18, "images"), (14, 0, 19, "images"), (15, 0, 20, "images"),
    ]
    groups = [("Faces: VoxCeleb crops", [-10, -10, 1700, 1240], "#3f789e"),
              ("FADM: coarse -> refine", [1700, -10, 720, 1240], "#8A8"),
              ("Paste back", [2430, -10, 1080, 1240], "#A88")]
    return build(nodes, links, groups)


def facex_edit() -> dict:
    """FaceX: A keeps its identity, appearance and photo; expression, pose and gaze come from B, each with a
    slider on top (expression intensity, pose offset, gaze direction); Render pastes the result into A."""
    nodes, links = two_faces("A: the face to edit", "B: expression, pose and gaze")
    nodes += [
        (12, "FaceAdapterLoad", (1000, 1100), None, {}),
        (13, "FaceAdapterLoadUNet", (2440, 900), None, {}),
        (14, "VAELoader", (2440, 1040), None, {"vae_name": VAE_NAME}),
        (30, "FaceAdapterFaceXDecompose", (1360, 60), "Decompose A", {}),
        (31, "FaceAdapterFaceXDecompose", (1360, 520), "Decompose B", {}),
        (32, "FaceAdapterFaceXExpressionIntensity", (1720, 520), None, {"intensity": 1.0}),
        (33, "FaceAdapterFaceXPoseOffset", (1720, 760), None, {"yaw": 10.0, "pitch": 0.0, "roll": 0.0}),
        (34, "FaceAdapterFaceXGazeDirection", (1720, 1040), None, {"horizontal": 0.0, "vertical": 0.0}),
        (35, "FaceAdapterFaceXAssemble", (2080, 60), None, {
            "identity": "A", "expression": "B", "pose": "B", "gaze": "B", "appearance": "A",
            "hair": "background", "background": "A"}),
        (36, "FaceAdapterRender", (2440, 60), None, {"seed": 0, "steps": 25, "cfg": 5.0}),
        (37, "SaveImage", (2800, 60), "Result: A with B's expression and pose", {"filename_prefix": "FaceAdapter/facex"}),
        (38, "PreviewImage", (2080, 520), "Edited landmarks of B", {}),
        (39, "PreviewImage", (2080, 800), "Assembled landmarks", {}),
        (40, "PreviewImage", (1720, 60), "Regions of A", {}),
        (41, "FaceAdapterFaceXSaveFace", (1720, 300), "Keep A for later (FaceX Load Face)",
         {"name": "facex_a", "overwrite": True}),
        (42, "FaceAdapterFaceXRegionSwap", (2080, 1100), "Region swap: B's lips on A (no generation)",
         {"brows": False, "eyes": False, "lips": True}),
        (43, "FaceAdapterPasteFaces", (2440, 1200), None, {"feather": 0}),
        (44, "SaveImage", (2800, 1100), "Result: A with B's lips", {"filename_prefix": "FaceAdapter/facex_lips"}),
    ]
    links += [
        (1, 0, 30, "image"), (6, 0, 30, "faces"), (8, 0, 30, "reconstructor"), (12, 0, 30, "face_adapter"),
        (2, 0, 31, "image"), (7, 0, 31, "faces"), (8, 0, 31, "reconstructor"), (12, 0, 31, "face_adapter"),
        (31, 0, 32, "face"), (32, 0, 33, "face"), (33, 0, 34, "face"),
        (30, 0, 35, "face_a"), (34, 0, 35, "face_b"),
        (35, 0, 36, "spatial"), (35, 1, 36, "identity"), (35, 2, 36, "attributes"), (12, 1, 36, "control_net"),
        (12, 0, 36, "face_adapter"), (1, 0, 36, "image"), (13, 0, 36, "model"), (14, 0, 36, "vae"),
        (36, 0, 37, "images"), (34, 1, 38, "images"), (35, 4, 39, "images"), (30, 2, 40, "images"),
        (30, 0, 41, "face"),
        (30, 0, 42, "target"), (31, 0, 42, "donor"),
        (1, 0, 43, "image"), (42, 0, 43, "crops"), (42, 2, 43, "transforms"), (42, 1, 43, "mask"),
        (43, 0, 44, "images"),
    ]
    groups = [("Faces", [-10, -10, 1330, 1540], "#3f789e"), ("FaceX", [1340, -10, 1090, 1540], "#a1309b"),
              ("Face-Adapter", [2430, -10, 730, 1540], "#8A8")]
    return build(nodes, links, groups)


TEMPLATES = {"faceadapter_reenact": reenact_native, "faceadapter_swap": swap_render,
             "faceadapter_multi_face_video_swap": multi_face_video_swap,
             "faceadapter_native_checkpoint_lora": native_checkpoint_lora, "faceadapter_metrics": metrics,
             "faceadapter_fadm_video": fadm_video, "faceadapter_facex_edit": facex_edit}

if __name__ == "__main__":
    for name, make in TEMPLATES.items():
        path = WORKFLOW_DIR / f"{name}.json"
        path.write_text(json.dumps(make(), indent=1) + "\n")
        print("wrote", path)
