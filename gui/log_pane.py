"""The log pane: engine LogMessages and the window's own notices, newest at the bottom."""

from __future__ import annotations

import datetime as _dt
import html
from typing import Optional

from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import QPlainTextEdit, QWidget

LEVEL_COLOURS = {"info": "#222222", "warning": "#B35900", "error": "#C0392B"}
MAX_LINES = 5000  # hours of runs must not grow the pane without bound


class LogPane(QPlainTextEdit):
    """Read-only, timestamped, coloured by level; keeps the last MAX_LINES lines."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(MAX_LINES)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.setFont(font)
        self.setPlaceholderText("Messages from the engine and the window appear here.")

    def add(self, level: str, text: str) -> None:
        stamp = _dt.datetime.now().strftime("%H:%M:%S")
        colour = LEVEL_COLOURS.get(level, LEVEL_COLOURS["info"])
        tag = "" if level == "info" else f"{level.upper()}: "
        lines = html.escape(text).replace("\n", "<br>")
        self.appendHtml(f'<span style="color:#888">{stamp}</span> <span style="color:{colour}">{tag}{lines}</span>')

    def lines(self) -> list[str]:
        return self.toPlainText().splitlines()
