"""A UI-format graph as the frontend executes it: which nodes run, and where each input really comes from.

Links are followed the way the ComfyUI frontend (1.27, ExecutableNodeDTO) resolves them: through
Reroutes, through bypassed nodes (their first input of the wanted type), to a PrimitiveNode's value,
and into / out of subgraphs. A node inside a subgraph instance runs under the id
``"<instance id>:<inner id>"`` (nested: ``"a:b:c"``); a subgraph input that is not linked on the
instance takes the instance's promoted widget value.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

VIRTUAL_NODES = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
MODE_MUTED, MODE_BYPASSED = 2, 4
SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = -10, -20  # ids of a subgraph's input / output pseudo-nodes

Link = tuple[Any, int, Any, int, Any]  # origin id, origin slot, target id, target slot, type
Resolved = Optional[tuple[str, Any]]   # ("link", [id, slot]) | ("value", v) | None


class ConversionError(ValueError):
    """The workflow cannot be converted; the message names the node."""


def where(node: dict, path: tuple[str, ...] = ()) -> str:
    title = node.get("title")
    nid = ":".join(path + (str(node.get("id")),))
    return f"node {nid} ({node.get('type')}{', ' + repr(title) if title else ''})"


def read_links(links: Any) -> dict[Any, Link]:
    """link id -> (origin id, origin slot, target id, target slot, type), from list or object form."""
    out = {}
    for link in links or []:
        if isinstance(link, dict):
            out[link["id"]] = (link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"],
                               link.get("type"))
        else:
            out[link[0]] = (link[1], link[2], link[3], link[4], link[5] if len(link) > 5 else None)
    return out


def types_match(a: Any, b: Any) -> bool:
    """LiteGraph's connection rule: equal, a wildcard, or overlapping comma-separated type lists."""
    if a in ("*", "", None) or b in ("*", "", None) or a == b:
        return True
    return bool(set(str(a).upper().split(",")) & set(str(b).upper().split(",")))


def bypass_input(node: dict, out_slot: int, want_type: Any) -> int:
    """Which input a bypassed node passes on to output ``out_slot`` (the frontend's rule); -1 if none."""
    inputs = node.get("inputs") or []
    outputs = node.get("outputs") or []
    out_type = outputs[out_slot].get("type") if out_slot < len(outputs) else want_type
    if want_type in ("*", "", None):
        return out_slot if len(inputs) > out_slot else (0 if inputs else -1)
    if out_slot < len(inputs) and types_match(inputs[out_slot].get("type"), out_type) \
            and types_match(inputs[out_slot].get("type"), want_type):
        return out_slot
    for i, slot in enumerate(inputs):
        if slot.get("type") == want_type:
            return i
    for i, slot in enumerate(inputs):
        if types_match(slot.get("type"), out_type) and types_match(slot.get("type"), want_type):
            return i
    return -1


class Scope:
    """The root graph, or one subgraph instance (``instance`` in ``parent``) with its definition."""

    def __init__(self, nodes: list[dict], links: Any, definitions: dict[str, dict], path: tuple[str, ...] = (),
                 parent: Optional["Scope"] = None, instance: Optional[dict] = None,
                 definition: Optional[dict] = None):
        self.nodes = {n["id"]: n for n in nodes}
        self.links = read_links(links)
        self.definitions, self.path, self.parent = definitions, path, parent
        self.instance, self.definition = instance, definition

    @classmethod
    def root(cls, workflow: dict) -> "Scope":
        definitions = {s["id"]: s for s in (workflow.get("definitions") or {}).get("subgraphs") or []}
        groups = set((workflow.get("extra") or {}).get("groupNodes") or {})
        for node in workflow["nodes"]:
            kind = str(node.get("type", ""))
            if kind.startswith(("workflow>", "workflow/")) or (groups and kind.split(">", 1)[-1] in groups):
                raise ConversionError(f"{where(node)} is a (legacy) group node: the client sends plain nodes and "
                                      "subgraphs; use 'Convert to nodes' on it in the frontend first")
        return cls(workflow["nodes"], workflow.get("links"), definitions)

    def exec_id(self, node_id: Any) -> str:
        return ":".join(self.path + (str(node_id),))

    def is_subgraph(self, node: dict) -> bool:
        return node.get("type") in self.definitions

    def child(self, instance: dict) -> "Scope":
        definition = self.definitions[instance["type"]]
        if len(self.path) >= 32:
            raise ConversionError(f"{where(instance, self.path)}: subgraphs nested 32 deep (one contains itself?)")
        return Scope(definition.get("nodes") or [], definition.get("links"), self.definitions,
                     self.path + (str(instance["id"]),), self, instance, definition)

    def running(self) -> Iterator[tuple["Scope", dict]]:
        """(scope, node) of every node that is sent to the server, subgraphs expanded, by id."""
        for node in sorted(self.nodes.values(), key=lambda n: n["id"]):
            if node.get("type") in VIRTUAL_NODES or node.get("mode", 0) in (MODE_MUTED, MODE_BYPASSED):
                continue
            if self.is_subgraph(node):
                yield from self.child(node).running()
            else:
                yield self, node

    # ------------------------------------------------------------------ link resolution
    def link_into(self, node: dict, slot: int) -> Optional[Link]:
        inputs = node.get("inputs") or []
        link_id = inputs[slot].get("link") if slot < len(inputs) else None
        if link_id is None:
            return None
        if link_id not in self.links:
            raise ConversionError(f"{where(node, self.path)}: input {inputs[slot].get('name')!r} "
                                  f"uses missing link {link_id}")
        return self.links[link_id]

    def resolve_input(self, node: dict, slot: int, want_type: Any, seen: set) -> Resolved:
        """Where ``node``'s input ``slot`` really comes from (None: nothing real upstream)."""
        link = self.link_into(node, slot)
        if link is None:
            return None
        return self.resolve_output(link[0], link[1], want_type, seen, node)

    def resolve_output(self, origin_id: Any, origin_slot: int, want_type: Any, seen: set, consumer: dict) -> Resolved:
        key = (self.path, origin_id, origin_slot)
        if key in seen:
            raise ConversionError(f"{where(consumer, self.path)}: circular link through node {origin_id}")
        seen.add(key)
        if origin_id == SUBGRAPH_INPUT:
            return self.subgraph_input(origin_slot, want_type, seen)
        origin = self.nodes.get(origin_id)
        if origin is None:
            raise ConversionError(f"{where(consumer, self.path)}: an input comes from missing node {origin_id}")
        kind, mode = origin.get("type"), origin.get("mode", 0)
        if mode == MODE_BYPASSED:
            index = bypass_input(origin, origin_slot, want_type)
            return None if index < 0 else self.resolve_input(origin, index, want_type, seen)
        if kind == "PrimitiveNode":
            values = origin.get("widgets_values") or []
            return ("value", values[0]) if values else None
        if kind in VIRTUAL_NODES:  # a Reroute passes output n from input n; others end the link
            return self.resolve_input(origin, origin_slot, want_type, seen) \
                if origin_slot < len(origin.get("inputs") or []) else None
        if self.is_subgraph(origin):
            child = self.child(origin)
            inner = [l for l in child.links.values() if l[2] == SUBGRAPH_OUTPUT and l[3] == origin_slot]
            return child.resolve_output(inner[0][0], inner[0][1], want_type, seen, origin) if inner else None
        return "link", [self.exec_id(origin_id), origin_slot]

    def subgraph_input(self, index: int, want_type: Any, seen: set) -> Resolved:
        """A subgraph's input ``index``: the instance's link in the parent graph, else its widget value."""
        if self.definition is None or self.parent is None or self.instance is None:
            raise ConversionError("a link from a subgraph input outside any subgraph")
        declared = self.definition.get("inputs") or []
        if index >= len(declared):
            raise ConversionError(f"{where(self.instance, self.parent.path)}: subgraph input {index} not declared")
        name = declared[index].get("name")
        slots = self.instance.get("inputs") or []
        slot = next((i for i, s in enumerate(slots) if s.get("name") == name), None)
        if slot is not None and slots[slot].get("link") is not None:
            return self.parent.resolve_input(self.instance, slot, want_type, seen)
        promoted = self.promoted_inputs()
        values = self.instance.get("widgets_values")
        if index in promoted and isinstance(values, list) and promoted.index(index) < len(values):
            return "value", values[promoted.index(index)]
        return None  # the inner widget keeps its own value

    def promoted_inputs(self) -> list[int]:
        """Subgraph inputs that feed an inner widget: the instance shows them as widgets, in this order."""
        assert self.definition is not None
        widget_links = {lid for node in self.nodes.values() for slot in node.get("inputs") or []
                        if "widget" in slot and slot.get("link") is not None for lid in [slot["link"]]}
        return [i for i, entry in enumerate(self.definition.get("inputs") or [])
                if any(lid in widget_links for lid in entry.get("linkIds") or [])]
