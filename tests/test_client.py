"""Tier 1: the headless client (client/) without a ComfyUI server.

- UI -> API conversion: every template converts to its shipped API twin with the offline
  /object_info; hand-made graphs cover seed control widgets, Reroute, PrimitiveNode, muted and
  bypassed nodes, list values, links in object form, and the errors;
- ``--set`` parsing and type coercion;
- the websocket frame encoder / decoder against RFC 6455's example frames, and a handshake + ping +
  fragmented message from a loopback peer;
- outcomes and exit codes from message sequences recorded from ComfyUI 0.3.64.
"""
from __future__ import annotations

import json
import socket
import threading

import pytest

from client_module import CLIENT
from conftest import PACK, REPO
from offline_object_info import DATA, offline_object_info, stock_object_info

convert, overrides, ws, follow = CLIENT.api_convert, CLIENT.overrides, CLIENT.ws, CLIENT.follow
OBJECT_INFO = offline_object_info(PACK)
UI_FILES = sorted((REPO / "workflows").glob("*.json"))


def load(path):
    return json.loads(path.read_text())


# ------------------------------------------------------------------ conversion
@pytest.mark.parametrize("path", UI_FILES, ids=[p.stem for p in UI_FILES])
def test_templates_convert_to_the_shipped_twins(path):
    twin = load(REPO / "workflows" / "api" / path.name)
    assert convert.ui_to_api(load(path), OBJECT_INFO) == twin
    assert convert.is_api_format(twin) and not convert.is_api_format(load(path))
    assert convert.ui_to_api(twin, OBJECT_INFO) is twin  # API format passes through


def test_widget_layout_follows_the_frontend():
    stock = stock_object_info()
    assert convert.widget_layout(stock["LoadImage"]) == [("image", True), ("upload", False)]
    assert convert.widget_layout(stock["KSampler"]) == [
        ("seed", True), ("control_after_generate", False), ("steps", True), ("cfg", True),
        ("sampler_name", True), ("scheduler", True), ("denoise", True)]
    names = [n for n, _ in convert.widget_layout(stock["KSamplerAdvanced"])]
    assert names[:4] == ["add_noise", "noise_seed", "control_after_generate", "steps"]
    info = {"input": {"required": {"seed": ("INT", {"control_after_generate": False}), "x": ("FLOAT", {"forceInput": True}),
                                   "mode": (["a", "b"], {"control_after_generate": True})},
                      "optional": {"name": ("STRING", {})}}}
    assert convert.widget_layout(info) == [("seed", True), ("mode", True), ("control_after_generate", False),
                                           ("control_filter_list", False), ("name", True)]


def node(nid, kind, widgets=None, inputs=(), outputs=(), mode=0, title=None):
    entry = {"id": nid, "type": kind, "mode": mode, "inputs": [dict(i) for i in inputs],
             "outputs": [dict(o) for o in outputs], "widgets_values": widgets if widgets is not None else []}
    if title:
        entry["title"] = title
    return entry


def image_in(link, name="image"):
    return {"name": name, "type": "IMAGE", "link": link}


def image_out(links):
    return {"name": "IMAGE", "type": "IMAGE", "links": links}


def test_seed_control_reroute_primitive_and_titles():
    workflow = {
        "nodes": [
            node(1, "LoadImage", ["a.png", "image"], outputs=[image_out([1])], title="Load source"),
            node(2, "Reroute", None, inputs=[{"name": "", "type": "*", "link": 1}], outputs=[image_out([2])]),
            node(3, "Reroute", None, inputs=[{"name": "", "type": "*", "link": 2}], outputs=[image_out([3])]),
            node(4, "ImageScale", ["bilinear", 512, 256, "center"],
                 inputs=[image_in(3), {"name": "width", "type": "INT", "widget": {"name": "width"}, "link": 4}],
                 outputs=[image_out([5])]),
            node(5, "PrimitiveNode", [640, "fixed"], outputs=[{"name": "INT", "type": "INT", "links": [4]}]),
            node(6, "SaveImage", ["out"], inputs=[image_in(5, "images")]),
            node(7, "KSampler", [5, "randomize", 20, 8.0, "euler", "normal", 1.0]),
            node(8, "Note", ["text"]),
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 3, 0, 4, 0, "IMAGE"],
                  {"id": 4, "origin_id": 5, "origin_slot": 0, "target_id": 4, "target_slot": 1, "type": "INT"},
                  [5, 4, 0, 6, 0, "IMAGE"]],
    }
    prompt = convert.ui_to_api(workflow, OBJECT_INFO)
    assert sorted(prompt, key=int) == ["1", "4", "6", "7"]  # Reroute, PrimitiveNode, Note are never sent
    assert prompt["1"] == {"class_type": "LoadImage", "inputs": {"image": "a.png"}, "_meta": {"title": "Load source"}}
    assert prompt["4"]["inputs"] == {"image": ["1", 0], "upscale_method": "bilinear", "width": 640, "height": 256,
                                     "crop": "center"}  # through two Reroutes; width from the primitive
    assert prompt["4"]["_meta"] == {"title": "Upscale Image"}  # the display name when the node has no title
    assert prompt["7"]["inputs"] == {"seed": 5, "steps": 20, "cfg": 8.0, "sampler_name": "euler",
                                     "scheduler": "normal", "denoise": 1.0}  # "randomize" is not sent


def test_muted_and_bypassed_nodes():
    scale = ["bilinear", 64, 64, "disabled"]
    workflow = {
        "nodes": [
            node(1, "LoadImage", ["a.png", "image"], outputs=[image_out([1, 3])]),
            node(2, "ImageScale", scale, inputs=[image_in(1)], outputs=[image_out([2])], mode=4),  # bypassed
            node(3, "SaveImage", ["bypass"], inputs=[image_in(2, "images")]),
            node(4, "ImageScale", scale, inputs=[image_in(3)], outputs=[image_out([4])], mode=2),  # muted
            node(5, "PreviewImage", [], inputs=[image_in(4, "images")]),
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 1, 0, 4, 0, "IMAGE"], [4, 4, 0, 5, 0, "IMAGE"]],
    }
    prompt = convert.ui_to_api(workflow, OBJECT_INFO)
    assert sorted(prompt) == ["1", "3", "5"]
    assert prompt["3"]["inputs"] == {"images": ["1", 0], "filename_prefix": "bypass"}  # through the bypass
    assert prompt["5"]["inputs"] == {}  # its source is muted: the link is dropped, as the frontend does


def test_list_values_are_wrapped_and_dict_widgets_read_by_name():
    info = {"Lists": {"input": {"required": {"points": ("STRING", {}), "n": ("INT", {})}}, "output": []}}
    workflow = {"nodes": [node(1, "Lists", [[1, 2], 3])], "links": []}
    assert convert.ui_to_api(workflow, info)["1"]["inputs"] == {"points": {"__value__": [1, 2]}, "n": 3}
    workflow["nodes"][0]["widgets_values"] = {"n": 4, "points": "p"}
    assert convert.ui_to_api(workflow, info)["1"]["inputs"] == {"points": "p", "n": 4}


def subgraph_workflow(instance_mode=0):
    """Load Image -> [subgraph: ImageScale (width promoted, height from a widget inside) -> Reroute] -> Save,
    with a nested subgraph instance holding a second ImageScale fed by the outer subgraph's input."""
    inner_inner = {"id": "sub-b", "inputs": [{"name": "img", "type": "IMAGE", "linkIds": [31]}],
                   "outputs": [{"name": "out", "type": "IMAGE", "linkIds": [32]}],
                   "nodes": [node(1, "ImageScale", ["nearest-exact", 8, 9, "disabled"], inputs=[image_in(31)],
                                  outputs=[image_out([32])])],
                   "links": [{"id": 31, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0,
                              "type": "IMAGE"},
                             {"id": 32, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0,
                              "type": "IMAGE"}]}
    width = {"name": "width", "type": "INT", "widget": {"name": "width"}, "link": 22}
    inner = {"id": "sub-a",
             "inputs": [{"name": "pixels", "type": "IMAGE", "linkIds": [21, 25]},
                        {"name": "width", "type": "INT", "linkIds": [22]}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "linkIds": [24]},
                         {"name": "small", "type": "IMAGE", "linkIds": [26]}],
             "nodes": [node(5, "ImageScale", ["bilinear", 100, 77, "center"], inputs=[image_in(21), width],
                            outputs=[image_out([23])]),
                       node(6, "Reroute", None, inputs=[{"name": "", "type": "*", "link": 23}], outputs=[image_out([24])]),
                       node(7, "sub-b", [], inputs=[{"name": "img", "type": "IMAGE", "link": 25}],
                            outputs=[{"name": "out", "type": "IMAGE", "links": [26]}])],
             "links": [{"id": 21, "origin_id": -10, "origin_slot": 0, "target_id": 5, "target_slot": 0, "type": "IMAGE"},
                       {"id": 22, "origin_id": -10, "origin_slot": 1, "target_id": 5, "target_slot": 1, "type": "INT"},
                       {"id": 23, "origin_id": 5, "origin_slot": 0, "target_id": 6, "target_slot": 0, "type": "IMAGE"},
                       {"id": 24, "origin_id": 6, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"},
                       {"id": 25, "origin_id": -10, "origin_slot": 0, "target_id": 7, "target_slot": 0, "type": "IMAGE"},
                       {"id": 26, "origin_id": 7, "origin_slot": 0, "target_id": -20, "target_slot": 1, "type": "IMAGE"}]}
    return {
        "nodes": [node(1, "LoadImage", ["a.png", "image"], outputs=[image_out([1])]),
                  node(4, "sub-a", [320], inputs=[image_in(1, "pixels")], mode=instance_mode,
                       outputs=[image_out([2]), {"name": "small", "type": "IMAGE", "links": [3]}]),
                  node(9, "SaveImage", ["big"], inputs=[image_in(2, "images")]),
                  node(10, "SaveImage", ["small"], inputs=[image_in(3, "images")])],
        "links": [[1, 1, 0, 4, 0, "IMAGE"], [2, 4, 0, 9, 0, "IMAGE"], [3, 4, 1, 10, 0, "IMAGE"]],
        "definitions": {"subgraphs": [inner, inner_inner]},
    }


def test_subgraphs_are_expanded_with_path_ids():
    prompt = convert.ui_to_api(subgraph_workflow(), OBJECT_INFO)
    assert sorted(prompt) == ["1", "10", "4:5", "4:7:1", "9"]
    assert prompt["4:5"]["inputs"] == {"image": ["1", 0], "upscale_method": "bilinear", "width": 320, "height": 77,
                                       "crop": "center"}  # width promoted on the instance, height its own
    assert prompt["4:7:1"]["inputs"]["image"] == ["1", 0]  # through two subgraph inputs
    assert prompt["9"]["inputs"]["images"] == ["4:5", 0]  # out through the Reroute and the subgraph output
    assert prompt["10"]["inputs"]["images"] == ["4:7:1", 0]
    bypassed = convert.ui_to_api(subgraph_workflow(instance_mode=4), OBJECT_INFO)
    assert sorted(bypassed) == ["1", "10", "9"] and bypassed["9"]["inputs"]["images"] == ["1", 0]


def test_widget_count_mismatch_is_an_error_or_a_warning():
    stale = {"nodes": [node(1, "ImageScale", ["bicubic", 64])], "links": []}  # saved before height and crop
    with pytest.raises(convert.ConversionError, match=r"2 widgets_values"):
        convert.ui_to_api(stale, OBJECT_INFO)
    warnings = []
    prompt = convert.ui_to_api(stale, OBJECT_INFO, warn=warnings.append)
    assert prompt["1"]["inputs"] == {"upscale_method": "bicubic", "width": 64, "height": 512, "crop": "disabled"}
    assert len(warnings) == 1 and "['height', 'crop'] take their defaults" in warnings[0]
    extra = {"nodes": [node(1, "SaveImage", ["out", ""])], "links": []}
    assert convert.ui_to_api(extra, OBJECT_INFO, warn=warnings.append)["1"]["inputs"] == {"filename_prefix": "out"}
    assert "extra values ignored" in warnings[-1]


def test_conversion_errors_name_the_node():
    with pytest.raises(convert.ConversionError, match=r"node 1 \(KSampler\): 6 widgets_values"):
        convert.ui_to_api({"nodes": [node(1, "KSampler", [5, 20, 8.0, "euler", "normal", 1.0])], "links": []},
                          OBJECT_INFO)
    with pytest.raises(convert.ConversionError, match="'NoSuchNode' is not in /object_info"):
        convert.ui_to_api({"nodes": [node(3, "NoSuchNode", [])], "links": []}, OBJECT_INFO)
    group = {"nodes": [node(1, "workflow>mine", [])], "links": [], "extra": {"groupNodes": {"mine": {}}}}
    with pytest.raises(convert.ConversionError, match="group node"):
        convert.ui_to_api(group, OBJECT_INFO)
    with pytest.raises(convert.ConversionError, match="not a ComfyUI workflow"):
        convert.ui_to_api({"foo": 1}, OBJECT_INFO)


# ------------------------------------------------------------------ --set
@pytest.fixture
def prompt():
    return load(REPO / "workflows" / "api" / "faceadapter_spatial_condition_reenact.json")


def test_parse_set():
    assert overrides.parse_set("Select Face (source).index=3") == overrides.Override("Select Face (source)", "index", "3")
    assert overrides.parse_set("v1.2 loader.name=a=b") == overrides.Override("v1.2 loader", "name", "a=b")
    for bad in ("noequals", "nodot=1", ".x=1", "node.=1"):
        with pytest.raises(overrides.OverrideError, match="NODE.INPUT=VALUE"):
            overrides.parse_set(bad)


def test_overrides_are_type_aware(prompt):
    sets = [overrides.parse_set(s) for s in ("6.index=4", "Select Face (source).follow_track=off",
                                             "FaceAdapterProject3DLandmarks.crop_ratio=0.9", "Control image.filename_prefix=x/y")]
    out = overrides.apply_overrides(prompt, sets, OBJECT_INFO)
    assert out["6"]["inputs"]["index"] == 4 and out["6"]["inputs"]["follow_track"] is False
    assert out["9"]["inputs"]["crop_ratio"] == 0.9 and out["12"]["inputs"]["filename_prefix"] == "x/y"
    assert prompt["6"]["inputs"]["index"] == 0, "the input prompt is not changed"
    # without /object_info the current value's type decides
    assert overrides.apply_overrides(prompt, [overrides.parse_set("6.index=7")])["6"]["inputs"]["index"] == 7
    assert overrides.coerce("1", 0.5) == 1.0 and isinstance(overrides.coerce("1", 0.5), float)
    assert overrides.coerce("[1, 2]", [0]) == [1, 2] and overrides.coerce("7", "text") == "7"


@pytest.mark.parametrize("text,message", [
    ("6.index=abc", "is not INT"),
    ("6.index=500", r"outside \[0, 99\]"),
    ("6.follow_track=maybe", "not a boolean"),
    ("6.mode=biggest", "not one of"),
    ("6.faces=1", "linked to node 4"),
    ("6.nothing=1", "no input 'nothing'"),
    ("Select Face.index=1", "no node with id, title or class"),
    ("FaceAdapterSelectFace.index=1", "names nodes"),
])
def test_bad_overrides_are_refused(prompt, text, message):
    with pytest.raises(overrides.OverrideError, match=message):
        overrides.apply_overrides(prompt, [overrides.parse_set(text)], OBJECT_INFO)


def test_local_image_is_uploaded(prompt, tmp_path):
    photo = tmp_path / "me.png"
    photo.write_bytes(b"png")
    sent = []
    out = overrides.apply_overrides(prompt, [overrides.parse_set(f"Source: identity.image={photo}")], OBJECT_INFO,
                                    upload=lambda p: sent.append(p) or "uploaded/me.png")
    assert sent == [photo] and out["1"]["inputs"]["image"] == "uploaded/me.png"
    # a server-side name (no such local file) is taken as is
    out = overrides.apply_overrides(prompt, [overrides.parse_set("1.image=on_server.png")], OBJECT_INFO)
    assert out["1"]["inputs"]["image"] == "on_server.png"


# ------------------------------------------------------------------ websocket frames (RFC 6455 section 5.7)
def reader(data: bytes):
    view = {"pos": 0}

    def read(n):
        chunk = data[view["pos"]:view["pos"] + n]
        assert len(chunk) == n, "read past the end"
        view["pos"] += n
        return chunk
    return read


def test_frames_match_rfc6455_examples():
    hello_unmasked = bytes.fromhex("810548656c6c6f")
    hello_masked = bytes.fromhex("818537fa213d7f9f4d5158")
    assert ws.encode_frame(ws.OP_TEXT, b"Hello", mask=False) == hello_unmasked
    assert ws.encode_frame(ws.OP_TEXT, b"Hello", mask_key=bytes.fromhex("37fa213d")) == hello_masked
    assert ws.decode_frame(reader(hello_unmasked)) == (True, ws.OP_TEXT, b"Hello")
    assert ws.decode_frame(reader(hello_masked)) == (True, ws.OP_TEXT, b"Hello")
    assert ws.decode_frame(reader(bytes.fromhex("010348656c"))) == (False, ws.OP_TEXT, b"Hel")
    assert ws.decode_frame(reader(bytes.fromhex("80026c6f"))) == (True, ws.OP_CONT, b"lo")
    assert ws.encode_frame(ws.OP_PING, b"Hello", mask=False) == bytes.fromhex("890548656c6c6f")
    big = bytes(range(256))
    assert ws.encode_frame(ws.OP_BINARY, big, mask=False)[:4] == bytes.fromhex("827e0100")
    huge = bytes(65536)
    assert ws.encode_frame(ws.OP_BINARY, huge, mask=False)[:10] == bytes.fromhex("827f0000000000010000")
    for payload in (b"", big, huge):
        frame = ws.encode_frame(ws.OP_BINARY, payload)
        assert ws.decode_frame(reader(frame)) == (True, ws.OP_BINARY, payload)
    assert ws.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    with pytest.raises(ws.WebSocketError, match="reserved bits"):
        ws.decode_frame(reader(bytes.fromhex("c100")))
    with pytest.raises(ws.WebSocketError, match="control frame"):
        ws.decode_frame(reader(bytes.fromhex("097e0100")))


def loopback_peer(script):
    """A websocket server side on 127.0.0.1: answers the handshake, then runs ``script(conn)``;
    returns (url, thread, got) where got holds the request path and every byte the client sent after."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    got = {}

    def serve():
        conn, _ = listener.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        headers = dict(line.split(": ", 1) for line in request.decode().split("\r\n")[1:] if ": " in line)
        got["path"] = request.split(b" ")[1]
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {ws.accept_key(headers['Sec-WebSocket-Key'])}\r\n\r\n").encode())
        script(conn)
        buffer = b""
        conn.settimeout(5)
        while True:
            data = conn.recv(4096)
            if not data:
                break
            buffer += data
        got["replies"] = buffer
        conn.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"ws://127.0.0.1:{listener.getsockname()[1]}/ws?clientId=abc", thread, got


def test_websocket_handshake_ping_and_fragments():
    """Handshake, a ping, a fragmented text, a binary message, close."""
    url, thread, got = loopback_peer(lambda conn: conn.sendall(
        bytes.fromhex("8904") + b"ping" + bytes.fromhex("010348656c") + bytes.fromhex("80026c6f")
        + ws.encode_frame(ws.OP_BINARY, b"\x00\x01", mask=False) + bytes.fromhex("880203e8")))
    client = ws.WebSocket(url, timeout=5)
    assert client.recv() == "Hello"
    assert client.recv() == b"\x00\x01"
    assert client.recv() is None and client.closed
    thread.join(5)
    assert got["path"] == b"/ws?clientId=abc"
    read = reader(got["replies"])
    assert ws.decode_frame(read) == (True, ws.OP_PONG, b"ping")  # masked by the client, unmasked here
    assert ws.decode_frame(read)[1] == ws.OP_CLOSE


def test_websocket_timeout_mid_message_loses_nothing():
    """A frame cut in two (and a message in two fragments) with a pause longer than the read timeout:
    the first recv times out, the next returns the whole message."""
    import time

    text = json.dumps({"type": "progress", "data": {"value": 3, "max": 9}}).encode()
    frame = ws.encode_frame(ws.OP_TEXT, text, mask=False)
    event = threading.Event()

    def script(conn):
        conn.sendall(frame[:5])
        event.wait(5)
        conn.sendall(frame[5:] + bytes.fromhex("0102") + b"ab")
        time.sleep(0.3)
        conn.sendall(bytes.fromhex("8002") + b"cd" + bytes.fromhex("8800"))

    url, thread, _ = loopback_peer(script)
    client = ws.WebSocket(url, timeout=5)
    client.settimeout(0.1)
    with pytest.raises(socket.timeout):
        client.recv()
    event.set()
    client.settimeout(5)
    assert json.loads(client.recv()) == {"type": "progress", "data": {"value": 3, "max": 9}}
    client.settimeout(0.1)
    with pytest.raises(socket.timeout):
        client.recv()  # only the first fragment is there yet
    client.settimeout(5)
    assert client.recv() == "abcd"
    assert client.recv() is None
    thread.join(5)


# ------------------------------------------------------------------ outcomes and exit codes
def recorded(name):
    return load(DATA / name)


def prompt_id_of(messages):
    return next(m["data"]["prompt_id"] for m in messages if m["type"] == "execution_start")


def test_recorded_success_exits_zero(prompt):
    messages = recorded("messages_success.json")
    outcome = follow.follow(messages, prompt_id_of(messages), prompt)
    assert outcome.status == "success" and follow.exit_code([outcome]) == 0
    assert {"12", "19"} <= set(outcome.executed)  # the SaveImage nodes reported their files
    assert outcome.executed["12"]["images"][0]["type"] == "output"


def test_recorded_execution_error_exits_nonzero_naming_the_node(prompt):
    messages = recorded("messages_execution_error.json")
    outcome = follow.follow(messages, prompt_id_of(messages), prompt)
    assert outcome.status == "error" and follow.exit_code([outcome]) == 1
    text = follow.describe_error(outcome, prompt)
    assert text.startswith("execution_error in node 6 (FaceAdapterSelectFace, 'Select Face (source)'): NoFaceError:")
    assert "no face matching 'index'" in text


def test_other_prompts_and_truncated_streams(prompt):
    messages = recorded("messages_success.json")
    pid = prompt_id_of(messages)
    other = follow.follow(messages, "another-prompt", prompt)
    assert other.status == "lost" and follow.exit_code([other]) == 1  # nothing for it: not a success
    cut = [m for m in messages if m["type"] != "execution_success"]
    assert follow.follow(cut, pid, prompt).status == "lost"
    ok = follow.follow(messages, pid, prompt)
    assert follow.exit_code([ok, other]) == 1 and follow.exit_code([ok, ok]) == 0


def test_invalid_prompt_is_described_per_node(prompt):
    reply = recorded("invalid_prompt.json")
    outcome = follow.Outcome(None, "rejected", reply)
    text = follow.describe_error(outcome, prompt)
    assert text.splitlines()[0] == "invalid_prompt: prompt_outputs_failed_validation: Prompt outputs failed validation"
    assert ("node 3 (FaceAdapterLoadFaceAnalysis, 'Load Face Analysis (FaceAdapter)') input 'backend': Value not in "
            "list: backend: 'no_such_backend' not in ['mediapipe', 'insightface']") in text
    assert follow.exit_code([outcome]) == 1


def test_progress_bar_lines(prompt):
    import io

    stream = io.StringIO()
    messages = recorded("messages_success.json")
    follow.follow(messages, prompt_id_of(messages), prompt, bar=follow.ProgressBar(stream))
    lines = stream.getvalue().splitlines()
    assert "node 9 (FaceAdapterProject3DLandmarks, 'Project 3D Landmarks (FaceAdapter)') [" + "#" * 24 + "] 2/2" in lines
    assert lines[-1] == "success"


def test_client_imports_only_the_standard_library():
    import ast
    import sys

    for path in sorted((REPO / "client").glob("*.py")):
        for item in ast.walk(ast.parse(path.read_text())):
            if isinstance(item, ast.ImportFrom) and item.level == 0:
                names = [item.module]
            elif isinstance(item, ast.Import):
                names = [a.name for a in item.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == "__future__" or (path.name == "faceadapter_client.py"
                                                                                  and top == "client"), (path.name, name)
        assert len(path.read_text().splitlines()) <= 600, path.name


def test_least_busy_takes_the_shorter_queue_then_shares_ties():
    class Fake:
        def __init__(self, base, length):
            self.base, self.length = base, length

        def queue_length(self):
            return self.length

    busy, idle = Fake("a", 3), Fake("b", 0)
    runner = CLIENT.runner
    assigned: dict = {}
    assert runner.pick_server([busy, idle], 0, "least-busy", assigned) is idle
    busy.length = 0  # both idle now: the one this batch has used less
    assert runner.pick_server([busy, idle], 1, "least-busy", assigned) is busy
    assert [runner.pick_server([busy, idle], i, "round-robin", {}).base for i in range(3)] == ["a", "b", "a"]


@pytest.mark.parametrize("entry", ["module", "script"])
def test_client_folder_runs_alone(tmp_path, entry):
    """client/ copied out of the pack, run without PYTHONPATH or user site (the pack out of reach): the offline conversion works."""
    import shutil
    import subprocess
    import sys

    shutil.copytree(REPO / "client", tmp_path / "client", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "object_info.json").write_text(json.dumps(OBJECT_INFO))
    template = REPO / "workflows" / "faceadapter_video_tracking.json"
    command = ["-m", "client"] if entry == "module" else [str(tmp_path / "client" / "faceadapter_client.py")]
    result = subprocess.run([sys.executable, "-E", "-s", *command, "convert", str(template), "--object-info",
                             "object_info.json", "--strict"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == load(REPO / "workflows" / "api" / template.name)
    bad = subprocess.run([sys.executable, "-E", "-s", *command, "convert", str(template), "--object-info", "missing.json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "missing.json: no such file" in bad.stderr


def test_server_names_are_not_taken_for_local_files(prompt, tmp_path, monkeypatch):
    """A batch file already uploaded keeps its server name even when the working folder holds a file so named."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photo.png").write_bytes(b"a different photo")
    item = overrides.Override("Source: identity", "image", "photo.png", server_name=True)
    out = overrides.apply_overrides(prompt, [item], OBJECT_INFO, upload=lambda p: pytest.fail("uploaded again"))
    assert out["1"]["inputs"]["image"] == "photo.png"


def test_unreachable_server_exits_3(tmp_path, capsys):
    """Nothing listens on the port: exit code 3 and the URL in the message, before anything is queued."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    (tmp_path / "object_info.json").write_text(json.dumps(OBJECT_INFO))
    template = str(REPO / "workflows" / "faceadapter_video_tracking.json")
    code = CLIENT.cli.main(["run", template, "--server", f"http://127.0.0.1:{port}", "--quiet",
                            "--object-info", str(tmp_path / "object_info.json"), "--out", str(tmp_path)])
    assert code == 3 and f"ws://127.0.0.1:{port}/ws?clientId=" in capsys.readouterr().err
    assert CLIENT.cli.main(["run", template, "--server", f"http://127.0.0.1:{port}"]) == 3  # /object_info fetch
    assert f"http://127.0.0.1:{port}/object_info: cannot reach the server" in capsys.readouterr().err


def test_interrupted_prompt_exits_nonzero(prompt):
    """An interrupt (Cancel in the frontend, /interrupt) ends the prompt without success: exit 1."""
    messages = recorded("messages_success.json")
    pid = prompt_id_of(messages)
    cut = [m for m in messages if m["type"] not in ("executed", "execution_success")][:12]
    cut.append({"type": "execution_interrupted", "data": {"prompt_id": pid, "node_id": "9",
                                                          "node_type": "FaceAdapterProject3DLandmarks", "executed": []}})
    outcome = follow.follow(cut, pid, prompt)
    assert outcome.status == "interrupted" and follow.exit_code([outcome]) == 1
    assert follow.describe_error(outcome, prompt) == \
        "execution_interrupted at node 9 (FaceAdapterProject3DLandmarks, 'Project 3D Landmarks (FaceAdapter)')"


def test_progress_bar_redraws_one_line_on_a_terminal():
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = follow.ProgressBar(stream, width=10)
    bar.show("", "9", "9 (Project)", 1, 4)
    bar.show("", "9", "9 (Project)", 4, 4)
    bar.finish("", "success")
    assert stream.getvalue() == ("\rnode 9 (Project) [##........] 1/4"
                                 "\rnode 9 (Project) [##########] 4/4"
                                 "\rsuccess                          \n")
