"""Command line: ``python -m client run|convert|object-info ...`` (see ``--help``).

Exit codes: 0 every prompt succeeded; 1 a prompt failed (execution_error, invalid_prompt,
interrupted, lost); 2 bad arguments, workflow or override; 3 a server could not be reached.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

from .api_convert import ConversionError, is_api_format, ui_to_api, used_classes
from .comfy_api import DEFAULT_SERVER, ComfyAPI, ServerError
from .follow import ProgressBar, exit_code
from .overrides import IMAGE_SUFFIXES, Override, OverrideError, apply_overrides, parse_set
from .runner import Job, run_jobs

EXIT_FAILED, EXIT_USAGE, EXIT_SERVER = 1, 2, 3
STRICT_HELP = ("refuse a UI node whose saved widget values do not match its widgets (default: take them by "
               "position as the frontend does, with a warning)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m client", description="Headless ComfyUI client (stdlib only).")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="queue a workflow, follow its progress, download its outputs")
    run.add_argument("workflow", type=Path, help="workflow JSON, UI format (converted with /object_info) or API format")
    run.add_argument("--server", action="append", default=[], metavar="URL",
                     help=f"ComfyUI URL (default {DEFAULT_SERVER}); repeat to spread a batch over several")
    run.add_argument("--schedule", choices=("round-robin", "least-busy"), default="round-robin",
                     help="how a batch is spread over several --server URLs (least-busy: shortest /queue)")
    run.add_argument("--object-info", type=Path, metavar="FILE", help="saved /object_info JSON instead of the server's")
    run.add_argument("--set", action="append", default=[], dest="sets", metavar="NODE.INPUT=VALUE",
                     help="override an input; NODE is an id, a title or a class; a local file for an image "
                          "input is uploaded")
    run.add_argument("--upload", action="append", default=[], type=Path, metavar="FILE",
                     help="upload a file into the server's input folder under its own name")
    run.add_argument("--frames", type=Path, metavar="DIR",
                     help="upload a folder of video frames into the input sub-folder named after it")
    run.add_argument("--frames-input", metavar="NODE.INPUT", help="set this input to that sub-folder's name")
    run.add_argument("--batch-dir", type=Path, metavar="DIR", help="queue one prompt per image in DIR")
    run.add_argument("--batch-input", metavar="NODE.INPUT", help="the input each batch image goes to")
    run.add_argument("--out", type=Path, default=Path("comfy_outputs"), help="download folder (default ./comfy_outputs)")
    run.add_argument("--previews", action="store_true", help="also download temporary (preview) images")
    run.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for all prompts")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--strict", action="store_true", help=STRICT_HELP)

    convert = sub.add_parser("convert", help="print the API prompt of a UI-format workflow")
    convert.add_argument("workflow", type=Path)
    convert.add_argument("--server", default=DEFAULT_SERVER, metavar="URL")
    convert.add_argument("--object-info", type=Path, metavar="FILE", help="offline: a saved /object_info JSON")
    convert.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    convert.add_argument("--strict", action="store_true", help=STRICT_HELP)

    info = sub.add_parser("object-info", help="save a server's /object_info (for offline conversion)")
    info.add_argument("--server", default=DEFAULT_SERVER, metavar="URL")
    info.add_argument("--for", dest="workflows", nargs="*", type=Path, default=[], metavar="WORKFLOW",
                      help="keep only the node classes these workflows use")
    info.add_argument("-o", "--output", type=Path, required=True)
    return p


def load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConversionError(f"{what} {path}: no such file") from None
    except ValueError as exc:
        raise ConversionError(f"{what} {path}: not JSON ({exc})") from None


def images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ConversionError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ConversionError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


class _Uploads:
    """Uploads each local file once per server."""

    def __init__(self) -> None:
        self.done: dict[tuple[str, str, str], str] = {}

    def __call__(self, api: ComfyAPI, path: Path, subfolder: str = "") -> str:
        key = (api.base, str(Path(path).resolve()), subfolder)
        if key not in self.done:
            self.done[key] = api.upload_image(path, subfolder)
        return self.done[key]


def _build_jobs(args: argparse.Namespace, prompt: dict, workflow: dict, object_info: Optional[dict]) -> list[Job]:
    overrides = [parse_set(s) for s in args.sets]
    uploads = _Uploads()
    frames = images_in(args.frames) if args.frames else []
    if args.frames_input and not args.frames:
        raise OverrideError("--frames-input needs --frames DIR")
    fixed = []  # the frames sub-folder, as the server names it
    if args.frames_input:
        target = parse_set(args.frames_input + "=x")
        fixed.append(Override(target.node, target.input, args.frames.name, server_name=True))
    for path in args.upload:
        if not path.is_file():
            raise ConversionError(f"--upload {path}: no such file")
    apply_overrides(prompt, overrides + fixed, object_info, upload=lambda p: p.name)  # fail early, before uploads

    def prepare(extra: list[Override], batch_file: Optional[Path]) -> Any:
        def run(api: ComfyAPI) -> dict:
            for path in args.upload:
                uploads(api, path)
            for path in frames:
                uploads(api, path, args.frames.name)
            more = list(extra)
            if batch_file is not None:
                target = parse_set(args.batch_input + "=x")
                more.append(Override(target.node, target.input, uploads(api, batch_file), server_name=True))
            return apply_overrides(prompt, overrides + more, object_info, upload=lambda p: uploads(api, p))
        return run

    if args.batch_dir is None:
        if args.batch_input:
            raise OverrideError("--batch-input needs --batch-dir DIR")
        return [Job(args.workflow.stem, prepare(fixed, None), workflow)]
    if not args.batch_input:
        raise OverrideError("--batch-dir needs --batch-input NODE.INPUT (the input each image goes to)")
    files = images_in(args.batch_dir)
    target = parse_set(args.batch_input + "=" + str(files[0]))
    apply_overrides(prompt, [target], object_info, upload=lambda p: p.name)  # the target exists and takes a file
    return [Job(path.stem, prepare(fixed, path), workflow) for path in files]


def _warner(args: argparse.Namespace) -> Optional[Any]:
    return None if args.strict else (lambda message: print(f"warning: {message}", file=sys.stderr))


def _object_info(args: argparse.Namespace, api: ComfyAPI) -> dict:
    return load_json(args.object_info, "--object-info") if args.object_info else api.object_info()


def cmd_run(args: argparse.Namespace) -> int:
    apis = [ComfyAPI(url) for url in (args.server or [DEFAULT_SERVER])]
    workflow = load_json(args.workflow, "workflow")
    object_info = _object_info(args, apis[0])
    if is_api_format(workflow):
        prompt, ui = workflow, None
    else:
        prompt, ui = ui_to_api(workflow, object_info, _warner(args)), workflow
    jobs = _build_jobs(args, prompt, ui, object_info)
    outcomes = run_jobs(jobs, apis, args.out, args.schedule, args.timeout,
                        ProgressBar(enabled=not args.quiet), ("output", "temp") if args.previews else ("output",),
                        subfolders=args.batch_dir is not None)
    failed = sum(not o.ok for o in outcomes)
    if len(outcomes) > 1:
        print(f"{len(outcomes) - failed}/{len(outcomes)} prompts succeeded", file=sys.stderr)
    return exit_code(outcomes)


def cmd_convert(args: argparse.Namespace) -> int:
    workflow = load_json(args.workflow, "workflow")
    object_info = _object_info(args, ComfyAPI(args.server))
    text = json.dumps(ui_to_api(workflow, object_info, _warner(args)), indent=2) + "\n"
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_object_info(args: argparse.Namespace) -> int:
    info = ComfyAPI(args.server).object_info()
    if args.workflows:
        wanted = set().union(*(used_classes(load_json(p, "workflow")) for p in args.workflows))
        missing = sorted(wanted - set(info))
        if missing:
            print(f"warning: the server does not know {missing}", file=sys.stderr)
        info = {k: v for k, v in info.items() if k in wanted}
    args.output.write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {len(info)} node classes to {args.output}", file=sys.stderr)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    command = {"run": cmd_run, "convert": cmd_convert, "object-info": cmd_object_info}[args.command]
    try:
        return command(args)
    except (ConversionError, OverrideError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SERVER
    except KeyboardInterrupt:
        print("interrupted (prompts already queued keep running on the server)", file=sys.stderr)
        return 130
