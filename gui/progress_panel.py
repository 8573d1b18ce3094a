"""The always-visible progress strip: whole experiment, current run, time left, throughput."""

from __future__ import annotations

import math
from typing import Any, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QSizePolicy, QWidget

from engine import events as ev

_SCALE = 1000  # progress bars are integer; this gives 0.1 % resolution
DEVICE_WIDTH = 260  # px: a long CPU model name must not squeeze the progress bars
FINISHED = ("completed", "stopped", "failed")


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


def experiment_seconds_left(record: dict[str, Any], running_fraction: float = 0.0) -> Optional[float]:
    """About how long the rest of the experiment takes: the epochs still planned for every trial not
    finished (with successive halving, the share of each rung's trials expected to go on), times the
    seconds per epoch measured at that batch size (or at the nearest measured one). None until an
    epoch has been timed. ``running_fraction``: how much of the running epoch is done."""
    runs = record.get("runs") or []
    seconds: dict[int, list[float]] = {}
    for run in runs:
        for entry in run.get("history") or []:
            if _positive(entry.get("seconds")):
                seconds.setdefault(run["batch_size"], []).append(float(entry["seconds"]))
    if not seconds:
        return None
    per_epoch = {size: sum(values) / len(values) for size, values in seconds.items()}
    tuning = record.get("tuning") or {}
    total = 0.0
    for size in dict.fromkeys(r["batch_size"] for r in runs):
        trials = [r for r in runs if r["batch_size"] == size]
        rate = per_epoch.get(size) or per_epoch[min(per_epoch, key=lambda known: abs(math.log(known / size)))]
        total += rate * _epochs_left(trials, tuning, size)
    running = any(r.get("status") == "running" for r in runs)
    return max(0.0, total - (running_fraction * min(per_epoch.values()) if running else 0.0))


def _epochs_left(trials: list[dict[str, Any]], tuning: dict[str, Any], size: int) -> float:
    done = sum(r.get("epochs_run") or 0 for r in trials)
    ends = (tuning.get("rungs") or {}).get(str(size)) or []
    if tuning.get("method") == "halving" and len(ends) > 1 and tuning.get("eta"):
        alive, planned, previous = float(len(trials)), 0.0, 0
        for end in ends:  # every trial trains rung 0; the best 1/eta of them each later rung
            planned += alive * (end - previous)
            alive, previous = math.ceil(alive / tuning["eta"]), end
        finished = [r for r in trials if r.get("status") in FINISHED]
        if len(finished) == len(trials):
            return 0.0
        return max(0.0, planned - done)
    return float(sum(max(0, (r.get("epochs_planned") or 0) - (r.get("epochs_run") or 0))
                     for r in trials if r.get("status") not in FINISHED))


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


class ProgressPanel(QWidget):
    """Driven by engine events while training; shows a summary for an experiment opened from disk,
    and whether Start can go (and why not) when nothing runs."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.overall_bar = _bar("Experiment: %p %")
        self.run_bar = _bar("No run in progress")
        self.run_label = ElidedLabel()
        self.time_label = QLabel()
        self.speed_label = QLabel()
        self.device_label = QLabel()
        self.device_label.setStyleSheet("color: #444;")
        for label, tip in ((self.run_label, "The run now training"),
                           (self.time_label, "Time left in the whole experiment (the epochs still planned at the "
                                             "seconds per epoch measured so far; early stopping can end it sooner) "
                                             "and in the current run"),
                           (self.speed_label, "Training throughput of the current run")):
            label.setToolTip(tip)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 2, 8, 2)
        layout.addWidget(self.overall_bar, 2)
        layout.addWidget(self.run_label, 4)
        layout.addWidget(self.run_bar, 2)
        layout.addWidget(self.time_label)
        layout.addWidget(self.speed_label)
        layout.addWidget(self.device_label)
        self._total_runs = 1
        self._runs_done = 0
        self._epochs = 1
        self._batch = 0
        self._run_number = 0
        self._record: Optional[dict[str, Any]] = None
        self._run_left: Optional[float] = None
        self.idle = True
        self.show_idle("")

    def show_idle(self, text: str) -> None:
        self.idle = True
        self.overall_bar.setValue(0)
        self._no_run()
        self.run_label.setText(text)
        self.time_label.setText("")
        self.speed_label.setText("")
        self.show_device(None, None)

    def show_ready(self, problems: list[str]) -> None:
        """Nothing runs: "Ready", or why Start is disabled (every problem, in the tooltip too)."""
        if not self.idle:
            return
        if not problems:
            self.run_label.setText("Ready: press Start (Ctrl+R)")
            self.run_label.setToolTip("Start trains every batch size with the settings on the left")
        else:
            count = f"{len(problems)} problems: " if len(problems) > 1 else ""
            self.run_label.setText("Not ready, " + count + "; ".join(problems))
            self.run_label.setToolTip("Start is disabled:\n" + "\n".join(problems))

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
        self.idle = False
        runs = record.get("runs") or []
        done = sum(r.get("status") in FINISHED for r in runs)
        self.overall_bar.setValue(round(_SCALE * done / max(1, len(runs))))
        self._no_run()
        verb = f"Opened {record.get('id', 'experiment')}" if opened else "Experiment"
        self.run_label.setText(f"{verb}: {record.get('status', '?')}, {done} of {len(runs)} runs finished")
        self.run_label.setToolTip(self.run_label.text())
        self.time_label.setText("")
        self.speed_label.setText("")
        environment = record.get("environment") or {}
        self.show_device(environment.get("device"), environment.get("precision"))

    def on_event(self, event: ev.Event, record: Optional[dict[str, Any]] = None) -> None:
        """Follow an event; ``record`` (the window's copy, the event already folded in) gives the time left."""
        self._record = record if record is not None else self._record
        if isinstance(event, ev.ExperimentStarted):
            self._total_runs, self._runs_done = max(1, event.total_runs), 0
            self.show_idle(f"Starting {event.total_runs} runs")
            self.idle = False
            self.show_device(event.device, event.precision)
        elif isinstance(event, ev.RunStarted):
            self._epochs, self._batch, self._run_number = max(1, event.epochs), event.batch_size, event.run_index + 1
            self._run_left = None
            self._show_run(event.first_epoch / self._epochs, f"epoch {event.first_epoch + 1} of {event.epochs}")
        elif isinstance(event, ev.BatchProgress):
            within = event.step / max(1, event.steps_per_epoch)
            self._show_run((event.epoch - 1 + within) / self._epochs,
                           f"epoch {event.epoch} of {self._epochs} · step {event.step}/{event.steps_per_epoch}")
            self._show_speed(event.eta_s, event.images_per_s, within)
        elif isinstance(event, ev.EpochEnded):
            epoch = event.entry.get("epoch", 0)
            self._show_run(epoch / self._epochs, f"epoch {epoch} of {self._epochs} done")
            self._show_speed(event.eta_s, event.images_per_s, 0.0)
        elif isinstance(event, (ev.RunFinished, ev.RunPaused)):
            if isinstance(event, ev.RunFinished):
                self._runs_done += 1
                self._show_run(1.0, f"{event.status} after {event.epochs_run} epochs")
            self._show_speed(0.0, math.nan, 0.0)
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
        done = self._finished_share()
        overall = done if done is not None else (self._runs_done + fraction) / self._total_runs
        self.overall_bar.setValue(round(_SCALE * min(1.0, overall)))
        self.run_label.setText(f"Run {self._run_number} of {self._total_runs} · batch {self._batch} · {detail}")
        self.run_label.setToolTip(self.run_label.text())

    def _finished_share(self) -> Optional[float]:
        """Share of the experiment's planned epochs done (None without a record)."""
        runs = (self._record or {}).get("runs") or []
        planned = sum(max(r.get("epochs_planned") or 0, r.get("epochs_run") or 0) for r in runs)
        if not planned:
            return None
        done = sum((r.get("epochs_planned") or r.get("epochs_run") or 0) if r.get("status") in FINISHED
                   else (r.get("epochs_run") or 0) for r in runs)
        return done / planned

    def _show_speed(self, eta_s: float, images_per_s: float, within_epoch: float) -> None:
        left = experiment_seconds_left(self._record, within_epoch) if self._record else None
        whole = f"{format_duration(left)} left" if left is not None else "timing the first epoch…"
        run = f" (run: {format_duration(eta_s)})" if eta_s and math.isfinite(eta_s) and eta_s > 0 else ""
        self.time_label.setText(whole + run)
        self.speed_label.setText(f"{images_per_s:,.0f} images/s" if math.isfinite(images_per_s) else "")


class ElidedLabel(QLabel):
    """A one-line label that gives up width gracefully: the text is cut with … and whole in the tooltip."""

    def __init__(self) -> None:
        super().__init__()
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(80)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        self._full = text
        self._elide()

    def text(self) -> str:
        return self._full

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        super().setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(40, self.width())))


def _bar(text_format: str) -> QProgressBar:
    bar = QProgressBar()
    bar.setRange(0, _SCALE)
    bar.setFormat(text_format)
    bar.setMinimumWidth(110)
    bar.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    return bar
