"""The data panel: pick an image folder, scan it off the GUI thread, and show what was found.

Problems that would stop training (an unreadable folder, a class too small for the
validation split) are shown here in words; the window keeps Start disabled meanwhile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.data.dataset import scan_dataset
from engine.data.scan import DatasetError, DatasetReport
from engine.data.split import SplitError, stratified_split
from engine.stop import StopToken
from gui.engine_worker import TaskWorker

ERROR_STYLE = "color: #C0392B;"
Scan = Callable[..., DatasetReport]  # scan_dataset(root, progress=..., stop=...)


class DataPanel(QWidget):
    """Folder chooser plus the dataset report; ``changed`` fires when the report or its problem changes."""

    changed = Signal()
    demo_requested = Signal()
    folder_chosen = Signal(str)

    def __init__(self, scan: Optional[Scan] = None, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._scan = scan or scan_dataset
        self._workers: list[TaskWorker] = []  # kept until finished: a QThread must not die while running
        self._generation = 0
        self._folder = ""
        self.report: Optional[DatasetReport] = None
        self.scan_error: Optional[str] = None
        self.split_error: Optional[str] = None
        self.train_count: Optional[int] = None
        self.busy_reason: Optional[str] = None
        self._split = (0.25, 0)

        self.path = QLineEdit()
        self.path.setPlaceholderText("a folder with one sub-folder of images per class")
        self.path.setToolTip("The image folder: one sub-folder per class. You can also drop a folder on the window.")
        self.path.editingFinished.connect(self._on_path_edited)
        self.choose_button = QPushButton("Choose…")
        self.choose_button.setToolTip("Choose the image folder")
        self.choose_button.clicked.connect(self.choose_folder)
        self.demo_button = QToolButton()
        self.demo_button.setText("Use the demo data")
        self.demo_button.setAutoRaise(True)
        self.demo_button.setToolTip("Five shape classes drawn by BatchLab (made on first use)")
        self.demo_button.clicked.connect(self.demo_requested)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet(ERROR_STYLE)
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.hide()
        self.classes = _tree(("Class", "Images"))
        self.skipped_label = QLabel()
        self.skipped_label.setStyleSheet("color: #B35900;")
        self.skipped = _tree(("Skipped file", "Reason"))
        self.skipped.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.skipped.setColumnWidth(0, 170)

        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(self.choose_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.demo_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.progress)
        layout.addWidget(self.summary)
        layout.addWidget(self.problem)
        layout.addWidget(self.classes)
        layout.addWidget(self.skipped_label)
        layout.addWidget(self.skipped)
        self._show_report()

    # -- folder -----------------------------------------------------------------------------------

    def folder(self) -> str:
        return self._folder

    def choose_folder(self) -> None:
        start = self._folder if Path(self._folder).is_dir() else str(Path.cwd())
        chosen = QFileDialog.getExistingDirectory(self, "Choose the image folder", start)
        if chosen:
            self.set_folder(chosen)

    def set_folder(self, folder: str) -> None:
        """Show ``folder`` and scan it in a worker thread (a rescan if it is the same folder)."""
        self._folder = folder
        self.path.setText(folder)
        self.report, self.scan_error, self.split_error, self.train_count = None, None, None, None
        self._cancel_scan()
        self._generation += 1
        self.folder_chosen.emit(folder)
        if not folder:
            self.scan_error = "Choose an image folder (one sub-folder per class)."
            self._show_report()
            return
        generation, scan = self._generation, self._scan

        def task(progress: Callable[[int, int], None],
                 stop: StopToken) -> tuple[Optional[DatasetReport], Optional[str]]:
            try:
                return scan(folder, progress=progress, stop=stop), None
            except DatasetError as exc:  # its report (when there is one) still lists the skipped files
                return exc.report, str(exc)

        worker = TaskWorker(task)
        worker.progress.connect(lambda done, total: self._on_scan_progress(generation, done, total))
        worker.succeeded.connect(lambda result: self._on_scanned(generation, *result))
        worker.failed.connect(lambda message: self._on_scanned(generation, None, message))
        self._start(worker)
        self.show_busy("Scanning the folder…", 0, 0)

    def set_split(self, val_split: float, seed: int) -> None:
        """The split settings the folder must work with; re-checked without a rescan."""
        self._split = (val_split, seed)
        self._check_split()
        self._show_problem()

    def blocking_problem(self) -> Optional[str]:
        """Why training cannot start with this data, in words (None when it can)."""
        if self.busy_reason:
            return self.busy_reason
        return self.scan_error or self.split_error

    # -- busy state (scanning here; the window also uses it while it draws the demo data) ---------

    def show_busy(self, text: str, done: int, total: int) -> None:
        self.busy_reason = text
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat(f"{text} %v / %m" if total else text)
        self.progress.show()
        self.summary.clear()  # the progress bar says it: the text once, not twice
        self.changed.emit()

    def end_busy(self) -> None:
        self.busy_reason = None
        self.progress.hide()
        self._show_report()

    def wait_idle(self) -> None:
        """Stop and wait for any scan (used when the window closes)."""
        self._cancel_scan()
        for worker in list(self._workers):
            worker.wait()

    # -- internals --------------------------------------------------------------------------------

    def _on_path_edited(self) -> None:
        # editingFinished also fires when the field merely loses focus: rescan only a different folder.
        if self.path.text().strip() != self._folder:
            self.set_folder(self.path.text().strip())

    def _start(self, worker: TaskWorker) -> None:
        self._workers.append(worker)
        worker.finished.connect(lambda: self._workers.remove(worker))
        worker.finished.connect(worker.deleteLater)
        worker.start()

    def _cancel_scan(self) -> None:
        for worker in self._workers:
            worker.request_stop()

    def _on_scan_progress(self, generation: int, done: int, total: int) -> None:
        if generation == self._generation:
            self.show_busy("Scanning the folder…", done, total)

    def _on_scanned(self, generation: int, report: Optional[DatasetReport], error: Optional[str]) -> None:
        if generation != self._generation:
            return  # a newer folder was chosen meanwhile
        self.report, self.scan_error = report, error
        self.end_busy()

    def _show_report(self) -> None:
        self.classes.clear()
        self.skipped.clear()
        report = self.report
        if report is None:
            self.summary.setText("" if self.scan_error else "No folder scanned yet.")
            self.classes.hide()
            self.skipped_label.hide()
            self.skipped.hide()
        else:
            counts = dict(report.counts)
            total = sum(counts.values())
            self.summary.setText(f"{_count(len(report.classes), 'class', 'classes')} · {_count(total, 'image')} · "
                                 f"{_count(len(report.skipped), 'file')} skipped")
            for name in report.classes:
                item = QTreeWidgetItem([str(name), f"{counts.get(name, 0):,}"])
                item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.classes.addTopLevelItem(item)
            self.classes.show()
            _fit_height(self.classes, 8)
            for entry in report.skipped:
                item = QTreeWidgetItem([entry["path"], entry["reason"]])
                item.setToolTip(0, str(Path(report.root) / entry["path"]))
                item.setToolTip(1, entry["reason"])
                self.skipped.addTopLevelItem(item)
            self.skipped_label.setText(f"{_count(len(report.skipped), 'file')} skipped:")
            self.skipped_label.setVisible(bool(report.skipped))
            self.skipped.setVisible(bool(report.skipped))
            _fit_height(self.skipped, 5)
        self._check_split()
        self._show_problem()

    def _check_split(self) -> None:
        """Would the engine's own stratified split work? Same function, same message."""
        self.split_error, self.train_count = None, None
        if self.report is None:
            return
        try:
            train, _val = stratified_split(np.asarray(self.report.labels), list(self.report.classes), *self._split)
            self.train_count = int(len(train))
        except SplitError as exc:
            self.split_error = str(exc)

    def _show_problem(self) -> None:
        problem = None if self.busy_reason else (self.scan_error or self.split_error)
        self.problem.setText(problem or "")
        self.problem.setVisible(bool(problem))
        self.changed.emit()


def _count(n: int, singular: str, plural: str = "") -> str:
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def _tree(headers: tuple[str, str]) -> QTreeWidget:
    tree = QTreeWidget()
    tree.setHeaderLabels(list(headers))
    tree.setRootIsDecorated(False)
    tree.setUniformRowHeights(True)
    tree.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    tree.header().setStretchLastSection(True)
    tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
    return tree


def _fit_height(tree: QTreeWidget, max_rows: int) -> None:
    """As tall as its rows (up to ``max_rows``, then it scrolls), so short lists waste no space."""
    rows = min(max(tree.topLevelItemCount(), 1), max_rows)
    row_height = tree.sizeHintForRow(0) if tree.topLevelItemCount() else tree.fontMetrics().height() + 6
    tree.setFixedHeight(tree.header().sizeHint().height() + rows * row_height + 2 * tree.frameWidth() + 2)
