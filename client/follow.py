"""Following a queued prompt through ComfyUI's websocket messages; error reports; the progress bar.

Kept free of I/O except the progress stream so that recorded message sequences can be replayed in tests.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, TextIO

DONE = ("execution_success", "execution_error", "execution_interrupted")


@dataclass
class Outcome:
    """How one prompt ended: status is success, error, interrupted, rejected or lost."""

    prompt_id: Optional[str]
    status: str = "running"
    error: Optional[dict] = None
    executed: dict[str, Any] = field(default_factory=dict)  # node id -> 'executed' output
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "success"


class Tracker:
    """Feeds one prompt's websocket messages into an Outcome and a progress bar."""

    def __init__(self, prompt_id: str, prompt: dict, label: str = "", bar: Optional["ProgressBar"] = None):
        self.outcome = Outcome(prompt_id)
        self.prompt, self.label, self.bar = prompt, label, bar
        self.node: Optional[str] = None

    def feed(self, message: dict) -> bool:
        """Take one message (other prompts' messages are ignored); True once the prompt has ended."""
        kind, data = message.get("type"), message.get("data") or {}
        if data.get("prompt_id") != self.outcome.prompt_id:
            return self.done
        if kind == "executing":
            self.node = data.get("node")
            if self.node is None and self.outcome.status == "running":  # older servers end like this
                self.outcome.status = "success"
            elif self.bar:
                self.bar.show(self.label, self.node, self.title(self.node), 0, 0)
        elif kind == "progress" and self.bar:
            node = str(data.get("node") or self.node or "")
            self.bar.show(self.label, node, self.title(node), int(data.get("value", 0)), int(data.get("max", 0)))
        elif kind == "executed":
            self.outcome.executed[str(data.get("node"))] = data.get("output")
        elif kind == "execution_success":
            self.outcome.status = "success"
        elif kind == "execution_error":
            self.outcome.status, self.outcome.error = "error", data
        elif kind == "execution_interrupted":
            self.outcome.status, self.outcome.error = "interrupted", data
        if self.done and self.bar:
            self.bar.finish(self.label, self.outcome.status)
        return self.done

    @property
    def done(self) -> bool:
        return self.outcome.status != "running"

    def title(self, node: Optional[str]) -> str:
        return node_label(self.prompt, node) if node is not None else ""


def follow(messages: Iterable[dict], prompt_id: str, prompt: dict, bar: Optional["ProgressBar"] = None) -> Outcome:
    """Replay ``messages`` (decoded JSON) until ``prompt_id`` ends; 'lost' if they run out first."""
    tracker = Tracker(prompt_id, prompt, bar=bar)
    for message in messages:
        if tracker.feed(message):
            return tracker.outcome
    tracker.outcome.status = "lost"
    tracker.outcome.error = {"exception_message": "the message stream ended before the prompt finished"}
    return tracker.outcome


def node_label(prompt: dict, node_id: Any) -> str:
    """'12 (KSampler 'My sampler')': id, class and title where the prompt knows them."""
    node = prompt.get(str(node_id)) or {}
    kind = node.get("class_type")
    title = (node.get("_meta") or {}).get("title")
    extra = ", ".join(x for x in (kind, repr(title) if title and title != kind else None) if x)
    return f"{node_id} ({extra})" if extra else str(node_id)


def describe_error(outcome: Outcome, prompt: dict) -> str:
    """One readable paragraph: which node failed and why (for stderr)."""
    error = outcome.error or {}
    if outcome.status == "error":
        node = error.get("node_id")
        kind = error.get("node_type") or (prompt.get(str(node), {}).get("class_type"))
        label = node_label(prompt, node) if str(node) in prompt else f"{node} ({kind})"
        exception = str(error.get("exception_type") or "Exception").rsplit(".", 1)[-1]  # module path dropped
        return (f"execution_error in node {label}: {exception}: "
                f"{str(error.get('exception_message', '')).strip()}")
    if outcome.status == "interrupted":
        return f"execution_interrupted at node {node_label(prompt, error.get('node_id'))}"
    if outcome.status == "rejected":
        return describe_rejection(error, prompt)
    return f"{outcome.status}: {error.get('exception_message', '')}"


def describe_rejection(reply: dict, prompt: dict) -> str:
    """``POST /prompt``'s validation failure (invalid_prompt): the error and every node's errors."""
    top = reply.get("error") or {}
    lines = [f"invalid_prompt: {top.get('type', 'error')}: {top.get('message', '')}".rstrip(": ")]
    if top.get("details"):
        lines.append(f"  {top['details']}")
    for node, entry in sorted((reply.get("node_errors") or {}).items(), key=lambda kv: str(kv[0])):
        where = node_label(prompt, node) if str(node) in prompt else f"{node} ({entry.get('class_type')})"
        for err in entry.get("errors", []):
            name = (err.get("extra_info") or {}).get("input_name")
            lines.append(f"  node {where}{f' input {name!r}' if name else ''}: {err.get('message', '')}"
                         f"{': ' + str(err['details']) if err.get('details') else ''}")
    return "\n".join(lines)


def exit_code(outcomes: Iterable[Outcome]) -> int:
    """0 when every prompt succeeded, 1 otherwise."""
    return 0 if all(o.ok for o in outcomes) else 1


class ProgressBar:
    """One status line on stderr ('\\r'-redrawn on a terminal, plain lines elsewhere)."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 24, enabled: bool = True):
        self.stream, self.width, self.enabled = stream, width, enabled
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last = ""

    def show(self, label: str, node: Optional[str], title: str, value: int, maximum: int) -> None:
        if not self.enabled:
            return
        if maximum > 0:
            filled = int(self.width * min(value, maximum) / maximum)
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {value}/{maximum}"
        else:
            bar = ""
        text = f"{label + ' ' if label else ''}node {title or node} {bar}".rstrip()
        if self.tty:
            self.stream.write("\r" + text[:160].ljust(len(self._last)))
        elif (maximum == 0 or value == maximum) and text[:160] != self._last:
            self.stream.write(text + "\n")  # not a terminal: one line per node start and finish
        self._last = text[:160]
        self.stream.flush()

    def finish(self, label: str, status: str) -> None:
        if not self.enabled:
            return
        text = f"{label + ' ' if label else ''}{status}"
        self.stream.write(("\r" + text.ljust(len(self._last)) if self.tty else text) + "\n")
        self._last = ""
        self.stream.flush()
