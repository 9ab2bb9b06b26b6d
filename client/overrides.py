"""``--set "NODE.input=value"`` overrides on an API prompt: NODE is an id, a title or a unique class.

The value takes the type of the input's current value (int, float, bool, str; JSON for list values),
or of its declared type in /object_info when the prompt does not set it yet. A value naming a local
file, for an upload input (LoadImage's image), is uploaded first and replaced by the server's name.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from .api_convert import UPLOAD_OPTIONS, input_specs, titles, widget_kind

TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


class OverrideError(ValueError):
    """A --set names no node, an unknown input, a linked input, or a value of the wrong type."""


@dataclass(frozen=True)
class Override:
    node: str
    input: str
    value: str
    server_name: bool = False  # the value already names a file on the server (never a local path)

    def __str__(self) -> str:
        return f"{self.node}.{self.input}={self.value}"


def parse_set(text: str) -> Override:
    """'Load source.image=me.png' -> Override('Load source', 'image', 'me.png'); titles may hold dots."""
    target, sep, value = text.partition("=")
    node, dot, name = target.rpartition(".")
    if not sep or not dot or not node.strip() or not name.strip():
        raise OverrideError(f"--set {text!r}: expected NODE.INPUT=VALUE (NODE: id, title or class)")
    return Override(node.strip(), name.strip(), value)


def find_node(prompt: dict, ref: str) -> str:
    """The id of the node ``ref`` names: an id, else an exact title, else a class present once."""
    if ref in prompt:
        return ref
    by_title = [nid for nid, title in titles(prompt) if title == ref]
    if len(by_title) == 1:
        return by_title[0]
    if len(by_title) > 1:
        raise OverrideError(f"title {ref!r} names nodes {by_title}: use an id")
    by_class = [nid for nid, node in prompt.items() if node.get("class_type") == ref]
    if len(by_class) == 1:
        return by_class[0]
    if len(by_class) > 1:
        raise OverrideError(f"class {ref!r} names nodes {by_class}: use an id or a title")
    known = sorted({t for _, t in titles(prompt)})
    raise OverrideError(f"no node with id, title or class {ref!r}; titles: {known}")


def coerce(raw: str, current: Any, declared: Any = None, where: str = "") -> Any:
    """``raw`` as the declared /object_info widget type, else as the type of ``current``."""
    kind = declared if declared in ("INT", "FLOAT", "BOOLEAN", "STRING", "COMBO") or current is None else type(current)
    try:
        if kind in (bool, "BOOLEAN"):
            low = raw.strip().lower()
            if low not in TRUE | FALSE:
                raise ValueError(f"{raw!r} is not a boolean (true/false, 1/0, yes/no, on/off)")
            return low in TRUE
        if kind in (int, "INT"):
            return int(raw.strip())
        if kind in (float, "FLOAT"):
            return float(raw.strip())
        if kind in (list, dict):
            return json.loads(raw)
    except ValueError as exc:
        name = kind if isinstance(kind, str) else kind.__name__
        raise OverrideError(f"{where}: {raw!r} is not {name}: {exc}") from None
    return raw


def _spec(object_info: Optional[dict], class_type: str, name: str) -> Optional[tuple[Any, dict]]:
    info = (object_info or {}).get(class_type)
    if not info:
        return None
    for spec_name, kind, options, _ in input_specs(info):
        if spec_name == name:
            return kind, options
    return None


def apply_overrides(prompt: dict, overrides: list[Override], object_info: Optional[dict] = None,
                    upload: Optional[Callable[[Path], str]] = None) -> dict:
    """A copy of ``prompt`` with every override applied (errors name the override and the node)."""
    prompt = copy.deepcopy(prompt)
    for item in overrides:
        try:
            nid = find_node(prompt, item.node)
        except OverrideError as exc:
            raise OverrideError(f"--set {item}: {exc}") from None
        node = prompt[nid]
        where = f"--set {item} (node {nid}, {node.get('class_type')})"
        inputs = node.setdefault("inputs", {})
        current = inputs.get(item.input)
        spec = _spec(object_info, node.get("class_type", ""), item.input)
        if isinstance(current, list):
            raise OverrideError(f"{where}: input {item.input!r} is linked to node {current[0]}; "
                                "only widget values can be set")
        if isinstance(current, dict) and "__value__" in current:
            inputs[item.input] = {"__value__": coerce(item.value, current["__value__"], where=where)}
            continue
        if current is None and spec is None:
            known = sorted(inputs) if object_info is None else [n for n, *_ in input_specs(object_info.get(
                node.get("class_type"), {}))]
            raise OverrideError(f"{where}: no input {item.input!r}; inputs: {known}")
        kind, options = spec if spec else (None, {})
        widget = widget_kind(kind) if spec else None
        if spec and widget is None:
            raise OverrideError(f"{where}: {item.input!r} is a {kind} socket, not a widget value")
        path = Path(item.value).expanduser()
        is_upload = any(options.get(o) for o in UPLOAD_OPTIONS) or (
            spec is None and isinstance(current, str) and Path(current).suffix.lower() in IMAGE_SUFFIXES)
        if is_upload and not item.server_name and path.is_file():
            if upload is None:
                raise OverrideError(f"{where}: {path} is a local file but no server to upload it to")
            inputs[item.input] = upload(path)
            continue
        value = coerce(item.value, current, widget, where)
        choices = kind if isinstance(kind, list) else (options.get("options") if widget == "COMBO" else None)
        if choices and value not in choices and not is_upload:
            raise OverrideError(f"{where}: {value!r} is not one of {choices}")
        if widget in ("INT", "FLOAT") and not isinstance(value, bool):
            low, high = options.get("min"), options.get("max")
            if (low is not None and value < low) or (high is not None and value > high):
                raise OverrideError(f"{where}: {value} outside [{low}, {high}]")
        inputs[item.input] = value
    return prompt
