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

COLUMNS = ("Experiment", "Date", "Status", "Best")
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
OVERLAY_TIP = "Draw the curves of two or more selected experiments on one set of plots (Ctrl+click to select)"


def summarise(folder: Path) -> tuple[tuple[str, str, str, str], str, tuple[Any, ...]]:
    """One row of the list, (id, date, status, best), its tooltip (when it started, or why it cannot be
    read), and the values its columns sort by."""
    try:
        record = rec.load(folder)
    except rec.RecordError as exc:
        return (folder.name, "", "unreadable", "–"), str(exc), (folder.name, "", "unreadable", -1.0)
    best = best_run(record["runs"])
    best_text = f"{100 * best['best']['val_accuracy']:.1f} % (batch {best['batch_size']})" if best else "–"
    sizes = ", ".join(dict.fromkeys(str(r["batch_size"]) for r in record["runs"] if r.get("repeat", 0) == 0))
    started = _local_time(record.get("created"))
    tip = f"{folder}\nstarted {started}\nbatch sizes {sizes}\n{len(record['runs'])} trials"
    name = str(record.get("id") or folder.name)
    keys = (name, str(record.get("created") or ""), str(record.get("status")),
            best["best"]["val_accuracy"] if best else -1.0)
    return (name, started, str(record.get("status")), best_text), tip, keys


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


class _Row(QTreeWidgetItem):
    def __lt__(self, other: QTreeWidgetItem) -> bool:
        column = self.treeWidget().sortColumn() if self.treeWidget() else 0
        mine, theirs = self.data(column, SORT_ROLE), other.data(column, SORT_ROLE)
        try:
            return mine < theirs
        except TypeError:
            return self.text(column) < other.text(column)


class HistoryPanel(QWidget):
    """Lists ``root/*/experiment.json``, newest first, sortable by any column.

    ``open_requested`` carries the chosen folder; ``overlay_requested`` the folders of two or more
    experiments to draw together.
    """

    open_requested = Signal(str)
    overlay_requested = Signal(list)

    def __init__(self, root: Path, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.root = Path(root)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.tree.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # ids whole; the list scrolls
        self.tree.setSortingEnabled(True)
        self.tree.sortByColumn(1, Qt.SortOrder.DescendingOrder)
        self.tree.itemActivated.connect(
            lambda item, _column: self.open_requested.emit(item.data(0, Qt.ItemDataRole.UserRole)))
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Show the selected experiment's curves and results")
        self.open_button.clicked.connect(self._open_selected)
        self.overlay_button = QPushButton("Overlay")
        self.overlay_button.setToolTip(OVERLAY_TIP)
        self.overlay_button.clicked.connect(self._overlay_selected)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.empty = QLabel()
        self.empty.setWordWrap(True)
        hint = QLabel("Double-click to open; select two or more (Ctrl+click) to overlay their curves.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #666;")
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.overlay_button)
        buttons.addWidget(refresh)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.empty)
        layout.addWidget(self.tree, 1)
        layout.addWidget(hint)
        layout.addLayout(buttons)
        self.refresh()

    def refresh(self) -> None:
        selected = set(self.selected_folders())
        self.tree.setSortingEnabled(False)
        self.tree.clear()
        folders = sorted((p.parent for p in self.root.glob(f"*/{rec.RECORD_NAME}")), key=_modified, reverse=True)
        for folder in folders:
            row, tip, keys = summarise(folder)
            item = _Row(list(row))
            item.setData(0, Qt.ItemDataRole.UserRole, str(folder))
            for column in range(len(COLUMNS)):
                item.setToolTip(column, tip)
                item.setData(column, SORT_ROLE, keys[column])
            self.tree.addTopLevelItem(item)
            item.setSelected(str(folder) in selected)
        self.tree.setSortingEnabled(True)
        self.empty.setText("" if folders else f"No experiments in {self.root} yet. Finished and stopped "
                                              "experiments appear here.")
        self.empty.setVisible(not folders)
        self._update_buttons()

    def selected_folders(self) -> list[str]:
        """The selected experiments' folders, in the list's order."""
        items = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        return [item.data(0, Qt.ItemDataRole.UserRole) for item in items if item.isSelected()]

    def select(self, folders: list[str]) -> None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            item.setSelected(item.data(0, Qt.ItemDataRole.UserRole) in folders)

    def _update_buttons(self) -> None:
        count = len(self.selected_folders())
        self.open_button.setEnabled(count == 1 or (count == 0 and self.tree.currentItem() is not None))
        self.overlay_button.setEnabled(count >= 2)
        self.overlay_button.setText(f"Overlay {count}" if count >= 2 else "Overlay")

    def _open_selected(self) -> None:
        folders = self.selected_folders()
        item = self.tree.currentItem()
        if len(folders) == 1:
            self.open_requested.emit(folders[0])
        elif item is not None:
            self.open_requested.emit(item.data(0, Qt.ItemDataRole.UserRole))

    def _overlay_selected(self) -> None:
        folders = self.selected_folders()
        if len(folders) >= 2:
            self.overlay_requested.emit(folders)
