"""UI-format workflow -> API-format prompt, the way the ComfyUI frontend builds it for ``POST /prompt``.

The UI format stores widget values by position (``widgets_values``); which position is which input
follows from ``/object_info``, so the conversion needs it (live from a server, or a saved JSON file).
Behaviour mirrored from the ComfyUI frontend (1.27, graphToPrompt):

- widgets are the inputs of ``input_order`` (required, then optional, then anything else, e.g. the
  upload button) whose type has a frontend widget (INT, FLOAT, STRING, BOOLEAN, COMBO, ...) and
  no ``forceInput``;
- an INT widget with ``control_after_generate`` (or named seed / noise_seed unless the option says
  False) is followed by an unsent "control_after_generate" value; a COMBO with that option by two
  (control and filter list); a combo with ``image_upload`` adds an unsent upload button;
- Note / MarkdownNote / PrimitiveNode / Reroute are virtual: never sent. A link from a Reroute is
  followed to its source; a widget input fed by a PrimitiveNode takes the primitive's value;
- muted (mode 2) and bypassed (mode 4) nodes are not sent; a link from a bypassed node is followed
  through its first input of the link's type; links into nodes that are not sent are dropped;
- list widget values are wrapped as ``{"__value__": [...]}``; each node carries ``_meta.title``.

Group nodes and subgraphs are refused with a clear error (convert them to nodes in the frontend).
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

# Input types the frontend draws a widget for (ComfyWidgets); every other type is a socket.
WIDGET_TYPES = {"INT", "FLOAT", "BOOLEAN", "STRING", "MARKDOWN", "COMBO", "IMAGEUPLOAD", "FILEUPLOAD", "COLOR",
                "IMAGECOMPARE", "TREESELECT", "MULTISELECT", "CHART", "GALLERIA", "SELECTBUTTON", "TEXTAREA"}
UPLOAD_OPTIONS = ("image_upload", "video_upload", "animated_image_upload")
SEED_NAMES = ("seed", "noise_seed")
VIRTUAL_NODES = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
MODE_MUTED, MODE_BYPASSED = 2, 4


class ConversionError(ValueError):
    """The workflow cannot be converted; the message names the node."""


def is_api_format(workflow: dict) -> bool:
    """API prompts map node ids to {class_type, inputs}; UI workflows carry nodes + links lists."""
    if "nodes" in workflow and "links" in workflow:
        return False
    return bool(workflow) and all(isinstance(v, dict) and "class_type" in v for v in workflow.values())


def input_specs(info: dict) -> list[tuple[str, Any, dict, bool]]:
    """(name, type, options, optional) of a node's inputs in the order the frontend lays them out."""
    declared = info.get("input", {})
    order = info.get("input_order") or {}
    specs: list[tuple[str, Any, dict, bool]] = []
    seen: set[str] = set()
    for section in ("required", "optional"):
        entries = declared.get(section) or {}
        for name in order.get(section, list(entries)):
            if name in entries and name not in seen:
                entry = entries[name]
                specs.append((name, entry[0], (entry[1] if len(entry) > 1 and entry[1] else {}), section == "optional"))
                seen.add(name)
    for section in ("required", "optional"):  # inputs missing from input_order come last
        for name, entry in (declared.get(section) or {}).items():
            if name not in seen:
                specs.append((name, entry[0], (entry[1] if len(entry) > 1 and entry[1] else {}), section == "optional"))
                seen.add(name)
    required = declared.get("required") or {}
    upload = next((n for n, e in required.items() if len(e) > 1 and isinstance(e[1], dict)
                   and any(e[1].get(o) for o in UPLOAD_OPTIONS) and widget_kind(e[0]) == "COMBO"), None)
    if upload is not None and "upload" not in seen:
        specs.append(("upload", "IMAGEUPLOAD", {"imageInputName": upload}, False))
    return specs


def widget_kind(kind: Any) -> Optional[str]:
    """The frontend widget an input type gets, or None for a socket-only input."""
    if isinstance(kind, list):
        return "COMBO"
    return kind if isinstance(kind, str) and kind in WIDGET_TYPES else None


def widget_layout(info: dict) -> list[tuple[str, bool]]:
    """(widget name, sent to the server) in ``widgets_values`` order for a node described by ``info``."""
    layout: list[tuple[str, bool]] = []
    for name, kind, options, _ in input_specs(info):
        widget = widget_kind(kind)
        if widget is None or options.get("forceInput"):
            continue
        layout.append((name, widget != "IMAGEUPLOAD"))
        control = options.get("control_after_generate", name in SEED_NAMES if widget == "INT" else False)
        if control and widget == "INT":
            layout.append(("control_after_generate", False))
        elif control and widget == "COMBO":
            layout += [("control_after_generate", False), ("control_filter_list", False)]
    return layout


def _links(workflow: dict) -> dict[int, tuple[int, int, int, int, Any]]:
    """link id -> (origin id, origin slot, target id, target slot, type); list or object form."""
    out = {}
    for link in workflow.get("links") or []:
        if isinstance(link, dict):
            out[link["id"]] = (link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"],
                               link.get("type"))
        else:
            out[link[0]] = (link[1], link[2], link[3], link[4], link[5] if len(link) > 5 else None)
    return out


def _types_match(a: Any, b: Any) -> bool:
    """LiteGraph's connection rule: equal, a wildcard, or overlapping comma-separated type lists."""
    if a in ("*", "", None) or b in ("*", "", None) or a == b:
        return True
    return bool(set(str(a).upper().split(",")) & set(str(b).upper().split(",")))


def _where(node: dict) -> str:
    title = node.get("title")
    return f"node {node['id']} ({node.get('type')}{', ' + repr(title) if title else ''})"


class _Graph:
    def __init__(self, workflow: dict, object_info: dict):
        self.nodes = {n["id"]: n for n in workflow["nodes"]}
        self.links = _links(workflow)
        self.object_info = object_info
        groups = set((workflow.get("extra") or {}).get("groupNodes") or {})
        subgraphs = {s.get("id") for s in (workflow.get("definitions") or {}).get("subgraphs") or []}
        for node in self.nodes.values():
            kind = node.get("type", "")
            if kind in subgraphs or kind.startswith(("workflow>", "workflow/")) or kind.split(">", 1)[-1] in groups:
                raise ConversionError(f"{_where(node)} is a group node / subgraph: the client sends plain nodes "
                                      "only; use 'Convert to nodes' (or unpack the subgraph) in the frontend first")

    def info(self, node: dict) -> dict:
        try:
            return self.object_info[node["type"]]
        except KeyError:
            raise ConversionError(f"{_where(node)}: class {node['type']!r} is not in /object_info "
                                  "(a custom node pack missing on this server?)") from None

    def link_into(self, node: dict, slot: int) -> Optional[tuple[int, int, int, int, Any]]:
        inputs = node.get("inputs") or []
        link_id = inputs[slot].get("link") if slot < len(inputs) else None
        if link_id is None:
            return None
        if link_id not in self.links:
            raise ConversionError(f"{_where(node)}: input {inputs[slot].get('name')!r} uses missing link {link_id}")
        return self.links[link_id]

    def resolve(self, node: dict, slot: int, want_type: Any, seen: set) -> Optional[tuple[str, Any]]:
        """Follow the link into ``node``'s input ``slot`` to a real output:
        ("link", [id, slot]), ("value", primitive value) or None (nothing real upstream)."""
        link = self.link_into(node, slot)
        if link is None:
            return None
        origin_id, origin_slot = link[0], link[1]
        if (origin_id, origin_slot) in seen:
            raise ConversionError(f"{_where(node)}: circular link through node {origin_id}")
        seen.add((origin_id, origin_slot))
        origin = self.nodes.get(origin_id)
        if origin is None:
            raise ConversionError(f"{_where(node)}: input slot {slot} comes from missing node {origin_id}")
        kind, mode = origin.get("type"), origin.get("mode", 0)
        if mode == MODE_BYPASSED:
            index = self.bypass_input(origin, origin_slot, want_type)
            return None if index < 0 else self.resolve(origin, index, want_type, seen)
        if kind == "PrimitiveNode":
            values = origin.get("widgets_values") or []
            return ("value", values[0]) if values else None
        if kind in VIRTUAL_NODES:  # a Reroute passes output n from input n; others end the link
            return self.resolve(origin, origin_slot, want_type, seen) \
                if origin_slot < len(origin.get("inputs") or []) else None
        return "link", [str(origin_id), origin_slot]

    @staticmethod
    def bypass_input(node: dict, out_slot: int, want_type: Any) -> int:
        """Which input a bypassed node passes to output ``out_slot`` (the frontend's rule), -1 if none."""
        inputs = node.get("inputs") or []
        outputs = node.get("outputs") or []
        out_type = outputs[out_slot].get("type") if out_slot < len(outputs) else want_type
        if want_type in ("*", "", None):
            return out_slot if len(inputs) > out_slot else (0 if inputs else -1)
        if out_slot < len(inputs) and _types_match(inputs[out_slot].get("type"), out_type) \
                and _types_match(inputs[out_slot].get("type"), want_type):
            return out_slot
        for i, slot in enumerate(inputs):
            if slot.get("type") == want_type:
                return i
        for i, slot in enumerate(inputs):
            if _types_match(slot.get("type"), out_type) and _types_match(slot.get("type"), want_type):
                return i
        return -1


def _wrap(value: Any) -> Any:
    return {"__value__": value} if isinstance(value, list) else value


def node_widget_values(node: dict, info: dict) -> dict[str, Any]:
    """The sent widget values of a UI node by input name (``widgets_values`` by position, or by name)."""
    layout = widget_layout(info)
    values = node.get("widgets_values")
    if values is None:
        values = []
    if isinstance(values, dict):  # some nodes save widgets by name
        return {name: values[name] for name, sent in layout if sent and name in values}
    if len(values) != len(layout):
        raise ConversionError(f"{_where(node)}: {len(values)} widgets_values for widgets "
                              f"{[name for name, _ in layout]} (saved with a different version of the node?)")
    return {name: value for (name, sent), value in zip(layout, values) if sent}


def ui_to_api(workflow: dict, object_info: dict) -> dict[str, dict]:
    """The API prompt the ComfyUI frontend sends for a UI-format ``workflow``."""
    if is_api_format(workflow):
        return workflow
    if "nodes" not in workflow:
        raise ConversionError("not a ComfyUI workflow: no 'nodes' (UI format) and no class_type entries (API format)")
    graph = _Graph(workflow, object_info)
    prompt: dict[str, dict] = {}
    for node in sorted(graph.nodes.values(), key=lambda n: n["id"]):
        kind = node.get("type")
        if kind in VIRTUAL_NODES or node.get("mode", 0) in (MODE_MUTED, MODE_BYPASSED):
            continue
        info = graph.info(node)
        values = node_widget_values(node, info)
        linked: dict[str, Any] = {}
        for slot, entry in enumerate(node.get("inputs") or []):
            resolved = graph.resolve(node, slot, entry.get("type"), set())
            if resolved is not None:
                linked[entry["name"]] = resolved[1] if resolved[0] == "link" else _wrap(resolved[1])
        inputs: dict[str, Any] = {}
        names = [name for name, *_ in input_specs(info)]
        for name in names + [n for n in list(values) + list(linked) if n not in names]:
            if name in linked:
                inputs[name] = linked[name]
            elif name in values:
                inputs[name] = _wrap(values[name])
        title = node.get("title") or info.get("display_name") or kind
        prompt[str(node["id"])] = {"class_type": kind, "inputs": inputs, "_meta": {"title": title}}
    for entry in prompt.values():  # links into nodes that are not sent are dropped, as the frontend does
        for name, value in list(entry["inputs"].items()):
            if _is_link(value) and value[0] not in prompt:
                del entry["inputs"][name]
    return prompt


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def used_classes(workflow: dict) -> set[str]:
    """Node classes a workflow (either format) needs from /object_info."""
    if is_api_format(workflow):
        return {n["class_type"] for n in workflow.values()}
    return {n["type"] for n in workflow.get("nodes", []) if n.get("type") not in VIRTUAL_NODES}


def titles(prompt: dict) -> Iterable[tuple[str, str]]:
    """(node id, title) pairs of an API prompt (``_meta.title`` as the frontend writes it)."""
    for nid, node in prompt.items():
        title = (node.get("_meta") or {}).get("title")
        if title:
            yield nid, title
