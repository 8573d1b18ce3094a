"""The window's session: starting and stopping training, folding the engine's events into the record
shown, and showing experiments from disk (one, or several overlaid).

Live and reopened experiments go through the same path: a record-shaped dict whose run dicts
feed the curves and the table (``show_record`` / ``engine.record.state.apply_event``).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFileDialog

from engine import events as ev
from engine.config import ConfigError, ExperimentConfig
from engine.record import store as rec
from engine.record.state import apply_event
from engine.scale.cluster import run_cluster_chief
from gui.engine_worker import TrainingWorker
from gui.window_layout import NARROW

LAST_EXPERIMENT_KEY = "experiment/last"
START_DELAY_MS = 40
PROGRESS_INTERVAL_MS = 500  # batch progress is drawn at most twice a second: each draw redraws two plots


def tuned_lrs(record: dict[str, Any]) -> dict[int, float]:
    """The learning rate the study chose for each batch size (the record's tuning answer; empty until then)."""
    best = (record.get("tuning") or {}).get("best") or {}
    return {int(size): answer["lr"] for size, answer in best.items()
            if isinstance(answer, dict) and isinstance(answer.get("lr"), (int, float))}


def planned_trials(config: ExperimentConfig) -> int:
    """How many trials (rows of the table) an experiment with ``config`` has."""
    rates = len(config.lrs) if config.lrs else max(1, config.lr_grid)
    return len(config.batch_sizes) * rates * max(1, config.repeats)


class SessionMixin:
    """MainWindow's running and shown experiments (its attributes: worker, record, record_dir...)."""

    # -- running ----------------------------------------------------------------------------------

    def start_problems(self) -> list[str]:
        """Everything that keeps Start disabled, in words."""
        if self.worker is not None:
            return ["An experiment is running."]
        problems = list(self.settings_panel.problems())
        data_problem = self.data_panel.blocking_problem()
        if data_problem:
            problems.insert(0, data_problem)
        return problems

    def start(self) -> None:
        if self.start_problems():
            return
        try:
            config = self.settings_panel.config(self.data_panel.folder(), str(self.checkpoints)).validate()
        except ConfigError as exc:
            self.show_notice("error", str(exc))
            return
        self.save_settings()
        self.hide_notice()
        self.overlay_folders = []
        self.record, self.record_dir, self._running_config = None, None, config
        self.curves.set_runs([])
        self.curves.set_target(None)
        self.table.set_runs([])
        self._refresh_analysis()
        self.progress.show_idle("Preparing: loading the images…")
        self.progress.idle = False
        self.log.add("info", f"Starting: batch sizes {', '.join(map(str, config.batch_sizes))} on {config.data_dir}")
        if self.width() < NARROW and self.setup_action.isChecked():  # locked settings need no room while training
            self._collapsed_for_run = True
            self.setup_action.setChecked(False)
        self.views.setCurrentWidget(self.curves)
        cluster = self.settings_panel.cluster_addresses()
        run = functools.partial(run_cluster_chief, cluster=cluster) if cluster else self._run
        worker = TrainingWorker(config, run=run)
        worker.event.connect(self._on_event)
        worker.failed.connect(self._on_failed)
        worker.finished.connect(self._on_worker_finished)
        self.worker = worker
        self._update_actions()
        self._show_title()
        self._fit_results_pane(planned_trials(config))
        # The window redraws itself first, then training starts: a redraw while the training thread
        # loads the data would wait on it for Python's lock at every plot item's paint.
        QTimer.singleShot(START_DELAY_MS, worker.start)

    def stop(self) -> None:
        if self.worker is not None and not self.worker.stop_token.is_set():
            self.worker.request_stop()
            self.progress.run_label.setText("Stopping after the current batch…")
            self.log.add("info", "Stop requested: the current batch finishes, then the run is recorded as stopped.")
            self._update_actions()

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.ExperimentFinished):  # its summary replaces the progress strip's last words
            self.progress.on_event(event, self.record)
        if isinstance(event, ev.LogMessage):
            self.log.add(event.level, event.text)
            if event.level in ("warning", "error"):
                self.show_notice(event.level, event.text)
        elif isinstance(event, ev.ExperimentStarted):
            self.record, self.record_dir = copy.deepcopy(event.record), Path(event.experiment_dir)
            self.curves.set_runs(self.record["runs"])
            # The table in the next turn of the event loop: two short pauses instead of one long one,
            # while training builds its model (and competes for Python's lock) right after this event.
            QTimer.singleShot(0, self._show_live_table)
            self._show_title()
            self.log.add("info", f"Experiment {self.record['id']}: {event.total_runs} runs, "
                                 f"{event.train_samples} training and {event.val_samples} validation images, "
                                 f"{event.device}, {event.precision}")
        elif isinstance(event, ev.BatchProgress):
            self._pending_progress = event  # drawn by _draw_progress, at most every PROGRESS_INTERVAL_MS
            if not self._progress_timer.isActive():
                self._progress_timer.start(PROGRESS_INTERVAL_MS)
            return
        elif self.record is not None:
            if isinstance(event, (ev.EpochEnded, ev.RunPaused, ev.RunFinished)):
                self._pending_progress = None  # its epoch is over: the point replaces the provisional line
            run = apply_event(self.record, event)
            if run is not None:
                self.curves.update_run(run)
                self.table.refresh()
            self.curves.set_target(self.record.get("target_accuracy"))
            if isinstance(event, ev.RunFinished):
                self._log_run_finished(event)
                self._update_actions()  # the run may now have a checkpoint to export, evaluate, try
                self._refresh_run_views()
                self._refresh_analysis()
            elif isinstance(event, ev.ExperimentFinished):
                self._on_experiment_finished(event)
        if not isinstance(event, ev.ExperimentFinished):  # after folding: the time left counts this event
            self.progress.on_event(event, self.record)

    def _show_live_table(self) -> None:
        if self.record is not None and self.worker is not None:
            self.table.set_runs(self.record["runs"])
            self._fit_results_pane()

    def _draw_progress(self) -> None:
        """The latest batch progress: the provisional line in the plots and the progress strip."""
        event, self._pending_progress = self._pending_progress, None
        if event is None or self.worker is None:
            return
        self.curves.show_progress(event.run_index, event.epoch, event.step, event.steps_per_epoch, event.loss,
                                  event.accuracy, event.elapsed_s)
        self.progress.on_event(event, self.record)

    def _log_run_finished(self, event: ev.RunFinished) -> None:
        best = event.best or {}
        summary = (f"best {100 * best['val_accuracy']:.1f} % at epoch {best['epoch']}"
                   if isinstance(best.get("val_accuracy"), (int, float)) else "no validated epoch")
        if event.status == "failed":  # the engine has logged the error itself
            self.show_notice("error", f"Batch size {event.batch_size} failed: {event.error} (the other runs go on)")
        else:
            self.log.add("info", f"Batch size {event.batch_size} {event.status} after {event.epochs_run} epochs, "
                                 f"{summary}")

    def _on_experiment_finished(self, event: ev.ExperimentFinished) -> None:
        self.log.add("info", f"Experiment {event.status}: {event.experiment_dir}")
        try:  # show exactly what the record on disk says, as reopening it later would
            self.show_record(rec.load(event.experiment_dir), Path(event.experiment_dir))
        except rec.RecordError as exc:
            self.show_notice("error", str(exc))
        if event.status == "stopped":
            self.show_notice("info", "Experiment stopped. Finished epochs are kept; reopen it from the History tab.")
        elif event.status == "failed":
            self.show_notice("error", "Every run failed; see the status column (hover) and the log.")
        if self.history.isVisible():  # else it refreshes when its tab is shown: reading every record takes time
            self.history.refresh()

    def _on_failed(self, message: str, details: str) -> None:
        self.show_notice("error", message)
        self.log.add("error", message + ("\n" + details if details else ""))
        self.progress.show_idle("Not started: " + message)

    def _on_worker_finished(self) -> None:
        if self.worker is not None:
            self.worker.wait()  # finished() fires just before the thread ends; make sure it has
            self.worker = None
        if self._collapsed_for_run:
            self._collapsed_for_run = False
            self.setup_action.setChecked(True)
        if self.record is None:
            self.progress.idle = True
        self._update_actions()
        self._show_title()
        if self._close_pending:
            self.close()

    # -- experiments on disk ----------------------------------------------------------------------

    def open_experiment_dialog(self) -> None:
        start = str(self.checkpoints if self.checkpoints.is_dir() else Path.cwd())
        folder = QFileDialog.getExistingDirectory(self, "Open an experiment folder", start)
        if folder:
            self.open_experiment(folder)

    def open_experiment(self, folder: str | Path) -> bool:
        """Show a past (or interrupted) experiment exactly as it was recorded."""
        if self.worker is not None:
            self.show_notice("warning", "Stop the running experiment before opening another one.")
            return False
        try:
            record = rec.load(folder)
        except rec.RecordError as exc:
            self.show_notice("error", str(exc))
            self.log.add("error", str(exc))
            return False
        self.show_record(record, Path(folder))
        self.hide_notice()
        if record.get("status") == "interrupted":
            self.show_notice("warning", f"{record.get('id')} was interrupted (BatchLab closed or crashed while "
                                        "it ran); it shows the epochs recorded until then.")
        self.log.add("info", f"Opened {folder}")
        return True

    def show_record(self, record: dict[str, Any], folder: Optional[Path]) -> None:
        """Draw a record (live or from disk) with the same views."""
        self.record, self.record_dir, self.overlay_folders = record, folder, []
        if folder is not None:
            self.settings.setValue(LAST_EXPERIMENT_KEY, str(folder))
        self.curves.set_runs(record["runs"], tuned_lrs(record))
        self.curves.set_target(record.get("target_accuracy"))
        self.table.set_runs(record["runs"])
        self.progress.show_record(record, opened=self.worker is None)
        self._fit_results_pane()
        self._update_actions()
        self._refresh_run_views()
        self._refresh_analysis()
        self._show_title()

    def overlay_experiments(self, folders: list[str]) -> bool:
        """Draw the runs of several experiments on one set of plots, each in its own line style; the
        table, advice and exports stay with the first one. The notice offers the way back."""
        if self.worker is not None:
            self.show_notice("warning", "Stop the running experiment before overlaying others.")
            return False
        records = []
        for folder in folders:
            try:
                records.append((Path(folder), rec.load(folder)))
            except rec.RecordError as exc:
                self.show_notice("error", f"Cannot overlay: {exc}")
                return False
        first_dir, first = records[0]
        self.show_record(first, first_dir)
        self.overlay_folders = [str(folder) for folder, _record in records]
        self.curves.set_overlay([(str(record.get("id") or folder.name), record["runs"], tuned_lrs(record))
                                 for folder, record in records])
        styles = ", ".join(f"{name} {style}" for name, style in self.curves.overlaid())
        self.show_notice("info", f"Overlay of {len(records)} experiments: {styles}. Table, advice and export: "
                                 f"{first.get('id')}.", ("Show it alone", lambda: self.open_experiment(first_dir)))
        self.log.add("info", "Overlaid " + ", ".join(self.overlay_folders))
        self._update_actions()
        self._show_title()
        return True

    def reopen_last(self) -> None:
        """Show the experiment shown when BatchLab last closed; if it no longer loads, start fresh and say so."""
        folder = self.settings.value(LAST_EXPERIMENT_KEY)
        if not isinstance(folder, str) or not folder:
            return
        try:
            record = rec.load(folder)
        except rec.RecordError as exc:
            self.settings.remove(LAST_EXPERIMENT_KEY)
            self.show_notice("info", f"The last experiment could not be reopened ({exc}); starting fresh.")
            return
        self.show_record(record, Path(folder))

    def reuse_settings(self) -> None:
        if not self.record:
            return
        config = ExperimentConfig.from_dict(self.record.get("config") or {})
        self.settings_panel.set_config(config)
        if config.data_dir:
            self.data_panel.set_folder(config.data_dir)
        self.setup_action.setChecked(True)
        self.side_tabs.setCurrentIndex(0)
