"""Run jobs (one API prompt each) on one or more ComfyUI servers and download what they save.

Each server gets one websocket, opened before anything is queued so no message is missed; a
listener thread files its messages by prompt id. Jobs are spread round-robin or to the server with
the shortest ``/queue``; a job's uploads go to the server that runs it.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .comfy_api import ComfyAPI, PromptRejected, ServerError
from .follow import Outcome, ProgressBar, Tracker, describe_error


@dataclass
class Job:
    """One prompt to queue. ``prepare(api)`` returns the final prompt for the server it lands on
    (uploads and overrides happen there); ``name`` labels progress and the output sub-folder."""

    name: str
    prepare: Callable[[ComfyAPI], dict]
    workflow: Optional[dict] = None
    server: Optional[str] = None
    prompt: dict = field(default_factory=dict)


class Listener(threading.Thread):
    """Reads one server's websocket and files messages by prompt id."""

    def __init__(self, api: ComfyAPI, timeout: float):
        super().__init__(daemon=True, name=f"ws {api.base}")
        self.api = api
        self.ws = api.websocket(timeout=timeout)
        self.ws.settimeout(1.0)
        self.messages: dict[str, list[dict]] = defaultdict(list)
        self.lock = threading.Condition()
        self.error: Optional[str] = None
        self.stop = threading.Event()

    def run(self) -> None:
        import socket

        while not self.stop.is_set():
            try:
                raw = self.ws.recv()
            except socket.timeout:
                continue
            except OSError as exc:
                self._fail(f"websocket to {self.api.base} failed: {exc}")
                return
            if raw is None:
                self._fail(f"{self.api.base} closed the websocket")
                return
            if isinstance(raw, bytes):
                continue  # binary preview images
            message = json.loads(raw)
            prompt_id = (message.get("data") or {}).get("prompt_id")
            if prompt_id:
                with self.lock:
                    self.messages[prompt_id].append(message)
                    self.lock.notify_all()

    def _fail(self, why: str) -> None:
        with self.lock:
            self.error = None if self.stop.is_set() else why
            self.lock.notify_all()

    def close(self) -> None:
        self.stop.set()
        self.ws.close()


def pick_server(apis: list[ComfyAPI], index: int, schedule: str, assigned: dict[str, int]) -> ComfyAPI:
    """round-robin: the index-th in turn; least-busy: the shortest /queue, ties broken by fewer prompts
    of this batch sent there so far (a fast server that already emptied its queue still shares)."""
    if schedule == "least-busy" and len(apis) > 1:
        api = min(apis, key=lambda a: (a.queue_length(), assigned.get(a.base, 0)))
    else:
        api = apis[index % len(apis)]
    assigned[api.base] = assigned.get(api.base, 0) + 1
    return api


def download_outputs(api: ComfyAPI, history: dict, folder: Path, kinds: tuple[str, ...] = ("output",)) -> list[str]:
    """Save every file a prompt's history lists (images, gifs, videos, ...) of the given types."""
    saved = []
    for node_id, output in sorted((history.get("outputs") or {}).items(), key=lambda kv: str(kv[0])):
        for entries in output.values():
            if not isinstance(entries, list):
                continue
            for entry in entries:
                if not isinstance(entry, dict) or "filename" not in entry or entry.get("type", "output") not in kinds:
                    continue
                target = folder / entry.get("subfolder", "") / entry["filename"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(api.view(entry["filename"], entry.get("subfolder", ""), entry.get("type", "output")))
                saved.append(str(target))
    return saved


def wait_history(api: ComfyAPI, prompt_id: str, timeout: float = 15.0) -> dict:
    """The history entry; ComfyUI writes it just after execution_success, so poll briefly."""
    deadline = time.monotonic() + timeout
    while True:
        entry = api.history(prompt_id)
        if entry is not None:
            return entry
        if time.monotonic() > deadline:
            raise ServerError(f"{api.base}: no /history entry for prompt {prompt_id} after {timeout}s")
        time.sleep(0.2)


def run_jobs(jobs: list[Job], apis: list[ComfyAPI], out_dir: Path, schedule: str = "round-robin",
             timeout: float = 3600.0, bar: Optional[ProgressBar] = None, kinds: tuple[str, ...] = ("output",),
             log: Callable[[str], None] = print, subfolders: bool = False) -> list[Outcome]:
    """Queue every job, follow them to the end, download outputs; one Outcome per job, in order."""
    listeners = {api.base: Listener(api, timeout=30.0) for api in apis}
    for listener in listeners.values():
        listener.start()
    outcomes: list[Outcome] = []
    trackers: list[tuple[Job, ComfyAPI, Tracker]] = []
    assigned: dict[str, int] = {}
    try:
        for index, job in enumerate(jobs):
            api = pick_server(apis, index, schedule, assigned)
            job.server = api.base
            job.prompt = job.prepare(api)
            try:
                prompt_id = api.queue_prompt(job.prompt, job.workflow)
            except PromptRejected as exc:
                outcome = Outcome(None, "rejected", exc.reply)
                log_error(job, outcome)
                outcomes.append(outcome)
                continue
            label = f"[{job.name} @ {api.base}]" if len(jobs) > 1 or len(apis) > 1 else ""
            tracker = Tracker(prompt_id, job.prompt, label, bar)
            trackers.append((job, api, tracker))
            outcomes.append(tracker.outcome)
        _follow_all(trackers, listeners, timeout)
        for job, api, tracker in trackers:
            outcome = tracker.outcome
            if outcome.ok:
                history = wait_history(api, outcome.prompt_id)
                folder = out_dir / job.name if subfolders else out_dir
                outcome.files = download_outputs(api, history, folder, kinds)
                for path in outcome.files:
                    log(path)
            else:
                log_error(job, outcome)
    finally:
        for listener in listeners.values():
            listener.close()
    return outcomes


def log_error(job: Job, outcome: Outcome) -> None:
    """The failure on stderr: job, server, then the node and message (see follow.describe_error)."""
    print(f"error: {job.name} on {job.server}: {describe_error(outcome, job.prompt)}", file=sys.stderr)


def _follow_all(trackers: list[tuple[Job, ComfyAPI, Tracker]], listeners: dict[str, Listener],
                timeout: float) -> None:
    """Feed each tracker its server's messages until all have ended (or the timeout / a lost server)."""
    seen: dict[str, int] = defaultdict(int)
    deadline = time.monotonic() + timeout
    pending = [t for t in trackers if not t[2].done]
    while pending:
        for job, api, tracker in pending:
            listener = listeners[api.base]
            with listener.lock:
                messages = listener.messages.get(tracker.outcome.prompt_id, [])
                fresh = messages[seen[tracker.outcome.prompt_id]:]
                seen[tracker.outcome.prompt_id] = len(messages)
                failure = listener.error
            for message in fresh:
                if tracker.feed(message):
                    break
            if not tracker.done and failure:
                tracker.outcome.status, tracker.outcome.error = "lost", {"exception_message": failure}
        pending = [t for t in pending if not t[2].done]
        if not pending:
            return
        if time.monotonic() > deadline:
            for _, api, tracker in pending:
                tracker.outcome.status = "lost"
                tracker.outcome.error = {"exception_message": f"no end of prompt {tracker.outcome.prompt_id} on "
                                                              f"{api.base} within {timeout:.0f}s"}
            return
        listener = listeners[pending[0][1].base]
        with listener.lock:
            listener.lock.wait(0.25)
