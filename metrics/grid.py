"""Before/after grid: source | target | result | mask per row, with the metrics printed under each row.

Rows are frames (a one-frame column repeats on every row). Cells are letterboxed into squares so
any mix of image sizes lines up; the text band under a row holds that row's numbers from every
report, the footer the reports' summaries.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .report import MetricsReport, fmt

__all__ = ["letterbox", "before_after_grid"]

HEADER, LINE = 26, 16
FONT_SCALE = 0.42


def letterbox(rgb: np.ndarray, side: int) -> np.ndarray:
    """uint8 HxWx3 (or HxW) scaled to fit a side x side square, centred on dark grey."""
    import cv2

    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    cell = np.full((side, side, 3), 32, np.uint8)
    y, x = (side - nh) // 2, (side - nw) // 2
    cell[y:y + nh, x:x + nw] = cv2.resize(np.ascontiguousarray(rgb), (nw, nh), interpolation=interp)
    return cell


def _row_text(reports: Sequence[MetricsReport], row: int) -> list[str]:
    lines = []
    for report in reports:
        k = row - report.first_frame
        if not 0 <= k < len(report.rows):
            continue
        text = "  ".join(f"{c} {fmt(v)}" for c, v in zip(report.columns, report.rows[k]))
        lines.append(f"{report.kind}: " + (text if k not in report.missing else "no face"))
    return lines


def before_after_grid(columns: Sequence[tuple[str, Optional[Sequence[np.ndarray]]]],
                      reports: Sequence[MetricsReport] = (), cell: int = 256, max_rows: int = 16) -> np.ndarray:
    """One uint8 RGB image; ``columns`` are (title, frames) with frames uint8 HxWx3 / HxW or None (left out)."""
    import cv2

    cols = [(title, list(frames)) for title, frames in columns if frames is not None and len(frames)]
    if not cols:
        raise ValueError("FaceAdapter: the grid needs at least one image")
    rows = min(max(len(frames) for _, frames in cols), max_rows)
    text_rows = [_row_text(reports, r) for r in range(rows)]
    band = LINE * max((len(t) for t in text_rows), default=0) + (6 if reports else 0)
    footer = [line for rep in reports for line in [f"{rep.kind} (mean): " + "  ".join(rep.summary_lines())]]
    font = cv2.FONT_HERSHEY_SIMPLEX
    widest = max([cv2.getTextSize(t, font, FONT_SCALE, 1)[0][0] for lines in text_rows + [footer] for t in lines],
                 default=0)
    width = max(cell * len(cols), widest + 12)
    height = HEADER + rows * (cell + band) + LINE * len(footer) + 8
    canvas = np.full((height, width, 3), 255, np.uint8)
    for c, (title, _) in enumerate(cols):
        cv2.putText(canvas, title, (c * cell + 6, HEADER - 8), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    for r in range(rows):
        top = HEADER + r * (cell + band)
        for c, (_, frames) in enumerate(cols):
            frame = frames[r] if r < len(frames) else (frames[0] if len(frames) == 1 else None)
            if frame is not None:
                canvas[top:top + cell, c * cell:(c + 1) * cell] = letterbox(frame, cell)
        for k, text in enumerate(text_rows[r]):
            cv2.putText(canvas, text, (6, top + cell + LINE * (k + 1) - 2), font, FONT_SCALE, (20, 20, 120), 1,
                        cv2.LINE_AA)
    base = HEADER + rows * (cell + band)
    for k, text in enumerate(footer):
        cv2.putText(canvas, text, (6, base + LINE * (k + 1) - 2), font, FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas
