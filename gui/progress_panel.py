"""The always-visible progress strip: whole experiment, current run, time left, throughput."""

from __future__ import annotations

import math
from typing import Any, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QSizePolicy, QWidget

from engine import events as ev

_SCALE = 1000  # progress bars are integer; this gives 0.1 % resolution
DEVICE_WIDTH = 300  # px: a long CPU model name must not squeeze the progress bars


def format_duration(seconds: Optional[float]) -> str:
    """Short human duration: '45 s', '3 min 05 s', '2 h 04 min'."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressPanel(QWidget):
    """Driven by engine events while training; shows a summary for an experiment opened from disk."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.overall_bar = _bar("Experiment: %p %")
        self.run_bar = _bar("No run in progress")
        self.run_label = QLabel()
        self.time_label = QLabel()
        self.speed_label = QLabel()
        self.device_label = QLabel()
        self.device_label.setStyleSheet("color: #444;")
        for label, tip in ((self.run_label, "The run now training"),
                           (self.time_label, "Time left in the current run (an upper bound with early stopping)"),
                           (self.speed_label, "Training throughput of the current run")):
            label.setToolTip(tip)
        self.time_label.setMinimumWidth(self.fontMetrics().horizontalAdvance("00 h 00 min left") + 8)
        self.speed_label.setMinimumWidth(self.fontMetrics().horizontalAdvance("00,000 images/s") + 8)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 2, 8, 2)
        layout.addWidget(self.overall_bar, 2)
        layout.addWidget(self.run_label, 3)
        layout.addWidget(self.run_bar, 2)
        layout.addWidget(self.time_label)
        layout.addWidget(self.speed_label)
        layout.addWidget(self.device_label)
        self._total_runs = 1
        self._runs_done = 0
        self._epochs = 1
        self._batch = 0
        self._run_number = 0
        self.show_idle("Ready")

    def show_idle(self, text: str) -> None:
        self.overall_bar.setValue(0)
        self._no_run()
        self.run_label.setText(text)
        self.time_label.setText("")
        self.speed_label.setText("")
        self.show_device(None, None)

    def show_device(self, device: Optional[str], precision: Optional[str]) -> None:
        """Which device and precision the experiment trains (or trained) on; long CPU names are elided."""
        if not device:
            self.device_label.clear()
            self.device_label.setToolTip("")
            return
        text = f"{device} · {precision}" if precision else device
        self.device_label.setText(self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, DEVICE_WIDTH))
        self.device_label.setToolTip(f"Trains on {device}" + (f", {precision} precision" if precision else ""))

    def show_record(self, record: dict[str, Any], opened: bool) -> None:
        """A finished or reopened experiment: how far it got, no live numbers."""
        runs = record.get("runs") or []
        done = sum(r.get("status") in ("completed", "stopped", "failed") for r in runs)
        self.overall_bar.setValue(round(_SCALE * done / max(1, len(runs))))
        self._no_run()
        verb = f"Opened {record.get('id', 'experiment')}" if opened else "Experiment"
        self.run_label.setText(f"{verb}: {record.get('status', '?')}, {done} of {len(runs)} runs finished")
        self.time_label.setText("")
        self.speed_label.setText("")
        environment = record.get("environment") or {}
        self.show_device(environment.get("device"), environment.get("precision"))

    def on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.ExperimentStarted):
            self._total_runs, self._runs_done = max(1, event.total_runs), 0
            self.show_idle(f"Starting {event.total_runs} runs")
            self.show_device(event.device, event.precision)
        elif isinstance(event, ev.RunStarted):
            self._epochs, self._batch, self._run_number = max(1, event.epochs), event.batch_size, event.run_index + 1
            self._show_run(0.0, f"epoch 1 of {event.epochs}")
        elif isinstance(event, ev.BatchProgress):
            done = (event.epoch - 1 + event.step / max(1, event.steps_per_epoch)) / self._epochs
            self._show_run(done, f"epoch {event.epoch} of {self._epochs} · step {event.step}/{event.steps_per_epoch}")
            self._show_speed(event.eta_s, event.images_per_s)
        elif isinstance(event, ev.EpochEnded):
            epoch = event.entry.get("epoch", 0)
            self._show_run(epoch / self._epochs, f"epoch {epoch} of {self._epochs} done")
            self._show_speed(event.eta_s, event.images_per_s)
        elif isinstance(event, ev.RunFinished):
            self._runs_done += 1
            self._show_run(1.0, f"{event.status} after {event.epochs_run} epochs")
            self.time_label.setText("")
        elif isinstance(event, ev.ExperimentFinished):
            self.overall_bar.setValue(_SCALE if event.status == "completed" else self.overall_bar.value())
            self.run_label.setText(f"Experiment {event.status}")
            self.time_label.setText("")

    def _no_run(self) -> None:
        self.run_bar.setValue(0)
        self.run_bar.setFormat("No run in progress")

    def _show_run(self, fraction: float, detail: str) -> None:
        fraction = min(1.0, max(0.0, fraction))
        self.run_bar.setFormat("Run: %p %")
        self.run_bar.setValue(round(_SCALE * fraction))
        self.overall_bar.setValue(round(_SCALE * min(1.0, (self._runs_done + fraction) / self._total_runs)))
        self.run_label.setText(f"Run {self._run_number} of {self._total_runs} · batch {self._batch} · {detail}")

    def _show_speed(self, eta_s: float, images_per_s: float) -> None:
        self.time_label.setText(f"{format_duration(eta_s)} left")
        self.speed_label.setText(f"{images_per_s:,.0f} images/s" if math.isfinite(images_per_s) else "")


def _bar(text_format: str) -> QProgressBar:
    bar = QProgressBar()
    bar.setRange(0, _SCALE)
    bar.setFormat(text_format)
    bar.setMinimumWidth(120)
    bar.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    return bar
