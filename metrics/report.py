"""FACEADAPTER_METRICS: one typed report per measurement, with a table preview.

A report holds per-row numbers (a frame or a face pair) and a summary; several reports can be
printed on one grid (Before/After Grid). Values are plain floats so the report serialises to JSON
as it is; a row where a face was missing carries NaN and is listed in ``missing``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["MetricsReport", "table_image", "fmt"]


@dataclass(frozen=True)
class MetricsReport:
    """FACEADAPTER_METRICS socket: what was measured, per row and in summary."""

    kind: str  # "identity", "expression_pose", "flicker"
    columns: tuple[str, ...]  # names of the per-row values, in order
    rows: tuple[tuple[float, ...], ...]  # one tuple per frame / pair, NaN where not measurable
    summary: dict = field(default_factory=dict)  # name -> float (means over measured rows, etc.)
    missing: tuple[int, ...] = ()  # rows without a face on either side
    notes: str = ""  # what the numbers mean, units
    first_frame: int = 0  # row k describes frame k + first_frame (flicker: frame t against t-1)

    def column(self, name: str) -> np.ndarray:
        """One per-row column as float64 (NaN where missing)."""
        try:
            k = self.columns.index(name)
        except ValueError:
            raise KeyError(f"report {self.kind!r} has no column {name!r}; it has {', '.join(self.columns)}") from None
        return np.array([row[k] for row in self.rows], np.float64)

    def to_json(self) -> str:
        def clean(v: float):
            return None if isinstance(v, float) and math.isnan(v) else v
        return json.dumps({"kind": self.kind, "columns": list(self.columns),
                           "rows": [[clean(v) for v in row] for row in self.rows],
                           "summary": {k: clean(v) for k, v in self.summary.items()},
                           "missing": list(self.missing), "notes": self.notes})

    def summary_lines(self) -> list[str]:
        """``name value`` lines for grids and logs."""
        return [f"{k} {fmt(v)}" for k, v in self.summary.items()]


def nanmean(values: Sequence[float]) -> float:
    """Mean of the finite values (NaN when there are none), without numpy's empty-slice warning."""
    arr = np.asarray(values, np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def fmt(value: float) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if value is None or not math.isfinite(float(value)):
        return "-"
    v = float(value)
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"


def table_image(reports: Sequence[MetricsReport], max_rows: int = 32, width: int = 0) -> np.ndarray:
    """A uint8 RGB table of the reports (summary first, then up to ``max_rows`` rows each): the preview."""
    import cv2

    lines: list[tuple[str, tuple[int, int, int]]] = []
    for report in reports:
        lines.append((f"[{report.kind}]  " + "  ".join(report.summary_lines()), (20, 20, 120)))
        lines.append(("frame" + "  ".join(f"{c:>10}" for c in report.columns), (0, 0, 0)))
        for i, row in enumerate(report.rows[:max_rows]):
            mark = "  (no face)" if i in report.missing else ""
            cells = "  ".join(f"{fmt(v):>10}" for v in row)
            lines.append((f"{i + report.first_frame:>5}  {cells}{mark}", (40, 40, 40)))
        if len(report.rows) > max_rows:
            lines.append((f"... {len(report.rows) - max_rows} more rows", (90, 90, 90)))
        lines.append(("", (0, 0, 0)))
    font, scale, thick, step = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1, 18
    text_w = max((cv2.getTextSize(t, font, scale, thick)[0][0] for t, _ in lines), default=100)
    canvas = np.full((step * len(lines) + 12, max(width, text_w + 16), 3), 255, np.uint8)
    for k, (text, colour) in enumerate(lines):
        cv2.putText(canvas, text, (8, 16 + k * step), font, scale, colour, thick, cv2.LINE_AA)
    return canvas
