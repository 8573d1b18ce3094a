"""Live training curves: long-lived plot items per trial, refreshed with setData.

Curves are drawn from record-shaped run dicts (``history`` entries), so a running
experiment and one reopened from disk look identical. Trials that share a batch size share
its colour: the batch size's best trial so far (by best validation accuracy) is the strong
line, its other learning rates faint and dashed. Several experiments can be overlaid; each
then has its own line style. Items are created when the set of trials changes, never per
event: events only move data (``setData``) and pens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QAction, QActionGroup, QColor
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QMenu, QToolButton, QVBoxLayout, QWidget

from engine.analysis.stats import mean_band
from gui.palette import batch_colours

# history key -> (selector text, axis label)
X_AXES: dict[str, tuple[str, str]] = {
    "epoch": ("Epochs", "epoch"),
    "steps": ("Optimizer steps", "optimizer steps"),
    "samples": ("Samples seen", "training samples seen"),
    "elapsed": ("Wall-clock time", "wall-clock time (s)"),
}

# history key -> (title, y label, scale); accuracies are shown in percent. The y label names the plot:
# a title above each plot would take a line of height from its data area.
PLOTS: dict[str, tuple[str, str, float]] = {
    "val_accuracy": ("Validation accuracy", "val. accuracy (%)", 100.0),
    "accuracy": ("Training accuracy", "train accuracy (%)", 100.0),
    "val_loss": ("Validation loss", "val. loss", 1.0),
    "loss": ("Training loss", "train loss", 1.0),
}
BOTTOM_ROW = ("val_loss", "loss")  # only these name the x axis (the plots above share it)
PERCENT_TICKS = range(0, 101, 20)
ACCURACY_PLOTS = ("val_accuracy", "accuracy")
LOSS_PLOTS = ("val_loss", "loss")
PROGRESS_PLOTS = {"loss": "loss", "accuracy": "accuracy"}  # plot -> BatchProgress field (training metrics)
SMOOTHING = {"off": 0.0, "light": 0.6, "strong": 0.85}  # weight of the running average (as TensorBoard's)
EXPERIMENT_STYLES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine)
STYLE_TEXT = {Qt.PenStyle.SolidLine: "solid", Qt.PenStyle.DashLine: "dashed", Qt.PenStyle.DotLine: "dotted",
              Qt.PenStyle.DashDotLine: "dash-dot"}

HINT_EMPTY = "Start an experiment (Ctrl+R) or open one (Ctrl+O)."
HINT_PLOTS = ("Hover a curve for its values; drag to pan, wheel to zoom, right-click for options; "
              "the “A” corner button re-fits.")
REPEATS_NOTE = "line: mean over repeats · band: ± 1 std · faint: single repeats"
TRIALS_NOTE = "faint dashed: the other learning rates"
FAINT_ALPHA = 70  # single repeats and other learning rates: visible, but the strong line reads first
BAND_ALPHA = 45
HOVER_PX = 24  # the read-out shows the nearest point within this many pixels of the pointer


def run_label(run: dict[str, Any], repeats: int, lrs: int = 1) -> str:
    """Legend and hover text: the batch size, plus the lr when several are tried and the repeat."""
    text = f"batch {run['batch_size']}"
    if lrs > 1 and isinstance(run.get("lr"), (int, float)):
        text += f" · lr {run['lr']:.3g}"
    return f"{text} · repeat {run.get('repeat', 0) + 1}" if repeats > 1 else text


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan


def series(run: dict[str, Any], x_key: str, y_key: str, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """x and y arrays of one run's history; epochs without a finite value (a record's null) are left out."""
    history = run.get("history") or []
    x = np.array([_number(h.get(x_key)) for h in history], dtype=float)
    y = np.array([_number(h.get(y_key)) for h in history], dtype=float) * scale
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def smooth(y: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average, debiased at the start (TensorBoard's smoothing); 0 leaves y as it is."""
    if weight <= 0 or len(y) < 2:
        return y
    out = np.empty_like(y)
    last, debias = 0.0, 1.0
    for i, value in enumerate(y):
        last = weight * last + (1 - weight) * value
        debias *= weight
        out[i] = last / (1 - debias)
    return out


def band_series(runs: list[dict[str, Any]], x_key: str, y_key: str,
                scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, mean, mean - std, mean + std over the repeats of one configuration, epoch by epoch.

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


def best_by_batch(runs: list[dict[str, Any]], tuned: Optional[dict[int, float]] = None) -> dict[int, int]:
    """Batch size -> run_index of its best trial so far (highest best val accuracy; the earlier wins a tie).

    ``tuned``: the learning rate the study chose per batch size (the record's tuning answer, once the
    experiment has ended); that lr's trials are then the candidates, so the plots agree with the summary."""
    best: dict[int, tuple[float, int]] = {}
    for run in runs:
        chosen = (tuned or {}).get(run["batch_size"])
        if chosen is not None and run.get("lr") is not None and not math.isclose(run["lr"], chosen, rel_tol=1e-6):
            continue
        score = _number((run.get("best") or {}).get("val_accuracy"))
        score = -1.0 if math.isnan(score) else score
        size = run["batch_size"]
        if size not in best or score > best[size][0]:
            best[size] = (score, run["run_index"])
    return {size: index for size, (_score, index) in best.items()}


class Band:
    """A configuration's mean curve and its shaded ± 1 std band in one plot."""

    def __init__(self, plot: pg.PlotItem, colour: QColor, label: str, style: Qt.PenStyle) -> None:
        edge = QColor(colour)
        edge.setAlpha(0)
        fill = QColor(colour)
        fill.setAlpha(BAND_ALPHA)
        self.label = label
        self.low = pg.PlotCurveItem(pen=pg.mkPen(edge))
        self.high = pg.PlotCurveItem(pen=pg.mkPen(edge))
        self.fill = pg.FillBetweenItem(self.low, self.high, brush=pg.mkBrush(fill))
        self.mean = pg.PlotDataItem(name=label, pen=pg.mkPen(colour, width=2.5, style=style), symbol="o",
                                    symbolSize=5, symbolPen=None, symbolBrush=colour, antialias=True)
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


@dataclass
class Trace:
    """One trial of one experiment, drawn in every plot."""

    run: dict[str, Any]
    colour: QColor
    label: str
    style: Qt.PenStyle
    items: dict[str, pg.PlotDataItem] = field(default_factory=dict)
    star: Optional[pg.ScatterPlotItem] = None
    strong: bool = True
    look: Optional[tuple] = None  # what its pens were last set from: pens change only when this does


@dataclass
class Shown:
    """One experiment on the plots: its runs and how its lines are told apart from the others'."""

    name: str
    runs: list[dict[str, Any]]
    style: Qt.PenStyle
    tuned: dict[int, float] = field(default_factory=dict)  # batch size -> the study's chosen lr, once known


class CurvesView(QWidget):
    """Four plots (accuracies and losses) with an x-axis selector, plot options, hover read-out and
    a target line. ``set_runs`` shows one experiment, ``set_overlay`` several."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._shown: list[Shown] = []
        self._layout_key: list[tuple] = []
        self._traces: dict[tuple[int, int], Trace] = {}  # (experiment position, run_index) -> trace
        self._bands: dict[str, dict[tuple[int, int], Band]] = {key: {} for key in PLOTS}  # (exp, batch size)
        self._x_key = "epoch"
        self._highlighted: Optional[int] = None
        self._target: Optional[float] = None
        self._smoothing = 0.0
        self._auto_accuracy = False
        self._log_loss = False
        self._progress: dict[int, list[dict[str, float]]] = {}  # run_index -> provisional points this epoch
        self._accuracy_range: Optional[tuple[float, float]] = None  # last range set: unchanged, not set again
        self._legend_key: Optional[tuple] = None

        self.x_selector = QComboBox()
        for key, (text, _label) in X_AXES.items():
            self.x_selector.addItem(text, key)
        self.x_selector.setToolTip("What the horizontal axis of every plot counts")
        self.x_selector.currentIndexChanged.connect(self._on_x_selected)
        self.options = self._options_button()
        self.legend = LegendBar()
        self.hint = QLabel(HINT_EMPTY)
        self.hint.setStyleSheet("color: #666;")
        self.hint.setWordWrap(True)
        header = QHBoxLayout()
        header.addWidget(QLabel("X axis:"))
        header.addWidget(self.x_selector)
        header.addWidget(self.options)
        header.addSpacing(10)
        header.addWidget(self.legend, 1)
        header.addWidget(self.hint, 1)

        grid = QGridLayout()
        grid.setSpacing(4)
        self.plots: dict[str, pg.PlotItem] = {}
        self.provisional: dict[str, pg.PlotDataItem] = {}
        self._readouts: dict[str, tuple[pg.TextItem, pg.ScatterPlotItem]] = {}
        self._proxies: list[pg.SignalProxy] = []
        for i, (key, (_title, y_label, _scale)) in enumerate(PLOTS.items()):
            widget = pg.PlotWidget(background="w", axisItems={"bottom": CountAxis(orientation="bottom")})
            widget.setMinimumSize(160, 120)
            widget.setToolTip(HINT_PLOTS)
            plot = widget.getPlotItem()
            plot.setLabel("left", y_label)
            plot.showGrid(x=True, y=True, alpha=0.18)
            for side in ("left", "bottom"):
                axis = plot.getAxis(side)
                axis.setPen(pg.mkPen("#444"))
                axis.setTextPen(pg.mkPen("#222"))
                # Major ticks only: grid lines at minor ticks made every repaint 4-5x slower (about 100 ms
                # for the four plots), and the window repaints them at every epoch and batch update.
                axis.setStyle(maxTickLevel=0)
                axis.enableAutoSIPrefix(False)  # no "epoch (x0.001)" when a plot has nothing to show yet
            plot.getAxis("left").setWidth(56)  # same width everywhere: plots line up, labels never collide
            self.plots[key] = plot
            grid.addWidget(widget, i // 2, i % 2)
            if i:
                plot.setXLink(self.plots["val_accuracy"])
            if key in PROGRESS_PLOTS:
                item = pg.PlotDataItem(pen=pg.mkPen("#888", width=1.2, style=Qt.PenStyle.DotLine), antialias=True)
                item.setZValue(1)
                plot.addItem(item)
                self.provisional[key] = item
            text = pg.TextItem(color="#111", fill=pg.mkBrush(255, 255, 255, 230), border=pg.mkPen("#999"),
                               anchor=(0, 1))
            marker = pg.ScatterPlotItem(size=9, pen=pg.mkPen("#111", width=1.5), brush=pg.mkBrush(None))
            for item in (text, marker):
                item.setZValue(10)
                item.hide()
                plot.addItem(item, ignoreBounds=True)
            self._readouts[key] = (text, marker)
            self._proxies.append(pg.SignalProxy(plot.scene().sigMouseMoved, rateLimit=30,
                                                slot=lambda args, key=key: self._on_mouse(key, args[0])))
        self.target_line = pg.InfiniteLine(angle=0, movable=False,
                                           pen=pg.mkPen("#555", width=1.2, style=Qt.PenStyle.DashLine),
                                           label="", labelOpts={"position": 0.02, "color": "#333",
                                                                "anchors": [(0, 1), (0, 1)]})
        self.target_line.setZValue(-2)
        self.target_line.hide()
        self.plots["val_accuracy"].addItem(self.target_line, ignoreBounds=True)
        self._update_x_labels()
        self._fit_accuracy_range()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addLayout(grid, 1)

    # -- options ----------------------------------------------------------------------------------

    def _options_button(self) -> QToolButton:
        button = QToolButton()
        button.setText("Plot options")
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(button)
        self.auto_zoom_action = QAction("Zoom accuracy to the data", menu, checkable=True)
        self.auto_zoom_action.setToolTip("Accuracy axes follow the curves instead of 0-100 % (both the same range)")
        self.auto_zoom_action.toggled.connect(self.set_auto_accuracy)
        self.log_loss_action = QAction("Logarithmic loss axes", menu, checkable=True)
        self.log_loss_action.toggled.connect(self.set_log_loss)
        menu.addAction(self.auto_zoom_action)
        menu.addAction(self.log_loss_action)
        smoothing = menu.addMenu("Smoothing")
        group = QActionGroup(smoothing)
        self.smoothing_actions: dict[str, QAction] = {}
        for name in SMOOTHING:
            action = QAction(name, smoothing, checkable=True, checked=name == "off")
            action.triggered.connect(lambda _checked=False, name=name: self.set_smoothing(name))
            group.addAction(action)
            smoothing.addAction(action)
            self.smoothing_actions[name] = action
        button.setMenu(menu)
        button.setToolTip("Accuracy range, loss scale and smoothing of every plot")
        return button

    def set_auto_accuracy(self, on: bool) -> None:
        """Accuracy axes fixed at 0-100 % (default) or zoomed to the data, training and validation alike."""
        self._auto_accuracy = on
        self.auto_zoom_action.setChecked(on)
        self._accuracy_range = None
        self._fit_accuracy_range()

    def set_log_loss(self, on: bool) -> None:
        self._log_loss = on
        self.log_loss_action.setChecked(on)
        for key in LOSS_PLOTS:
            self.plots[key].setLogMode(y=on)
            self.plots[key].enableAutoRange(y=True)
        self._hide_readouts()

    def set_smoothing(self, name: str) -> None:
        """'off', 'light' or 'strong': a running average over epochs; hover still reads the raw values."""
        self._smoothing = SMOOTHING[name]
        self.smoothing_actions[name].setChecked(True)
        self._redraw()

    def smoothing(self) -> str:
        return next(name for name, weight in SMOOTHING.items() if weight == self._smoothing)

    def options_state(self) -> dict[str, Any]:
        """What the window remembers between launches."""
        return {"auto_accuracy": self._auto_accuracy, "log_loss": self._log_loss, "smoothing": self.smoothing()}

    def restore_options(self, state: dict[str, Any]) -> None:
        self.set_auto_accuracy(bool(state.get("auto_accuracy")))
        self.set_log_loss(bool(state.get("log_loss")))
        self.set_smoothing(state.get("smoothing") if state.get("smoothing") in SMOOTHING else "off")

    # -- data -------------------------------------------------------------------------------------

    def set_runs(self, runs: list[dict[str, Any]], tuned: Optional[dict[int, float]] = None) -> None:
        """Show one experiment's runs; items are rebuilt only when the set of trials changes. ``tuned``: the
        learning rate the study chose per batch size (drawn as the strong line), once the study has ended."""
        self._show([Shown("", runs, Qt.PenStyle.SolidLine, dict(tuned or {}))])

    def set_overlay(self, experiments: list[tuple[str, list[dict[str, Any]], dict[int, float]]]) -> None:
        """Show several experiments at once: (name, runs, tuned lrs) each, told apart by line style and name."""
        self._show([Shown(name, runs, EXPERIMENT_STYLES[i % len(EXPERIMENT_STYLES)], tuned)
                    for i, (name, runs, tuned) in enumerate(experiments)])

    def overlaid(self) -> list[tuple[str, str]]:
        """(experiment name, line style) of each overlaid experiment; empty when one experiment is shown."""
        return [(s.name, STYLE_TEXT[s.style]) for s in self._shown] if len(self._shown) > 1 else []

    def _show(self, shown: list[Shown]) -> None:
        self._shown = shown
        self._progress = {}
        self._hide_readouts()  # a read-out of what was shown before would be stale
        self.hint.setVisible(not any(s.runs for s in shown))
        key = [(s.name, [(r["run_index"], r["batch_size"], r.get("repeat", 0), r.get("lr")) for r in s.runs])
               for s in shown]
        if key != self._layout_key:
            self._rebuild()
            self._layout_key = key
            self._accuracy_range = None
        self._redraw()

    def update_run(self, run: dict[str, Any]) -> None:
        """Push one run's history (of the first experiment shown) into its long-lived items."""
        if self._progress.pop(run["run_index"], None) is not None or run.get("status") != "running":
            self._draw_progress(None)
        trace = self._traces.get((0, run["run_index"]))
        if trace is None:
            return
        trace.run = run
        self._draw_trace(trace)
        self._restyle(0)
        self._draw_bands(0, run["batch_size"])
        self._fit_accuracy_range()

    def show_progress(self, run_index: int, epoch: int, step: int, steps_per_epoch: int, loss: float,
                      accuracy: float, elapsed_s: float) -> None:
        """The running loss and accuracy inside an epoch, drawn as a thin provisional line from the run's
        last epoch until that epoch's point arrives (so the plots are not blank for the first epoch)."""
        trace = self._traces.get((0, run_index))
        if trace is None or not all(math.isfinite(v) for v in (loss, accuracy)):
            return
        history = trace.run.get("history") or []
        last = history[-1] if history and history[-1].get("epoch") == epoch - 1 else {}
        fraction = step / max(1, steps_per_epoch)
        point = {"epoch": epoch - 1 + fraction, "steps": _number(last.get("steps") or 0) + step,
                 "samples": _number(last.get("samples") or 0) + step * trace.run["batch_size"],
                 "elapsed": elapsed_s, "loss": loss, "accuracy": accuracy}
        points = self._progress.setdefault(run_index, [])
        if points and points[-1]["epoch"] > point["epoch"]:
            points.clear()  # a new epoch (or a continued trial) began
        points.append(point)
        self._draw_progress(trace)

    def set_target(self, target: Optional[float]) -> None:
        """The target validation accuracy (0-1) as a dashed line; None hides it."""
        self._target = target
        if target is None or not math.isfinite(target):
            self.target_line.hide()
            return
        self.target_line.setValue(100.0 * target)
        self.target_line.label.setFormat(f"target {100 * target:.1f} %")
        self.target_line.show()

    def highlight(self, run_index: Optional[int]) -> None:
        """Draw one run (of the first experiment) thicker and opaque; None draws all as they are."""
        self._highlighted = run_index
        self._restyle(0)

    def curve(self, plot_key: str, run_index: int, experiment: int = 0) -> pg.PlotDataItem:
        return self._traces[(experiment, run_index)].items[plot_key]

    def trace_label(self, run_index: int, experiment: int = 0) -> str:
        return self._traces[(experiment, run_index)].label

    def is_strong(self, run_index: int, experiment: int = 0) -> bool:
        return self._traces[(experiment, run_index)].strong

    def band(self, plot_key: str, batch_size: int, experiment: int = 0) -> Optional[Band]:
        """The mean line and ± 1 std band of a batch size's best configuration (only with repeats)."""
        return self._bands[plot_key].get((experiment, batch_size))

    def x_axis(self) -> str:
        return self._x_key

    def set_x_axis(self, key: str) -> None:
        index = self.x_selector.findData(key)
        if index >= 0:
            self.x_selector.setCurrentIndex(index)

    def readout(self, plot_key: str, x: float, y: float) -> Optional[str]:
        """The hover text for a pointer at view coordinates (x, y): nearest point within HOVER_PX pixels."""
        found = self._nearest(plot_key, x, y)
        return found[0] if found else None

    # -- internals: items -------------------------------------------------------------------------

    def _rebuild(self) -> None:
        for key, plot in self.plots.items():
            for trace in self._traces.values():
                plot.removeItem(trace.items[key])
            for band in self._bands[key].values():
                band.remove(plot)
            self._bands[key] = {}
        for trace in self._traces.values():
            if trace.star is not None:
                self.plots["val_accuracy"].removeItem(trace.star)
        self._traces = {}
        sizes = [r["batch_size"] for s in self._shown for r in s.runs]
        colours = batch_colours(sizes)
        for position, shown in enumerate(self._shown):
            repeats = len({r.get("repeat", 0) for r in shown.runs})
            for run in shown.runs:
                lrs = len({r.get("lr") for r in shown.runs if r["batch_size"] == run["batch_size"]})
                label = run_label(run, repeats, lrs) + (f" · {shown.name}" if len(self._shown) > 1 else "")
                trace = Trace(run, colours[run["batch_size"]], label, shown.style)
                for key, plot in self.plots.items():
                    trace.items[key] = plot.plot(name=label, antialias=True)
                if repeats == 1:  # one star per repeat would bury the means
                    trace.star = pg.ScatterPlotItem(symbol="star", size=16, pen=pg.mkPen("#222", width=1),
                                                    brush=trace.colour)
                    trace.star.setToolTip(f"best validation accuracy, {label}")
                    self.plots["val_accuracy"].addItem(trace.star)
                self._traces[(position, run["run_index"])] = trace
            if repeats > 1:  # the mean and its band carry the comparison; single repeats stay faint behind
                for size in dict.fromkeys(r["batch_size"] for r in shown.runs):
                    name = f"batch {size}, mean of {repeats}" + (f" · {shown.name}" if len(self._shown) > 1 else "")
                    for key, plot in self.plots.items():
                        self._bands[key][(position, size)] = Band(plot, colours[size], name, shown.style)
        self._update_legend(colours)

    def _update_legend(self, colours: Optional[dict[int, QColor]] = None) -> None:
        best = [best_by_batch(s.runs, s.tuned) for s in self._shown]
        key = (tuple(sorted(b.items())) for b in best)
        legend_key = (tuple(key), tuple(s.name for s in self._shown), tuple(len(s.runs) for s in self._shown))
        if colours is None and legend_key == self._legend_key:
            return
        self._legend_key = legend_key
        colours = colours or batch_colours([r["batch_size"] for s in self._shown for r in s.runs])
        entries = []
        for size, colour in colours.items():
            text = f"batch {size}"
            if len(self._shown) == 1:
                shown = self._shown[0]
                best = best_by_batch([r for r in shown.runs if r["batch_size"] == size], shown.tuned).get(size)
                lrs = {r.get("lr") for r in self._shown[0].runs if r["batch_size"] == size}
                run = next((r for r in self._shown[0].runs if r["run_index"] == best), None)
                if len(lrs) > 1 and run is not None and isinstance(run.get("lr"), (int, float)):
                    text += f" ({'tuned' if size in shown.tuned else 'best'} lr {run['lr']:.3g})"
            entries.append((text, colour))
        repeats = any(len({r.get("repeat", 0) for r in s.runs}) > 1 for s in self._shown)
        trials = any(len({r.get("lr") for r in s.runs if r["batch_size"] == size}) > 1
                     for s in self._shown for size in {r["batch_size"] for r in s.runs})
        notes = ([REPEATS_NOTE] if repeats else []) + ([TRIALS_NOTE] if trials and len(self._shown) == 1 else [])
        self.legend.set_entries(entries, notes, [(s.name, s.style) for s in self._shown] if len(self._shown) > 1
                                else [])

    def _redraw(self) -> None:
        for trace in self._traces.values():
            self._draw_trace(trace)
        for position, shown in enumerate(self._shown):
            self._restyle(position)
            for size in {r["batch_size"] for r in shown.runs}:
                self._draw_bands(position, size)
        running = next(reversed(self._progress), None)  # the run whose epoch is under way
        self._draw_progress(self._traces.get((0, running)) if running is not None else None)
        self._fit_accuracy_range()

    def _draw_trace(self, trace: Trace) -> None:
        for key, (_title, _label, scale) in PLOTS.items():
            x, y = series(trace.run, self._x_key, key, scale)
            trace.items[key].setData(x, smooth(y, self._smoothing))
        if trace.star is not None:
            best = trace.run.get("best") or {}
            epoch = [h for h in trace.run.get("history") or [] if h.get("epoch") == best.get("epoch")]
            x, y = series({"history": epoch}, self._x_key, "val_accuracy", 100.0)
            trace.star.setData(x=x, y=y)

    def _draw_bands(self, position: int, size: int) -> None:
        if (position, size) not in self._bands["val_accuracy"]:
            return
        runs = self._shown[position].runs
        best = next((r for r in runs if r["run_index"] == best_by_batch(runs, self._shown[position].tuned).get(size)),
                    None)
        same = [r for r in runs if r["batch_size"] == size and (best is None or r.get("lr") == best.get("lr"))]
        for key, (_title, _label, scale) in PLOTS.items():
            x, mean, low, high = band_series(same, self._x_key, key, scale)
            self._bands[key][(position, size)].set_data(x, smooth(mean, self._smoothing), low, high)

    def _restyle(self, position: int) -> None:
        """Pens from each trial's role: the best lr of its batch size strong, others faint; repeats faint."""
        if position >= len(self._shown):
            return
        runs = self._shown[position].runs
        best = set(best_by_batch(runs, self._shown[position].tuned).values())
        repeats = len({r.get("repeat", 0) for r in runs}) > 1
        ratio = max(1.0, self.devicePixelRatioF())  # pens are in device pixels: as thick at any scale factor
        for (where, index), trace in self._traces.items():
            if where != position:
                continue
            trace.strong = index in best
            chosen = position == 0 and index == self._highlighted
            look = (trace.strong, chosen, repeats, len(self._shown), ratio)
            if look == trace.look:
                continue  # setting the same pens again costs a redraw of every item
            trace.look = look
            colour = QColor(trace.colour)
            if repeats or not trace.strong:
                if not chosen:
                    colour.setAlpha(FAINT_ALPHA)
                style = trace.style if repeats or len(self._shown) > 1 else Qt.PenStyle.DashLine
                pen = pg.mkPen(colour, width=(2.0 if chosen else 1.2) * ratio, style=style)
                # small faint dots: a trial with one epoch so far has no line to show
                symbol: dict[str, Any] = {"symbol": "o", "symbolSize": 4 * ratio, "symbolPen": None,
                                          "symbolBrush": colour}
            else:
                pen = pg.mkPen(colour, width=(4.0 if chosen else 2.0) * ratio, style=trace.style)
                symbol = {"symbol": "o", "symbolSize": 5 * ratio, "symbolPen": None, "symbolBrush": colour}
            for item in trace.items.values():
                item.setPen(pen)
                item.setSymbol(symbol["symbol"])
                if symbol["symbol"]:
                    item.setSymbolSize(symbol["symbolSize"])
                    item.setSymbolPen(symbol["symbolPen"])
                    item.setSymbolBrush(symbol["symbolBrush"])
                item.setZValue(3 if chosen else 0 if trace.strong and not repeats else -0.5)
            if trace.star is not None:
                trace.star.setVisible(trace.strong)
        self._update_legend()

    def _draw_progress(self, trace: Optional[Trace]) -> None:
        points = self._progress.get(trace.run["run_index"]) if trace is not None else None
        for key, field_name in PROGRESS_PLOTS.items():
            item = self.provisional[key]
            if not points:
                item.setData([], [])
                continue
            scale = PLOTS[key][2]
            history = trace.run.get("history") or []
            start_x, start_y = series({"history": history[-1:]}, self._x_key, key, scale)
            x = np.concatenate([start_x, [p[self._x_key] for p in points]])
            y = np.concatenate([start_y, [scale * p[field_name] for p in points]])
            if item.opts["pen"].color() != trace.colour:
                item.setPen(pg.mkPen(trace.colour, width=1.2, style=Qt.PenStyle.DotLine))
            item.setData(x, y)
        if points and self._auto_accuracy:
            self._fit_accuracy_range()

    def _fit_accuracy_range(self) -> None:
        """0-100 % by default; zoomed to the data when asked, the same range for training and validation."""
        low, high = -10.0, 110.0  # room at both ends for the 0 and 100 labels, however short the plot
        if self._auto_accuracy:
            values = [item.getData()[1] for key in ACCURACY_PLOTS for item in self._data_items(key)]
            values = [v[np.isfinite(v)] for v in values if v is not None and len(v)]
            if values:
                joined = np.concatenate(values)
                span = max(2.0, float(joined.max() - joined.min()))
                low = max(0.0, float(joined.min()) - 0.08 * span)
                high = min(100.0, float(joined.max()) + 0.08 * span)
        if (low, high) == self._accuracy_range:
            return
        self._accuracy_range = (low, high)
        ticks = None if self._auto_accuracy else [[(v, str(v)) for v in PERCENT_TICKS]]
        for key in ACCURACY_PLOTS:
            self.plots[key].getAxis("left").setTicks(ticks)  # fixed: every 20 %, whatever the plot's height
            self.plots[key].setYRange(low, high, padding=0)

    def _data_items(self, plot_key: str) -> list[pg.PlotDataItem]:
        items = [trace.items[plot_key] for trace in self._traces.values()]
        items += [band.mean for band in self._bands[plot_key].values()]
        if plot_key in self.provisional:
            items.append(self.provisional[plot_key])
        return items

    # -- internals: hover read-out ----------------------------------------------------------------

    def _nearest(self, plot_key: str, x: float, y: float) -> Optional[tuple[str, float, float]]:
        """(text, x, y in view coordinates) of the data point nearest the pointer, if near enough."""
        view = self.plots[plot_key].getViewBox()
        px, py = view.viewPixelSize()
        if not (px > 0 and py > 0):
            return None
        log = plot_key in LOSS_PLOTS and self._log_loss
        best: Optional[tuple[float, str, float, float]] = None
        candidates = [(trace.label, trace.items[plot_key], trace.run) for trace in self._traces.values()]
        candidates += [(band.label, band.mean, None) for band in self._bands[plot_key].values()]
        if plot_key in self.provisional:
            candidates.append(("running average, this epoch so far", self.provisional[plot_key], None))
        for label, item, run in candidates:
            if not item.isVisible():
                continue
            xs, ys = item.getData()
            if xs is None or not len(xs):
                continue
            shown = np.log10(np.where(ys > 0, ys, np.nan)) if log else ys
            distance = np.hypot((xs - x) / px, (shown - y) / py)
            if not np.isfinite(distance).any():
                continue
            i = int(np.nanargmin(distance))
            if distance[i] <= HOVER_PX and (best is None or distance[i] < best[0]):
                value = ys[i]
                if run is not None and self._smoothing:  # the raw value, not the smoothed one
                    raw_x, raw_y = series(run, self._x_key, plot_key, PLOTS[plot_key][2])
                    value = raw_y[i] if i < len(raw_y) else value
                best = (float(distance[i]), self._readout_text(label, plot_key, xs[i], value), float(xs[i]),
                        float(shown[i]))
        return best[1:] if best else None

    def _readout_text(self, label: str, plot_key: str, x: float, value: float) -> str:
        x_text = {"epoch": f"epoch {x:g}" if float(x).is_integer() else f"epoch {x:.2f}",
                  "steps": f"{x:,.0f} steps", "samples": f"{x:,.0f} samples", "elapsed": f"{x:,.1f} s"}[self._x_key]
        y_text = f"{value:.1f} %" if PLOTS[plot_key][2] == 100.0 else f"{value:.4g}"
        return f"{label}\n{x_text}: {PLOTS[plot_key][0].lower()} {y_text}"

    def _on_mouse(self, plot_key: str, position: QPointF) -> None:
        plot = self.plots[plot_key]
        text, marker = self._readouts[plot_key]
        if not plot.sceneBoundingRect().contains(position):
            text.hide()
            marker.hide()
            return
        point = plot.getViewBox().mapSceneToView(position)
        found = self._nearest(plot_key, point.x(), point.y())
        if found is None:
            text.hide()
            marker.hide()
            return
        label, x, y = found
        text.setText(label)
        (x_low, x_high), _ = plot.getViewBox().viewRange()
        text.setAnchor((1, 1) if x > (x_low + x_high) / 2 else (0, 1))  # keep the box inside the plot
        text.setPos(x, y)
        marker.setData([x], [y])
        text.show()
        marker.show()

    def _hide_readouts(self) -> None:
        for text, marker in self._readouts.values():
            text.hide()
            marker.hide()

    def _on_x_selected(self, _index: int) -> None:
        self._x_key = self.x_selector.currentData()
        self._update_x_labels()
        self._hide_readouts()
        self._redraw()
        for key, plot in self.plots.items():
            plot.enableAutoRange(x=True, y=key not in ACCURACY_PLOTS)
        self._fit_accuracy_range()

    def _update_x_labels(self) -> None:
        for key, plot in self.plots.items():
            plot.setLabel("bottom", X_AXES[self._x_key][1])
            plot.getAxis("bottom").showLabel(key in BOTTOM_ROW)
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


class LegendBar(QLabel):
    """One legend for all four plots, above them, so it never hides a curve; it wraps on narrow windows."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.entries: list[str] = []

    def set_entries(self, entries: list[tuple[str, QColor]], notes: list[str],
                    experiments: list[tuple[str, Qt.PenStyle]]) -> None:
        self.entries = [text for text, _colour in entries] + (notes if entries else [])
        parts = [f"<span style='color:{colour.name()}; font-weight:bold'>━●</span>&nbsp;{text}"
                 for text, colour in entries]
        marks = {Qt.PenStyle.SolidLine: "━━", Qt.PenStyle.DashLine: "╍╍", Qt.PenStyle.DotLine: "┅┅",
                 Qt.PenStyle.DashDotLine: "━┅"}
        parts += [f"<b>{marks[style]}</b>&nbsp;{name}" for name, style in experiments]
        html = " &nbsp; ".join(parts)
        if entries and notes:
            html += " &nbsp; <span style='color:#666'>" + " · ".join(notes) + "</span>"
        self.setText(html)
        self.setToolTip("\n".join(self.entries))
