"""A line chart drawn with braille dots: several series overlaid, a legend, any metric.

    chart = LineChart("loss")
    chart.set_series({"loss": [(1, 4.1), (2, 3.7)], "val_loss": [(2, 3.9)]})

Each terminal cell holds a 2×4 grid of braille dots, so a 40×10 chart has 80×40 points.
Series colours come from the component classes `linechart--series-N` (theme variables in
DEFAULT_CSS), so the chart follows the light or dark theme. `plot()` is the pure part.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import ClassVar

from rich.console import RenderableType
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from workbench.ops.fmt import fmt_num

Point = tuple[float, float]
GUTTER = 9  # width of the y-axis labels
# Bit of each dot in a braille cell, indexed [dy][dx].
DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
N_COLOURS = 6


def _clean(points: Sequence[Point]) -> list[Point]:
    return [(x, y) for x, y in points if y is not None and math.isfinite(y)]


def transform(points: Sequence[Point], smoothing: float = 0.0, log_y: bool = False) -> list[Point]:
    """Points as drawn: exponentially smoothed (weight `smoothing` on the past, 0 = raw), then
    log10 of y (points with y ≤ 0 dropped) when `log_y`."""
    out, last = [], None
    for x, y in _clean(points):
        last = y if last is None else smoothing * last + (1 - smoothing) * y
        if not log_y:
            out.append((x, last))
        elif last > 0:
            out.append((x, math.log10(last)))
    return out


def bounds(series: dict[str, Sequence[Point]]) -> tuple[float, float, float, float] | None:
    """(xmin, xmax, ymin, ymax) over every finite point, or None when there are none."""
    pts = [p for s in series.values() for p in _clean(s)]
    if not pts:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return min(xs), max(xs), min(ys), max(ys)


def _line(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """Dots on the segment (x0, y0)–(x1, y1), Bresenham."""
    out, dx, dy = [], abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err = dx + dy
    while True:
        out.append((x0, y0))
        if x0 == x1 and y0 == y1:
            return out
        e2 = 2 * err
        if e2 >= dy:
            err, x0 = err + dy, x0 + sx
        if e2 <= dx:
            err, y0 = err + dx, y0 + sy


def plot(series: dict[str, Sequence[Point]], cols: int, rows: int) -> list[list[tuple[str, int]]]:
    """A rows × cols grid of (braille character, series index; -1 for empty) cells."""
    bits = [[0] * cols for _ in range(rows)]
    owner = [[-1] * cols for _ in range(rows)]
    box = bounds(series)
    if box is not None and cols > 0 and rows > 0:
        xmin, xmax, ymin, ymax = box
        w, h = cols * 2 - 1, rows * 4 - 1

        def to_dot(p: Point) -> tuple[int, int]:
            fx = (p[0] - xmin) / (xmax - xmin) if xmax > xmin else 0.5
            fy = (ymax - p[1]) / (ymax - ymin) if ymax > ymin else 0.5
            return round(fx * w), round(fy * h)

        for index, points in enumerate(series.values()):
            dots = [to_dot(p) for p in _clean(points)]
            pairs = itertools.pairwise(dots) if len(dots) > 1 else [(d, d) for d in dots]
            for a, b in pairs:
                for x, y in _line(*a, *b):
                    bits[y // 4][x // 2] |= DOTS[y % 4][x % 2]
                    owner[y // 4][x // 2] = index
    return [
        [(chr(0x2800 + b) if b else " ", o) for b, o in zip(brow, orow)]
        for brow, orow in zip(bits, owner)
    ]


class LineChart(Widget):
    """Overlaid line series with a legend (latest values), y labels and the x range."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        *(f"linechart--series-{i}" for i in range(N_COLOURS)),
        "linechart--axis",
        "linechart--title",
    }
    DEFAULT_CSS = """
    LineChart { height: 10; min-height: 4; padding: 0 1; }
    LineChart > .linechart--series-0 { color: $primary; }
    LineChart > .linechart--series-1 { color: $warning; }
    LineChart > .linechart--series-2 { color: $success; }
    LineChart > .linechart--series-3 { color: $error; }
    LineChart > .linechart--series-4 { color: $accent; }
    LineChart > .linechart--series-5 { color: $secondary; }
    LineChart > .linechart--axis { color: $text-muted; }
    LineChart > .linechart--title { color: $text; text-style: bold; }
    """

    def __init__(self, title: str = "", unit: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.title, self.unit = title, unit  # unit: after each value shown ("%")
        self.series: dict[str, list[Point]] = {}
        self.smoothing = 0.0  # EMA weight on the past (0: raw values)
        self.log_y = False

    def set_view(self, smoothing: float, log_y: bool) -> None:
        self.smoothing, self.log_y = smoothing, log_y
        self.refresh()

    def set_series(self, series: dict[str, Sequence[Point]]) -> None:
        self.series = {name: list(points) for name, points in series.items()}
        self.refresh()

    def _style(self, index: int) -> Style:
        return self.get_component_rich_style(f"linechart--series-{index % N_COLOURS}")

    def legend(self) -> Text:
        view = [f"smoothed {self.smoothing:g}"] * bool(self.smoothing) + ["log"] * self.log_y
        title = f"{self.title} ({', '.join(view)})" if view else self.title
        text = Text(title, style=self.get_component_rich_style("linechart--title"))
        for i, (name, points) in enumerate(self.series.items()):
            last = _clean(points)[-1][1] if _clean(points) else None
            text.append("  ● ", style=self._style(i))
            text.append(f"{name} {fmt_num(last) + self.unit if last is not None else '-'}")
        return text

    def render(self) -> RenderableType:
        width, height = self.content_size.width, self.content_size.height
        axis = self.get_component_rich_style("linechart--axis")
        out = self.legend()
        drawn = {n: transform(p, self.smoothing, self.log_y) for n, p in self.series.items()}
        box = bounds(drawn)
        if box is None or height < 3:
            out.append(f"\nwaiting for {self.title or 'data'}…", style=axis)
            return out
        xmin, xmax, ymin, ymax = box
        cols, rows = max(1, width - GUTTER), height - 2
        grid = plot(drawn, cols, rows)
        top, bottom = (10**ymax, 10**ymin) if self.log_y else (ymax, ymin)
        for r, cells in enumerate(grid):
            label = fmt_num(top) if r == 0 else fmt_num(bottom) if r == rows - 1 else ""
            label += self.unit if label else ""
            out.append("\n" + label.rjust(GUTTER - 2) + " ┤", style=axis)
            for ch, owner in cells:
                out.append(ch, style=self._style(owner) if owner >= 0 else None)
        left, right = f"{xmin:g}", f"{xmax:g}"
        pad = max(1, cols - len(left) - len(right))
        out.append("\n" + " " * GUTTER + left + " " * pad + right, style=axis)
        return out
