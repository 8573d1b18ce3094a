"""BatchLab's main window: the composition of its parts.

Each responsibility lives in its own module: the session (start, stop, engine events, the
experiments shown: gui/session.py), the per-run views and exports (gui/run_views.py), the
demo data on first launch (gui/demo_setup.py), actions and menus (gui/window_actions.py),
the layout and window size (gui/window_layout.py) and notices (gui/notices.py). This module
builds the widgets, wires them, and keeps what is remembered between launches.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

from pyqtgraph.util.garbage_collector import GarbageCollector
from PySide6.QtCore import QByteArray, QSettings, QTimer
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QResizeEvent, QShowEvent
from PySide6.QtWidgets import QDialog, QLabel, QMainWindow, QMessageBox

from engine.config import ExperimentConfig
from engine.data.demo import DEFAULT_PER_CLASS
from engine.record import store as rec
from gui import settings_store, window_layout
from gui.advice_panel import AdvicePanel
from gui.curves import CurvesView
from gui.data_panel import DataPanel, Scan
from gui.demo_setup import DemoDataMixin
from gui.engine_worker import RunFunction, TaskWorker, TrainingWorker
from gui.evaluation_view import EvaluationView
from gui.export_dialog import ExportDialog
from gui.history_panel import HistoryPanel
from gui.log_pane import LogPane
from gui.notices import NoticeBar
from gui.predict_panel import PredictPanel
from gui.progress_panel import ProgressPanel
from gui.results_table import ResultsTable, SummaryLabel
from gui.run_views import RunViewsMixin
from gui.session import SessionMixin
from gui.settings_panel import SettingsPanel
from gui.window_actions import build_actions, update_actions

_collector: Optional[GarbageCollector] = None
# How long a thread holding Python's lock keeps it once another thread asks (CPython's default: 5 ms).
# Qt calls every Python override (each plot item's paint, boundingRect...) with the lock, so one repaint
# while training runs Python code (an epoch's end, a checkpoint) waited up to 5 ms per call: hundreds of
# ms per repaint. 0.5 ms makes such hand-overs ten times shorter; the training thread is asked to give
# the lock up only while the window has work to do.
SWITCH_INTERVAL_S = 0.0005


def prepare_python_for_the_window() -> None:
    """Run Python's cycle collector only from the GUI thread's event loop (pyqtgraph's remedy), and
    shorten the lock's switch interval (SWITCH_INTERVAL_S).

    Left automatic, the collector runs in whichever thread happens to allocate, e.g. the folder scan
    or the training thread, and destroying Qt objects there crashes the process (seen in the tests).
    """
    global _collector
    if _collector is None:
        _collector = GarbageCollector(interval=1.0)
        sys.setswitchinterval(SWITCH_INTERVAL_S)


class MainWindow(SessionMixin, RunViewsMixin, DemoDataMixin, QMainWindow):
    """The whole application window; engine work runs in QThreads owned here."""

    def __init__(self, settings: QSettings, *, data_root: Path | str = "data",
                 checkpoints: Path | str = "checkpoints", run: Optional[RunFunction] = None,
                 scan: Optional[Scan] = None, demo_per_class: int = DEFAULT_PER_CLASS) -> None:
        super().__init__()
        prepare_python_for_the_window()
        self.settings = settings
        self.data_root = Path(data_root)
        self.checkpoints = Path(checkpoints)
        self._run = run
        self._demo_per_class = demo_per_class
        self.worker: Optional[TrainingWorker] = None
        self.demo_worker: Optional[TaskWorker] = None
        self.record: Optional[dict[str, Any]] = None
        self.record_dir: Optional[Path] = None
        self.overlay_folders: list[str] = []
        self._running_config: Optional[ExperimentConfig] = None
        self._close_pending = False
        self._collapsed_for_run = False
        self.export_dialog: Optional[ExportDialog] = None
        self._evaluated: Optional[tuple] = None  # what the Evaluation tab shows, to evaluate each run once

        self.setAcceptDrops(True)
        self.data_panel = DataPanel(scan)
        self.settings_panel = SettingsPanel()
        self.history = HistoryPanel(self.checkpoints)
        self.curves = CurvesView()
        self.table = ResultsTable()
        self.summary = SummaryLabel()
        self.evaluation_view = EvaluationView()
        self.predict_panel = PredictPanel()
        self.advice_panel = AdvicePanel()
        self.probe_dialog: Optional[QDialog] = None
        self.log = LogPane()
        self.progress = ProgressPanel()
        self.notice_bar = NoticeBar()
        self.notice: QLabel = self.notice_bar.label
        build_actions(self)
        window_layout.build_layout(self)
        self._fit_timer = QTimer(self, singleShot=True, interval=0, timeout=lambda: self._fit_results_pane())
        self._pending_progress: Optional[Any] = None  # the latest BatchProgress not drawn yet
        self._progress_timer = QTimer(self, singleShot=True, timeout=self._draw_progress)

        self.data_panel.changed.connect(self._update_actions)
        self.data_panel.demo_requested.connect(self.use_demo_data)
        self.data_panel.folder_chosen.connect(self._abandon_demo)
        self.settings_panel.changed.connect(self._on_settings_edit)
        self.history.open_requested.connect(self.open_experiment)
        self.history.overlay_requested.connect(self.overlay_experiments)
        self.table.run_selected.connect(self._on_run_selected)
        self.views.currentChanged.connect(self._refresh_run_views)
        self.side_tabs.currentChanged.connect(self._on_side_tab)
        self._restore()

    # -- settings memory --------------------------------------------------------------------------

    def _restore(self) -> None:
        config = settings_store.load_config(self.settings)
        if config is not None:
            self.settings_panel.set_config(config)
        self.settings_panel.set_cluster(settings_store.load_cluster(self.settings))
        geometry = self.settings.value("window/geometry")
        restored = isinstance(geometry, QByteArray) and self.restoreGeometry(geometry)
        window_layout.fit_to_screen(self, restored)
        state = self.settings.value("window/main_split")
        if isinstance(state, QByteArray):
            self.main_split.restoreState(state)
        self.setup_action.setChecked(self.main_split.sizes()[0] > 0 or not isinstance(state, QByteArray))
        x_axis = self.settings.value("plots/x_axis")
        if isinstance(x_axis, str):
            self.curves.set_x_axis(x_axis)
        options = self.settings.value("plots/options")
        if isinstance(options, str):
            try:
                self.curves.restore_options(json.loads(options))
            except (ValueError, TypeError, AttributeError):
                pass  # an unreadable entry: the defaults
        self._on_settings_edit()
        folder = settings_store.load_data_dir(self.settings)
        if folder:
            self.data_panel.set_folder(folder)
        else:
            self.use_demo_data()
        self.reopen_last()
        self._show_title()

    def save_settings(self) -> None:
        if not self.settings_panel.problems():
            settings_store.save_config(self.settings, self.settings_panel.config("", str(self.checkpoints)))
            settings_store.save_cluster(self.settings, self.settings_panel.cluster_addresses())
        if self.data_panel.folder():
            settings_store.save_data_dir(self.settings, self.data_panel.folder())
        self.settings.setValue("window/geometry", self.saveGeometry())
        if not self._collapsed_for_run:
            self.settings.setValue("window/main_split", self.main_split.saveState())
        self.settings.setValue("plots/x_axis", self.curves.x_axis())
        self.settings.setValue("plots/options", json.dumps(self.curves.options_state()))
        self.settings.sync()

    # -- window chrome ----------------------------------------------------------------------------

    def set_setup_visible(self, visible: bool) -> None:
        """Show or collapse the setup/history pane (View > Setup pane, F9)."""
        window_layout.set_side_visible(self, visible)

    def _fit_results_pane(self, rows: Optional[int] = None) -> None:
        window_layout.fit_results_pane(self, rows)

    def _on_side_tab(self, index: int) -> None:
        if self.side_tabs.widget(index) is self.history:
            self.history.refresh()

    def show_notice(self, level: str, text: str, action: Any = None) -> None:
        """A message above the plots until dismissed or replaced (errors never only go to the log)."""
        self.notice_bar.show_notice(level, text, action)

    def hide_notice(self) -> None:
        self.notice_bar.hide_notice()

    def _on_settings_edit(self) -> None:
        self.data_panel.set_split(self.settings_panel.val_split_fraction(), self.settings_panel.seed.value())
        self._update_actions()

    def _update_actions(self) -> None:
        update_actions(self)

    def _show_title(self) -> None:
        if self.overlay_folders:
            name = f"overlay of {len(self.overlay_folders)} experiments"
        elif self.record is None:
            name = "running…" if self.worker is not None else "new experiment"
        else:
            name = str(self.record.get("id"))
            if self.worker is not None:
                name += " (running)"
        self.setWindowTitle(f"BatchLab — {name}")

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        window_layout.keep_on_screen(self)  # the frame's size is known only now

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit_timer.start()  # once the splitters have their new sizes

    def confirm_close(self) -> bool:
        """Ask before stopping a running experiment; tests replace this method."""
        answer = QMessageBox.question(
            self, "Training is running",
            "Stop the running experiment and close BatchLab?\n\nFinished epochs and checkpoints are kept; "
            "the current run is recorded as stopped.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if self.worker is not None:
            if self._close_pending or self.confirm_close():
                # Close once the worker has finished: the window stays responsive meanwhile.
                self._close_pending = True
                self.stop()
                self.progress.run_label.setText("Stopping, then closing…")
            event.ignore()
            return
        self.save_settings()
        self.data_panel.wait_idle()
        if self.demo_worker is not None:
            self.demo_worker.request_stop()
            self.demo_worker.wait()
        if self.probe_dialog is not None and self.probe_dialog.isVisible():
            self.probe_dialog.reject()  # stops a running probe and waits for its thread
        for job in (self.evaluation_view.job, self.predict_panel.job,
                    self.export_dialog.job if self.export_dialog is not None else None):
            if job is not None:  # a thread must never outlive its window
                job.wait()
        event.accept()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt's name
        if _dropped_folder(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt's name
        folder = _dropped_folder(event)
        if folder is None:
            return
        event.acceptProposedAction()
        if (folder / rec.RECORD_NAME).is_file():
            self.open_experiment(folder)
        else:
            self.data_panel.set_folder(str(folder))
            self.setup_action.setChecked(True)
            self.side_tabs.setCurrentIndex(0)


def _dropped_folder(event: QDragEnterEvent | QDropEvent) -> Optional[Path]:
    """The first local folder among the dropped items (files and remote URLs are ignored)."""
    for url in event.mimeData().urls() if event.mimeData().hasUrls() else []:
        path = Path(url.toLocalFile()) if url.isLocalFile() else None
        if path is not None and path.is_dir():
            return path
    return None
