"""Axes whose tick labels are chosen by the caller and never overlap, for plots whose coordinates
are logarithms the panel computed itself (log2 of a batch size, log10 of a learning rate or of steps).

pyqtgraph's own log mode picks decade ticks: on a range narrower than a decade it shows no label at
all, and the top tick level is always drawn, so crowded labels overlap. Here the caller names the
candidate ticks (the batch sizes tried, the learning rates tried, 1-2-5 steps) and the axis keeps, in
order, each one that has room beside the last one kept, measured in pixels at the axis' current size.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import pyqtgraph as pg
from PySide6.QtGui import QFontMetricsF

Tick = tuple[float, str]
Labeller = Callable[[float, float], Sequence[Tick]]
GAP_PX = 8.0  # room between two labels


class LabelledAxis(pg.AxisItem):
    """An axis showing ``ticks`` (fixed (value, text) pairs, or a function of the visible range)."""

    def __init__(self, orientation: str, ticks: Union[Sequence[Tick], Labeller] = (), **kwargs: object) -> None:
        super().__init__(orientation, **kwargs)
        self._ticks = ticks
        self._shown: dict[float, str] = {}

    def set_ticks(self, ticks: Union[Sequence[Tick], Labeller]) -> None:
        self._ticks = ticks
        self.picture = None  # pyqtgraph redraws its cached picture only when this is cleared
        self.update()

    def candidates(self, low: float, high: float) -> list[Tick]:
        ticks = self._ticks(low, high) if callable(self._ticks) else self._ticks
        return sorted((v, t) for v, t in ticks if low - 1e-9 <= v <= high + 1e-9)

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:  # noqa: N802
        low, high = min(minVal, maxVal), max(minVal, maxVal)
        if not (math.isfinite(low) and math.isfinite(high)) or high <= low or size <= 0:
            return []
        kept = spaced(self.candidates(low, high), size / (high - low), self._extent)
        self._shown = dict(kept)
        return [(1.0, [v for v, _ in kept])]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        return [self._shown.get(v, "") for v in values]

    def _extent(self, text: str) -> float:
        """How much of the axis' length a label takes: its width along x, its height along y."""
        metrics = QFontMetricsF(self.style.get("tickFont") or self.font())
        return metrics.horizontalAdvance(text) if self.orientation in ("bottom", "top") else metrics.height()


def spaced(ticks: Sequence[Tick], pixels_per_unit: float, extent: Callable[[str], float]) -> list[Tick]:
    """The ticks, in order, that each have room beside the last one kept (their centres at least half
    of both labels plus a gap apart)."""
    kept: list[Tick] = []
    for value, text in ticks:
        if kept:
            last_value, last_text = kept[-1]
            needed = (extent(last_text) + extent(text)) / 2 + GAP_PX
            if (value - last_value) * pixels_per_unit < needed:
                continue
        kept.append((value, text))
    return kept


def log_ticks(subs: Sequence[int] = (1, 2, 5), base: float = 10.0,
              text: Optional[Callable[[float], str]] = None) -> Labeller:
    """Ticks at subs x 10^k for an axis whose coordinate is log10 of the value (1, 2, 5, 10, 20, ...)."""
    def label(value: float) -> str:
        return text(value) if text else plain(value)

    def ticks(low: float, high: float) -> list[Tick]:
        out = []
        for exponent in range(math.floor(low) - 1, math.ceil(high) + 1):
            for sub in subs:
                value = sub * base ** exponent
                out.append((math.log10(value), label(value)))
        return out

    return ticks


def plain(value: float) -> str:
    """1200 -> '1,200', 0.5 -> '0.5', 2e-05 -> '2e-05': numbers as people write them on an axis."""
    if value >= 1:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def style_plot(plot: pg.PlotItem, title: str, x_label: str, y_label: str) -> None:
    """White-background look shared by the panels' plots: dark axes, light grid, no mouse zoom (the
    plots sit in panels that scroll, and a wheel over a plot should scroll the panel, not zoom)."""
    plot.setTitle(title, color="#222", size="10pt")
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    plot.showGrid(x=True, y=True, alpha=0.15)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.setMenuEnabled(False)
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setPen(pg.mkPen("#444"))
        axis.setTextPen(pg.mkPen("#222"))
