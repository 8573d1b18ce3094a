"""Evaluation of finished trials, two side by side: confusion matrix (each row as percentages of its
true class, counts on hover or alongside), per-class precision and recall, and the misclassified
validation images, most confident mistakes first.

The window calls ``show_run`` with the trial it focuses on; that trial goes on the left and, for
comparison, the best trial of the best other batch size on the right (both can be picked). The
numbers come from engine.artifacts.evaluate on a background thread (loading a checkpoint and the
validation images takes seconds), one trial at a time, each evaluated once. The tables take the
room their rows need, side by side when the pane is wide enough and one above the other when not;
the pane scrolls only when even that does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QBoxLayout,
    QCheckBox,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.analysis.words import lr
from engine.artifacts.evaluate import Evaluation, evaluate_run
from engine.data.imagefile import UnusableImage, read_image
from gui.export_dialog import BackgroundJob

THUMBNAIL = 80
MAX_THUMBNAILS = 300  # the browser lists every mistake; only the first ones get a picture
MISTAKES_MIN_HEIGHT = THUMBNAIL + 80
GAP = 12
METRIC_HEADERS = ["Class", "Precision", "Recall", "Images"]

Key = tuple[str, int, Any]  # experiment folder, run index, best epoch: one checkpoint


@dataclass
class Slot:
    """One column: a trial, its tables and its mistakes."""

    combo: QComboBox
    heading: QLabel
    confusion: QTableWidget
    metrics: QTableWidget
    mistakes: QListWidget
    tables: QBoxLayout
    picker: QHBoxLayout
    box: QWidget
    run: Optional[dict[str, Any]] = None
    key: Optional[Key] = None
    evaluation: Optional[Evaluation] = None
    chosen: bool = field(default=False)  # picked by the user, so a new focus run does not replace it


class EvaluationView(QWidget):
    """``show_run(experiment_dir, record, run)`` evaluates in the background; ``set_evaluation`` shows."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.job: Optional[BackgroundJob] = None
        self.folder: Optional[Path] = None
        self.record: Optional[dict[str, Any]] = None
        self._cache: dict[Key, Evaluation] = {}
        self._queue: list[tuple[Key, Path, dict[str, Any], dict[str, Any]]] = []
        self._running: Optional[Key] = None

        self.title = QLabel("Select a finished run to see how its best checkpoint does on the validation set.")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.counts = QCheckBox("Show counts")
        self.counts.setToolTip("Cells show the share of each true class; tick to show the number of images too")
        self.counts.toggled.connect(self._refill)
        self.compare = QCheckBox("Compare two trials")
        self.compare.setChecked(True)
        self.compare.setToolTip("A second trial beside the first: by default the best trial of the best other "
                                "batch size")
        self.compare.toggled.connect(self._on_compare)
        options = QHBoxLayout()
        options.addWidget(self.title, 1)
        options.addWidget(self.compare)
        options.addWidget(self.counts)

        self.slots = [self._slot(0), self._slot(1)]
        self.slots_layout = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self.slots_layout.setSpacing(GAP)
        for slot in self.slots:
            self.slots_layout.addWidget(slot.box, 0, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.slots_layout.addStretch(1)
        self.mistake_tabs = QTabWidget()
        self.mistake_tabs.setMinimumHeight(MISTAKES_MIN_HEIGHT)
        for slot in self.slots:
            self.mistake_tabs.addTab(slot.mistakes, "")

        page = QWidget()
        column = QVBoxLayout(page)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(options)
        column.addLayout(self.slots_layout)
        column.addWidget(_bold("Misclassified validation images, most confident first"))
        column.addWidget(self.mistake_tabs, 1)
        self.scroll = QScrollArea()
        self.scroll.setWidget(page)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.scroll)
        self._show_slots()

    # -- the first slot, as the window and older code see it ------------------------------------

    @property
    def evaluation(self) -> Optional[Evaluation]:
        return self.slots[0].evaluation

    @property
    def confusion(self) -> QTableWidget:
        return self.slots[0].confusion

    @property
    def metrics(self) -> QTableWidget:
        return self.slots[0].metrics

    @property
    def mistakes(self) -> QListWidget:
        return self.slots[0].mistakes

    # -- choosing trials --------------------------------------------------------------------------

    def show_run(self, experiment_dir: Path | str, record: dict[str, Any], run: dict[str, Any]) -> None:
        """Evaluate ``run`` (left) and, to compare, the best trial of the best other batch size (right)."""
        folder = Path(experiment_dir)
        new = folder != self.folder or record.get("id") != (self.record or {}).get("id")
        self.folder, self.record = folder, record
        if new:
            for slot in self.slots:
                slot.chosen = False
        self._fill_combos(record)
        self._choose(0, run)
        second = self.slots[1]
        if not second.chosen or second.run is None or second.run.get("run_index") == run.get("run_index"):
            partner = default_partner(record, run)
            if partner is not None:
                self._choose(1, partner)
            else:
                self._clear_slot(second)
        self._show_slots()

    def show_message(self, text: str) -> None:
        """Nothing to evaluate (no finished run selected): say why, with empty views."""
        self._queue.clear()
        self.folder, self.record = None, None
        for slot in self.slots:
            self._clear_slot(slot)
        self.title.setText(text)
        self._show_slots()

    def _choose(self, index: int, run: dict[str, Any]) -> None:
        slot = self.slots[index]
        slot.run = run
        slot.key = (str(self.folder), int(run.get("run_index", -1)), (run.get("best") or {}).get("epoch"))
        slot.evaluation = None
        _select(slot.combo, run.get("run_index"))
        slot.heading.setText("evaluating…")
        cached = self._cache.get(slot.key)
        if cached is not None:
            self.set_evaluation(cached, run, index)
            return
        wanted = index == 0 or self.compare.isChecked()  # the second trial is evaluated only when shown
        if wanted and self.folder is not None and slot.key != self._running and \
                all(q[0] != slot.key for q in self._queue):
            self._queue.append((slot.key, self.folder, self.record or {}, run))
        self._describe()
        self._next_job()

    def _on_combo(self, index: int) -> None:
        slot = self.slots[index]
        run_index = slot.combo.currentData()
        run = next((r for r in (self.record or {}).get("runs", []) if r.get("run_index") == run_index), None)
        if run is not None and (slot.run is None or run_index != slot.run.get("run_index")):
            slot.chosen = True
            self._choose(index, run)

    def _on_compare(self, on: bool) -> None:
        second = self.slots[1]
        if on and second.run is not None and second.evaluation is None:
            self._choose(1, second.run)
        self._show_slots()
        self._describe()

    def _fill_combos(self, record: dict[str, Any]) -> None:
        runs = evaluable(record)
        for slot in self.slots:
            slot.combo.blockSignals(True)
            slot.combo.clear()
            for run in runs:
                slot.combo.addItem(trial_label(run), run.get("run_index"))
            slot.combo.blockSignals(False)

    # -- background evaluation --------------------------------------------------------------------

    def _next_job(self) -> None:
        if self.job is not None or not self._queue:
            return
        key, folder, record, run = self._queue.pop(0)
        self._running = key
        self.job = BackgroundJob(lambda _log: (key, evaluate_run(folder, record, run)), self)
        # Queued, always: these fire on the worker thread and must reach the widgets on the GUI thread.
        self.job.succeeded.connect(self._on_evaluated, Qt.ConnectionType.QueuedConnection)
        self.job.failed.connect(self._on_failed, Qt.ConnectionType.QueuedConnection)
        self.job.finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self.job.start()

    def _on_evaluated(self, outcome: tuple[Key, Evaluation]) -> None:
        key, evaluation = outcome
        self._cache[key] = evaluation
        for index, slot in enumerate(self.slots):
            if slot.key == key:
                self.set_evaluation(evaluation, slot.run, index)

    def _on_failed(self, text: str) -> None:
        for slot in self.slots:
            if slot.key == self._running:
                slot.heading.setText(f"Cannot evaluate: {text}")
                if slot is self.slots[0]:
                    self.title.setText(f"Cannot evaluate: {text}")

    def _on_finished(self) -> None:
        self.job.wait()  # finished() fires just before the thread ends
        self.job.deleteLater()
        self.job = None
        self._running = None
        self._next_job()

    # -- showing ----------------------------------------------------------------------------------

    def set_evaluation(self, evaluation: Evaluation, run: Optional[dict[str, Any]] = None, slot: int = 0) -> None:
        """Show ``evaluation`` (of ``run``) in the left (0) or right (1) column."""
        target = self.slots[slot]
        target.evaluation = evaluation
        if run is not None:
            target.run = run
        target.heading.setText(f"{evaluation.accuracy:.1%} of {int(evaluation.confusion.sum())} right, "
                               f"{len(evaluation.mistakes)} wrong")
        self._fill_confusion(target)
        self._fill_metrics(target)
        self._fill_mistakes(target, slot)
        self._describe()
        self._show_slots()

    def _describe(self) -> None:
        first, second = self.slots
        if first.evaluation is None:
            return
        evaluation = first.evaluation
        what = f"Batch size {first.run.get('batch_size')}: " if first.run else ""
        text = (f"{what}validation accuracy {evaluation.accuracy:.1%} on {int(evaluation.confusion.sum())} images, "
                f"{len(evaluation.mistakes)} misclassified.")
        if self._comparing() and second.run is not None:
            text += f" Beside it: batch size {second.run.get('batch_size')}."
        if not evaluation.split_matches:
            text += (" Warning: the data folder changed since training, so this is not exactly the validation set "
                     "the run saw.")
        self.title.setText(text)

    def _refill(self) -> None:
        for slot in self.slots:
            if slot.evaluation is not None:
                self._fill_confusion(slot)
        self._reflow()

    def _fill_confusion(self, slot: Slot) -> None:
        evaluation, table = slot.evaluation, slot.confusion
        matrix, classes = evaluation.confusion, evaluation.classes
        table.clear()
        table.setRowCount(len(classes))
        table.setColumnCount(len(classes))
        table.setHorizontalHeaderLabels(classes)
        table.setVerticalHeaderLabels(classes)
        totals = np.maximum(matrix.sum(axis=1), 1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                count = int(matrix[i, j])
                share = count / totals[i]
                text = f"{share:.0%}" + (f" ({count})" if self.counts.isChecked() else "")
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                item.setData(Qt.ItemDataRole.UserRole, count)
                base = (11, 110, 59) if i == j else (142, 31, 20)  # green diagonal, red mistakes
                item.setBackground(QBrush(QColor(*base, int(30 + 200 * share) if count else 0)))
                if share > 0.6:
                    item.setForeground(QBrush(QColor("#FFFFFF")))
                if i == j:
                    font = QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                item.setToolTip(f"{count} of {int(matrix[i].sum())} {classes[i]} images predicted as {classes[j]} "
                                f"({share:.1%})")
                table.setItem(i, j, item)
        _fit_table(table)

    def _fill_metrics(self, slot: Slot) -> None:
        evaluation, table = slot.evaluation, slot.metrics
        table.setRowCount(len(evaluation.classes))
        for row, name in enumerate(evaluation.classes):
            values = [name, _percent(evaluation.precision[row]), _percent(evaluation.recall[row]),
                      str(evaluation.support[row])]
            for column, text in enumerate(values):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                table.setItem(row, column, item)
        _fit_table(table)

    def _fill_mistakes(self, slot: Slot, index: int) -> None:
        evaluation = slot.evaluation
        slot.mistakes.clear()
        for number, mistake in enumerate(evaluation.mistakes):
            item = QListWidgetItem(f"{mistake.predicted_class} {mistake.confidence:.0%}\n(true {mistake.true_class})")
            item.setToolTip(f"{mistake.path}\ntrue: {mistake.true_class}\npredicted: {mistake.predicted_class} "
                            f"({mistake.confidence:.1%})")
            item.setData(Qt.ItemDataRole.UserRole, str(mistake.path))
            if number < MAX_THUMBNAILS:
                item.setIcon(thumbnail(mistake.path))
            slot.mistakes.addItem(item)
        name = f"batch size {slot.run.get('batch_size')}" if slot.run else "this checkpoint"
        self.mistake_tabs.setTabText(index, f"{name}: {len(evaluation.mistakes)}")

    def _clear_slot(self, slot: Slot) -> None:
        slot.run, slot.key, slot.evaluation = None, None, None
        slot.heading.setText("")
        for table in (slot.confusion, slot.metrics):
            table.setRowCount(0)
        slot.confusion.setColumnCount(0)
        slot.mistakes.clear()

    def _comparing(self) -> bool:
        return self.compare.isChecked() and self.slots[1].run is not None

    def _show_slots(self) -> None:
        comparing = self._comparing()
        self.slots[1].box.setVisible(comparing)
        self.mistake_tabs.setTabVisible(1, comparing)
        self.mistake_tabs.tabBar().setVisible(comparing)
        self.compare.setEnabled(self.slots[1].run is not None or self.slots[1].combo.count() > 1)
        self._reflow()

    # -- layout -----------------------------------------------------------------------------------

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        QTimer.singleShot(0, self._reflow)  # once the scroll area has its new width

    def _reflow(self) -> None:
        """Tables beside each other where the width allows, else one above the other; the page keeps the
        height everything needs, so the pane scrolls only when even the stacked layout does not fit."""
        room = self.scroll.viewport().width() - 8
        shown = [s for s in self.slots if not s.box.isHidden()] or self.slots[:1]
        width = {id(s): (_width(s.confusion), _width(s.metrics)) for s in shown}
        picker = {id(s): s.picker.sizeHint().width() for s in shown}
        beside = [max(sum(width[id(s)]) + GAP, picker[id(s)]) for s in shown]
        above = [max(*width[id(s)], picker[id(s)]) for s in shown]
        for tables_beside, slots_beside in ((True, True), (False, True), (True, False), (False, False)):
            needs = [b if tables_beside else a for b, a in zip(beside, above)]
            if (sum(needs) + GAP * (len(needs) - 1) if slots_beside else max(needs)) <= room:
                break
        for slot in shown:
            slot.tables.setDirection(QBoxLayout.Direction.LeftToRight if tables_beside
                                     else QBoxLayout.Direction.TopToBottom)
        self.slots_layout.setDirection(QBoxLayout.Direction.LeftToRight if slots_beside
                                       else QBoxLayout.Direction.TopToBottom)

    def _slot(self, index: int) -> Slot:
        combo = QComboBox()
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        combo.setToolTip("Which trial's best checkpoint to evaluate")
        combo.currentIndexChanged.connect(lambda _i, which=index: self._on_combo(which))
        heading = QLabel()
        confusion = _table("Rows: true class; columns: predicted class. Each row in percent of its true class's "
                           "images; hover a cell for the count.")
        metrics = _table("Precision: of the images predicted as the class, the share that were. Recall: of the "
                         "class's images, the share found.")
        metrics.setColumnCount(len(METRIC_HEADERS))
        metrics.setHorizontalHeaderLabels(METRIC_HEADERS)
        metrics.verticalHeader().hide()
        mistakes = QListWidget()
        mistakes.setViewMode(QListWidget.ViewMode.IconMode)
        mistakes.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        mistakes.setResizeMode(QListWidget.ResizeMode.Adjust)
        mistakes.setWordWrap(True)
        mistakes.setGridSize(QSize(THUMBNAIL + 56, THUMBNAIL + 44))
        tables = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        tables.setSpacing(GAP)
        tables.addWidget(_titled("Confusion matrix (% of each true class)", confusion))
        tables.addWidget(_titled("Per class", metrics))
        tables.addStretch(1)
        box = QWidget()
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        picker = QHBoxLayout()
        picker.addWidget(QLabel("Trial:" if index == 0 else "Compared with:"))
        picker.addWidget(combo)
        picker.addStretch(1)
        column.addLayout(picker)
        column.addWidget(heading)
        column.addLayout(tables)
        box.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Maximum)
        return Slot(combo, heading, confusion, metrics, mistakes, tables, picker, box)


def evaluable(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Trials with a best checkpoint, best first."""
    runs = [r for r in record.get("runs", []) if r.get("checkpoint") and (r.get("best") or {}).get("val_accuracy")
            is not None and r.get("status") not in ("pending", "running")]
    return sorted(runs, key=lambda r: -r["best"]["val_accuracy"])


def default_partner(record: dict[str, Any], run: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The best trial of the best batch size other than ``run``'s (None when there is no other)."""
    return next((r for r in evaluable(record) if r["batch_size"] != run.get("batch_size")), None)


def trial_name(run: dict[str, Any]) -> str:
    """'Batch size 64, lr 0.002, seed 1'."""
    parts = [f"Batch size {run.get('batch_size')}"]
    if isinstance(run.get("lr"), (int, float)):
        parts.append(f"lr {lr(run['lr'])}")
    if run.get("seed") is not None:
        parts.append(f"seed {run['seed']}")
    return ", ".join(parts)


def trial_label(run: dict[str, Any]) -> str:
    return f"{trial_name(run)}: {run['best']['val_accuracy']:.1%}"


def thumbnail(path: Path, size: int = THUMBNAIL) -> QIcon:
    """Decode with the engine's reader (any format training accepted); an empty icon if it fails."""
    try:
        pixels = read_image(str(path), size)
    except UnusableImage:
        return QIcon()
    image = QImage(pixels.tobytes(), size, size, 3 * size, QImage.Format.Format_RGB888).copy()
    return QIcon(QPixmap.fromImage(image))


def _select(combo: QComboBox, run_index: Any) -> None:
    combo.blockSignals(True)
    combo.setCurrentIndex(combo.findData(run_index))
    combo.blockSignals(False)


def _table(tip: str) -> QTableWidget:
    table = QTableWidget()
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setToolTip(tip)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
    return table


def _fit_table(table: QTableWidget) -> None:
    """The table exactly as large as its rows and columns: nothing cut off, no empty space."""
    table.resizeColumnsToContents()
    table.resizeRowsToContents()
    for column in range(table.columnCount()):
        table.setColumnWidth(column, max(table.columnWidth(column), 52))
    frame = 2 * table.frameWidth()
    vertical = table.verticalHeader()
    width = (0 if vertical.isHidden() else vertical.sizeHint().width()) + frame + \
        sum(table.columnWidth(c) for c in range(table.columnCount()))
    height = table.horizontalHeader().sizeHint().height() + frame + \
        sum(table.rowHeight(r) for r in range(table.rowCount()))
    table.setFixedSize(width, height)


def _width(table: QTableWidget) -> int:
    return max(table.width(), table.minimumWidth())


def _percent(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.1%}"


def _bold(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("font-weight: bold;")
    return label


def _titled(title: str, widget: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(_bold(title))
    layout.addWidget(widget)
    layout.addStretch(1)
    return box
