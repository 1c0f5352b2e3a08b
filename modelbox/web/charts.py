"""Metric charts as server-rendered SVG: the page draws without JavaScript; the small
script in ``static/modelbox.js`` redraws the same drawing when the reader picks series,
a metric or the x axis (step or wallclock), from the data embedded in the page."""

from __future__ import annotations

from typing import Any

from modelbox.web.html import Markup, el

__all__ = ["COLOURS", "svg"]

WIDTH, HEIGHT, PAD = 720, 320, 40
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22"]


def _x(point: list[Any], axis: str, index: int) -> float:
    value = point[1] if axis == "wallclock" else point[0]
    return float(value) if isinstance(value, int | float) else float(index)


def svg(chart: list[dict[str, Any]], key: str | None, axis: str = "step") -> Markup:
    """The series of ``chart`` whose metric is ``key``, by ``axis``, as one ``<svg>``."""
    shown = [(i, s) for i, s in enumerate(chart) if s["key"] == key]
    xs = [_x(p, axis, j) for _, s in shown for j, p in enumerate(s["points"])]
    ys = [float(p[2]) for _, s in shown for p in s["points"]]
    lines = []
    if xs:
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(ys), max(ys)
        sx = (WIDTH - 2 * PAD) / ((x1 - x0) or 1)
        sy = (HEIGHT - 2 * PAD) / ((y1 - y0) or 1)
        for i, s in shown:
            coords = " ".join(
                f"{PAD + (_x(p, axis, j) - x0) * sx:.1f},"
                f"{HEIGHT - PAD - (float(p[2]) - y0) * sy:.1f}"
                for j, p in enumerate(s["points"]))
            lines.append(el("polyline", {"points": coords, "fill": "none",
                                         "stroke": COLOURS[i % len(COLOURS)],
                                         "stroke-width": "1.5", "data-series": i},
                            el("title", None, f"{s['label']} {s['key']}")))
        lines.append(el("text", {"x": PAD, "y": HEIGHT - 8, "class": "axis"}, f"{x0:g}"))
        lines.append(el("text", {"x": WIDTH - PAD, "y": HEIGHT - 8, "class": "axis",
                                 "text-anchor": "end"}, f"{x1:g} ({axis})"))
        lines.append(el("text", {"x": 4, "y": PAD - 8, "class": "axis"}, f"{y1:g}"))
        lines.append(el("text", {"x": 4, "y": HEIGHT - PAD + 14, "class": "axis"}, f"{y0:g}"))
    else:
        lines.append(el("text", {"x": WIDTH / 2, "y": HEIGHT / 2, "text-anchor": "middle",
                                 "class": "axis"}, "no numeric points"))
    frame = el("rect", {"x": PAD, "y": PAD, "width": WIDTH - 2 * PAD,
                        "height": HEIGHT - 2 * PAD, "class": "frame"})
    return el("svg", {"id": "chart-svg", "viewBox": f"0 0 {WIDTH} {HEIGHT}", "role": "img",
                      "aria-label": f"{key} by {axis}", "data-testid": "chart"}, frame, lines)
