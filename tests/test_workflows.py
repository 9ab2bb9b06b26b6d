"""Tier 1: the example workflows, without ComfyUI.

``workflows/*.json`` are UI-format templates (what the ComfyUI frontend saves and its Templates browser
lists, each with a ``.jpg`` thumbnail); ``workflows/api/<name>.json`` is the API-format prompt the same
graph becomes for ``POST /prompt``. Checked here:

- every UI workflow is well-formed: node and link ids, links agree with both ends, socket types agree
  with the node classes (``RETURN_TYPES`` / ``INPUT_TYPES``), every required socket is connected,
  ``widgets_values`` has one value per widget input in ``INPUT_TYPES`` order and each value is valid;
- the API twin is exactly what the UI workflow converts to and names only known node classes;
- each API twin runs through the pack's node classes (stock nodes stood in for), with the sample photos.

The stock ComfyUI nodes the workflows use are described in ``STOCK_NODES`` (captured from ComfyUI's
``/object_info``); the tier-2 tests check it against a live ComfyUI.
"""
from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from client_module import CLIENT
from conftest import PACK, REPO
from offline_object_info import offline_object_info, stock_object_info

WORKFLOW_DIR = REPO / "workflows"
API_DIR = WORKFLOW_DIR / "api"
UI_FILES = sorted(WORKFLOW_DIR.glob("*.json"))
NAMES = [p.stem for p in UI_FILES]

# Stock ComfyUI nodes, /object_info captured from ComfyUI (tests/data/client/object_info_stock.json, by
# scripts/capture_client_fixtures.py). LoadImage's dropdown lists the input folder: any image file name is accepted.
STOCK_NODES: dict[str, dict[str, Any]] = stock_object_info()
# Dropdowns whose served choices depend on the installed packages: a template may name any known value.
KNOWN_CHOICES: dict[tuple[str, str], Callable[[], list]] = {
    ("FaceAdapterLoadFaceAnalysis", "backend"): lambda: list(PACK.face.analysis.BACKENDS),
}
# Stock model dropdowns list the user's model folders (empty when captured): any model file name is accepted.
MODEL_FILE_WIDGETS = {("VAELoader", "vae_name"), ("CheckpointLoaderSimple", "ckpt_name"), ("LoraLoader", "lora_name"),
                      ("UNETLoader", "unet_name"), ("ControlNetLoader", "control_net_name"),
                      ("CLIPVisionLoader", "clip_name")}
MODEL_FILE = re.compile(r".+\.(safetensors|ckpt|pt|pth|bin|sft)$", re.IGNORECASE)
# Frontend-only nodes: saved in the UI format, never sent to the server.
VIRTUAL_NODES = {"Note": ["text"], "MarkdownNote": ["text"]}
CONTROL_CHOICES = ["fixed", "increment", "decrement", "randomize"]
IMAGE_NAME = re.compile(r".+\.(png|jpe?g|webp|bmp|tiff?)$", re.IGNORECASE)
# LoadImage names in the API twins: faceadapter_<sample>.png stands for sample_photos.load_sample(<sample>).
SAMPLE_IMAGE = re.compile(r"^faceadapter_(?P<sample>[a-z0-9_]+)\.png$")
OFFLINE_OBJECT_INFO = offline_object_info(PACK)


# ------------------------------------------------------------------ node contract
@dataclass
class Widget:
    name: str
    kind: str                    # COMBO, INT, FLOAT, STRING, BOOLEAN, or a frontend-only kind
    options: dict
    choices: Optional[list] = None
    serialize: bool = True       # False: saved in widgets_values, left out of the API prompt


@dataclass
class Contract:
    class_type: str
    sockets: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name -> (type, required)
    widgets: list[Widget] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)       # (name, type)
    output_node: bool = False


def contract(class_type: str) -> Contract:
    """Sockets and widgets of a node as the ComfyUI frontend builds them from /object_info: the headless
    client's layout rules (client/api_convert.py) on the offline /object_info (pack classes + captured
    stock nodes)."""
    convert = CLIENT.api_convert
    if class_type not in OFFLINE_OBJECT_INFO:
        raise KeyError(f"unknown node class {class_type!r}")
    info = OFFLINE_OBJECT_INFO[class_type]
    c = Contract(class_type, outputs=list(zip(info["output_name"], info["output"])), output_node=info["output_node"])
    specs = {name: (kind, options, optional) for name, kind, options, optional in convert.input_specs(info)}
    for name, (kind, options, optional) in specs.items():
        if convert.widget_kind(kind) is None or options.get("forceInput"):
            c.sockets[name] = (kind, not optional)
    for name, sent in convert.widget_layout(info):
        if name in specs and sent:
            kind, options, _ = specs[name]
            known = KNOWN_CHOICES.get((class_type, name))
            choices = known() if known else (list(kind) if isinstance(kind, list) else options.get("options"))
            kind_name = "MODELFILE" if (class_type, name) in MODEL_FILE_WIDGETS else convert.widget_kind(kind)
            c.widgets.append(Widget(name, kind_name, options, choices))
        elif name == "upload":
            c.widgets.append(Widget(name, "IMAGEUPLOAD", {}, serialize=False))
        elif name == "control_after_generate":  # the value control the frontend adds after a seed / combo
            wraps = c.widgets[-1].kind == "COMBO"
            c.widgets.append(Widget(name, "COMBO", {}, CONTROL_CHOICES + ["increment-wrap"] * wraps, serialize=False))
        else:  # control_filter_list, after a controlled combo
            c.widgets.append(Widget(name, "STRING", {}, serialize=False))
    return c


def widget_problem(w: Widget, value: Any) -> Optional[str]:
    """Why ``value`` is not acceptable for widget ``w`` (None when it is)."""
    if w.kind == "COMBO":
        if w.choices:
            return None if value in w.choices else f"{value!r} not one of {w.choices}"
        return None if isinstance(value, str) and IMAGE_NAME.match(value) else f"{value!r} is not an image file name"
    if w.kind == "MODELFILE":
        return None if isinstance(value, str) and MODEL_FILE.match(value) else f"{value!r} is not a model file name"
    if w.kind == "IMAGEUPLOAD":
        return None if value == "image" else f"upload button value {value!r} (the frontend saves 'image')"
    if w.kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"{value!r} is not a boolean"
    if w.kind == "STRING":
        return None if isinstance(value, str) else f"{value!r} is not a string"
    if w.kind in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (w.kind == "INT" and not isinstance(value, int)):
            return f"{value!r} is not {w.kind}"
        lo, hi = w.options.get("min", float("-inf")), w.options.get("max", float("inf"))
        if not lo <= value <= hi:
            return f"{value!r} outside [{lo}, {hi}]"
        step = w.options.get("step")
        if w.kind == "INT" and step and "min" in w.options and (value - w.options["min"]) % step:
            return f"{value!r} is off the step {step} grid from {w.options['min']}"
        return None
    return f"unknown widget kind {w.kind}"


# ------------------------------------------------------------------ UI -> API
def ui_to_api(workflow: dict) -> dict:
    """The API prompt the frontend builds from a UI workflow: the headless client's converter
    (client/api_convert.py) with /object_info built offline (pack classes + captured stock nodes)."""
    return CLIENT.api_convert.ui_to_api(workflow, OFFLINE_OBJECT_INFO)


# ------------------------------------------------------------------ well-formedness
def workflow_problems(workflow: dict) -> list[str]:
    """Everything wrong with a UI workflow (empty when it is well-formed)."""
    problems: list[str] = []
    for key in ("last_node_id", "last_link_id", "nodes", "links", "groups", "config", "extra", "version"):
        if key not in workflow:
            problems.append(f"missing top-level key {key!r}")
    if problems:
        return problems
    nodes = {n["id"]: n for n in workflow["nodes"]}
    if len(nodes) != len(workflow["nodes"]):
        problems.append("duplicate node ids")
    links = {link[0]: link for link in workflow["links"]}
    if len(links) != len(workflow["links"]):
        problems.append("duplicate link ids")
    if nodes and workflow["last_node_id"] < max(nodes):
        problems.append("last_node_id below the largest node id")
    if links and workflow["last_link_id"] < max(links):
        problems.append("last_link_id below the largest link id")
    if workflow["version"] != 0.4:
        problems.append(f"version {workflow['version']} (expected 0.4)")

    contracts: dict[int, Contract] = {}
    for nid, node in nodes.items():
        where = f"node {nid} ({node.get('type')})"
        for key in ("id", "type", "pos", "size", "flags", "order", "mode", "properties"):
            if key not in node:
                problems.append(f"{where}: missing {key!r}")
        if node.get("mode") != 0:
            problems.append(f"{where}: mode {node.get('mode')} (muted/bypassed nodes do not belong in a template)")
        if node["type"] in VIRTUAL_NODES:
            if len(node.get("widgets_values") or []) != len(VIRTUAL_NODES[node["type"]]):
                problems.append(f"{where}: widgets_values should be {VIRTUAL_NODES[node['type']]}")
            continue
        try:
            c = contracts[nid] = contract(node["type"])
        except KeyError as exc:
            problems.append(f"{where}: {exc.args[0]}")
            continue
        if node.get("properties", {}).get("Node name for S&R") != node["type"]:
            problems.append(f"{where}: properties['Node name for S&R'] should be {node['type']!r}")
        values = node.get("widgets_values") or []
        if len(values) != len(c.widgets):
            problems.append(f"{where}: {len(values)} widgets_values for widgets {[w.name for w in c.widgets]}")
        for w, v in zip(c.widgets, values):
            why = widget_problem(w, v)
            if why:
                problems.append(f"{where}: widget {w.name}: {why}")
        widget_names = {w.name for w in c.widgets}
        seen = set()
        for index, slot in enumerate(node.get("inputs", [])):
            name = slot.get("name")
            seen.add(name)
            if name in c.sockets:
                if slot.get("type") != c.sockets[name][0]:
                    problems.append(f"{where}: input {name} type {slot.get('type')} != {c.sockets[name][0]}")
                if "widget" in slot:
                    problems.append(f"{where}: socket input {name} marked as a widget")
            elif name in widget_names:
                if slot.get("widget", {}).get("name") != name:
                    problems.append(f"{where}: widget input {name} lacks widget: {{name: {name!r}}}")
            else:
                problems.append(f"{where}: unknown input {name!r}")
            link_id = slot.get("link")
            if link_id is None:
                continue
            link = links.get(link_id)
            if link is None:
                problems.append(f"{where}: input {name} uses missing link {link_id}")
            elif (link[3], link[4]) != (nid, index):
                problems.append(f"{where}: link {link_id} ends at {link[3]}:{link[4]}, not {nid}:{index}")
        for name, (_, required) in c.sockets.items():
            connected = any(s.get("name") == name and s.get("link") is not None for s in node.get("inputs", []))
            if required and not connected:
                problems.append(f"{where}: required input {name} is not connected")
        outputs = node.get("outputs", [])
        if [(o.get("name"), o.get("type")) for o in outputs] != c.outputs:
            problems.append(f"{where}: outputs {[(o.get('name'), o.get('type')) for o in outputs]} != {c.outputs}")
        for index, out in enumerate(outputs):
            expected = sorted(lid for lid, link in links.items() if (link[1], link[2]) == (nid, index))
            if sorted(out.get("links") or []) != expected:
                problems.append(f"{where}: output {index} lists links {out.get('links')}, links say {expected}")
            if expected and out.get("slot_index") != index:
                problems.append(f"{where}: output {index} slot_index {out.get('slot_index')}")

    for lid, link in links.items():
        if len(link) != 6:
            problems.append(f"link {lid}: {link} is not [id, from, from_slot, to, to_slot, type]")
            continue
        _, src, src_slot, dst, dst_slot, kind = link
        if src not in contracts or dst not in contracts:
            problems.append(f"link {lid}: joins unknown nodes {src} -> {dst}")
            continue
        outs = contracts[src].outputs
        if not 0 <= src_slot < len(outs) or outs[src_slot][1] != kind:
            problems.append(f"link {lid}: type {kind} does not match output {src_slot} of node {src}")
        slots = nodes[dst].get("inputs", [])
        if not 0 <= dst_slot < len(slots) or slots[dst_slot].get("link") != lid:
            problems.append(f"link {lid}: node {dst} input {dst_slot} does not use it")
        elif slots[dst_slot]["type"] != kind:
            problems.append(f"link {lid}: {kind} into a {slots[dst_slot]['type']} input")

    orders = sorted(n.get("order", -1) for n in nodes.values())
    if orders != list(range(len(nodes))):
        problems.append(f"node 'order' values {orders} are not 0..{len(nodes) - 1}")
    for lid, link in links.items():
        if link[1] in nodes and link[3] in nodes and nodes[link[1]]["order"] >= nodes[link[3]]["order"]:
            problems.append(f"link {lid}: node {link[1]} runs after its consumer {link[3]} in 'order'")
    if not any(c.output_node for c in contracts.values()):
        problems.append("no output node (SaveImage / PreviewImage)")
    return problems


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())


# ------------------------------------------------------------------ running an API prompt standalone
def _stock_impl() -> dict[str, Callable[..., tuple]]:
    import torch

    def load_image(image: str) -> tuple:
        from faceadapter_suite.core.images import uint8_to_image
        from faceadapter_suite.face.sample_photos import load_sample

        match = SAMPLE_IMAGE.match(image)
        if not match:
            raise ValueError(f"{image!r}: API twins load sample photos named faceadapter_<sample>.png")
        frame = uint8_to_image(load_sample(match["sample"]))
        return frame, torch.zeros(frame.shape[:3])

    def batch(image1, image2) -> tuple:
        if image1.shape[1:] != image2.shape[1:]:
            raise ValueError("ImageBatch stand-in: frames of different sizes")
        return (torch.cat([image1, image2]),)

    return {
        "LoadImage": load_image,
        "SaveImage": lambda images, filename_prefix: (),
        "PreviewImage": lambda images: (),
        "MaskToImage": lambda mask: ((mask if mask.ndim == 3 else mask[None])[..., None].repeat(1, 1, 1, 3),),
        "ImageBatch": batch,
        "RepeatImageBatch": lambda image, amount: (image.repeat(amount, 1, 1, 1),),
    }


def run_prompt(prompt: dict) -> tuple[dict[str, tuple], dict[str, Any]]:
    """Execute an API prompt with the pack's node classes; returns every node's outputs and the
    images each SaveImage / PreviewImage received."""
    stock = _stock_impl()
    results: dict[str, tuple] = {}
    shown: dict[str, Any] = {}

    def value(v: Any) -> Any:
        if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
            return evaluate(v[0])[v[1]]
        return v

    def evaluate(nid: str) -> tuple:
        if nid not in results:
            node = prompt[nid]
            inputs = {k: value(v) for k, v in node["inputs"].items()}
            if node["class_type"] in PACK.NODE_CLASS_MAPPINGS:
                cls = PACK.NODE_CLASS_MAPPINGS[node["class_type"]]
                out = getattr(cls(), cls.FUNCTION)(**inputs)
                results[nid] = tuple(out["result"]) if isinstance(out, dict) else tuple(out)
            else:
                results[nid] = stock[node["class_type"]](**inputs)
                if node["class_type"] in ("SaveImage", "PreviewImage"):
                    shown[nid] = inputs["images"]
        return results[nid]

    for nid in prompt:
        evaluate(nid)
    return results, shown


# ------------------------------------------------------------------ tests
def test_workflows_exist():
    assert NAMES, f"no workflows in {WORKFLOW_DIR}"
    used = {node["type"] for p in UI_FILES for node in load_json(p)["nodes"]}
    # FaceX Load Face lists the faces a user saved: a template cannot ship one (the FaceX template saves it).
    stages = {k for k in PACK.NODE_CLASS_MAPPINGS if k not in ("FaceAdapterModelCache", "FaceAdapterFaceXLoadFace")}
    assert stages <= used, f"nodes no example workflow shows: {sorted(stages - used)}"


def test_stock_contract_describes_real_widgets():
    """The frontend widget list of the stock nodes we rely on (LoadImage: image + upload button)."""
    assert [(w.name, w.serialize) for w in contract("LoadImage").widgets] == [("image", True), ("upload", False)]
    assert [w.name for w in contract("SaveImage").widgets] == ["filename_prefix"]
    assert [w.name for w in contract("RepeatImageBatch").widgets] == ["amount"]
    assert contract("PreviewImage").widgets == [] and contract("ImageBatch").widgets == []


@pytest.mark.parametrize("name", NAMES)
def test_ui_workflow_well_formed(name):
    workflow = load_json(WORKFLOW_DIR / f"{name}.json")
    assert workflow_problems(workflow) == []


@pytest.mark.parametrize("name", NAMES)
def test_thumbnail_beside_workflow(name):
    import cv2

    path = WORKFLOW_DIR / f"{name}.jpg"
    assert path.is_file(), f"{path.name} missing (the Templates browser shows it)"
    assert path.stat().st_size < 200_000
    image = cv2.imread(str(path))
    assert image is not None and 256 <= image.shape[1] <= 1024


@pytest.mark.parametrize("name", NAMES)
def test_api_twin_is_the_converted_ui_workflow(name):
    path = API_DIR / f"{name}.json"
    assert path.is_file(), f"API twin {path} missing"
    api = load_json(path)
    known = set(PACK.NODE_CLASS_MAPPINGS) | set(STOCK_NODES)
    assert {n["class_type"] for n in api.values()} <= known
    assert api == ui_to_api(load_json(WORKFLOW_DIR / f"{name}.json"))


def test_no_stray_api_twins():
    assert sorted(p.stem for p in API_DIR.glob("*.json")) == NAMES


def test_converter_handles_widget_inputs_and_links():
    """ui_to_api on a hand-made graph: a widget input fed by a link takes the link."""
    workflow = {
        "nodes": [
            {"id": 1, "type": "LoadImage", "inputs": [], "widgets_values": ["a.png", "image"]},
            {"id": 2, "type": "RepeatImageBatch", "widgets_values": [3], "inputs": [
                {"name": "image", "type": "IMAGE", "link": 1},
                {"name": "amount", "type": "INT", "widget": {"name": "amount"}, "link": None}]},
            {"id": 3, "type": "Note", "widgets_values": ["hello"]},
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    }
    assert ui_to_api(workflow) == {
        "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}, "_meta": {"title": "Load Image"}},
        "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 3},
              "_meta": {"title": "RepeatImageBatch"}}  # no display name in ComfyUI,
    }


def test_problems_are_found():
    """workflow_problems is not vacuous: a broken copy of a real workflow is reported."""
    workflow = load_json(UI_FILES[0])
    broken = json.loads(json.dumps(workflow))
    node = next(n for n in broken["nodes"] if n["type"] == "FaceAdapterDetectFaces")
    node["widgets_values"] = node["widgets_values"][:-1]
    broken["links"][0][5] = "LATENT"
    problems = "\n".join(workflow_problems(broken))
    assert "widgets_values" in problems and "LATENT" in problems


NEEDS_MODEL_FILES = {"FaceAdapterIdentitySimilarity"}
# Templates that sample (stock KSampler / loaders, or Render) or need FADM's files run in ComfyUI itself (tier 2).
NEEDS_COMFYUI = {"FaceAdapterRender", "FaceAdapterLoadFADM", "FaceAdapterLoadCoarseGenerator", "FaceAdapterLoadDECA"}
STAND_IN_NAMES = [n for n in NAMES if {node["class_type"] for node in load_json(API_DIR / f"{n}.json").values()}
                  <= (set(PACK.NODE_CLASS_MAPPINGS) - NEEDS_COMFYUI) | set(_stock_impl())]


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="needs mediapipe")
@pytest.mark.parametrize("name", STAND_IN_NAMES)
def test_api_twin_runs_through_node_classes(name, request):
    """Each prompt runs with the pack's classes; image outputs have the expected sizes. A template that needs
    a recognition model (Identity Similarity) runs on the maker's tiny random ArcFace."""
    import torch

    from faceadapter_suite.core import comfy_bridge

    prompt = load_json(API_DIR / f"{name}.json")
    needs_models = any(n["class_type"] in NEEDS_MODEL_FILES for n in prompt.values())
    comfy_bridge.set_models_dir(request.getfixturevalue("tiny_models_dir") if needs_models else None)
    try:
        results, shown = run_prompt(prompt)
    finally:
        comfy_bridge.set_models_dir(None)
    assert shown, "no SaveImage / PreviewImage received anything"
    for nid, images in shown.items():
        assert images.ndim == 4 and images.shape[-1] == 3 and images.dtype == torch.float32, nid
    for nid, node in prompt.items():
        if node["class_type"] == "FaceAdapterPasteFaces":
            frames = results[node["inputs"]["image"][0]][node["inputs"]["image"][1]]
            pasted = results[nid][0]
            assert pasted.shape == frames.shape
            assert (pasted - frames).abs().mean() <= 1 / 255  # crops are unchanged: a round trip
        if node["class_type"] == "FaceAdapterComposeSpatialControl":
            assert tuple(results[nid][1].shape[1:]) == (512, 512, 3)
        if node["class_type"] == "FaceAdapterPasteGenerated":
            spatial = results[node["inputs"]["spatial"][0]][node["inputs"]["spatial"][1]]
            frames = results[node["inputs"]["image"][0]][node["inputs"]["image"][1]]
            project = next(n for n in prompt.values() if n["class_type"] == "FaceAdapterProject3DLandmarks")
            side = "source_image" if spatial.task == "reenact" else "target_image"
            assert node["inputs"]["image"] == project["inputs"][side], f"{spatial.task} pastes into the {side}"
            pasted, weights = results[nid]
            base = frames[spatial.paste_frame_of()]
            outside = weights == 0
            assert torch.equal(pasted[outside], base[outside]), "the right frames, untouched outside the mask"
            assert ((weights > 0.05) & (weights < 0.95)).sum() > 100, "a soft edge"


@pytest.mark.parametrize("name", NAMES)
def test_templates_name_model_files_not_install_hints(name):
    """A model dropdown's default is an install hint where the file is absent; templates must carry the file's
    own name, which every install lists (the manifest path comes first in each dropdown)."""
    from faceadapter_suite.core.model_paths import NOT_INSTALLED

    hints = [(n["id"], v) for n in load_json(WORKFLOW_DIR / f"{name}.json")["nodes"]
             for v in n.get("widgets_values") or [] if isinstance(v, str) and v.startswith(NOT_INSTALLED)]
    assert hints == []


def _upstream(prompt: dict, nid: str) -> dict:
    """The sub-prompt ``nid`` depends on (itself included)."""
    keep, todo = {}, [nid]
    while todo:
        n = todo.pop()
        if n not in keep:
            keep[n] = prompt[n]
            todo += [v[0] for v in prompt[n]["inputs"].values() if isinstance(v, list)]
    return keep


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="needs mediapipe")
def test_multi_face_video_template_follows_the_reference_person():
    """Template (f): the stand-in video shows several people; Select Face (reference) keeps one face per frame,
    the same track in every frame, the one most like the reference photo's face; the spatial stage then holds
    one face pair per frame for Render."""
    import numpy as np

    from faceadapter_suite.face.select import face_similarity, reference_face

    prompt = load_json(API_DIR / "faceadapter_multi_face_video_swap.json")
    kinds = {nid: n["class_type"] for nid, n in prompt.items()}
    select = next(nid for nid, k in kinds.items() if k == "FaceAdapterSelectFace"
                  and prompt[nid]["inputs"]["mode"] == "reference")
    compose = next(nid for nid, k in kinds.items() if k == "FaceAdapterComposeSpatialControl")
    render = next(nid for nid, k in kinds.items() if k == "FaceAdapterRender")
    assert prompt[render]["inputs"]["spatial"] == [compose, 0]
    results, _ = run_prompt(_upstream(prompt, compose))
    video = results[prompt[select]["inputs"]["faces"][0]][0]
    reference = reference_face(results[prompt[select]["inputs"]["reference"][0]][0])
    chosen = results[select][0]
    frames = len(video.frames)
    assert frames >= 2 and all(len(f.faces) >= 2 for f in video.frames), "several people in every frame"
    assert [len(f.faces) for f in chosen.frames] == [1] * frames
    assert len({f.faces[0].track_id for f in chosen.frames}) == 1, "one person followed through the video"
    for everyone, kept in zip(video.frames, chosen.frames):
        best = max(everyone.faces, key=lambda f: face_similarity(f, reference)[0])
        assert np.allclose(kept.faces[0].bbox, best.bbox), "the face most like the reference"
    assert results[compose][1].shape[0] == frames, "one control image per frame"
    detect = prompt[select]["inputs"]["faces"][0]
    assert prompt[render]["inputs"]["image"] == prompt[detect]["inputs"]["image"], "Render pastes into the video"


def test_native_template_is_checkpoint_lora_ksampler():
    """Template (g): stock checkpoint -> LoRA -> KSampler with Apply Face-Adapter's conditioning, the checkpoint's
    VAE, then Blend and Paste into the target frame (a swap)."""
    prompt = load_json(API_DIR / "faceadapter_native_checkpoint_lora.json")
    one = {n["class_type"]: nid for nid, n in prompt.items()}
    ksampler, lora, checkpoint = (prompt[one[k]]["inputs"] for k in ("KSampler", "LoraLoader", "CheckpointLoaderSimple"))
    assert ksampler["model"] == [one["LoraLoader"], 0] and lora["model"] == [one["CheckpointLoaderSimple"], 0]
    assert lora["clip"] == [one["CheckpointLoaderSimple"], 1]
    assert [ksampler[k] for k in ("positive", "negative", "latent_image")] == [[one["FaceAdapterApply"], i] for i in range(3)]
    assert prompt[one["VAEDecode"]]["inputs"]["vae"] == [one["CheckpointLoaderSimple"], 2]
    paste = prompt[one["FaceAdapterPasteGenerated"]]["inputs"]
    project = prompt[one["FaceAdapterProject3DLandmarks"]]["inputs"]
    assert project["task"] == "swap" and paste["image"] == project["target_image"]
    assert checkpoint["ckpt_name"].endswith(".safetensors") and ksampler["steps"] == 25
