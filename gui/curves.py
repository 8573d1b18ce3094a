"""Live training curves: one long-lived curve per run in each plot, refreshed with setData.

Curves are drawn from record-shaped run dicts (``history`` entries), so a running
experiment and one reopened from disk look identical.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from engine.analysis.stats import mean_band
from gui.palette import batch_colours

# history key -> (selector text, axis label)
X_AXES: dict[str, tuple[str, str]] = {
    "epoch": ("Epochs", "epoch"),
    "steps": ("Optimizer steps", "optimizer steps"),
    "samples": ("Samples seen", "training samples seen"),
    "elapsed": ("Wall-clock time", "wall-clock time (s)"),
}

# history key -> (title, y label, scale); accuracies are shown in percent
PLOTS: dict[str, tuple[str, str, float]] = {
    "val_accuracy": ("Validation accuracy", "accuracy (%)", 100.0),
    "accuracy": ("Training accuracy", "accuracy (%)", 100.0),
    "val_loss": ("Validation loss", "cross-entropy loss", 1.0),
    "loss": ("Training loss", "cross-entropy loss", 1.0),
}

HINT_EMPTY = "No experiment shown yet: Start one (Ctrl+R) or open a past one (Ctrl+O)."
HINT_PLOTS = "Drag to pan, wheel to zoom, right-click for options; the “A” corner button re-fits."
REPEATS_NOTE = "line: mean over repeats · band: ± 1 std · faint: single repeats"
FAINT_ALPHA = 70  # single repeats under a mean line: visible, but the mean reads first
BAND_ALPHA = 45


def run_label(run: dict[str, Any], repeats: int) -> str:
    """Legend text: the batch size, plus the repeat when an experiment repeats runs."""
    text = f"batch {run['batch_size']}"
    return f"{text} · repeat {run.get('repeat', 0) + 1}" if repeats > 1 else text


def series(run: dict[str, Any], x_key: str, y_key: str, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """x and y arrays of one run's history; epochs without a finite value (a record's null) are left out."""
    def number(value: Any) -> float:
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan
    history = run.get("history") or []
    x = np.array([number(h.get(x_key)) for h in history], dtype=float)
    y = np.array([number(h.get(y_key)) for h in history], dtype=float) * scale
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def band_series(runs: list[dict[str, Any]], x_key: str, y_key: str,
                scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, mean, mean - std, mean + std over the repeats of one batch size, epoch by epoch.

    Repeats are aligned by epoch; x is their mean too (elapsed seconds differ between seeds).
    Epochs where no repeat has a value are left out.
    """
    def column(key: str) -> list[list[Optional[float]]]:
        return [[h.get(key) if isinstance(h.get(key), (int, float)) else None for h in run.get("history") or []]
                for run in runs]
    x = np.array(mean_band(column(x_key))[0], dtype=float)
    mean, low, high = (np.array(values, dtype=float) * scale for values in mean_band(column(y_key)))
    keep = np.isfinite(x) & np.isfinite(mean)
    # Accuracies (scaled to %) cannot leave 0-100 and losses cannot go below 0: neither may the band.
    low, high = np.clip(low, 0.0, None), np.clip(high, None, 100.0 if scale == 100.0 else None)
    return x[keep], mean[keep], low[keep], high[keep]


class Band:
    """A batch size's mean curve and its shaded ± 1 std band in one plot."""

    def __init__(self, plot: pg.PlotItem, colour: QColor, label: str) -> None:
        edge = QColor(colour)
        edge.setAlpha(0)
        fill = QColor(colour)
        fill.setAlpha(BAND_ALPHA)
        self.low = pg.PlotCurveItem(pen=pg.mkPen(edge))
        self.high = pg.PlotCurveItem(pen=pg.mkPen(edge))
        self.fill = pg.FillBetweenItem(self.low, self.high, brush=pg.mkBrush(fill))
        self.mean = pg.PlotDataItem(name=label, pen=pg.mkPen(colour, width=2.5), symbol="o", symbolSize=5,
                                    symbolPen=None, symbolBrush=colour, antialias=True)
        for item in (self.low, self.high, self.fill, self.mean):
            plot.addItem(item)
        self.fill.setZValue(-1)
        self.mean.setZValue(2)

    def set_data(self, x: np.ndarray, mean: np.ndarray, low: np.ndarray, high: np.ndarray) -> None:
        self.low.setData(x, low)
        self.high.setData(x, high)
        self.mean.setData(x, mean)

    def remove(self, plot: pg.PlotItem) -> None:
        for item in (self.fill, self.low, self.high, self.mean):
            plot.removeItem(item)


class CurvesView(QWidget):
    """Four linked plots (accuracies and losses) with an x-axis selector."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._runs: list[dict[str, Any]] = []
        self._keys: list[tuple[int, int]] = []
        self._curves: dict[str, dict[int, pg.PlotDataItem]] = {key: {} for key in PLOTS}
        self._pens: dict[int, QPen] = {}  # each run's own pen, before any highlight
        self._bands: dict[str, dict[int, Band]] = {key: {} for key in PLOTS}  # by batch size, with repeats
        self._best_marks: dict[int, pg.ScatterPlotItem] = {}
        self._x_key = "epoch"

        self.x_selector = QComboBox()
        for key, (text, _label) in X_AXES.items():
            self.x_selector.addItem(text, key)
        self.x_selector.setToolTip("What the horizontal axis of every plot counts")
        self.x_selector.currentIndexChanged.connect(self._on_x_selected)
        self.legend = LegendBar()
        self.hint = QLabel(HINT_EMPTY)
        self.hint.setStyleSheet("color: #666;")
        header = QHBoxLayout()
        header.addWidget(QLabel("X axis:"))
        header.addWidget(self.x_selector)
        header.addSpacing(16)
        header.addWidget(self.legend, 1)
        header.addWidget(self.hint)

        grid = QGridLayout()
        grid.setSpacing(6)
        self.plots: dict[str, pg.PlotItem] = {}
        for i, (key, (title, y_label, _scale)) in enumerate(PLOTS.items()):
            widget = pg.PlotWidget(background="w", axisItems={"bottom": CountAxis(orientation="bottom")})
            widget.setMinimumSize(220, 150)
            widget.setToolTip(HINT_PLOTS)
            plot = widget.getPlotItem()
            plot.setTitle(title, color="#222", size="11pt")
            plot.setLabel("left", y_label)
            plot.showGrid(x=True, y=True, alpha=0.18)
            for side in ("left", "bottom"):
                axis = plot.getAxis(side)
                axis.setPen(pg.mkPen("#444"))
                axis.setTextPen(pg.mkPen("#222"))
            plot.getAxis("left").setWidth(62)  # same width everywhere: plots line up, labels never collide
            self.plots[key] = plot
            grid.addWidget(widget, i // 2, i % 2)
            if i:
                plot.setXLink(self.plots["val_accuracy"])
        self._update_x_labels()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(header)
        layout.addLayout(grid, 1)

    # -- data -------------------------------------------------------------------------------------

    def set_runs(self, runs: list[dict[str, Any]]) -> None:
        """Show these runs; curve items are rebuilt only when the set of runs changes."""
        self._runs = runs
        self.hint.setVisible(not runs)
        keys = [(r["run_index"], r["batch_size"], r.get("repeat", 0)) for r in runs]
        if keys != self._keys:
            self._rebuild(runs)
            self._keys = keys
        for run in runs:
            self.update_run(run)

    def update_run(self, run: dict[str, Any]) -> None:
        """Push one run's history into its long-lived curve items."""
        index = run["run_index"]
        for key, (_title, _label, scale) in PLOTS.items():
            curve = self._curves[key].get(index)
            if curve is not None:
                curve.setData(*series(run, self._x_key, key, scale))
        mark = self._best_marks.get(index)
        best = run.get("best") or {}
        if mark is not None:
            x, y = series({"history": [h for h in run.get("history") or [] if h.get("epoch") == best.get("epoch")]},
                          self._x_key, "val_accuracy", 100.0)
            mark.setData(x=x, y=y)
        if self._bands["val_accuracy"]:
            same = [r for r in self._runs if r["batch_size"] == run["batch_size"]]
            for key, (_title, _label, scale) in PLOTS.items():
                self._bands[key][run["batch_size"]].set_data(*band_series(same, self._x_key, key, scale))

    def highlight(self, run_index: Optional[int]) -> None:
        """Draw one run thicker and opaque (the one selected in the table); None draws all alike."""
        for curves in self._curves.values():
            for index, curve in curves.items():
                pen = QPen(self._pens[index])
                if index == run_index and pen.color().alpha() < 255:  # a faint repeat: shown, not louder than the mean
                    colour = pen.color()
                    colour.setAlpha(255)
                    pen.setColor(colour)
                    pen.setWidthF(2.0)
                    pen.setStyle(Qt.PenStyle.DashLine)
                elif index == run_index:
                    pen.setWidthF(4.0)
                curve.setPen(pen)
                curve.setZValue(3 if index == run_index else 0)

    def curve(self, plot_key: str, run_index: int) -> pg.PlotDataItem:
        return self._curves[plot_key][run_index]

    def band(self, plot_key: str, batch_size: int) -> Optional[Band]:
        """The mean line and ± 1 std band of a batch size (only when the experiment repeats runs)."""
        return self._bands[plot_key].get(batch_size)

    def x_axis(self) -> str:
        return self._x_key

    def set_x_axis(self, key: str) -> None:
        index = self.x_selector.findData(key)
        if index >= 0:
            self.x_selector.setCurrentIndex(index)

    # -- internals --------------------------------------------------------------------------------

    def _rebuild(self, runs: list[dict[str, Any]]) -> None:
        for key, plot in self.plots.items():
            for curve in self._curves[key].values():
                plot.removeItem(curve)
            self._curves[key] = {}
            for band in self._bands[key].values():
                band.remove(plot)
            self._bands[key] = {}
        for mark in self._best_marks.values():
            self.plots["val_accuracy"].removeItem(mark)
        self._best_marks = {}
        self._pens = {}
        colours = batch_colours([r["batch_size"] for r in runs])
        repeats = len({r.get("repeat", 0) for r in runs})
        self.legend.set_entries([(f"batch {size}", colour) for size, colour in colours.items()], repeats > 1)
        if repeats > 1:  # the mean and its band carry the comparison; single repeats stay faint behind
            for key, plot in self.plots.items():
                for size, colour in colours.items():
                    self._bands[key][size] = Band(plot, colour, f"batch {size}, mean of {repeats}")
        for run in runs:
            colour = colours[run["batch_size"]]
            if repeats > 1:
                faint = QColor(colour)
                faint.setAlpha(FAINT_ALPHA)
                pen, symbol = pg.mkPen(faint, width=1.2), {}
            else:
                pen, symbol = _pen(colour), {"symbol": "o", "symbolSize": 5, "symbolPen": None,
                                                    "symbolBrush": colour}
            self._pens[run["run_index"]] = pen
            for key, plot in self.plots.items():
                curve = plot.plot(name=run_label(run, repeats), pen=pen, antialias=True, **symbol)
                self._curves[key][run["run_index"]] = curve
            if repeats > 1:
                continue  # one star per repeat would bury the means
            mark = pg.ScatterPlotItem(symbol="star", size=16, pen=pg.mkPen("#222", width=1), brush=colour)
            mark.setToolTip(f"best validation accuracy, {run_label(run, repeats)}")
            self.plots["val_accuracy"].addItem(mark)
            self._best_marks[run["run_index"]] = mark

    def _on_x_selected(self, _index: int) -> None:
        self._x_key = self.x_selector.currentData()
        self._update_x_labels()
        for run in self._runs:
            self.update_run(run)
        for plot in self.plots.values():
            plot.enableAutoRange()

    def _update_x_labels(self) -> None:
        for plot in self.plots.values():
            plot.setLabel("bottom", X_AXES[self._x_key][1])
            plot.getAxis("bottom").whole_numbers = self._x_key != "elapsed"


class CountAxis(pg.AxisItem):
    """An axis that, for counts (epochs, steps, samples), never labels fractions like epoch 1.5."""

    whole_numbers = True

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:
        levels = super().tickValues(minVal, maxVal, size)
        if not self.whole_numbers:
            return levels
        return [(max(spacing, 1.0), [v for v in values if float(v).is_integer()])
                for spacing, values in levels if spacing >= 1 or any(float(v).is_integer() for v in values)]


def _pen(colour: QColor) -> QPen:
    return pg.mkPen(colour, width=2)


class LegendBar(QWidget):
    """One legend for all four plots, above them, so it never hides a curve."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(14)
        self._layout.addStretch(1)
        self.entries: list[str] = []

    def set_entries(self, entries: list[tuple[str, QColor]], repeats: bool) -> None:
        while self._layout.count() > 1:
            self._layout.takeAt(0).widget().deleteLater()
        self.entries = [text for text, _colour in entries] + ([REPEATS_NOTE] if repeats and entries else [])
        for text, colour in entries:
            self._layout.insertWidget(self._layout.count() - 1, _legend_entry(text, colour, self.devicePixelRatioF()))
        if repeats and entries:
            self._layout.insertWidget(self._layout.count() - 1, QLabel(REPEATS_NOTE))


def _legend_entry(text: str, colour: QColor, ratio: float) -> QWidget:
    """A short thick line in the run's colour, then its label."""
    swatch = QPixmap(round(24 * ratio), round(12 * ratio))
    swatch.setDevicePixelRatio(ratio)
    swatch.fill(Qt.GlobalColor.transparent)
    painter = QPainter(swatch)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(_pen(colour))
    painter.drawLine(1, 6, 23, 6)
    painter.setBrush(colour)
    painter.drawEllipse(9, 3, 6, 6)
    painter.end()
    entry = QWidget()
    row = QHBoxLayout(entry)
    row.setContentsMargins(0, 0, 0, 0)
    row.setSpacing(4)
    icon = QLabel()
    icon.setPixmap(swatch)
    row.addWidget(icon)
    row.addWidget(QLabel(text))
    return entry
