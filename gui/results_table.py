"""The results table: one row per run, the best run highlighted, colours matching the plots."""

from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from gui.live_record import best_run
from gui.palette import batch_colours

COLUMNS = ("Batch size", "Repeat", "Status", "Best val. accuracy", "Best epoch", "Epochs run",
           "Seconds / epoch", "Images / s")
STATUS_TEXT = {"pending": "queued"}
STATUS_COLOURS = {"running": "#0072B2", "completed": "#007A55", "stopped": "#B35900", "failed": "#C0392B",
                  "pending": "#777777"}
BEST_BACKGROUND = QColor("#FFF3C4")
_REPEAT_COLUMN = COLUMNS.index("Repeat")


class ResultsTable(QTableWidget):
    """Per-run summary; ``run_selected`` hands the selected run dict to whoever wants it."""

    run_selected = Signal(object)  # the record-shaped run dict, or None when nothing is selected

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self._runs: list[dict[str, Any]] = []
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(False)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        self.setColumnHidden(_REPEAT_COLUMN, True)
        self.itemSelectionChanged.connect(self._on_selection)

    def set_runs(self, runs: list[dict[str, Any]]) -> None:
        """Show these runs (replacing any previous experiment's rows)."""
        self._runs = runs
        self._colours = batch_colours([r["batch_size"] for r in runs])
        self.setRowCount(len(runs))
        self.setColumnHidden(_REPEAT_COLUMN, len({r.get("repeat", 0) for r in runs}) <= 1)
        self.refresh()

    def refresh(self) -> None:
        """Redraw every row from the run dicts (cheap: a handful of rows)."""
        best = best_run(self._runs)
        for row, run in enumerate(self._runs):
            self._fill_row(row, run, run is best)

    def cell_text(self, row: int, column: str) -> str:
        return self.item(row, COLUMNS.index(column)).text()

    def _fill_row(self, row: int, run: dict[str, Any], is_best: bool) -> None:
        best = run.get("best") or {}
        status = run.get("status", "pending")
        epochs = str(run.get("epochs_run") or 0)
        if status == "running" and run.get("epochs_planned"):
            epochs = f"{epochs} / {run['epochs_planned']}"
        texts = (
            str(run["batch_size"]),
            str(run.get("repeat", 0) + 1),
            STATUS_TEXT.get(status, status),
            _percent(best.get("val_accuracy")),
            str(best["epoch"]) if best.get("epoch") is not None else "–",
            epochs,
            _number(run.get("seconds_per_epoch"), 2),
            _number(run.get("images_per_s"), 0),
        )
        bold = QFont(self.font())
        bold.setBold(True)
        for column, text in enumerate(texts):
            item = self.item(row, column)
            if item is None:
                item = QTableWidgetItem()
                self.setItem(row, column, item)
            item.setText(("★ " + text) if is_best and column == 3 else text)
            item.setTextAlignment(Qt.AlignmentFlag.AlignVCenter |
                                  (Qt.AlignmentFlag.AlignLeft if column in (0, 2) else Qt.AlignmentFlag.AlignRight))
            item.setBackground(QBrush(BEST_BACKGROUND) if is_best else QBrush())
            item.setFont(bold if is_best else self.font())
            item.setToolTip("best validation accuracy of this experiment" if is_best else "")
        swatch = QPixmap(12, 12)
        swatch.fill(self._colours[run["batch_size"]])
        self.item(row, 0).setIcon(QIcon(swatch))
        status_item = self.item(row, 2)
        status_item.setForeground(QColor(STATUS_COLOURS.get(status, "#222222")))
        if status == "failed":
            status_item.setToolTip(f"failed: {run.get('error') or 'no reason recorded'}")

    def _on_selection(self) -> None:
        rows = {index.row() for index in self.selectedIndexes()}
        self.run_selected.emit(self._runs[rows.pop()] if len(rows) == 1 else None)


def _percent(value: Any) -> str:
    return f"{100 * value:.1f} %" if isinstance(value, (int, float)) else "–"


def _number(value: Any, decimals: int) -> str:
    return f"{value:,.{decimals}f}" if isinstance(value, (int, float)) else "–"
