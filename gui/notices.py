"""The notice bar above the plots: errors and warnings stay until dismissed or replaced (never only in
the log), with an optional button for the one thing to do about it."""

from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton

NOTICE_STYLES = {
    "info": "background: #E8F1FA; color: #0B3D66; border: 1px solid #B9D3EA;",
    "warning": "background: #FFF4E0; color: #7A4100; border: 1px solid #F0C987;",
    "error": "background: #FDECEA; color: #8E1F14; border: 1px solid #F1B0A8;",
}


class NoticeBar(QFrame):
    """``show_notice(level, text, action=None)``; ``label`` holds the text."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("notice")
        self.label = QLabel()
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # messages quote file names and record text as is
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.button = QPushButton()
        self.button.hide()
        self._action: Optional[Callable[[], None]] = None
        self.button.clicked.connect(self._on_button)
        dismiss = QToolButton()
        dismiss.setText("×")
        dismiss.setAutoRaise(True)
        dismiss.setToolTip("Dismiss")
        dismiss.clicked.connect(self.hide_notice)
        bar = QHBoxLayout(self)
        bar.setContentsMargins(8, 4, 4, 4)
        bar.addWidget(self.label, 1)
        bar.addWidget(self.button, 0, Qt.AlignmentFlag.AlignVCenter)
        bar.addWidget(dismiss, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_notice(self, level: str, text: str, action: Optional[tuple[str, Callable[[], None]]] = None) -> None:
        self.setStyleSheet(f"QFrame#notice {{ {NOTICE_STYLES.get(level, NOTICE_STYLES['info'])} }}"
                           "QLabel { background: transparent; border: none; }")
        self.label.setText(text)
        self._action = action[1] if action else None
        self.button.setText(action[0] if action else "")
        self.button.setVisible(action is not None)
        self.show()

    def hide_notice(self) -> None:
        self.label.clear()
        self._action = None
        self.button.hide()
        self.hide()

    def _on_button(self) -> None:
        action = self._action
        if action is not None:
            action()
