"""Evaluation of one finished run: confusion matrix, per-class precision/recall, and the
misclassified validation images, most confident mistakes first.

The numbers come from engine.artifacts.evaluate on a background thread (loading the checkpoint and
the validation images takes seconds); this widget only shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.artifacts.evaluate import Evaluation, evaluate_run
from engine.data.imagefile import UnusableImage, read_image
from gui.export_dialog import BackgroundJob

THUMBNAIL = 96
MAX_THUMBNAILS = 300  # the browser lists every mistake; only the first ones get a picture


class EvaluationView(QWidget):
    """``show_run(experiment_dir, record, run)`` evaluates in the background; ``set_evaluation`` shows."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.evaluation: Optional[Evaluation] = None
        self.job: Optional[BackgroundJob] = None
        self._pending: Optional[tuple[Path, dict[str, Any], dict[str, Any]]] = None
        self._request = 0  # results of a request the user has since moved away from are dropped
        self._job_request = 0

        self.title = QLabel("Select a finished run to see how its best checkpoint does on the validation set.")
        self.title.setWordWrap(True)
        self.confusion = QTableWidget()
        self.confusion.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.confusion.setToolTip("Rows: true class; columns: predicted class")
        self.metrics = QTableWidget(0, 4)
        self.metrics.setHorizontalHeaderLabels(["Class", "Precision", "Recall", "Images"])
        self.metrics.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.metrics.verticalHeader().hide()
        self.metrics.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.mistakes = QListWidget()
        self.mistakes.setViewMode(QListWidget.ViewMode.IconMode)
        self.mistakes.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.mistakes.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.mistakes.setWordWrap(True)
        self.mistakes.setGridSize(QSize(THUMBNAIL + 60, THUMBNAIL + 56))

        tables = QSplitter(Qt.Orientation.Horizontal)
        tables.addWidget(_titled("Confusion matrix (rows: true, columns: predicted)", self.confusion))
        tables.addWidget(_titled("Per class", self.metrics))
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(tables)
        split.addWidget(_titled("Misclassified validation images, most confident first", self.mistakes))
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(split, 1)

    def show_run(self, experiment_dir: Path | str, record: dict[str, Any], run: dict[str, Any]) -> None:
        """Evaluate ``run``'s best checkpoint; a request made while one is running waits its turn."""
        self._request += 1
        if self.job is not None:
            self._pending = (Path(experiment_dir), record, run)
            return
        folder, request = Path(experiment_dir), self._request
        self._job_request = request
        self.title.setText(f"Evaluating batch size {run.get('batch_size')}…")
        self.job = BackgroundJob(lambda _log: (evaluate_run(folder, record, run), run, request), self)
        # Queued, always: these fire on the worker thread and must reach the widgets on the GUI thread.
        self.job.succeeded.connect(self._on_evaluated, Qt.ConnectionType.QueuedConnection)
        self.job.failed.connect(self._on_failed, Qt.ConnectionType.QueuedConnection)
        self.job.finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self.job.start()

    def show_message(self, text: str) -> None:
        """Nothing to evaluate (no finished run selected): say why, with empty views."""
        self._request += 1
        self._pending = None
        self.evaluation = None
        self.title.setText(text)
        self.confusion.setRowCount(0)
        self.confusion.setColumnCount(0)
        self.metrics.setRowCount(0)
        self.mistakes.clear()

    def _on_evaluated(self, outcome: tuple[Evaluation, dict[str, Any], int]) -> None:
        evaluation, run, request = outcome
        if request == self._request:
            self.set_evaluation(evaluation, run)

    def _on_failed(self, text: str) -> None:
        if self._job_request == self._request:
            self.title.setText(f"Cannot evaluate: {text}")

    def _on_finished(self) -> None:
        self.job.wait()  # finished() fires just before the thread ends
        self.job.deleteLater()
        self.job = None
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.show_run(*pending)

    def set_evaluation(self, evaluation: Evaluation, run: Optional[dict[str, Any]] = None) -> None:
        self.evaluation = evaluation
        what = f"Batch size {run.get('batch_size')}: " if run else ""
        warning = "" if evaluation.split_matches else (" Warning: the data folder changed since training, so "
                                                       "this is not exactly the validation set the run saw.")
        self.title.setText(f"{what}validation accuracy {evaluation.accuracy:.1%} on "
                           f"{int(evaluation.confusion.sum())} images, {len(evaluation.mistakes)} misclassified."
                           + warning)
        self._fill_confusion(evaluation)
        self._fill_metrics(evaluation)
        self._fill_mistakes(evaluation)

    def _fill_confusion(self, evaluation: Evaluation) -> None:
        matrix, classes = evaluation.confusion, evaluation.classes
        self.confusion.setRowCount(len(classes))
        self.confusion.setColumnCount(len(classes))
        self.confusion.setHorizontalHeaderLabels(classes)
        self.confusion.setVerticalHeaderLabels(classes)
        totals = np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                share = matrix[i, j] / totals[i, 0]
                item = QTableWidgetItem(str(int(matrix[i, j])))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                base = (11, 110, 59) if i == j else (142, 31, 20)  # green diagonal, red mistakes
                item.setBackground(QBrush(QColor(*base, int(30 + 200 * share) if matrix[i, j] else 0)))
                item.setToolTip(f"true {classes[i]}, predicted {classes[j]}: {share:.0%} of {classes[i]}")
                self.confusion.setItem(i, j, item)
        self.confusion.resizeColumnsToContents()

    def _fill_metrics(self, evaluation: Evaluation) -> None:
        self.metrics.setRowCount(len(evaluation.classes))
        for row, name in enumerate(evaluation.classes):
            values = [name, _percent(evaluation.precision[row]), _percent(evaluation.recall[row]),
                      str(evaluation.support[row])]
            for column, text in enumerate(values):
                self.metrics.setItem(row, column, QTableWidgetItem(text))

    def _fill_mistakes(self, evaluation: Evaluation) -> None:
        self.mistakes.clear()
        for index, mistake in enumerate(evaluation.mistakes):
            item = QListWidgetItem(f"{mistake.predicted_class} {mistake.confidence:.0%}\n(true {mistake.true_class})")
            item.setToolTip(f"{mistake.path}\ntrue: {mistake.true_class}\npredicted: {mistake.predicted_class} "
                            f"({mistake.confidence:.1%})")
            item.setData(Qt.ItemDataRole.UserRole, str(mistake.path))
            if index < MAX_THUMBNAILS:
                item.setIcon(thumbnail(mistake.path))
            self.mistakes.addItem(item)


def thumbnail(path: Path, size: int = THUMBNAIL) -> QIcon:
    """Decode with the engine's reader (any format training accepted); an empty icon if it fails."""
    try:
        pixels = read_image(str(path), size)
    except UnusableImage:
        return QIcon()
    image = QImage(pixels.tobytes(), size, size, 3 * size, QImage.Format.Format_RGB888).copy()
    return QIcon(QPixmap.fromImage(image))


def _percent(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.1%}"


def _titled(title: str, widget: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    label = QLabel(title)
    label.setStyleSheet("font-weight: bold;")
    layout.addWidget(label)
    layout.addWidget(widget, 1)
    return box
