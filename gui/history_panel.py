"""Past experiments under the checkpoints folder, newest first; double-click one to open it."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.record import store as rec
from engine.record.runs import best_run

COLUMNS = ("Experiment", "Status", "Best")


def summarise(folder: Path) -> tuple[tuple[str, str, str], str]:
    """One row of the list, (id, status, best), and its tooltip (when it started, or why it cannot be read)."""
    try:
        record = rec.load(folder)
    except rec.RecordError as exc:
        return (folder.name, "unreadable", "–"), str(exc)
    best = best_run(record["runs"])
    best_text = f"{100 * best['best']['val_accuracy']:.1f} % (batch {best['batch_size']})" if best else "–"
    sizes = ", ".join(str(r["batch_size"]) for r in record["runs"] if r.get("repeat", 0) == 0)
    tip = f"{folder}\nstarted {_local_time(record.get('created'))}\nbatch sizes {sizes}"
    return (str(record.get("id") or folder.name), str(record.get("status")), best_text), tip


def _local_time(stamp: Any) -> str:
    try:
        return _dt.datetime.fromisoformat(str(stamp)).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return ""


def _modified(folder: Path) -> float:
    try:
        return folder.joinpath(rec.RECORD_NAME).stat().st_mtime
    except OSError:  # removed since the listing
        return 0.0


class HistoryPanel(QWidget):
    """Lists ``root/*/experiment.json``; ``open_requested`` carries the chosen folder."""

    open_requested = Signal(str)

    def __init__(self, root: Path, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.root = Path(root)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # ids end in what differs: batch sizes
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.itemActivated.connect(
            lambda item, _column: self.open_requested.emit(item.data(0, Qt.ItemDataRole.UserRole)))
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Show the selected experiment's curves and results")
        self.open_button.clicked.connect(self._open_selected)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.empty = QLabel()
        self.empty.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(refresh)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.empty)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        self.refresh()

    def refresh(self) -> None:
        self.tree.clear()
        folders = sorted((p.parent for p in self.root.glob(f"*/{rec.RECORD_NAME}")), key=_modified, reverse=True)
        for folder in folders:
            row, tip = summarise(folder)
            item = QTreeWidgetItem(list(row))
            item.setData(0, Qt.ItemDataRole.UserRole, str(folder))
            for column in range(len(COLUMNS)):
                item.setToolTip(column, tip)
            self.tree.addTopLevelItem(item)
        self.empty.setText("" if folders else f"No experiments in {self.root} yet. Finished and stopped "
                                              "experiments appear here.")
        self.empty.setVisible(not folders)
        self.open_button.setEnabled(bool(folders))

    def _open_selected(self) -> None:
        item = self.tree.currentItem()
        if item is not None:
            self.open_requested.emit(item.data(0, Qt.ItemDataRole.UserRole))
