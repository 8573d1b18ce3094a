"""Load TensorFlow and the training engine before the window appears, behind a start-up screen.

Importing TensorFlow takes seconds, and parts of it (loading its shared libraries) hold
Python's global lock for hundreds of milliseconds at a time: done on the training thread
after a click on Start, it froze the window for about 0.7 s. Done here, before the window
exists, nothing a user can click waits for it; the start-up screen says what is loading.
Everything alive afterwards (mostly TensorFlow's module objects) is frozen out of the cycle
collector, whose full collections would otherwise walk it on the GUI thread.
"""

from __future__ import annotations

import importlib
import threading
from typing import Callable, Optional

from PySide6.QtCore import QEventLoop, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QLabel, QProgressBar, QVBoxLayout, QWidget

# (what the user is told, module) in the order they load; each step includes the ones before it.
STEPS: tuple[tuple[str, str], ...] = (
    ("TensorFlow", "tensorflow"),
    ("Keras", "keras"),
    ("the training engine", "engine.study.launch"),
    ("evaluation and export", "engine.artifacts.evaluate"),
)
Progress = Callable[[int, int, str], None]  # done, total, what loads next


def load_engine(progress: Optional[Progress] = None) -> Optional[str]:
    """Import every module training needs; returns the error text when one cannot load (the window
    still opens, and Start then says why training cannot run)."""
    error = None
    for done, (text, module) in enumerate(STEPS):
        if progress is not None:
            progress(done, len(STEPS), text)
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - a broken install must still open the window
            error = f"{module}: {type(exc).__name__}: {exc}"
            break
    if error is None:
        from engine.train.memory import freeze_startup_objects  # imports TensorFlow: loaded by now

        freeze_startup_objects()
    if progress is not None:
        progress(len(STEPS), len(STEPS), "")
    return error


class StartupScreen(QWidget):
    """A small frameless window with what is loading and a progress bar."""

    def __init__(self) -> None:
        super().__init__(None, Qt.WindowType.SplashScreen | Qt.WindowType.FramelessWindowHint)
        self.setObjectName("startup")
        self.setStyleSheet("QWidget#startup { background: #FFFFFF; border: 1px solid #B9D3EA; }")
        title = QLabel("<b style='font-size:16pt'>BatchLab</b><br>Which batch size should you train with?")
        self.message = QLabel("Loading…")
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.addWidget(title)
        layout.addWidget(self.message)
        layout.addWidget(self.bar)
        self.setFixedWidth(self.fontMetrics().horizontalAdvance("M") * 30)
        screen = QGuiApplication.primaryScreen()
        if screen is not None:
            self.adjustSize()
            self.move(screen.availableGeometry().center() - self.rect().center())

    def show_step(self, done: int, total: int, text: str) -> None:
        self.bar.setRange(0, total)
        self.bar.setValue(done)
        self.message.setText(f"Loading {text}…" if text else "Opening the window…")


def load_behind_screen(app: QApplication) -> Optional[str]:
    """Show the start-up screen while a thread loads the engine; the screen keeps painting meanwhile."""
    screen = StartupScreen()
    screen.show()
    state: dict[str, object] = {"step": (0, len(STEPS), STEPS[0][0])}
    result: list[Optional[str]] = []
    loader = threading.Thread(target=lambda: result.append(load_engine(lambda *step: state.update(step=step))),
                              name="batchlab-startup", daemon=True)
    loader.start()
    while loader.is_alive():
        screen.show_step(*state["step"])  # type: ignore[misc]
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 30)
        loader.join(0.03)
    screen.close()
    return result[0] if result else "the start-up loader ended without a result"
