"""Tier 2: every UI template in the real ComfyUI frontend, in headless Chromium (tests/integration/browser.py).

The session ComfyUI (fixture ``comfy``: the maker's random models, so every dropdown value exists) serves its
own frontend (comfyui-frontend-package). For each template in workflows/ the page's app loads it with
``app.loadGraphData`` and the test checks what the frontend itself reports: no missing node types (its
``afterConfigureGraph`` hook), no node flagged with errors, no console error or uncaught exception while
loading, no error or warning toast (the frontend's own workflow validation), every widget value kept as
saved (``graph.serialize()``), every dropdown value among the served choices, and ``app.graphToPrompt()``
equal to the shipped API twin. A screenshot of each template goes to $FACEADAPTER_SCREENSHOTS (or the test's tmp dir). Then the spatial-condition template (no model files) is
queued from the page and its output image is waited for, as a new user would after opening it.

Skipped, with the reason, when the machine has no Chromium (Debian: ``apt-get install chromium``).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from test_workflows import API_DIR, NAMES, SAMPLE_IMAGE, WORKFLOW_DIR, load_json

from .browser import Chromium, find_chromium
from .test_workflows_in_comfyui import decode

QUEUED = "faceadapter_spatial_condition_reenact"  # template (a): the spatial condition, no model files
APP = "window.comfyAPI.app.app"
SKIP_NO_BROWSER = ("frontend check skipped: no Chromium found (looked for chromium, chromium-browser, "
                   "google-chrome; Debian: apt-get install chromium; or set FACEADAPTER_CHROMIUM)")

pytestmark = pytest.mark.skipif(find_chromium() is None, reason=SKIP_NO_BROWSER)

LOAD = """(async () => {
  const app = %(app)s;
  const before = window.__faceadapter.errors.length;
  window.__faceadapter.missing = null;
  await app.loadGraphData(%(workflow)s, true, true, %(name)s);
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const saved = app.graph.serialize();
  const prompt = await app.graphToPrompt();
  const combos = app.graph.nodes.flatMap(n => (n.widgets || []).filter(w => w.type === 'combo').map(w => {
    const values = typeof w.options.values === 'function' ? w.options.values() : w.options.values;
    return {node: n.id, widget: w.name, value: w.value, offered: Array.isArray(values) ? values.includes(w.value) : null};
  }));
  return {
    missing: window.__faceadapter.missing,
    flagged: app.graph.nodes.filter(n => n.has_errors).map(n => [n.id, n.type]),
    nodes: app.graph.nodes.length,
    widgets: Object.fromEntries(saved.nodes.map(n => [n.id, n.widgets_values ?? []])),
    prompt: prompt.output,
    combos,
    errors: window.__faceadapter.errors.slice(before),
    dialogs: [...document.querySelectorAll('.p-dialog')].map(d => d.innerText.slice(0, 300)),
    toasts: [...document.querySelectorAll('.p-toast-message-error, .p-toast-message-warn')].map(t => t.innerText.slice(0, 300)),
  };
})()"""

FIT = """(() => {
  const app = %(app)s, c = app.canvas;
  const xs = app.graph.nodes.flatMap(n => [n.pos[0], n.pos[0] + n.size[0]]);
  const ys = app.graph.nodes.flatMap(n => [n.pos[1] - 30, n.pos[1] + n.size[1]]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const [left, top, right, bottom] = [80, 90, 20, 20];  // side bar and top bar
  const w = c.canvas.clientWidth || c.canvas.width, h = c.canvas.clientHeight || c.canvas.height;
  const scale = Math.min((w - left - right) / (x1 - x0), (h - top - bottom) / (y1 - y0));
  c.ds.scale = scale;
  c.ds.offset = [-x0 + left / scale, -y0 + top / scale];
  c.setDirty(true, true);
  return scale;
})()"""

# Settings of the page: no first-run template dialog, no minimap over the graph, full detail at any zoom.
SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False, "LiteGraph.Canvas.MinFontSizeForLOD": 0}

HOOKS = """(() => {
  const app = %(app)s, api = window.comfyAPI.api.api;
  window.__faceadapter = {missing: null, errors: [], events: []};
  const original = console.error;
  console.error = (...args) => { window.__faceadapter.errors.push(args.map(String).join(' ')); original(...args); };
  window.addEventListener('error', e => window.__faceadapter.errors.push(String(e.message)));
  app.registerExtension({name: 'faceadapter.frontend_test',
                         afterConfigureGraph(missing) { window.__faceadapter.missing = missing; }});
  for (const kind of ['executed', 'execution_success', 'execution_error', 'execution_interrupted'])
    api.addEventListener(kind, e => window.__faceadapter.events.push({type: kind, detail: e.detail}));
  return true;
})()"""


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory) -> Path:
    named = os.environ.get("FACEADAPTER_SCREENSHOTS")
    folder = Path(named) if named else tmp_path_factory.mktemp("frontend_screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def page(comfy, tmp_path_factory):
    """The frontend, opened once: sample photos in the input folder under the templates' names, the
    first-run template dialog off, the test's hooks installed."""
    import cv2

    from faceadapter_suite.face.sample_photos import load_sample

    for name in NAMES:
        for node in load_json(API_DIR / f"{name}.json").values():
            image = node["inputs"].get("image") if node["class_type"] == "LoadImage" else None
            target = comfy.workdir / "input" / str(image)
            if image and not target.exists():
                cv2.imwrite(str(target), np.ascontiguousarray(load_sample(SAMPLE_IMAGE.match(image)["sample"])[:, :, ::-1]))
    for key, value in SETTINGS.items():
        comfy.post(f"/settings/{key}", value)
    browser = Chromium(find_chromium(), tmp_path_factory.mktemp("chromium") / "profile", 2400, 1300).start()
    try:
        started = time.monotonic()
        browser.navigate(f"http://127.0.0.1:{comfy.port}/")
        browser.wait_for(f"!!(window.comfyAPI?.app?.app?.vueAppReady && {APP}.canvas)", timeout=120)
        served = len(comfy.get("/object_info", timeout=120))  # every node the server has, registered in the page
        browser.wait_for(f"Object.keys(window.LiteGraph?.registered_node_types ?? {{}}).length >= {served}", timeout=120)
        browser.wait_for("document.querySelectorAll('.p-dialog').length === 0", timeout=20)
        browser.evaluate(HOOKS % {"app": APP})
        browser.opened_in = time.monotonic() - started
        yield browser
    finally:
        browser.stop()


def load(page, name: str, screenshot_dir: Path) -> dict:
    """Load workflows/<name>.json into the page, fit it to the view, save a screenshot; the frontend's report."""
    started = time.monotonic()
    report = page.evaluate(LOAD % {"app": APP, "workflow": json.dumps(load_json(WORKFLOW_DIR / f"{name}.json")),
                                  "name": json.dumps(name)})
    page.evaluate(FIT % {"app": APP})
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    report["screenshot"] = str(page.screenshot(screenshot_dir / f"{name}.png"))
    report["seconds"] = round(time.monotonic() - started, 2)
    return report


@pytest.fixture(scope="module")
def loaded(page, screenshot_dir):
    """Each template's report, loaded once on first use; shared by the tests of this module."""
    done: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in done:
            done[name] = load(page, name, screenshot_dir)
        return done[name]

    return get


@pytest.mark.parametrize("name", NAMES)
def test_template_loads_without_missing_nodes_or_errors(loaded, name):
    report = loaded(name)
    assert report["missing"] == [], f"the frontend reports missing node types: {report['missing']}"
    assert report["flagged"] == [], f"nodes flagged with errors: {report['flagged']}"
    assert report["errors"] == [], f"console errors while loading: {report['errors']}"
    assert report["dialogs"] == [], f"dialogs opened while loading: {report['dialogs']}"
    assert report["toasts"] == [], f"error / warning toasts (the frontend's workflow validation): {report['toasts']}"
    assert report["nodes"] == len(load_json(WORKFLOW_DIR / f"{name}.json")["nodes"])
    assert Path(report["screenshot"]).stat().st_size > 20_000, "a screenshot with the graph in it"


@pytest.mark.parametrize("name", NAMES)
def test_template_widgets_are_kept_and_offered(loaded, name):
    """The frontend keeps every saved widget value (none reset, none shifted), and every dropdown value is one
    the server offers (images, model files, choices)."""
    report = loaded(name)
    saved = {str(n["id"]): n.get("widgets_values") or [] for n in load_json(WORKFLOW_DIR / f"{name}.json")["nodes"]}
    assert {k: v for k, v in report["widgets"].items()} == saved
    refused = [c for c in report["combos"] if c["offered"] is False]
    assert refused == [], f"dropdown values the server does not offer: {refused}"


@pytest.mark.parametrize("name", NAMES)
def test_frontend_prompt_is_the_api_twin(loaded, name):
    """app.graphToPrompt() (what the Queue button sends) equals workflows/api/<name>.json."""
    sent = ("class_type", "inputs")
    prompt = loaded(name)["prompt"]
    twin = load_json(API_DIR / f"{name}.json")
    assert {k: {f: n[f] for f in sent} for k, n in prompt.items()} == {k: {f: n[f] for f in sent} for k, n in twin.items()}


def test_queue_spatial_template_from_the_page(comfy, page, screenshot_dir):
    """Template (a) loaded and queued with the page's own Queue path (app.queuePrompt): it runs to
    execution_success and its saved images reach the page (app.nodeOutputs) and decode at the photo's size."""
    assert load(page, QUEUED, screenshot_dir)["missing"] == []
    page.evaluate(f"(async () => {{ await new Promise(r => setTimeout(r, 50)); window.__faceadapter.events = []; "
                  f"return await {APP}.queuePrompt(0, 1); }})()")
    done = page.wait_for("window.__faceadapter.events.find(e => e.type !== 'executed') || null", timeout=300, interval=0.5)
    events = page.evaluate("window.__faceadapter.events")
    assert done["type"] == "execution_success", done
    workflow = load_json(WORKFLOW_DIR / f"{QUEUED}.json")
    saves = [str(n["id"]) for n in workflow["nodes"] if n["type"] == "SaveImage"]
    outputs = {e["detail"]["node"]: e["detail"]["output"] for e in events if e["type"] == "executed"}
    assert set(saves) <= set(outputs), (saves, list(outputs))
    shown = page.evaluate(f"Object.fromEntries(Object.entries({APP}.nodeOutputs || {{}})"
                          ".map(([k, v]) => [k, (v.images || []).length]))")
    prompt = load_json(API_DIR / f"{QUEUED}.json")
    for nid in saves:
        images = outputs[nid]["images"]
        assert images and shown.get(nid) == len(images), (nid, shown)
        paste = prompt[prompt[nid]["inputs"]["images"][0]]
        if paste["class_type"] == "FaceAdapterPasteGenerated":  # the reenacted source photo, at its own size
            source = prompt[paste["inputs"]["image"][0]]["inputs"]["image"]
            from faceadapter_suite.face.sample_photos import load_sample

            expected = load_sample(SAMPLE_IMAGE.match(source)["sample"]).shape
            assert decode(comfy.view(images[0])).shape == expected
    page.evaluate(FIT % {"app": APP})
    page.screenshot(screenshot_dir / f"{QUEUED}__after_run.png")
