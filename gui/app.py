"""Start the window: ``python main.py`` with no arguments lands here (after batchlab.display's check)."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from gui.main_window import MainWindow
from gui.startup import load_behind_screen

ICON = Path(__file__).resolve().parent.parent / "resources" / "batchlab.svg"


def create_window() -> tuple[QApplication, MainWindow]:
    """The application and its shown main window, ready for ``exec`` (tests grab it from here)."""
    app = QApplication.instance() or QApplication(sys.argv)
    app.setOrganizationName("BatchLab")
    app.setApplicationName("BatchLab")
    app.setStyle("Fusion")
    if ICON.is_file():
        app.setWindowIcon(QIcon(str(ICON)))
    load_behind_screen(app)  # TensorFlow loads before the window, never after a click on Start
    window = MainWindow(QSettings())
    window.show()
    return app, window


def main() -> int:
    """Run the application until its window closes; returns the exit status."""
    app, window = create_window()  # the name keeps the window alive while the app runs
    return app.exec()
