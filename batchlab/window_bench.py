"""The window part of the bench: train inside the real main window, offscreen, and time the event loop.

Qt is imported only when this runs, so the engine stays importable without it. A
10 ms timer runs on the GUI thread during training; any gap beyond its interval is
a stall the user would feel as a frozen window.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.config import ExperimentConfig
from engine.events import ExperimentStarted

TICK_MS = 10
SCAN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class WindowFigures:
    images_per_s: float  # last epoch's training rate, as the record inside the window says
    stall_p99_ms: float
    stall_max_ms: float
    ticks: int


def stall_figures(ticks: list[float], interval_ms: float = TICK_MS) -> tuple[float, float]:
    """p99 and max of how late each timer tick came (ms beyond the interval; never negative)."""
    if len(ticks) < 2:
        raise RuntimeError("the window's event loop never ran during training")
    late = np.maximum(np.diff(np.asarray(ticks)) * 1000.0 - interval_ms, 0.0)
    return float(np.percentile(late, 99)), float(late.max())


def measure_window(config: ExperimentConfig) -> WindowFigures:
    """Run ``config`` through MainWindow.start() exactly as a click on Start would."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from engine.measure.bench import last_epoch_rate
    from gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory(prefix="batchlab-bench-gui-") as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings, data_root=Path(tmp) / "data", checkpoints=config.out)
        window.show()
        window.data_panel.set_folder(config.data_dir)
        window.settings_panel.set_config(config)
        clock = QElapsedTimer()
        clock.start()
        while window.start_problems() and clock.elapsed() < SCAN_TIMEOUT_S * 1000:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.01)
        problems = window.start_problems()
        if problems:
            raise RuntimeError(f"bench: the window would not start: {'; '.join(problems)}")
        ticks: list[float] = []
        timer = QTimer()
        timer.setInterval(TICK_MS)
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        loop = QEventLoop()
        folders: list[str] = []
        window.start()
        worker = window.worker
        if worker is None:
            raise RuntimeError("bench: the window did not start training")
        worker.event.connect(lambda event: folders.append(event.experiment_dir)
                             if isinstance(event, ExperimentStarted) else None)
        worker.finished.connect(loop.quit)
        timer.start()
        loop.exec()
        timer.stop()
        app.processEvents()
        window.close()
        if not folders:
            raise RuntimeError("bench: training inside the window created no experiment")
        p99, worst = stall_figures(ticks)
        return WindowFigures(last_epoch_rate(Path(folders[0])), p99, worst, len(ticks))
