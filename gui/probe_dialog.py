"""The throughput probe in the window: images/s and peak memory per batch size, plotted as it climbs.

The probe trains real steps, so it runs on a background thread; the thread only emits
plain data (LogMessage events, point dicts, the result dict) and the dialog draws. Until the first
size is measured the plots are replaced by words saying what will appear. Its colours are neutral
greys and a dark red, none of them a batch size's colour (gui.palette). The answer says what ended
the ladder: memory, the training set's size (``limited_by``), the sizes asked for, or the user.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt, QThread, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QStackedWidget,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.artifacts.safe_load import first_line
from engine.config import ConfigError
from engine.data.scan import DatasetError
from engine.stop import StopToken
from gui.plot_axes import LabelledAxis

OK_COLOUR = "#3A3A3A"  # neutral: not one of the batch sizes' colours
BAD_COLOUR = "#B2182B"
FIT_COLOUR = "#6B6B6B"
EMPTY_TEXT = ("Press Start. For each batch size (8, 16, 32, …) the probe trains a few real steps and plots here "
              "how many images per second it trains and how much memory it needs at its peak. It stops at the "
              "first size that runs out of memory or over the budget, or when a batch would be larger than the "
              "training set.")
MAX_BUDGET_MB = 10_000_000


class ProbeWorker(QThread):
    """Runs ``engine.measure.probe.probe`` with the given keyword arguments off the GUI thread."""

    event = Signal(object)  # engine.events.LogMessage
    point = Signal(object)  # one measured point (dict)
    succeeded = Signal(object)  # the probe JSON (dict)
    failed = Signal(str)

    def __init__(self, settings: dict[str, Any], parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.stop_token = StopToken()

    def run(self) -> None:
        try:
            from engine.measure.probe import probe  # TensorFlow loads here, never on the GUI thread

            result = probe(**self.settings, listener=self.event.emit, stop=self.stop_token,
                           on_point=self.point.emit)
        except (ConfigError, DatasetError, OSError) as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - shown in the dialog instead of killing the window
            self.failed.emit(f"{type(exc).__name__}: {first_line(exc)}")
        else:
            self.succeeded.emit(result)


class ProbeDialog(QDialog):
    """``ProbeDialog(data_dir, image_size, experiment_dir=None, parent=None, model=..., weights=...)``; ``probed``
    fires with the result.

    With an experiment folder the result is saved there as probe.json, where the advice finds it.
    """

    probed = Signal(object)

    def __init__(self, data_dir: str, image_size: int, experiment_dir: Optional[str] = None,
                 parent: Optional[QWidget] = None, *, batch_sizes: Optional[Sequence[int]] = None,
                 model: str = "seed", weights: str = "none") -> None:
        super().__init__(parent)
        self.setWindowTitle("Throughput probe")
        self.resize(860, 620)
        self.data_dir, self.image_size = data_dir, image_size
        self.model, self.weights = model, weights
        self.experiment_dir = Path(experiment_dir) if experiment_dir else None
        self.batch_sizes = list(batch_sizes) if batch_sizes else None
        self.points: list[dict[str, Any]] = []
        self.result: Optional[dict[str, Any]] = None
        self.saved_path: Optional[Path] = None
        self.worker: Optional[ProbeWorker] = None

        self.budget = QSpinBox()
        self.budget.setRange(0, MAX_BUDGET_MB)
        self.budget.setSingleStep(256)
        self.budget.setSuffix(" MB")
        self.budget.setSpecialValueText("automatic (CPU: 80% of available memory; GPU: its memory)")
        self.budget.setToolTip("The ladder ends at the first batch size whose peak memory exceeds this")
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.status = QLabel("Trains a few real steps at each batch size (8, 16, 32, ...) until memory or the "
                             "training set runs out.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(500)
        self.log.setFixedHeight(90)
        self.log.hide()  # an empty box says nothing; it appears with the first line

        self.speed_plot, speed_widget = _plot("Throughput", "images / s")
        self.memory_plot, memory_widget = _plot("Peak memory", "MB")
        self.speed_curve = self.speed_plot.plot([], [], pen=pg.mkPen(OK_COLOUR, width=2), symbol="o",
                                                symbolBrush=OK_COLOUR, symbolPen=None)
        self.memory_curve = self.memory_plot.plot([], [], pen=pg.mkPen(OK_COLOUR, width=2), symbol="o",
                                                  symbolBrush=OK_COLOUR, symbolPen=None)
        self.rejected_speed, self.rejected_memory = (
            plot.plot([], [], pen=None, symbol="x", symbolSize=14, symbolBrush=BAD_COLOUR,
                      symbolPen=pg.mkPen(BAD_COLOUR, width=2)) for plot in (self.speed_plot, self.memory_plot))
        self.marks: list[tuple[pg.PlotItem, pg.InfiniteLine]] = []

        form = QFormLayout()
        form.addRow("Data", QLabel(f"{data_dir}  ({image_size} px, model {model})"))
        form.addRow("Memory budget", self.budget)
        form.addRow("Saved to", QLabel(str((self.experiment_dir / "probe.json").absolute()) if self.experiment_dir
                                       else "not saved (no experiment open): the advice will not use it"))
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        plots = QWidget()
        row = QHBoxLayout(plots)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(speed_widget)
        row.addWidget(memory_widget)
        self.empty = QLabel(EMPTY_TEXT)
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: #444; font-size: 11pt; padding: 30px; background: #FAFAFA; "
                                 "border: 1px dashed #BBB;")
        self.plots = QStackedWidget()
        self.plots.addWidget(self.empty)
        self.plots.addWidget(plots)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.plots, 1)
        layout.addWidget(self.log)

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        settings: dict[str, Any] = {"data_dir": self.data_dir, "image_size": self.image_size, "model": self.model,
                                    "weights": self.weights,
                                    "batch_sizes": self.batch_sizes,
                                    "memory_budget_mb": float(self.budget.value()) or None}
        if self.experiment_dir is not None:
            settings["cache_dir"] = self.experiment_dir.parent / ".cache"  # the runner's decoded images
        self.points, self.result, self.saved_path = [], None, None
        self.log.clear()
        self.redraw()
        self.worker = ProbeWorker(settings, self)
        self.worker.event.connect(self.on_event)
        self.worker.point.connect(self.on_point)
        self.worker.succeeded.connect(self.on_result)
        self.worker.failed.connect(self.on_failed)
        self.worker.finished.connect(self.on_finished)
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.budget.setEnabled(False)
        self.status.setText("Probing… (TensorFlow starts first, then each size takes a few seconds)")
        self.worker.start()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop_token.set()
            self.stop_button.setEnabled(False)
            self.status.setText("Stopping after the current step…")

    def on_event(self, event: Any) -> None:
        self.log.show()
        self.log.appendPlainText(event.text)

    def on_point(self, point: dict[str, Any]) -> None:
        self.points.append(point)
        self.redraw()

    def on_result(self, result: dict[str, Any]) -> None:
        self.result = result
        self.points = list(result["points"])
        self.redraw()
        self.status.setText(summary(result, self.worker is not None and self.worker.stop_token.is_set()))
        if self.experiment_dir is not None:
            from engine.measure.probe import save_probe

            try:
                self.saved_path = save_probe(result, self.experiment_dir)
            except OSError as exc:
                self.status.setText(f"{self.status.text()}  Could not save probe.json: {exc}")
        self.probed.emit(result)

    def on_failed(self, message: str) -> None:
        self.status.setText(f"Probe failed: {message}")

    def on_finished(self) -> None:
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.budget.setEnabled(True)
        self.worker = None

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        """Closing mid-probe stops it and waits, so no thread outlives its dialog."""
        if self.worker is not None:
            self.worker.stop_token.set()
            self.worker.wait()
        super().closeEvent(event)

    def reject(self) -> None:
        if self.worker is not None:
            self.worker.stop_token.set()
            self.worker.wait()
        super().reject()

    # -- drawing ----------------------------------------------------------------------------------

    def redraw(self) -> None:
        """Curves of every measured size; crosses over the budget; a line at the largest that fits."""
        self.plots.setCurrentIndex(1 if self.points else 0)
        ok = [p for p in self.points if p["status"] == "ok"]
        measured = [p for p in self.points if p["images_per_s"] is not None]
        self.speed_curve.setData([_x(p) for p in measured], [p["images_per_s"] for p in measured])
        with_peak = [p for p in self.points if p["peak_memory_mb"] is not None]
        self.memory_curve.setData([_x(p) for p in with_peak], [p["peak_memory_mb"] for p in with_peak])
        over = [p for p in measured if p["status"] != "ok"]  # ran, but needed more than the budget
        self.rejected_speed.setData([_x(p) for p in over], [p["images_per_s"] for p in over])
        self.rejected_memory.setData([_x(p) for p in over], [p["peak_memory_mb"] for p in over])
        for plot, mark in self.marks:
            plot.removeItem(mark)
        self.marks = []
        ticks = [[(_x(p), str(p["batch_size"])) for p in self.points]]
        for plot, values in ((self.speed_plot, [p["images_per_s"] for p in measured]),
                             (self.memory_plot, [p["peak_memory_mb"] for p in with_peak])):
            plot.getAxis("bottom").set_ticks(ticks[0] if self.points else [])
            if self.points:  # room for the marks' labels at both ends; y from zero, so ratios read true
                plot.setXRange(min(_x(p) for p in self.points) - 0.5, max(_x(p) for p in self.points) + 0.5,
                               padding=0)
            if values:
                plot.setYRange(0, max(values) * 1.15, padding=0)
        if ok:
            fits = max(p["batch_size"] for p in ok)
            ended = ending(self.result) if self.result is not None else None
            words = "largest that fits" if ended == "memory" else "largest measured"
            for plot in (self.speed_plot, self.memory_plot):
                self._mark(plot, pg.InfiniteLine(pos=math.log2(fits), angle=90,
                                                 pen=pg.mkPen(FIT_COLOUR, width=1, style=Qt.PenStyle.DashLine),
                                                 label=f"{words}: {fits}",
                                                 labelOpts={"position": 0.92, "color": FIT_COLOUR}))
        for p in self.points:
            if p["status"] != "ok" and p["peak_memory_mb"] is None:  # ran out before any peak was measured
                self._mark(self.memory_plot, pg.InfiniteLine(
                    pos=_x(p), angle=90, pen=pg.mkPen(BAD_COLOUR, width=1, style=Qt.PenStyle.DotLine),
                    label=p["status"].replace("_", " "), labelOpts={"position": 0.5, "color": BAD_COLOUR}))
        budget = (self.result or {}).get("memory_budget_mb")
        if budget is not None:
            self._mark(self.memory_plot, pg.InfiniteLine(
                pos=budget, angle=0, pen=pg.mkPen(BAD_COLOUR, width=1, style=Qt.PenStyle.DashLine),
                label=f"budget {budget:.0f} MB", labelOpts={"position": 0.15, "color": BAD_COLOUR}))

    def _mark(self, plot: pg.PlotItem, line: pg.InfiniteLine) -> None:
        plot.addItem(line, ignoreBounds=True)
        self.marks.append((plot, line))


def ending(result: dict[str, Any]) -> Optional[str]:
    """What ended the ladder: the probe's ``limited_by`` (memory, data, sizes, failed, stopped); for a
    result without it, "memory" when the last size did not fit and None (not known) otherwise."""
    if result.get("limited_by"):
        return str(result["limited_by"])
    last = result["points"][-1] if result.get("points") else None
    return "memory" if last is not None and last["status"] in ("out_of_memory", "over_budget") else None


def summary(result: dict[str, Any], stopped: bool) -> str:
    """The answer in words, true to what ended the ladder (a ladder that stopped at the training set's
    size says so, instead of calling its last size the largest that fits)."""
    fits = result["max_fitting_batch"]
    points = result.get("points") or []
    last = points[-1] if points else None
    ended = "stopped" if stopped else ending(result)
    peak = next((p["peak_memory_mb"] for p in points if p["batch_size"] == fits), None)
    budget = result.get("memory_budget_mb")
    memory = (f" Peak memory at {fits}: {peak:,.0f} MB" + (f" of a {budget:,.0f} MB budget." if budget else ".")
              if peak is not None else "")
    if fits is None:
        text = "Stopped before any batch size was measured." if ended == "stopped" else "No batch size fits."
    elif ended == "memory":
        text = f"Largest batch size that fits: {fits}."
    elif ended == "data":
        samples = result.get("train_samples")
        images = f" of {samples:,} images" if isinstance(samples, int) else ""
        text = (f"Every batch size up to {fits} fits: limited by the data, not by memory. The training set{images} "
                f"ends the ladder (a larger batch would only repeat images).{memory}")
    elif ended == "stopped":
        text = f"Stopped by the user; the sizes measured so far are shown. Every one fits, up to {fits}.{memory}"
    else:
        text = f"Every batch size tried fits, up to {fits}; larger ones were not tried.{memory}"
    if last is not None and last["status"] != "ok":
        text += f" Batch size {last['batch_size']}: {last['status'].replace('_', ' ')} ({last['error']})."
    return f"{text}\n{result['device']}, {result['precision']}, {result['image_size']} px."


def _x(point: dict[str, Any]) -> float:
    return math.log2(point["batch_size"])


def _plot(title: str, y_label: str) -> tuple[pg.PlotItem, pg.PlotWidget]:
    widget = pg.PlotWidget(background="w", axisItems={"bottom": LabelledAxis("bottom")})
    widget.setMinimumSize(300, 220)
    plot = widget.getPlotItem()
    plot.setTitle(title, color="#222", size="10pt")
    plot.setLabel("bottom", "batch size")
    plot.setLabel("left", y_label)
    plot.showGrid(x=True, y=True, alpha=0.18)
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setPen(pg.mkPen("#444"))
        axis.setTextPen(pg.mkPen("#222"))
    return plot, widget
