"""The window driving the real engine (TensorFlow, real tiny images): run, stop, reopen, close."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog

from engine.record import store as rec
from gui.curves import PLOTS
from gui.main_window import MainWindow

pytestmark = pytest.mark.slow  # real training or a real X server: over 20 s each


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Two classes of 8 real 32 px PNGs: 12 training and 4 validation images."""
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for c, name in enumerate(("red", "blue")):
        (root / name).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 50, (32, 32, 3), dtype=np.uint8)
            pixels[..., 0 if c == 0 else 2] += 180
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def window(qtbot, tmp_path: Path, images: Path, monkeypatch):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings, data_root=tmp_path / "data", checkpoints=tmp_path / "checkpoints")
    qtbot.addWidget(window)
    window.show()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args: str(images))
    window.data_panel.choose_button.click()  # "choose the folder" as a user does, dialog answered
    qtbot.waitUntil(lambda: window.data_panel.report is not None, timeout=10_000)
    panel = window.settings_panel
    panel.image_size.setValue(32)
    panel.epochs.setValue(2)
    panel.patience.setValue(0)
    panel.augment.setChecked(False)
    yield window
    if window.worker is not None:  # a failing test must not leave training running
        window.worker.request_stop()
        window.worker.wait()


def points(window: MainWindow, plot: str, run_index: int) -> int:
    x, _y = window.curves.curve(plot, run_index).getData()
    return 0 if x is None else len(x)


def table_figures(window: MainWindow) -> list[dict[str, str]]:
    """Every figure the results table shows, row by row."""
    from gui.results_table import COLUMNS

    figures = [c for c in COLUMNS if c not in ("Status", "Fate")]  # what a trial is doing, not a figure
    return [{c: window.table.cell_text(r, c) for c in figures} for r in range(window.table.rowCount())]


def test_table_figures_live_in_the_last_epoch_equal_those_reopened_from_disk(qtbot, window):
    """One source of run state: the window folds the engine's events with the engine's own function,
    so throughput, seconds per epoch, time to target and best accuracy read the same live and reopened."""
    from engine.config import ExperimentConfig
    from engine.events import EpochEnded

    config = ExperimentConfig(data_dir=window.data_panel.folder(), batch_sizes=[4, 6], epochs=2, patience=0,
                              image_size=32, augment=False, lr_grid=2, out=str(window.checkpoints))
    window.settings_panel.set_config(config)
    live: list[list[dict[str, str]]] = []

    def capture(event) -> None:  # connected after the window's own slot: it sees what the window drew
        if isinstance(event, EpochEnded) and event.run_index == 3 and event.entry["epoch"] == 2:
            live.append(table_figures(window))

    assert window.start_action.isEnabled(), window.start_problems()
    window.start_action.trigger()
    window.worker.event.connect(capture)
    qtbot.waitUntil(lambda: window.worker is None, timeout=240_000)
    assert len(live) == 1
    assert all(row["Time to target"] != "–" and row["Images / s"] != "–" for row in live[0])
    window.table.set_runs([])
    assert window.open_experiment(window.record_dir)
    assert table_figures(window) == live[0]


def test_real_run_fills_plots_and_table_then_stop_and_reopen(qtbot, window):
    panel = window.settings_panel
    panel.batch_sizes.setText("4, 12")
    # Same optimizer steps for both: batch 12 (1 step per epoch) gets 3x the epochs of batch 4, so it is
    # still training when the test stops it.
    panel.budget.setCurrentIndex(panel.budget.findData("steps"))
    assert window.start_action.isEnabled(), window.start_problems()
    window.start_action.trigger()
    qtbot.waitUntil(lambda: window.record is not None and len(window.record["runs"][1]["history"]) >= 1,
                    timeout=240_000)
    window.stop_action.trigger()
    qtbot.waitUntil(lambda: window.worker is None, timeout=60_000)

    folder = window.record_dir
    on_disk = rec.load(folder)
    assert on_disk["status"] == "stopped"
    statuses = [run["status"] for run in on_disk["runs"]]
    assert statuses == ["completed", "stopped"]
    histories = [len(run["history"]) for run in on_disk["runs"]]
    assert histories[0] == 2 and 1 <= histories[1] < 6
    for key in PLOTS:
        assert [points(window, key, i) for i in (0, 1)] == histories
    assert window.curves.legend.entries == ["batch 4", "batch 12"]
    table = window.table
    assert [table.cell_text(r, "Batch size") for r in range(2)] == ["4", "12"]
    assert [table.cell_text(r, "Status") for r in range(2)] == statuses
    assert [table.cell_text(r, "Epochs run").split(" / ")[0] for r in range(2)] == [str(h) for h in histories]
    assert all(table.cell_text(r, "Images / s") != "–" for r in range(2))
    assert sum("★" in table.cell_text(r, "Best val. accuracy") for r in range(2)) == 1
    assert folder.name in window.windowTitle()

    window.curves.set_runs([])  # forget what is drawn, then reopen from disk
    assert window.open_experiment(folder)
    for key in PLOTS:
        assert [points(window, key, i) for i in (0, 1)] == histories
    assert [table.cell_text(r, "Status") for r in range(2)] == statuses
    best = on_disk["runs"][0]["best"]["val_accuracy"]
    assert table.cell_text(0, "Best val. accuracy").endswith(f"{100 * best:.1f} %")


def test_closing_during_real_training_stops_cleanly(qtbot, window, monkeypatch):
    window.settings_panel.batch_sizes.setText("4")
    window.settings_panel.epochs.setValue(50)
    window.start_action.trigger()
    worker = window.worker
    qtbot.waitUntil(lambda: window.record is not None and window.record["runs"][0]["status"] == "running",
                    timeout=240_000)
    monkeypatch.setattr(window, "confirm_close", lambda: True)
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=60_000)
    assert window.worker is None and worker.isFinished()
    record = rec.load(window.record_dir)
    assert record["status"] == "stopped"
    assert record["runs"][0]["status"] == "stopped"


def test_the_window_is_the_chief_of_a_two_machine_cluster(qtbot, window, tmp_path):
    """The window trains on a cluster of itself and one worker process; the curves come from the chief."""
    from engine.scale.cluster import worker_arguments
    from gui import settings_store
    from tests.helpers import free_ports

    panel = window.settings_panel
    panel.batch_sizes.setText("4")
    panel.precision.setCurrentIndex(panel.precision.findData("fp32"))
    panel.cluster.setText("127.0.0.1:1")
    assert window.start_problems() == ["Cluster: give every machine's HOST:PORT, this one (the chief) first: "
                                       "at least two"]
    cluster = [f"127.0.0.1:{port}" for port in free_ports(2)]
    panel.cluster.setText(", ".join(cluster))
    assert panel.cluster_message.text().startswith("This machine is the chief of 2")
    window.start_action.trigger()
    assert settings_store.load_cluster(window.settings) == cluster  # remembered for the next launch
    qtbot.waitUntil(lambda: any("--index 1" in line for line in window.log.lines()), timeout=30_000)

    scratch = tmp_path / "machine1"
    scratch.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(scratch)}
    other = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent.parent / "main.py"),
                              *worker_arguments(window._running_config, cluster, 1)],
                             cwd=scratch, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        qtbot.waitUntil(lambda: window.worker is None, timeout=240_000)
        assert other.wait(timeout=60) == 0
    finally:
        if other.poll() is None:
            other.kill()

    on_disk = rec.load(window.record_dir)
    assert on_disk["environment"]["distribution"]["workers"] == 2
    assert on_disk["runs"][0]["status"] == "completed" and len(on_disk["runs"][0]["history"]) == 2
    assert window.table.cell_text(0, "Status") == "completed"
    assert all(points(window, key, 0) == 2 for key in PLOTS)
    written = [p.name for p in (tmp_path / "checkpoints").iterdir() if not p.name.startswith(".")]
    assert written == [window.record_dir.name]  # the chief alone wrote an experiment
