"""Background threads that drive the engine; widgets are only ever touched from the GUI thread.

Each worker emits its signals from its own ``run()``; Qt queues them to the receivers in
the GUI thread. Signals carry the engine's plain event objects (``Signal(object)``).
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any, Callable, Optional

from PySide6.QtCore import QThread, Signal

from engine.config import ConfigError, ExperimentConfig
from engine.data.scan import DatasetError
from engine.data.split import SplitError
from engine.events import Listener
from engine.stop import StopRequested, StopToken

RunFunction = Callable[..., Path]  # run_experiment(config, listener=..., stop=...) -> experiment folder
Task = Callable[[Callable[[int, int], None], StopToken], Any]  # task(progress, stop) -> result


# Errors whose one-line message is meant for the user as it is.
USER_ERRORS = (ConfigError, DatasetError, SplitError, OSError)


def _default_run() -> RunFunction:
    # Imported on the worker thread: TensorFlow takes seconds to load and must not delay the window.
    from engine.study.launch import run_experiment

    return run_experiment


class TrainingWorker(QThread):
    """Runs one experiment; ``request_stop`` makes the engine stop within one batch."""

    event = Signal(object)  # an engine.events event; ExperimentStarted names the experiment folder
    failed = Signal(str, str)  # message for the user, details (traceback) for the log

    def __init__(self, config: ExperimentConfig, run: Optional[RunFunction] = None, parent=None) -> None:
        super().__init__(parent)
        self.config = config
        self.stop_token = StopToken()
        self._run = run

    def request_stop(self) -> None:
        self.stop_token.set()

    def run(self) -> None:
        listener: Listener = self.event.emit
        try:
            run = self._run or _default_run()
            run(self.config, listener=listener, stop=self.stop_token)
        except StopRequested:
            self.failed.emit("Stopped before training started.", "")
        except Exception as exc:  # noqa: BLE001 - the window must survive anything the engine raises
            if isinstance(exc, USER_ERRORS):
                self.failed.emit(str(exc), "")
            else:
                self.failed.emit(f"Training could not run: {type(exc).__name__}: {exc}", traceback.format_exc())


class TaskWorker(QThread):
    """Runs a short engine task (scan a folder, draw the demo data) with progress and a stop token."""

    progress = Signal(int, int)  # done, total
    succeeded = Signal(object)  # the task's result
    failed = Signal(str)  # one line for the user

    def __init__(self, task: Task, parent=None) -> None:
        super().__init__(parent)
        self.stop_token = StopToken()
        self._task = task

    def request_stop(self) -> None:
        self.stop_token.set()

    def run(self) -> None:
        try:
            result = self._task(self.progress.emit, self.stop_token)
        except StopRequested:
            return
        except Exception as exc:  # noqa: BLE001 - shown to the user instead of killing the window
            self.failed.emit(str(exc) if isinstance(exc, USER_ERRORS) else f"{type(exc).__name__}: {exc}")
            return
        self.succeeded.emit(result)
