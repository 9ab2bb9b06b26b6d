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
- list widget values are wrapped as ``{"__value__": [...]}``; each node carries ``_meta.title``;
- subgraphs are expanded (inner nodes run as ``"<instance>:<inner>"``, see ui_graph.py).

Legacy group nodes are refused with a clear error (convert them to nodes in the frontend).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

from .ui_graph import VIRTUAL_NODES, ConversionError, Scope, where

__all__ = ["ConversionError", "input_specs", "is_api_format", "ui_to_api", "used_classes", "widget_layout"]

# Input types the frontend draws a widget for (ComfyWidgets); every other type is a socket.
WIDGET_TYPES = {"INT", "FLOAT", "BOOLEAN", "STRING", "MARKDOWN", "COMBO", "IMAGEUPLOAD", "FILEUPLOAD", "COLOR",
                "IMAGECOMPARE", "TREESELECT", "MULTISELECT", "CHART", "GALLERIA", "SELECTBUTTON", "TEXTAREA"}
UPLOAD_OPTIONS = ("image_upload", "video_upload", "animated_image_upload")
SEED_NAMES = ("seed", "noise_seed")


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


def _wrap(value: Any) -> Any:
    return {"__value__": value} if isinstance(value, list) else value


def default_value(kind: Any, options: dict) -> Any:
    """The value a new widget starts with in the frontend (the declared default, else the first choice)."""
    if "default" in options:
        return options["default"]
    choices = kind if isinstance(kind, list) else options.get("options")
    if choices:
        return choices[0]
    return {"INT": 0, "FLOAT": 0.0, "BOOLEAN": False, "STRING": ""}.get(kind)


def node_widget_values(node: dict, info: dict, warn: Optional[Callable[[str], None]] = None,
                       path: tuple[str, ...] = ()) -> dict[str, Any]:
    """The sent widget values of a UI node by input name (``widgets_values`` by position, or by name).

    A count that does not match the node's widgets (saved with another version of the node) is an
    error, unless ``warn`` is given: then, as the frontend does, values are taken by position,
    widgets without one keep their default and extra values are ignored, and ``warn`` says so."""
    layout = widget_layout(info)
    values = node.get("widgets_values")
    if values is None:
        values = []
    if isinstance(values, dict):  # some nodes save widgets by name
        return {name: values[name] for name, sent in layout if sent and name in values}
    if len(values) != len(layout):
        message = (f"{where(node, path)}: {len(values)} widgets_values for widgets {[name for name, _ in layout]} "
                   "(saved with a different version of the node?)")
        if warn is None:
            raise ConversionError(message)
        specs = {name: (kind, options) for name, kind, options, _ in input_specs(info)}
        missing = [name for name, sent in layout[len(values):] if sent]
        warn(message + (f"; {missing} take their defaults" if missing else "; extra values ignored"))
        values = list(values[:len(layout)]) + [default_value(*specs[name]) if name in specs else None
                                                for name, _ in layout[len(values):]]
    return {name: value for (name, sent), value in zip(layout, values) if sent}


def ui_to_api(workflow: dict, object_info: dict, warn: Optional[Callable[[str], None]] = None) -> dict[str, dict]:
    """The API prompt the ComfyUI frontend sends for a UI-format ``workflow`` (``warn``: see
    node_widget_values; without it a widget count mismatch is an error)."""
    if is_api_format(workflow):
        return workflow
    if "nodes" not in workflow:
        raise ConversionError("not a ComfyUI workflow: no 'nodes' (UI format) and no class_type entries (API format)")
    prompt: dict[str, dict] = {}
    for scope, node in Scope.root(workflow).running():
        kind = node.get("type")
        if kind not in object_info:
            raise ConversionError(f"{where(node, scope.path)}: class {kind!r} is not in /object_info "
                                  "(a custom node pack missing on this server?)")
        info = object_info[kind]
        values = node_widget_values(node, info, warn, scope.path)
        linked: dict[str, Any] = {}
        for slot, entry in enumerate(node.get("inputs") or []):
            resolved = scope.resolve_input(node, slot, entry.get("type"), set())
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
        prompt[scope.exec_id(node["id"])] = {"class_type": kind, "inputs": inputs, "_meta": {"title": title}}
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
