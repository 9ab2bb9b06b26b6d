#!/usr/bin/env python3
"""Regenerate README.md's model table from core/model_manifest.json (run after editing the manifest).

    python scripts/model_table.py          # rewrite README.md in place
    python scripts/model_table.py --check  # exit 1 if README.md is stale (used by the tests)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- model-table:begin -->", "<!-- model-table:end -->"


def render() -> str:
    models = json.loads((REPO / "core" / "model_manifest.json").read_text())["models"]
    rows = ["| file (under `ComfyUI/models/`) | used by | size | licence |", "|---|---|---|---|"]
    for m in models:
        where = f"`{m['kind']}/{m['path']}{'/' if m.get('folder') else ''}`"
        size = f"{m['size_bytes_approx'] / 1e6:,.0f} MB" if m.get("size_bytes_approx") else "?"
        licence = ("**non-commercial** — " if m["non_commercial"] else "") + m["licence"]
        source = m["source"] if m["source"].startswith("https://") and " " not in m["source"] else None
        used = f"[{m['used_by']}]({source})" if source else f"{m['used_by']} ({m['source']})"
        rows.append(f"| {where} | {used} | {size} | {licence} |")
    return "\n".join([BEGIN, *rows, END])


def update(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + render() + text[end:]


def main() -> int:
    readme = REPO / "README.md"
    text = readme.read_text()
    new = update(text)
    if "--check" in sys.argv:
        return 0 if new == text else 1
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
