"""BatchLab's main window: setup on the left, curves and results on the right, progress below.

Live and reopened experiments go through the same path: a record-shaped dict whose run
dicts feed the curves and the table (``show_record`` / ``engine.record.state.apply_event``).
"""

from __future__ import annotations

import copy
import functools
import html
from pathlib import Path
from typing import Any, Callable, Optional

from pyqtgraph.util.garbage_collector import GarbageCollector
from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine import events as ev
from engine.analysis.summary import load_probe, summarize
from engine.config import ConfigError, ExperimentConfig
from engine.data.demo import DEFAULT_PER_CLASS, DEMO_IMAGE_SIZE, demo_data_exists, generate_demo_data
from engine.record import store as rec
from engine.record.state import apply_event
from engine.record.runs import best_run
from engine.scale.cluster import run_cluster_chief
from engine.stop import StopToken
from gui import settings_file, settings_store
from gui.advice_panel import AdvicePanel
from gui.curves import PLOTS, CurvesView
from gui.data_panel import DataPanel, Scan
from gui.engine_worker import RunFunction, TaskWorker, TrainingWorker
from gui.evaluation_view import EvaluationView
from gui.export_dialog import ExportDialog, save_histories_csv_dialog, save_plot, save_plot_dialog
from gui.history_panel import HistoryPanel
from gui.log_pane import LogPane
from gui.predict_panel import PredictPanel
from gui.progress_panel import ProgressPanel
from gui.results_table import ResultsTable, SummaryLabel
from gui.settings_panel import SettingsPanel

NOTICE_STYLES = {
    "info": "background: #E8F1FA; color: #0B3D66; border: 1px solid #B9D3EA;",
    "warning": "background: #FFF4E0; color: #7A4100; border: 1px solid #F0C987;",
    "error": "background: #FDECEA; color: #8E1F14; border: 1px solid #F1B0A8;",
}


_collector: Optional[GarbageCollector] = None


def collect_garbage_in_gui_thread() -> None:
    """Run Python's cycle collector only from the GUI thread's event loop (pyqtgraph's remedy).

    Left automatic, it runs in whichever thread happens to allocate, e.g. the folder scan or the
    training thread, and destroying Qt objects there crashes the process (seen in the tests).
    """
    global _collector
    if _collector is None:
        _collector = GarbageCollector(interval=1.0)


ADVISOR_PLOTS = {"critical": "Steps vs samples to target", "noise_scale": "Gradient noise scale"}


class MainWindow(QMainWindow):
    """The whole application window; engine work runs in QThreads owned here."""

    def __init__(self, settings: QSettings, *, data_root: Path | str = "data",
                 checkpoints: Path | str = "checkpoints", run: Optional[RunFunction] = None,
                 scan: Optional[Scan] = None, demo_per_class: int = DEFAULT_PER_CLASS) -> None:
        super().__init__()
        collect_garbage_in_gui_thread()
        self.settings = settings
        self.data_root = Path(data_root)
        self.checkpoints = Path(checkpoints)
        self._run = run
        self._demo_per_class = demo_per_class
        self.worker: Optional[TrainingWorker] = None
        self.demo_worker: Optional[TaskWorker] = None
        self.record: Optional[dict[str, Any]] = None
        self.record_dir: Optional[Path] = None
        self._running_config: Optional[ExperimentConfig] = None
        self._close_pending = False
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
        self.notice = QLabel()
        self._build_actions()
        self._build_layout()

        self.data_panel.changed.connect(self._update_actions)
        self.data_panel.demo_requested.connect(self.use_demo_data)
        self.data_panel.folder_chosen.connect(self._abandon_demo)
        self.settings_panel.changed.connect(self._on_settings_edit)
        self.history.open_requested.connect(self.open_experiment)
        self.table.run_selected.connect(self._on_run_selected)
        self.views.currentChanged.connect(self._refresh_run_views)
        self._restore()

    # -- building ---------------------------------------------------------------------------------

    def _build_actions(self) -> None:
        self.start_action = QAction("Start", self, shortcut=QKeySequence("Ctrl+R"), triggered=self.start)
        self.start_action.setStatusTip("Train every batch size (Ctrl+R)")
        self.stop_action = QAction("Stop", self, shortcut=QKeySequence("Ctrl+."), triggered=self.stop)
        self.stop_action.setStatusTip("Stop after the current batch; finished epochs are kept (Ctrl+.)")
        self.open_action = QAction("Open experiment…", self, shortcut=QKeySequence("Ctrl+O"),
                                   triggered=self.open_experiment_dialog)
        self.open_action.setStatusTip("Show a past experiment's curves and results (Ctrl+O)")
        self.choose_data_action = QAction("Choose data folder…", self, shortcut=QKeySequence("Ctrl+Shift+O"),
                                          triggered=self.data_panel.choose_folder)
        self.reuse_action = QAction("Reuse its settings", self, triggered=self.reuse_settings)
        self.reuse_action.setStatusTip("Fill the setup with the settings and data folder of the experiment shown")
        self.quit_action = QAction("Quit", self, shortcut=QKeySequence("Ctrl+Q"), triggered=self.close)
        self.export_action = QAction("Export best model…", self, shortcut=QKeySequence("Ctrl+E"),
                                     triggered=self.export_selected)
        self.save_csv_action = QAction("Save histories as CSV…", self, triggered=self.save_histories_csv)
        self.save_csv_action.setStatusTip("One row per run and epoch, every recorded metric")
        self.save_plot_actions: dict[str, QAction] = {}
        titles = {**{key: title for key, (title, _label, _scale) in PLOTS.items()}, **ADVISOR_PLOTS}
        for key, title in titles.items():
            action = QAction(f"{title}…", self, triggered=self._save_plot_from_menu)
            action.setData(key)
            action.setStatusTip(f"Save the {title.lower()} plot as PNG or SVG")
            self.save_plot_actions[key] = action

        file_menu = self.menuBar().addMenu("&File")
        for action in (self.choose_data_action, self.open_action, self.reuse_action):
            file_menu.addAction(action)
        self.settings_actions = settings_file.add_actions(self, file_menu)  # Load / Save settings… (TOML)
        file_menu.addSeparator()
        file_menu.addAction(self.export_action)
        self.save_plot_menu = file_menu.addMenu("Save plot")
        self.save_plot_menu.addActions(list(self.save_plot_actions.values()))
        file_menu.addAction(self.save_csv_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        run_menu = self.menuBar().addMenu("&Run")
        run_menu.addAction(self.start_action)
        run_menu.addAction(self.stop_action)
        run_menu.addSeparator()
        run_menu.addAction(self.export_action)
        self.probe_action = QAction("Probe throughput…", self, triggered=self.open_probe)
        self.probe_action.setStatusTip("Train a few steps at growing batch sizes: images per second and memory, "
                                       "up to the largest batch that fits")
        tools_menu = self.menuBar().addMenu("&Tools")
        tools_menu.addAction(self.probe_action)

        toolbar = QToolBar("Main")
        toolbar.setObjectName("main_toolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for action in (self.start_action, self.stop_action, None, self.open_action, self.reuse_action, None,
                       self.export_action):
            toolbar.addSeparator() if action is None else toolbar.addAction(action)
        self.addToolBar(toolbar)
        start_button = toolbar.widgetForAction(self.start_action)
        start_button.setStyleSheet("QToolButton:enabled { font-weight: bold; color: #0B6E3B; }")
        start_button.setMinimumWidth(72)

    def _build_layout(self) -> None:
        data_box = QGroupBox("Data")
        QVBoxLayout(data_box).addWidget(self.data_panel)
        settings_box = QGroupBox("Settings")
        QVBoxLayout(settings_box).addWidget(self.settings_panel)
        setup = QWidget()
        setup_layout = QVBoxLayout(setup)
        setup_layout.addWidget(data_box)
        setup_layout.addWidget(settings_box)
        setup_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(setup)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(scroll, "Setup")
        self.side_tabs.addTab(self.history, "History")
        self.side_tabs.currentChanged.connect(self._on_side_tab)
        self.side_tabs.setMinimumWidth(330)

        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        dismiss = QToolButton()
        dismiss.setText("×")
        dismiss.setAutoRaise(True)
        dismiss.setToolTip("Dismiss")
        dismiss.clicked.connect(self.hide_notice)
        self.notice_bar = QFrame()
        self.notice_bar.setObjectName("notice")
        bar = QHBoxLayout(self.notice_bar)
        bar.setContentsMargins(8, 4, 4, 4)
        bar.addWidget(self.notice, 1)
        bar.addWidget(dismiss, 0, Qt.AlignmentFlag.AlignTop)
        self.notice_bar.hide()
        self.views = QTabWidget()
        self.views.addTab(self.curves, "Curves")
        self.views.addTab(self.evaluation_view, "Evaluation")
        self.views.addTab(self.predict_panel, "Try the model")
        self.views.addTab(self.advice_panel, "Advisor")
        self.views.setTabToolTip(1, "Confusion matrix, per-class precision/recall and mistakes of the selected run")
        self.views.setTabToolTip(2, "Drop images to classify them with the selected run's best checkpoint")
        self.views.setTabToolTip(3, "Which batch size to use and why: time to target, critical batch size, "
                                    "gradient noise scale")
        export_button = QToolButton()
        export_button.setDefaultAction(self.export_action)
        csv_button = QToolButton()
        csv_button.setDefaultAction(self.save_csv_action)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(export_button)
        buttons.addWidget(csv_button)
        buttons.addStretch(1)
        results = QWidget()
        results_layout = QVBoxLayout(results)
        results_layout.setContentsMargins(0, 0, 0, 0)
        results_layout.setSpacing(2)
        results_layout.addWidget(self.table, 1)
        results_layout.addWidget(self.summary)
        results_layout.addLayout(buttons)
        self.details = QTabWidget()
        self.details.addTab(results, "Results")
        self.details.addTab(self.log, "Log")
        self.right_split = QSplitter(Qt.Orientation.Vertical)
        self.right_split.addWidget(self.views)
        self.right_split.addWidget(self.details)
        self.right_split.setStretchFactor(0, 3)
        self.right_split.setStretchFactor(1, 1)
        self.right_split.setSizes([400, 230])
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.notice_bar)
        right_layout.addWidget(self.right_split, 1)

        self.main_split = QSplitter(Qt.Orientation.Horizontal)
        self.main_split.addWidget(self.side_tabs)
        self.main_split.addWidget(right)
        self.main_split.setStretchFactor(1, 1)
        self.main_split.setSizes([360, 1000])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 4, 6, 0)
        layout.addWidget(self.main_split, 1)
        layout.addWidget(self.progress)
        self.setCentralWidget(central)
        self.resize(1340, 720)

    # -- settings memory --------------------------------------------------------------------------

    def _restore(self) -> None:
        config = settings_store.load_config(self.settings)
        if config is not None:
            self.settings_panel.set_config(config)
        self.settings_panel.set_cluster(settings_store.load_cluster(self.settings))
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        for key, splitter in (("window/main_split", self.main_split), ("window/right_split", self.right_split)):
            state = self.settings.value(key)
            if isinstance(state, QByteArray):
                splitter.restoreState(state)
        x_axis = self.settings.value("plots/x_axis")
        if isinstance(x_axis, str):
            self.curves.set_x_axis(x_axis)
        self._on_settings_edit()
        folder = settings_store.load_data_dir(self.settings)
        if folder:
            self.data_panel.set_folder(folder)
        else:
            if config is None:  # first launch: a demo that trains in minutes, not the seed's 150 px
                self.settings_panel.image_size.setValue(DEMO_IMAGE_SIZE)
            self.use_demo_data()
        self._show_title()

    def save_settings(self) -> None:
        if not self.settings_panel.problems():
            settings_store.save_config(self.settings, self.settings_panel.config("", str(self.checkpoints)))
            settings_store.save_cluster(self.settings, self.settings_panel.cluster_addresses())
        if self.data_panel.folder():
            settings_store.save_data_dir(self.settings, self.data_panel.folder())
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/main_split", self.main_split.saveState())
        self.settings.setValue("window/right_split", self.right_split.saveState())
        self.settings.setValue("plots/x_axis", self.curves.x_axis())
        self.settings.sync()

    # -- data -------------------------------------------------------------------------------------

    def use_demo_data(self) -> None:
        """Point the data panel at the bundled demo set, drawing it first (in a thread) if needed."""
        if demo_data_exists(self.data_root):
            self.data_panel.set_folder(str((self.data_root / "shapes").resolve()))
            return
        if self.demo_worker is not None:
            return
        root, per_class = self.data_root, self._demo_per_class

        def draw(progress: Callable[[int, int], None], stop: StopToken) -> Path:
            def report(done: int, total: int) -> None:
                stop.raise_if_set()  # closing the window abandons the set; atomic_dir leaves nothing behind
                progress(done, total)
            return generate_demo_data(root, per_class=per_class, progress=report)

        worker = TaskWorker(draw)
        # Bound methods of this window, never lambdas: Qt then queues the calls to the GUI thread.
        worker.progress.connect(self._on_demo_progress)
        worker.succeeded.connect(self._on_demo_ready)
        worker.failed.connect(self._on_demo_failed)
        worker.finished.connect(self._on_demo_finished)
        self.demo_worker = worker
        self.data_panel.show_busy("Drawing the demo data set…", 0, 0)
        self.log.add("info", f"First launch: drawing the demo data set in {self.data_root.resolve()}")
        worker.start()

    def _abandon_demo(self, _folder: str) -> None:
        """The user chose a folder while the demo set was being drawn: their choice wins."""
        if self.demo_worker is not None:
            self.demo_worker.request_stop()

    def _demo_abandoned(self) -> bool:
        return self.demo_worker is None or self.demo_worker.stop_token.is_set()

    def _on_demo_progress(self, done: int, total: int) -> None:
        if not self._demo_abandoned():
            self.data_panel.show_busy("Drawing the demo data set…", done, total)

    def _on_demo_ready(self, folder: Path) -> None:
        if not self._demo_abandoned():
            self.data_panel.end_busy()
            self.data_panel.set_folder(str(Path(folder).resolve()))

    def _on_demo_failed(self, message: str) -> None:
        self.data_panel.end_busy()
        self.show_notice("error", f"The demo data set could not be made: {message}")

    def _on_demo_finished(self) -> None:
        if self.demo_worker is not None:
            self.demo_worker.wait()
            self.demo_worker = None
        self._update_actions()

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
        self.record, self.record_dir, self._running_config = None, None, config
        self.curves.set_runs([])
        self.table.set_runs([])
        self._refresh_analysis()
        self.progress.show_idle("Preparing: loading the images and TensorFlow…")
        self.log.add("info", f"Starting: batch sizes {', '.join(map(str, config.batch_sizes))} on {config.data_dir}")
        cluster = self.settings_panel.cluster_addresses()
        run = functools.partial(run_cluster_chief, cluster=cluster) if cluster else self._run
        worker = TrainingWorker(config, run=run)
        worker.event.connect(self._on_event)
        worker.failed.connect(self._on_failed)
        worker.finished.connect(self._on_worker_finished)
        self.worker = worker
        worker.start()
        self._update_actions()
        self._show_title()

    def stop(self) -> None:
        if self.worker is not None and not self.worker.stop_token.is_set():
            self.worker.request_stop()
            self.progress.run_label.setText("Stopping after the current batch…")
            self.log.add("info", "Stop requested: the current batch finishes, then the run is recorded as stopped.")
            self._update_actions()

    def _on_event(self, event: ev.Event) -> None:
        self.progress.on_event(event)
        if isinstance(event, ev.LogMessage):
            self.log.add(event.level, event.text)
            if event.level in ("warning", "error"):
                self.show_notice(event.level, event.text)
        elif isinstance(event, ev.ExperimentStarted):
            self.record, self.record_dir = copy.deepcopy(event.record), Path(event.experiment_dir)
            self.curves.set_runs(self.record["runs"])
            self.table.set_runs(self.record["runs"])
            self._show_title()
            self.log.add("info", f"Experiment {self.record['id']}: {event.total_runs} runs, "
                                 f"{event.train_samples} training and {event.val_samples} validation images, "
                                 f"{event.device}, {event.precision}")
        elif self.record is not None and not isinstance(event, ev.BatchProgress):
            run = apply_event(self.record, event)
            if run is not None:
                self.curves.update_run(run)
                self.table.refresh()
            if isinstance(event, ev.RunFinished):
                self._log_run_finished(event)
                self._update_actions()  # the run may now have a checkpoint to export, evaluate, try
                self._refresh_run_views()
                self._refresh_analysis()
            elif isinstance(event, ev.ExperimentFinished):
                self._on_experiment_finished(event)

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
        self.history.refresh()

    def _on_failed(self, message: str, details: str) -> None:
        self.show_notice("error", message)
        self.log.add("error", message + ("\n" + details if details else ""))
        self.progress.show_idle("Not started: " + message)

    def _on_worker_finished(self) -> None:
        if self.worker is not None:
            self.worker.wait()  # finished() fires just before the thread ends; make sure it has
            self.worker = None
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
        self.record, self.record_dir = record, folder
        self.curves.set_runs(record["runs"])
        self.table.set_runs(record["runs"])
        self.progress.show_record(record, opened=self.worker is None)
        self._update_actions()
        self._refresh_run_views()
        self._refresh_analysis()
        self._show_title()

    def reuse_settings(self) -> None:
        if not self.record:
            return
        config = ExperimentConfig.from_dict(self.record.get("config") or {})
        self.settings_panel.set_config(config)
        if config.data_dir:
            self.data_panel.set_folder(config.data_dir)
        self.side_tabs.setCurrentIndex(0)

    # -- analysis: fairness summary and advice ----------------------------------------------------

    def _refresh_analysis(self) -> None:
        """Summary under the table, time-to-target target, and the Advisor tab, from the record shown."""
        if self.record is None or not self.record["runs"]:
            self.summary.show_summary(None)
            self.table.set_target(None)
            self.advice_panel.clear()
            return
        try:
            summary = summarize(self.record, load_probe(self.record_dir) if self.record_dir else None)
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:  # a record from elsewhere may be odd
            self.log.add("error", f"Cannot analyse {self.record.get('id')}: {type(exc).__name__}: {exc}")
            return
        self.summary.show_summary(summary)
        self.table.set_target(summary.target_accuracy)
        self.advice_panel.show_summary(summary, self.record)

    def open_probe(self) -> None:
        """The throughput probe dialog, tied to the experiment shown (its probe.json feeds the advice)."""
        from gui.probe_dialog import ProbeDialog  # loaded on use: the window starts without it

        if self.probe_dialog is not None and self.probe_dialog.isVisible():
            self.probe_dialog.raise_()
            return
        folder = self.data_panel.folder()
        self.probe_dialog = ProbeDialog(folder, self.settings_panel.image_size_for(folder),
                                        str(self.record_dir) if self.record_dir else None, self)
        self.probe_dialog.probed.connect(self._on_probed)
        self.probe_dialog.open()

    def _on_probed(self, _result: Any) -> None:
        self._refresh_analysis()  # a new probe.json changes what the advice can say

    # -- the selected run: export, evaluation, trying the model -----------------------------------

    def _on_run_selected(self, run: Optional[dict[str, Any]]) -> None:
        self.curves.highlight(run["run_index"] if run else None)
        self._update_actions()
        self._refresh_run_views()

    def _focus_run(self) -> Optional[dict[str, Any]]:
        """The run the per-run views show: the one selected in the table, else the best one."""
        if self.record is None:
            return None
        return self.table.selected_run() or best_run(self.record["runs"])

    def _refresh_run_views(self, _tab: int = -1) -> None:
        run = self._focus_run()
        self._refresh_predict(run)
        if self.views.currentWidget() is self.evaluation_view:  # evaluating costs seconds: only when shown
            self._refresh_evaluation(run)

    def _refresh_evaluation(self, run: Optional[dict[str, Any]]) -> None:
        if self.record_dir is None or run is None:
            self._evaluated = None
            self.evaluation_view.show_message("Select a finished run in the results table to see how its best "
                                              "checkpoint does on the validation set.")
            return
        if not run.get("checkpoint") or run.get("status") in ("pending", "running"):
            self._evaluated = None
            self.evaluation_view.show_message(f"{_run_name(run, self.record)} has no finished checkpoint yet "
                                              f"({run.get('status')}); select a finished run.")
            return
        key = (str(self.record_dir), run["run_index"], run.get("status"), (run.get("best") or {}).get("epoch"))
        if key == self._evaluated:
            return
        try:  # the record on disk: the live one lacks the split digest that proves the validation set
            record = rec.load(self.record_dir)
        except rec.RecordError as exc:
            self._evaluated = None
            self.evaluation_view.show_message(str(exc))
            return
        on_disk = next((r for r in record["runs"] if r.get("run_index") == run["run_index"]), run)
        self._evaluated = key
        self.evaluation_view.show_run(self.record_dir, record, on_disk)

    def _refresh_predict(self, run: Optional[dict[str, Any]]) -> None:
        if self.record_dir is None or run is None or not run.get("checkpoint"):
            return
        try:
            checkpoint = rec.inside(self.record_dir, run["checkpoint"])
        except rec.RecordError as exc:
            self.log.add("error", str(exc))
            return
        self.predict_panel.set_model(checkpoint, label=f"best checkpoint of {_run_name(run, self.record)} "
                                                       f"({self.record.get('id')})")

    def export_selected(self) -> None:
        """Open the export dialog on the selected run (any format; it verifies what it wrote)."""
        run = self.table.selected_run()
        if self.record_dir is None or run is None or not run.get("checkpoint"):
            return
        if self.export_dialog is not None and self.export_dialog.job is not None:
            self.export_dialog.raise_()  # an export is still being written: never start a second one over it
            return
        if self.export_dialog is not None:
            self.export_dialog.deleteLater()
        self.export_dialog = ExportDialog(self.record_dir, self, batch_size=run["batch_size"],
                                          run_index=run["run_index"])
        self.export_dialog.exported.connect(self._on_exported)
        self.export_dialog.open()

    def _on_exported(self, result: Any) -> None:
        level = "info" if result.verification.matched else "warning"
        self.log.add(level, f"Exported to {result.target}: {result.verification.message()}")

    def _save_plot_from_menu(self) -> None:
        action = self.sender()
        if isinstance(action, QAction):
            self.save_plot(action.data())

    def save_plot(self, key: str, path: Optional[Path | str] = None) -> Optional[Path]:
        """Save one plot as PNG or SVG; asks where unless ``path`` is given."""
        plot = {**self.curves.plots, "critical": self.advice_panel.critical_plot,
                "noise_scale": self.advice_panel.noise_plot}[key]
        name = f"{self.record.get('id')}-{key}" if self.record else key
        if path is None:
            saved = save_plot_dialog(self, plot, name, self.record_dir)
        else:
            saved = save_plot(plot, path)
        if saved is not None:
            self.log.add("info", f"Saved the plot to {saved}")
            self.statusBar().showMessage(f"Saved {saved}", 5000)
        return saved

    def save_histories_csv(self) -> Optional[Path]:
        if self.record is None:
            return None
        saved = save_histories_csv_dialog(self, self.record, self.record_dir)
        if saved is not None:
            self.log.add("info", f"Saved the histories to {saved}")
            self.statusBar().showMessage(f"Saved {saved}", 5000)
        return saved

    # -- window chrome ----------------------------------------------------------------------------

    def _on_side_tab(self, index: int) -> None:
        if self.side_tabs.widget(index) is self.history:
            self.history.refresh()

    def show_notice(self, level: str, text: str) -> None:
        """A message above the plots until dismissed or replaced (errors never only go to the log)."""
        self.notice_bar.setStyleSheet(f"QFrame#notice {{ {NOTICE_STYLES.get(level, NOTICE_STYLES['info'])} }}"
                                      "QLabel { background: transparent; border: none; }")
        self.notice.setText(html.escape(text))
        self.notice_bar.show()

    def hide_notice(self) -> None:
        self.notice.clear()
        self.notice_bar.hide()

    def _on_settings_edit(self) -> None:
        self.data_panel.set_split(self.settings_panel.val_split_fraction(), self.settings_panel.seed.value())
        self._update_actions()

    def _update_actions(self) -> None:
        running = self.worker is not None
        self.settings_panel.set_locked(running)
        self.settings_panel.set_train_count(self.data_panel.train_count)
        problems = self.start_problems()
        self.start_action.setEnabled(not problems)
        self.start_action.setToolTip("Start training (Ctrl+R)" if not problems else
                                     "Start is disabled:\n" + "\n".join(problems))
        self.stop_action.setEnabled(running and not self.worker.stop_token.is_set())
        self.open_action.setEnabled(not running)
        self.reuse_action.setEnabled(not running and self.record is not None and self.record_dir is not None)
        selected = self.table.selected_run()
        can_export = self.record_dir is not None and selected is not None and bool(selected.get("checkpoint"))
        self.export_action.setEnabled(can_export)
        self.export_action.setToolTip("Export the selected run's best checkpoint (Ctrl+E)" if can_export else
                                      "Select a run with a saved checkpoint in the results table to export it")
        has_history = self.record is not None and any(r.get("history") for r in self.record["runs"])
        self.save_csv_action.setEnabled(has_history)
        for action in self.save_plot_actions.values():
            action.setEnabled(has_history)
        self.probe_action.setEnabled(not running and bool(self.data_panel.folder()))
        if problems and not running:
            self.statusBar().showMessage("Start is disabled: " + problems[0])
        else:
            self.statusBar().clearMessage()

    def _show_title(self) -> None:
        if self.record is None:
            name = "running…" if self.worker is not None else "new experiment"
        else:
            name = str(self.record.get("id"))
            if self.worker is not None:
                name += " (running)"
        self.setWindowTitle(f"BatchLab — {name}")

    def confirm_close(self) -> bool:
        """Ask before stopping a running experiment; tests replace this method."""
        answer = QMessageBox.question(
            self, "Training is running",
            "Stop the running experiment and close BatchLab?\n\nFinished epochs and checkpoints are kept; "
            "the current run is recorded as stopped.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event: QCloseEvent) -> None:
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

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _dropped_folder(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        folder = _dropped_folder(event)
        if folder is None:
            return
        event.acceptProposedAction()
        if (folder / rec.RECORD_NAME).is_file():
            self.open_experiment(folder)
        else:
            self.data_panel.set_folder(str(folder))
            self.side_tabs.setCurrentIndex(0)


def _run_name(run: dict[str, Any], record: Optional[dict[str, Any]]) -> str:
    """'batch size 32' (plus the repeat when the experiment repeats runs)."""
    repeats = len({r.get("repeat", 0) for r in (record or {}).get("runs", [])})
    repeat = f", repeat {run.get('repeat', 0) + 1}" if repeats > 1 else ""
    return f"batch size {run['batch_size']}{repeat}"


def _dropped_folder(event: QDragEnterEvent | QDropEvent) -> Optional[Path]:
    """The first local folder among the dropped items (files and remote URLs are ignored)."""
    for url in event.mimeData().urls() if event.mimeData().hasUrls() else []:
        path = Path(url.toLocalFile()) if url.isLocalFile() else None
        if path is not None and path.is_dir():
            return path
    return None
