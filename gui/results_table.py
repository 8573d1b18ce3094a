"""The results table: one row per run, the best run highlighted, colours matching the plots."""

from __future__ import annotations

import html
from typing import Any, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QWidget

from engine.analysis.summary import Summary
from engine.record.runs import best_run
from gui.palette import batch_colours

COLUMNS = ("Batch size", "LR", "Repeat", "Status", "Fate", "Best val. accuracy", "Best epoch", "Epochs run",
           "Time to target", "Seconds / epoch", "Images / s")
HEADER_TIPS = {
    "LR": "Learning rate the trial used, after any scaling by batch size (warm-up ramps up to it)",
    "Fate": "How far the trial got and why it ended: full budget, early stopped, halved (successive halving "
            "kept better learning rates), dead or diverged (hover for what to try)",
    "Seconds / epoch": "Mean wall-clock seconds per epoch, validation included",
    "Images / s": "Mean training throughput",
}
STATUS_TEXT = {"pending": "queued"}
STATUS_COLOURS = {"running": "#0072B2", "completed": "#007A55", "stopped": "#B35900", "failed": "#C0392B",
                  "pending": "#777777"}
FATE_TEXT = {"completed": "full budget", "early_stopped": "early stopped", "halved": "halved", "dead": "dead",
             "diverged": "diverged", "failed": "failed", "stopped": "stopped"}
FATE_COLOURS = {"dead": "#C0392B", "diverged": "#C0392B", "failed": "#C0392B", "halved": "#777777"}
BEST_BACKGROUND = QColor("#FFF3C4")
SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # the number a column sorts by (text like "1:05" does not sort)
RUN_ROLE = Qt.ItemDataRole.UserRole + 2  # run_index of the row, on its first cell
BEST_ROLE = Qt.ItemDataRole.UserRole + 3  # whether the row is drawn as the best one, on its first cell
_REPEAT_COLUMN = COLUMNS.index("Repeat")
_LR_COLUMN = COLUMNS.index("LR")
_BEST_COLUMN = COLUMNS.index("Best val. accuracy")
_LEFT_ALIGNED = (COLUMNS.index("Batch size"), COLUMNS.index("Status"), COLUMNS.index("Fate"))


def fate(run: dict[str, Any]) -> tuple[str, str]:
    """What became of a trial, in a few words, and its note (why, and what to try) for the tooltip."""
    trial = run.get("trial") or {}
    reason, rung = trial.get("stop_reason"), trial.get("rung") or 0
    note = trial.get("note") or ""
    if reason is None:
        status = run.get("status", "pending")
        text = {"running": "training", "pending": "waiting" if run.get("epochs_run") else "queued"}.get(status, "–")
        return (f"{text} · rung {rung}" if rung else text), note
    text = FATE_TEXT.get(reason, str(reason))
    if reason == "halved" and trial.get("stopped_at_rung") is not None:
        text += f" after rung {trial['stopped_at_rung']}"
    elif reason != "halved" and rung:
        text += f" · rung {rung}"
    return text, note or (f"failed: {run.get('error')}" if reason == "failed" and run.get("error") else "")


def format_time_to_target(reach: Optional[dict[str, Any]]) -> str:
    """'12 ep · 3.4k steps · 1:05': epochs, optimizer steps and wall-clock time to the target."""
    if not reach:
        return "not reached"
    return f"{reach['epoch']} ep · {_compact(reach['steps'])} steps · {_clock(reach['seconds'])}"


def _compact(count: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(count) >= limit:
            return f"{count / limit:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{count:.0f}"


def _clock(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour on."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class SortItem(QTableWidgetItem):
    """A cell that sorts by the number behind its text (SORT_ROLE), "–" and "not reached" last."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if isinstance(mine, (int, float)) and isinstance(theirs, (int, float)):
            return mine < theirs
        if isinstance(mine, (int, float)) or isinstance(theirs, (int, float)):
            return isinstance(mine, (int, float))
        return self.text() < other.text()


class ResultsTable(QTableWidget):
    """Per-trial summary; ``run_selected`` hands the selected run dict to whoever wants it.

    Rows start in the record's order; a click on a header sorts by that column (numbers as numbers).
    """

    run_selected = Signal(object)  # the record-shaped run dict, or None when nothing is selected

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self._runs: list[dict[str, Any]] = []
        self._target: Optional[float] = None
        self._colours: dict[int, QColor] = {}
        self._swatches: dict[str, QIcon] = {}
        self._bold = QFont(self.font())
        self._bold.setBold(True)
        self.setHorizontalHeaderLabels(COLUMNS)
        for name, tip in HEADER_TIPS.items():
            self.horizontalHeaderItem(COLUMNS.index(name)).setToolTip(tip)
        self.set_target(None)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(False)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        header.setSortIndicatorShown(True)
        self.setSortingEnabled(True)
        self.setColumnHidden(_REPEAT_COLUMN, True)
        self.itemSelectionChanged.connect(self._on_selection)

    def set_runs(self, runs: list[dict[str, Any]]) -> None:
        """Show these runs (replacing any previous experiment's rows), in the record's order."""
        selected = self.selected_run()
        self._runs = runs
        self._colours = batch_colours([r["batch_size"] for r in runs])
        self.setSortingEnabled(False)
        self.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.clearContents()
        self.setRowCount(len(runs))
        for row, run in enumerate(runs):
            first = SortItem()
            first.setData(RUN_ROLE, run["run_index"])
            self.setItem(row, 0, first)
        self.setColumnHidden(_REPEAT_COLUMN, len({r.get("repeat", 0) for r in runs}) <= 1)
        self.setColumnHidden(_LR_COLUMN, False)
        self.refresh()
        if selected is not None and any(run is selected for run in runs):
            self.select_run(selected["run_index"])
        elif self.best_row() is not None:  # the starred row in view, however many trials
            self.scrollToItem(self.item(self.best_row(), 0))

    def set_target(self, target: Optional[float]) -> None:
        """The target val accuracy the "Time to target" column is measured against (None: not set yet)."""
        self._target = target
        goal = f"{100 * target:.1f} % val accuracy" if target is not None else "the target val accuracy"
        self.horizontalHeaderItem(COLUMNS.index("Time to target")).setToolTip(
            f"First epoch that reached {goal}: epochs, optimizer steps, wall-clock time (m:ss).")
        self.refresh()

    def refresh(self) -> None:
        """Redraw every row from the run dicts (cheap: a handful of rows); rows keep their sorted place."""
        best = best_run(self._runs)
        by_index = {run["run_index"]: run for run in self._runs}
        sorting = self.isSortingEnabled()
        self.setSortingEnabled(False)  # filling a sorted table would move rows under our feet
        for row in range(self.rowCount()):
            run = by_index.get(self.item(row, 0).data(RUN_ROLE)) if self.item(row, 0) else None
            if run is not None:
                self._fill_row(row, run, run is best)
        self.setSortingEnabled(sorting)

    def best_row(self) -> Optional[int]:
        best = best_run(self._runs)
        return None if best is None else self._row_of(best["run_index"])

    def select_run(self, run_index: int) -> None:
        row = self._row_of(run_index)
        if row is not None:
            self.selectRow(row)

    def selected_run(self) -> Optional[dict[str, Any]]:
        """The run dict of the selected row (None when no single row is selected)."""
        rows = {index.row() for index in self.selectedIndexes()}
        if len(rows) != 1:
            return None
        first = self.item(rows.pop(), 0)
        index = first.data(RUN_ROLE) if first is not None else None
        return next((run for run in self._runs if run["run_index"] == index), None)

    def cell_text(self, row: int, column: str) -> str:
        return self.item(row, COLUMNS.index(column)).text()

    def _row_of(self, run_index: int) -> Optional[int]:
        return next((row for row in range(self.rowCount())
                     if self.item(row, 0) is not None and self.item(row, 0).data(RUN_ROLE) == run_index), None)

    def _fill_row(self, row: int, run: dict[str, Any], is_best: bool) -> None:
        best = run.get("best") or {}
        status = run.get("status", "pending")
        epochs = str(run.get("epochs_run") or 0)
        if run.get("epochs_planned"):  # the same live and reopened: what ran of what was planned
            epochs = f"{epochs} / {run['epochs_planned']}"
        fate_text, note = fate(run)
        reach = run.get("time_to_target")
        cells = (
            (str(run["batch_size"]), run["batch_size"]),
            (_lr(run.get("lr")), run.get("lr")),
            (str(run.get("repeat", 0) + 1), run.get("repeat", 0)),
            (STATUS_TEXT.get(status, status), status),
            (fate_text, fate_text),
            (_percent(best.get("val_accuracy")), best.get("val_accuracy")),
            (str(best["epoch"]) if best.get("epoch") is not None else "–", best.get("epoch")),
            (epochs, run.get("epochs_run") or 0),
            (format_time_to_target(reach) if "time_to_target" in run else "–",
             reach.get("seconds") if reach else None),
            (_number(run.get("seconds_per_epoch"), 2), run.get("seconds_per_epoch")),
            (_number(run.get("images_per_s"), 0), run.get("images_per_s")),
        )
        restyle = self.item(row, 1) is None or self.item(row, 0).data(BEST_ROLE) != is_best
        for column, (text, key) in enumerate(cells):
            item = self.item(row, column)
            if item is None:
                item = SortItem()
                self.setItem(row, column, item)
            text = ("★ " + text) if is_best and column == _BEST_COLUMN else text
            if item.text() != text:  # each change redraws the row: only what changed
                item.setText(text)
                item.setData(SORT_ROLE, key if isinstance(key, (int, float)) and not isinstance(key, bool) else None)
            if restyle:
                item.setTextAlignment(Qt.AlignmentFlag.AlignVCenter | (
                    Qt.AlignmentFlag.AlignLeft if column in _LEFT_ALIGNED else Qt.AlignmentFlag.AlignRight))
                item.setBackground(QBrush(BEST_BACKGROUND) if is_best else QBrush())
                item.setFont(self._bold if is_best else self.font())
                item.setToolTip("best validation accuracy of this experiment" if is_best else "")
        if restyle:
            self.item(row, 0).setData(BEST_ROLE, is_best)
            self.item(row, 0).setIcon(self._swatch(run["batch_size"]))
        status_item = self.item(row, COLUMNS.index("Status"))
        status_item.setForeground(QColor(STATUS_COLOURS.get(status, "#222222")))
        if status == "failed":
            status_item.setToolTip(f"failed: {run.get('error') or 'no reason recorded'}")
        fate_item = self.item(row, COLUMNS.index("Fate"))
        fate_item.setForeground(QColor(FATE_COLOURS.get((run.get("trial") or {}).get("stop_reason"), "#222222")))
        fate_item.setToolTip(note)
        if reach:
            goal = f"{100 * self._target:.1f} %" if self._target is not None else "the target"
            self.item(row, COLUMNS.index("Time to target")).setToolTip(
                f"reached {goal} at epoch {reach['epoch']}: {reach['steps']:,.0f} optimizer steps, "
                f"{reach['samples']:,.0f} samples, {reach['seconds']:.1f} s")

    def _swatch(self, batch_size: int) -> QIcon:
        colour = self._colours.get(batch_size, QColor("#999999"))
        if colour.name() not in self._swatches:
            pixmap = QPixmap(12, 12)
            pixmap.fill(colour)
            self._swatches[colour.name()] = QIcon(pixmap)
        return self._swatches[colour.name()]

    def content_height(self, rows: Optional[int] = None) -> int:
        """Height that shows every row (or ``rows`` rows) without scrolling: header, rows, a scroll bar."""
        count = self.rowCount() if rows is None else rows
        rows = max(1, count) * self.verticalHeader().defaultSectionSize()
        return (self.horizontalHeader().height() + rows + 2 * self.frameWidth()
                + self.horizontalScrollBar().sizeHint().height())

    def _on_selection(self) -> None:
        self.run_selected.emit(self.selected_run())


def _percent(value: Any) -> str:
    return f"{100 * value:.1f} %" if isinstance(value, (int, float)) else "–"


def _lr(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) else "–"


def _number(value: Any, decimals: int) -> str:
    return f"{value:,.{decimals}f}" if isinstance(value, (int, float)) else "–"


def summary_html(summary: Summary) -> str:
    """Per batch size, its best learning rate's best val accuracy (mean ± spread over seeds, and the lr
    when several were tried), then the verdict, as rich text."""
    colours = batch_colours([b.batch_size for b in summary.batches])
    repeats = max((len(b.runs) for b in summary.batches), default=1)
    tuned = any(len(b.lrs) > 1 for b in summary.batches)
    parts = []
    for batch in summary.batches:
        if batch.best_mean is None:
            continue
        spread = f" ± {100 * batch.best_std:.1f}" if batch.best_std is not None else ""
        rate = f" at lr {batch.lr:.3g}" if tuned and batch.lr is not None else ""
        parts.append(f"<span style='color:{colours[batch.batch_size].name()}'>■</span> batch {batch.batch_size}: "
                     f"<b>{100 * batch.best_mean:.1f}{spread} %</b>{rate}")
    if not parts:
        return ""
    what = f"mean ± std over {repeats} seeds" if repeats > 1 else "single runs"
    if tuned:
        what += ", each batch size's best learning rate"
    text = f"Best val. accuracy ({what}): " + " &nbsp;·&nbsp; ".join(parts)
    if summary.target_accuracy is not None:
        text += f" &nbsp;·&nbsp; target {100 * summary.target_accuracy:.1f} %"
    if summary.verdict:
        text += "<br>" + html.escape(summary.verdict[:1].upper() + summary.verdict[1:])
    return text


class SummaryLabel(QLabel):
    """The line under the table: per batch size mean ± spread, and whether the gap beats seed noise."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setContentsMargins(4, 2, 4, 2)
        self.hide()

    def show_summary(self, summary: Optional[Summary]) -> None:
        text = summary_html(summary) if summary is not None else ""
        self.setText(text)
        self.setVisible(bool(text))
