"""Tier 2: the example workflows in a real ComfyUI.

Each API twin (workflows/api/<name>.json) is queued with the sample photos uploaded under names of its
own (so nothing image-dependent is shared between workflows) and the UI workflow as extra_pnginfo, then
queued a second time. Checked: success, every FaceAdapter node ran and reported progress, the saved and
previewed images decode with the expected sizes, the crop -> paste round trip returns the input frames,
the second run and every later workflow with the same loader settings reuse the cached loaders, the
stock nodes the workflows use match STOCK_NODES, and /workflow_templates serves the templates.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from conftest import PACK
from test_workflows import API_DIR, NAMES, SAMPLE_IMAGE, STOCK_NODES, WORKFLOW_DIR, load_json

from .comfy_server import PACK_DIR_NAME, RunResult
from .conftest import quick

PROGRESS_CLASSES = {"FaceAdapterDetectFaces", "FaceAdapterCropFaces", "FaceAdapterPasteFaces",
                    "FaceAdapterProject3DLandmarks", "FaceAdapterPredictAdaptingArea", "FaceAdapterPasteGenerated",
                    "FaceAdapterCoarseAnimate", "FaceAdapterFADMRefine"}
CROP_SIDES = {"faceadapter_512": 512, "aligned_256": 256, "voxceleb_256": 256, "voxceleb_256_shot": 256}
# FADM nodes give one 256 frame per frame of this input
FADM_FRAMES = {"FaceAdapterCoarseAnimate": "driving", "FaceAdapterFADMRefine": "coarse"}
SPATIAL_512 = {"FaceAdapterProject3DLandmarks", "FaceAdapterPredictAdaptingArea", "FaceAdapterComposeSpatialControl"}
METRIC_IMAGES = {"FaceAdapterIdentitySimilarity", "FaceAdapterExpressionPoseError", "FaceAdapterTemporalFlicker",
                 "FaceAdapterBeforeAfterGrid"}  # one table / grid image each, sized by its text
ANY_SIZE = "any"
FACEX_CROPS = {"FaceAdapterFaceXDecompose", "FaceAdapterFaceXAssemble", "FaceAdapterFaceXExpressionIntensity",
               "FaceAdapterFaceXPoseOffset", "FaceAdapterFaceXGazeDirection", "FaceAdapterFaceXRegionSwap",
               "FaceAdapterFaceXLoadFace"}
MAX_ROUND_TRIP_ERROR = 2  # in 1/255: an unchanged crop pasted back must give the input frame


def ours(prompt: dict) -> dict[str, str]:
    return {nid: n["class_type"] for nid, n in prompt.items() if n["class_type"] in PACK.NODE_CLASS_MAPPINGS}


def loaders(prompt: dict) -> set[str]:
    """Our nodes without linked inputs: they only load models / backends."""
    return {nid for nid in ours(prompt) if not any(isinstance(v, list) for v in prompt[nid]["inputs"].values())}


def decode(data: bytes) -> np.ndarray:
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "ComfyUI served an image that does not decode"
    return image[:, :, ::-1]


class Run:
    def __init__(self, name: str, prompt: dict, first: RunResult, second: RunResult, history: dict,
                 frames: dict[str, np.ndarray]):
        self.name, self.prompt, self.first, self.second, self.history = name, prompt, first, second, history
        self.frames = frames  # uploaded name -> RGB uint8

    def source_frames(self, ref: list) -> list[np.ndarray]:
        """The frames an IMAGE output carries, for the frame-producing stock nodes."""
        node = self.prompt[ref[0]]
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "LoadImage":
            return [self.frames[inputs["image"]]]
        if kind == "RepeatImageBatch":
            return self.source_frames(inputs["image"]) * inputs["amount"]
        if kind == "ImageBatch":
            return self.source_frames(inputs["image1"]) + self.source_frames(inputs["image2"])
        if kind == "FaceAdapterRepeatSourceForFrames":
            return self.source_frames(inputs["image"]) * len(self.expected_sides(inputs["frames"]))
        raise AssertionError(f"no frame source {kind}")

    def project(self, spatial_ref: list) -> dict:
        """Inputs of the Project 3D Landmarks node behind a Compose Spatial Control output."""
        compose = self.prompt[spatial_ref[0]]["inputs"]
        return self.prompt[compose["landmarks"][0]]["inputs"]

    def expected_sides(self, ref: list) -> list[tuple[int, int] | None]:
        """(height, width) of each image an output carries; None where only the aspect is fixed."""
        node = self.prompt[ref[0]]
        kind, inputs = node["class_type"], node["inputs"]
        if kind in ("LoadImage", "RepeatImageBatch", "ImageBatch"):
            return [f.shape[:2] for f in self.source_frames(ref)]
        if kind == "FaceAdapterPasteFaces":
            return self.expected_sides(inputs["image"])
        if kind == "FaceAdapterPasteGenerated":  # one frame per target frame, the size of the frames pasted into
            project = self.project(inputs["spatial"])
            count = len(self.expected_sides(project["target_image"]))
            return [self.expected_sides(inputs["image"])[0]] * count
        if kind == "MaskToImage":
            return self.expected_sides(inputs["mask"])
        if kind == "FaceAdapterCropFaces":
            side = CROP_SIDES.get(inputs["crop"], inputs["size"])
            return [(side, side)] * len(self.expected_sides(inputs["image"]))
        if kind in SPATIAL_512:  # one 512 crop per target frame
            project = inputs if kind == "FaceAdapterProject3DLandmarks" else self.prompt[inputs["landmarks"][0]]["inputs"]
            return [(512, 512)] * len(self.expected_sides(project["target_image"]))
        if kind == "FaceAdapterDetectFaces":
            return [None] * len(self.expected_sides(inputs["image"]))
        if kind in METRIC_IMAGES:
            return [ANY_SIZE]
        if kind in FADM_FRAMES:
            return [(256, 256)] * len(self.expected_sides(inputs[FADM_FRAMES[kind]]))
        if kind == "FaceAdapterRepeatSourceForFrames":
            return [self.expected_sides(inputs["image"])[0]] * len(self.expected_sides(inputs["frames"]))
        if kind in FACEX_CROPS:  # FaceX previews and results: one face, one 512 crop
            return [(512, 512)]
        if kind == "FaceAdapterRender" and self.prompt[inputs["spatial"][0]]["class_type"] in FACEX_CROPS:
            return [self.expected_sides(inputs["image"])[0]] if ref[1] == 0 else [(512, 512)]
        if kind == "FaceAdapterBlendFaces" or (kind == "FaceAdapterRender" and ref[1] == 1):  # a crop per pair
            return self.expected_sides(inputs["spatial"][:1] + [1])
        if kind == "FaceAdapterRender":  # pasted like Paste Generated Faces
            project = self.project(inputs["spatial"])
            return [self.expected_sides(inputs["image"])[0]] * len(self.expected_sides(project["target_image"]))
        raise AssertionError(f"no size rule for {kind}")


@pytest.fixture(scope="module")
def runs(comfy, tmp_path_factory):
    """Runs each workflow (twice) on first use; shared by the tests of this module."""
    import cv2

    from faceadapter_suite.face.sample_photos import load_sample

    folder = tmp_path_factory.mktemp("workflow_inputs")
    done: dict[str, Run] = {}  # in the order the workflows ran

    def get(name: str) -> Run:
        if name in done:
            return done[name]
        prompt = quick(load_json(API_DIR / f"{name}.json"))  # generation templates: 1 step on a CPU
        frames: dict[str, np.ndarray] = {}
        for node in prompt.values():
            if node["class_type"] == "LoadImage":
                sample = SAMPLE_IMAGE.match(node["inputs"]["image"])["sample"]
                rgb = load_sample(sample)
                path = folder / f"{name}__{sample}.png"
                cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))
                node["inputs"]["image"] = comfy.upload_image(path)
                frames[node["inputs"]["image"]] = rgb
        workflow = load_json(WORKFLOW_DIR / f"{name}.json")
        first = comfy.run(prompt, timeout=900, workflow=workflow)
        assert first.succeeded, (first.error(), comfy.log()[-3000:])
        history = comfy.history(first.prompt_id)
        second = comfy.run(prompt, timeout=300, workflow=workflow)
        assert second.succeeded, (second.error(), comfy.log()[-3000:])
        done[name] = Run(name, prompt, first, second, history, frames)
        return done[name]

    get.done = done
    get.cache_before = cache_report(comfy)
    return get


def cache_report(comfy) -> dict:
    """The pack's model-cache report (FaceAdapter Model Cache node, which never caches)."""
    result = comfy.run({"1": {"class_type": "FaceAdapterModelCache", "inputs": {"action": "report"}}}, timeout=120)
    assert result.succeeded, result.error()
    return json.loads(comfy.history(result.prompt_id)["outputs"]["1"]["text"][0])


def test_stock_nodes_match_object_info(comfy):
    """STOCK_NODES (what the tier-1 converter and checks assume) is what this ComfyUI declares."""
    for name, stock in STOCK_NODES.items():
        info = comfy.get(f"/object_info/{name}")[name]
        for section in ("required", "optional"):
            declared = stock["input"].get(section, {})
            served = info["input"].get(section, {})
            order = info.get("input_order", {}).get(section, list(served))
            assert order == list(declared), (name, section, order)
            for key, entry in declared.items():
                kind, got = entry[0], served[key][0]
                assert isinstance(got, list) if isinstance(kind, list) else got == kind, (name, key)
                options = entry[1] if len(entry) > 1 else {}
                for option, value in options.items():
                    assert served[key][1].get(option) == value, (name, key, option)
        assert tuple(info["output"]) == tuple(stock["output"]), name
        assert bool(info["output_node"]) == stock.get("output_node", False), name


def test_workflow_templates_served(comfy):
    templates = comfy.get("/workflow_templates")
    assert sorted(templates.get(PACK_DIR_NAME, [])) == sorted(NAMES), templates
    for name in NAMES:
        served = comfy.get(f"/api/workflow_templates/{PACK_DIR_NAME}/{name}.json")
        assert served == load_json(WORKFLOW_DIR / f"{name}.json")
        thumbnail = comfy.get(f"/api/workflow_templates/{PACK_DIR_NAME}/{name}.jpg")
        assert thumbnail == (WORKFLOW_DIR / f"{name}.jpg").read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_workflow_runs(comfy, runs, name):
    run = runs(name)
    executed, cached = run.first.executed_nodes, run.first.cached_nodes
    pack_nodes = ours(run.prompt)
    # every FaceAdapter node ran; loaders may come from the cache of an earlier workflow with the same settings
    assert set(pack_nodes) - loaders(run.prompt) <= executed, (pack_nodes, executed)
    assert set(pack_nodes) <= executed | cached
    with_progress = {m["node"] for m in run.first.of_type("progress")}
    wanted = {nid for nid, kind in pack_nodes.items() if kind in PROGRESS_CLASSES}
    assert wanted <= with_progress, f"no progress from {sorted(wanted - with_progress)}"
    assert not run.first.error()


@pytest.mark.parametrize("name", NAMES)
def test_workflow_images(comfy, runs, name):
    run = runs(name)
    outputs = run.history["outputs"]
    shown = [nid for nid, n in run.prompt.items() if n["class_type"] in ("SaveImage", "PreviewImage")]
    assert any(run.prompt[nid]["class_type"] == "SaveImage" for nid in shown)
    for nid in shown:
        images = outputs.get(nid, {}).get("images", [])
        source = run.prompt[nid]["inputs"]["images"]
        sides = run.expected_sides(source)
        assert len(images) == len(sides), (nid, images)
        decoded = [decode(comfy.view(image)) for image in images]
        for got, side, ref in zip(decoded, sides, images):
            if side == ANY_SIZE:
                assert got.ndim == 3 and min(got.shape[:2]) >= 32, (nid, ref, got.shape)
            elif side is None:  # a preview of the frame, possibly scaled down
                frame = run.source_frames(run.prompt[source[0]]["inputs"]["image"])[0]
                assert abs(got.shape[0] / got.shape[1] - frame.shape[0] / frame.shape[1]) < 0.01, ref
            else:
                assert got.shape[:2] == tuple(side), (nid, ref, got.shape, side)
        paste = run.prompt[source[0]]
        # Region-swapped crops (FaceX) are edited by design: neither a round trip nor a generated face.
        if paste["class_type"] == "FaceAdapterPasteFaces" and \
                run.prompt[paste["inputs"]["crops"][0]]["class_type"] != "FaceAdapterFaceXRegionSwap":
            crop = run.prompt[paste["inputs"]["crops"][0]]
            frames = run.source_frames(run.prompt[source[0]]["inputs"]["image"])
            for got, frame in zip(decoded, frames):
                error = np.abs(got.astype(np.int16) - frame.astype(np.int16))
                if crop["class_type"] == "FaceAdapterCropFaces":  # the crops go back unchanged: a round trip
                    assert error.max() <= MAX_ROUND_TRIP_ERROR and error.mean() < 0.5, (error.max(), error.mean())
                else:  # generated crops (FADM): the face region changes, the rest of the frame stays
                    changed = (error.max(axis=2) > 8).mean()
                    assert 0.002 < changed < 0.5, changed


@pytest.mark.parametrize("name", NAMES)
def test_saved_png_carries_the_ui_workflow(comfy, runs, name):
    from PIL import Image

    run = runs(name)
    save = next(nid for nid, n in run.prompt.items() if n["class_type"] == "SaveImage")
    image = run.history["outputs"][save]["images"][0]
    text = Image.open(io.BytesIO(comfy.view(image))).text
    assert json.loads(text["workflow"]) == load_json(WORKFLOW_DIR / f"{name}.json")
    stored = json.loads(text["prompt"])  # ComfyUI adds an is_changed entry to nodes that define IS_CHANGED
    sent = ("class_type", "inputs")  # what the server executes (_meta.title is the frontend's note)
    assert {nid: {k: n[k] for k in sent} for nid, n in stored.items()} == \
        {nid: {k: n[k] for k in sent} for nid, n in run.prompt.items()}


@pytest.mark.parametrize("name", NAMES)
def test_second_run_is_cached(runs, name):
    run = runs(name)
    pack_nodes = set(ours(run.prompt))
    assert not pack_nodes & run.second.executed_nodes, run.second.executed_nodes
    assert loaders(run.prompt) <= run.second.cached_nodes
    assert not run.second.of_type("progress") or not {m["node"] for m in run.second.of_type("progress")} & pack_nodes


def test_each_loader_setting_loads_once(comfy, runs):
    """Across all workflows (each run twice): a pack loader whose settings were in the previous prompt never
    executes again, and the model cache never loads a network twice.

    A loader may execute again when an unrelated prompt ran in between: ComfyUI's default cache keeps only the
    nodes of the latest prompt. That costs a file-identity check, not a load, because the networks live in
    the pack's model cache; this checks the cache's own counters."""
    for name in NAMES:
        runs(name)
    previous: set[str] = set()
    for run in runs.done.values():
        for result in (run.first, run.second):
            settings = {nid: (run.prompt[nid]["class_type"], json.dumps(run.prompt[nid]["inputs"], sort_keys=True))
                        for nid in loaders(run.prompt)}
            again = {settings[nid] for nid in result.executed_nodes & set(settings)} & previous
            assert not again, f"{run.name}: loaded again although the previous prompt had it: {again}"
            previous = set(settings.values())
    before, after = runs.cache_before, cache_report(comfy)
    assert after["loads"] - before["loads"] == after["cached"] - before["cached"], (before, after)


@pytest.mark.parametrize("name", [n for n in NAMES if "spatial_condition" in n])
def test_spatial_paste_goes_into_the_right_frames_with_a_soft_edge(comfy, runs, name):
    """Acceptance: a reenact graph pastes into the SOURCE frames, a swap graph into the TARGET frames; outside
    the blend mask the output is those frames, and the mask has intermediate values at its edge."""
    run = runs(name)
    outputs = run.history["outputs"]
    pastes = [nid for nid, n in run.prompt.items() if n["class_type"] == "FaceAdapterPasteGenerated"]
    assert pastes, "the template pastes back"
    for nid in pastes:
        inputs = run.prompt[nid]["inputs"]
        project = run.project(inputs["spatial"])
        side = "source_image" if project["task"] == "reenact" else "target_image"
        assert inputs["image"] == project[side], f"{project['task']} must paste into the {side}"
        save = next(k for k, n in run.prompt.items() if n["class_type"] == "SaveImage" and n["inputs"]["images"] == [nid, 0])
        to_image = next(k for k, n in run.prompt.items() if n["class_type"] == "MaskToImage" and n["inputs"]["mask"] == [nid, 1])
        shown = next(k for k, n in run.prompt.items() if n["class_type"] == "PreviewImage" and n["inputs"]["images"] == [to_image, 0])
        pasted = [decode(comfy.view(image)) for image in outputs[save]["images"]]
        weights = [decode(comfy.view(image))[..., 0] for image in outputs[shown]["images"]]
        frames = run.source_frames(inputs["image"])
        assert len(pasted) == len(weights) == len(run.source_frames(project["target_image"]))
        for k, (got, weight) in enumerate(zip(pasted, weights)):
            frame = frames[0 if len(frames) == 1 else k]
            outside = weight == 0
            error = np.abs(got.astype(np.int16) - frame.astype(np.int16)).max(axis=-1)
            assert outside.mean() > 0.3 and error[outside].max() <= 1, "outside the mask: the frame itself"
            assert error[~outside].max() > 20, "the crop was pasted into these frames"
            soft = (weight > 0) & (weight < 255)
            assert soft.sum() > 200, f"a soft edge: {int(soft.sum())} intermediate mask pixels"
