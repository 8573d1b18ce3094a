"""The window driven by a scripted engine: layout, validation, errors, history, settings memory.

The scripted engine below emits the real event classes and writes a real record with
engine.record.store, so everything the window does with them is real; only the training is
skipped to keep these tests fast. tests/test_gui_engine.py runs the real engine.
"""

from __future__ import annotations

import copy
import dataclasses
import html
import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import time
from pathlib import Path
from typing import Optional

import numpy as np
import pyqtgraph as pg
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QThread, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QLabel

from engine import events as ev
from engine.config import ExperimentConfig
from engine.data.scan import DatasetError
from engine.record import store as rec
from engine.record.state import apply_event
from engine.stop import StopToken
from gui import settings_store
from gui.curves import PLOTS
from gui.main_window import MainWindow
from gui.palette import batch_colours
from gui.results_table import COLUMNS


def write_images(root: Path, classes: dict[str, int], size: int = 32) -> Path:
    """Real PNG files, one folder per class (distinct colours so classes differ)."""
    rng = np.random.default_rng(0)
    for c, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8) + np.uint8(60 * c)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


class ScriptedEngine:
    """Stands in for engine.study.launch.run_experiment: same signature, events, record and stop token, with
    made-up numbers and no TensorFlow; the record is kept by the engine's own apply_event, as the runner does."""

    def __init__(self, epochs: int = 3, fail_batch: Optional[int] = None, error: Optional[Exception] = None,
                 hold_after: Optional[int] = None, checkpoints: bool = False) -> None:
        """``hold_after``: after that many epochs the run keeps "training" until the stop token is set;
        ``checkpoints``: each improving epoch writes a (stand-in) best checkpoint file."""
        self.epochs, self.fail_batch, self.error, self.hold_after = epochs, fail_batch, error, hold_after
        self.checkpoints = checkpoints
        self.thread: Optional[QThread] = None

    def __call__(self, config: ExperimentConfig, listener: ev.Listener, stop: StopToken) -> Path:
        self.thread = QThread.currentThread()
        if self.error is not None:
            raise self.error
        folder = Path(config.out) / f"scripted-{time.monotonic_ns()}"
        self.folder = folder
        folder.mkdir(parents=True)
        runs = [rec.new_run(i, size, 0, config.seed) for i, size in enumerate(config.batch_sizes)]
        for run in runs:  # planned from the start, as the engine's trials are
            run["epochs_planned"] = self.epochs
        record = {"schema_version": rec.SCHEMA_VERSION, "id": folder.name, "created": rec.utc_now(),
                  "status": "running", "config": config.to_dict(), "dataset": {"classes": ["a", "b"]}, "runs": runs,
                  "environment": {"device": "CPU (scripted)", "precision": "fp32"}}
        rec.save(folder, record)

        def emit(event: ev.Event) -> None:
            if apply_event(record, event) is not None or isinstance(event, ev.ExperimentFinished):
                rec.save(folder, record)
            listener(event)

        listener(ev.ExperimentStarted(str(folder), list(config.batch_sizes), len(runs), 96, 32, ["a", "b"],
                                      "CPU (scripted)", "fp32", copy.deepcopy(record)))
        for run in runs:
            if stop.is_set():
                break
            self._train(run, emit, stop)
        statuses = {r["status"] for r in runs}
        emit(ev.ExperimentFinished(str(folder), "stopped" if stop.is_set() or "pending" in statuses else "completed"))
        return folder

    def _train(self, run: dict, emit: ev.Listener, stop: StopToken) -> None:
        size, steps = run["batch_size"], -(-96 // run["batch_size"])
        emit(ev.RunStarted(run["run_index"], size, 0, run["seed"], self.epochs, steps, 96, 0.001))
        emit(ev.LogMessage("info", f"scripted run {size}"))
        status, error = "completed", None
        for epoch in range(1, self.epochs + 1):
            emit(ev.BatchProgress(run["run_index"], size, epoch, 1, steps, 1.0, 0.5, 100.0, 0.1, 1.0))
            while self.hold_after is not None and epoch > self.hold_after and not stop.is_set():
                time.sleep(0.005)
            if stop.is_set():
                status, error = "stopped", "stopped by the user"
                break
            if size == self.fail_batch:
                status, error = "failed", "out of memory at this batch size"
                emit(ev.LogMessage("error", f"batch size {size}: {error}"))
                break
            entry = {"epoch": epoch, "loss": 1.0 / epoch + size / 500, "accuracy": 0.98 - 0.5 / epoch - size / 4000,
                     "val_loss": 1.1 / epoch + size / 400, "val_accuracy": 0.95 - 0.5 / epoch - size / 2000,
                     "lr": 0.001,
                     "steps": steps * epoch, "samples": 96 * epoch, "seconds": 0.5, "elapsed": 0.5 * epoch,
                     "images_per_s": 192.0}
            checkpoint = {}
            if self.checkpoints:
                checkpoint = {"checkpoint": f"bs{size}/best.keras"}
                (self.folder / f"bs{size}").mkdir(exist_ok=True)
                (self.folder / checkpoint["checkpoint"]).write_bytes(b"stand-in")
            emit(ev.EpochEnded(run["run_index"], size, entry, entry["val_accuracy"], epoch, 192.0,
                               0.5 * (self.epochs - epoch), True, checkpoint))
        emit(ev.RunFinished(run["run_index"], size, status, error, run["best"], run.get("checkpoint"),
                            run["epochs_run"]))


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    """An isolated settings file: tests never touch the user's BatchLab settings."""
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return write_images(tmp_path / "images", {"cats": 8, "dogs": 8, "owls": 8})


@pytest.fixture
def make_window(qtbot, tmp_path: Path, settings: QSettings):
    windows: list[MainWindow] = []

    def make(run=None, data_dir: Optional[Path] = None, **kwargs) -> MainWindow:
        if data_dir is not None:
            settings_store.save_data_dir(settings, str(data_dir))
        window = MainWindow(settings, data_root=tmp_path / "data", checkpoints=tmp_path / "checkpoints",
                            run=run or ScriptedEngine(), **kwargs)
        qtbot.addWidget(window)
        window.confirm_close = lambda: True  # a failing test must never wait on a question at teardown
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:  # never leave a thread behind, whatever a test did
        if window.worker is not None:
            window.worker.request_stop()
            window.worker.wait()
        window.data_panel.wait_idle()


def ready(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: window.data_panel.report is not None or window.data_panel.scan_error is not None,
                    timeout=10_000)


def run_to_end(qtbot, window: MainWindow) -> None:
    assert window.start_action.isEnabled(), window.start_problems()
    window.start_action.trigger()
    qtbot.waitUntil(lambda: window.worker is None, timeout=10_000)


def test_first_launch_draws_the_demo_data_in_the_background(qtbot, make_window, tmp_path):
    window = make_window(demo_per_class=3)
    assert window.demo_worker is not None  # nothing remembered, no demo set: it is being drawn
    assert not window.start_action.isEnabled()
    qtbot.waitUntil(lambda: window.data_panel.report is not None, timeout=20_000)
    assert Path(window.data_panel.folder()) == (tmp_path / "data" / "shapes").resolve()
    assert window.data_panel.report.counts == {name: 3 for name in window.data_panel.report.classes}
    assert len(window.data_panel.report.classes) == 5
    assert any("demo data" in line for line in window.log.lines())
    assert window.start_action.isEnabled()
    assert window.settings_panel.image_size.text() == "auto"  # no special case: auto is the demo's 32 px
    assert window.settings_panel.image_size_for(window.data_panel.folder()) == 32


def test_choosing_a_folder_while_the_demo_set_is_drawn_wins(qtbot, make_window, tmp_path, images):
    window = make_window(demo_per_class=400)
    assert window.demo_worker is not None
    window.data_panel.set_folder(str(images))
    qtbot.waitUntil(lambda: window.demo_worker is None, timeout=20_000)
    ready(qtbot, window)
    assert window.data_panel.folder() == str(images)
    assert window.start_action.isEnabled()
    assert not (tmp_path / "data" / "shapes").exists()  # the abandoned set left nothing half-made


def test_settings_are_remembered_between_launches(qtbot, make_window, images):
    first = make_window(data_dir=images)
    ready(qtbot, first)
    panel = first.settings_panel
    panel.batch_sizes.setText("16, 64")
    panel.epochs.setValue(7)
    panel.augment.setChecked(False)
    panel.precision.setCurrentIndex(panel.precision.findData("fp32"))
    panel.budget.setCurrentIndex(panel.budget.findData("time"))
    panel.budget_seconds.setValue(90)
    first.curves.set_x_axis("samples")
    first.close()

    second = make_window()
    ready(qtbot, second)
    config = second.settings_panel.config("", "out")
    assert (config.batch_sizes, config.epochs, config.augment) == ([16, 64], 7, False)
    assert (config.precision, config.budget, config.budget_seconds) == ("fp32", "time", 90.0)
    assert second.data_panel.folder() == str(images)
    assert second.curves.x_axis() == "samples"


def test_a_fresh_window_has_the_seed_notebook_defaults_and_shortcuts(qtbot, make_window, images):
    window = make_window(data_dir=images)
    config = window.settings_panel.config("d", "o")
    assert config == ExperimentConfig("d", [32, 256], out="o")  # the config's own defaults, image size auto
    actions = (window.start_action, window.stop_action, window.open_action)
    shortcuts = {action.text(): action.shortcut().toString() for action in actions}
    assert shortcuts == {"Start": "Ctrl+R", "Stop": "Ctrl+.", "Open experiment…": "Ctrl+O"}
    assert window.windowTitle() == "BatchLab — new experiment"


def test_invalid_batch_sizes_disable_start_with_a_message(qtbot, make_window, images):
    window = make_window(data_dir=images)
    ready(qtbot, window)
    assert window.start_action.isEnabled()
    for text, message in (("32, abc", "'abc' is not a positive whole number"),
                          ("32, 0", "'0' is not a positive whole number"),
                          ("32, -4", "'-4' is not a positive whole number"),
                          ("32, 64, 32", "32 given more than once"),
                          ("  ", "give at least one")):
        window.settings_panel.batch_sizes.setText(text)
        assert not window.start_action.isEnabled(), text
        assert message in window.settings_panel.batch_message.text()
        assert window.settings_panel.batch_message.isVisible()
        assert message in window.start_action.toolTip()
        window.settings_panel.batch_sizes.setText("4, 8")
        assert window.start_action.isEnabled()
        assert not window.settings_panel.batch_message.isVisible()
    window.settings_panel.lr.setText("fast")
    assert "Learning rate: 'fast' is not a number" in window.settings_panel.lr_message.text()
    assert not window.start_action.isEnabled()


def test_a_batch_larger_than_the_training_set_warns_but_allows_start(qtbot, make_window, images):
    window = make_window(data_dir=images)
    ready(qtbot, window)
    window.settings_panel.batch_sizes.setText("8, 64")
    text = window.settings_panel.batch_message.text()
    assert "Batch size 64 exceeds the training set (18 images)" in text  # 3 classes x 8, 25 % held out
    assert window.start_action.isEnabled()


def test_bad_folders_disable_start_with_the_reason(qtbot, make_window, tmp_path, images):
    window = make_window(data_dir=tmp_path / "missing")
    ready(qtbot, window)
    assert not window.start_action.isEnabled()
    assert str(tmp_path / "missing") in window.data_panel.problem.text()
    assert window.data_panel.problem.isVisible()

    empty_class = write_images(tmp_path / "partly", {"cats": 4})
    (empty_class / "dogs").mkdir()
    window.data_panel.set_folder(str(empty_class))
    ready(qtbot, window)
    assert "class 'dogs' has no usable image" in window.data_panel.problem.text()
    assert not window.start_action.isEnabled()

    tiny = write_images(tmp_path / "tiny", {"cats": 1, "dogs": 6})
    window.data_panel.set_folder(str(tiny))
    ready(qtbot, window)
    assert "class 'cats'" in window.data_panel.problem.text()  # the engine's own split check
    assert not window.start_action.isEnabled()

    window.data_panel.set_folder(str(images))
    ready(qtbot, window)
    assert not window.data_panel.problem.isVisible()
    assert window.start_action.isEnabled()


def test_the_report_lists_classes_and_skipped_files_with_reasons(qtbot, make_window, images):
    (images / "dogs" / "notes.txt").write_text("not a picture")
    (images / "owls" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    window = make_window(data_dir=images)
    ready(qtbot, window)
    panel = window.data_panel
    assert "3 classes · 24 images · 2 files skipped" in panel.summary.text()
    rows = [(panel.classes.topLevelItem(i).text(0), panel.classes.topLevelItem(i).text(1))
            for i in range(panel.classes.topLevelItemCount())]
    assert rows == [("cats", "8"), ("dogs", "8"), ("owls", "8")]
    skipped = {panel.skipped.topLevelItem(i).text(0): panel.skipped.topLevelItem(i).text(1)
               for i in range(panel.skipped.topLevelItemCount())}
    assert set(skipped) == {"dogs/notes.txt", "owls/broken.png"}
    assert all(reason for reason in skipped.values())
    assert panel.skipped.isVisible()


def test_a_run_fills_every_plot_and_the_table(qtbot, make_window, images):
    engine = ScriptedEngine(epochs=3)
    window = make_window(run=engine, data_dir=images)
    ready(qtbot, window)
    window.settings_panel.batch_sizes.setText("8, 32")
    handled_on: list[bool] = []
    window.start_action.trigger()
    gui_thread = QApplication.instance().thread()
    window.worker.event.connect(lambda _event: handled_on.append(QThread.currentThread() is gui_thread))
    qtbot.waitUntil(lambda: window.worker is None, timeout=10_000)

    assert engine.thread is not QApplication.instance().thread()  # the engine ran off the GUI thread
    assert handled_on and all(handled_on)  # and its events were handled on the GUI thread
    runs = window.record["runs"]
    assert [r["batch_size"] for r in runs] == [8, 32]
    colours = batch_colours([8, 32])
    for key in PLOTS:
        for run in runs:
            curve = window.curves.curve(key, run["run_index"])
            x, y = curve.getData()
            assert list(x) == [1, 2, 3]
            assert len(y) == 3
            assert curve.opts["pen"].color() == colours[run["batch_size"]]
        curves = [i for i in window.curves.plots[key].listDataItems() if isinstance(i, pg.PlotDataItem) and i.name()]
        assert len(curves) == 2  # one long-lived curve per batch size (plus the unnamed provisional one)
    assert window.curves.legend.entries == ["batch 8", "batch 32"]

    table = window.table
    assert table.rowCount() == 2
    assert [table.cell_text(r, "Status") for r in range(2)] == ["completed", "completed"]
    assert table.cell_text(0, "Best val. accuracy") == "★ 77.9 %"  # batch 8 is best: highlighted
    assert table.cell_text(1, "Best val. accuracy") == "76.7 %"
    assert table.item(0, 0).font().bold() and not table.item(1, 0).font().bold()
    assert table.cell_text(0, "Best epoch") == "3"
    assert table.cell_text(0, "Epochs run") == "3 / 3"
    assert table.cell_text(0, "Seconds / epoch") == "0.50"
    assert table.cell_text(0, "Images / s") == "192"
    swatch = table.item(1, 0).icon().pixmap(12, 12).toImage().pixelColor(6, 6)
    assert swatch == colours[32]
    assert "BatchLab — scripted-" in window.windowTitle()
    assert any("scripted run 32" in line for line in window.log.lines())
    assert window.progress.overall_bar.value() == window.progress.overall_bar.maximum()


def test_the_x_axis_selector_and_row_selection(qtbot, make_window, images):
    window = make_window(data_dir=images)
    ready(qtbot, window)
    window.settings_panel.batch_sizes.setText("8, 32")
    run_to_end(qtbot, window)
    for key, expected, label in (("samples", [96, 192, 288], "training samples seen"),
                                 ("steps", [12, 24, 36], "optimizer steps"),
                                 ("elapsed", [0.5, 1.0, 1.5], "wall-clock time (s)")):
        window.curves.set_x_axis(key)
        for plot_key, plot in window.curves.plots.items():
            assert list(window.curves.curve(plot_key, 0).getData()[0]) == expected
            assert plot.getAxis("bottom").labelText == label

    with qtbot.waitSignal(window.table.run_selected) as signal:
        window.table.selectRow(1)
    assert signal.args[0]["batch_size"] == 32
    assert window.curves.curve("loss", 1).opts["pen"].widthF() > window.curves.curve("loss", 0).opts["pen"].widthF()


def test_a_failed_run_shows_its_reason_and_the_others_go_on(qtbot, make_window, images):
    window = make_window(run=ScriptedEngine(fail_batch=8), data_dir=images)
    ready(qtbot, window)
    window.settings_panel.batch_sizes.setText("8, 32")
    run_to_end(qtbot, window)
    assert window.table.cell_text(0, "Status") == "failed"
    assert "out of memory at this batch size" in window.table.item(0, COLUMNS.index("Status")).toolTip()
    assert window.table.cell_text(1, "Status") == "completed"
    assert "Batch size 8 failed: out of memory" in window.notice.text()
    assert any("ERROR" in line and "out of memory" in line for line in window.log.lines())


def test_engine_errors_are_shown_in_words_and_the_window_survives(qtbot, make_window, images):
    engine = ScriptedEngine()
    window = make_window(run=engine, data_dir=images)
    ready(qtbot, window)
    for engine.error, shown in ((DatasetError("/data/x: no class folders found"), "/data/x: no class folders found"),
                                (RuntimeError("boom"), "Training could not run: RuntimeError: boom")):
        run_to_end(qtbot, window)
        assert window.notice.isVisible() and shown in window.notice.text()
        assert any(shown in line for line in window.log.lines())
        assert window.start_action.isEnabled()  # ready for another go


def test_stop_marks_the_run_stopped(qtbot, make_window, images):
    window = make_window(run=ScriptedEngine(epochs=5, hold_after=2), data_dir=images)
    ready(qtbot, window)
    window.settings_panel.batch_sizes.setText("8, 32")
    window.start_action.trigger()
    qtbot.waitUntil(lambda: window.record is not None and len(window.record["runs"][0]["history"]) >= 2)
    window.stop_action.trigger()
    assert not window.stop_action.isEnabled()
    qtbot.waitUntil(lambda: window.worker is None, timeout=10_000)
    assert window.table.cell_text(0, "Status") == "stopped"
    assert window.table.cell_text(1, "Status") == "queued"
    assert window.record["status"] == "stopped"
    assert list(window.curves.curve("val_accuracy", 0).getData()[0]) == [1, 2]  # the epochs before the stop


def test_closing_during_training_asks_then_stops_and_leaves_no_thread(qtbot, make_window, images, monkeypatch):
    window = make_window(run=ScriptedEngine(epochs=5, hold_after=1), data_dir=images)
    ready(qtbot, window)
    window.start_action.trigger()
    worker = window.worker
    qtbot.waitUntil(lambda: window.record is not None)
    answers = iter([False, True])
    asked: list[bool] = []
    monkeypatch.setattr(window, "confirm_close", lambda: asked.append(True) or next(answers))

    window.close()
    assert asked == [True] and window.isVisible() and worker.isRunning()  # "No": keeps training
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10_000)
    assert asked == [True, True]
    assert worker.isFinished() and not worker.isRunning() and window.worker is None
    record = rec.load(next((window.checkpoints).iterdir()))
    assert record["status"] == "stopped"


def test_opening_an_interrupted_experiment_shows_what_was_recorded(qtbot, make_window, tmp_path, images):
    folder = tmp_path / "checkpoints" / "old-run"
    runs = [rec.new_run(0, 16, 0, 0), rec.new_run(1, 64, 0, 0)]
    runs[0].update(status="completed", epochs_run=2, best={"epoch": 2, "val_accuracy": 0.75, "val_loss": 0.6},
                   history=[{"epoch": e, "loss": 1 / e, "accuracy": 0.5, "val_loss": 1 / e,
                             "val_accuracy": 0.7 + e / 40, "steps": 4 * e, "samples": 60 * e, "seconds": 1.0,
                             "elapsed": float(e)} for e in (1, 2)])
    runs[1].update(status="running", epochs_run=1,
                   history=[{"epoch": 1, "loss": 1.2, "accuracy": 0.4, "val_loss": 1.3, "val_accuracy": None,
                             "steps": 1, "samples": 60, "seconds": 1.0, "elapsed": 1.0}])
    folder.mkdir(parents=True)
    rec.save(folder, {"schema_version": 1, "id": "old-run", "status": "running", "created": rec.utc_now(),
                      "config": ExperimentConfig(str(images), [16, 64], epochs=9, devices=["CPU:0"]).to_dict(),
                      "dataset": {}, "runs": runs})
    window = make_window(data_dir=images)
    ready(qtbot, window)
    window.side_tabs.setCurrentWidget(window.history)
    assert window.history.tree.topLevelItem(0).text(2) == "interrupted"
    window.history.tree.setCurrentItem(window.history.tree.topLevelItem(0))
    window.history.open_button.click()

    assert window.windowTitle() == "BatchLab — old-run"
    assert "interrupted" in window.notice.text()
    assert list(window.curves.curve("val_accuracy", 0).getData()[1]) == [72.5, 75.0]
    assert window.curves.curve("val_accuracy", 1).getData()[0] is None  # a null value is skipped, no crash
    assert list(window.curves.curve("loss", 1).getData()[1]) == [1.2]
    assert [window.table.cell_text(r, "Status") for r in range(2)] == ["completed", "running"]

    window.reuse_action.trigger()
    config = window.settings_panel.config(window.data_panel.folder(), "out")
    assert (config.batch_sizes, config.epochs, config.data_dir) == ([16, 64], 9, str(images))
    assert config.devices == ["CPU:0"]  # settings the form does not show are carried over too


def test_opening_a_folder_without_a_record_says_so(qtbot, make_window, tmp_path, images):
    window = make_window(data_dir=images)
    ready(qtbot, window)
    assert not window.open_experiment(tmp_path)
    assert "no experiment record here" in window.notice.text()


def test_dropping_a_folder_chooses_it(qtbot, make_window, tmp_path, images):
    window = make_window(data_dir=tmp_path / "missing")
    ready(qtbot, window)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(images))])
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    window.dropEvent(drop)
    ready(qtbot, window)
    assert window.data_panel.folder() == str(images)
    assert window.start_action.isEnabled()


def test_a_long_session_of_qt_calls_does_not_crash_python(qtbot):
    """PySide6 6.12.0 drops a reference to None per call on Python < 3.12 (gui.qt_compat works around it).

    Without the workaround this process dies with "none_dealloc" long before the loop ends.
    """
    label = QLabel()
    for _ in range(300_000):  # more references than None has in this process (tens of thousands)
        label.setText("x")
    assert label.text() == "x"



def test_devices_and_parallel_are_settings_that_are_remembered(qtbot, make_window, images):
    first = make_window(data_dir=images)
    ready(qtbot, first)
    panel = first.settings_panel
    panel.devices.setText("gpu0")
    assert "Devices: 'gpu0' is not a device name like GPU:0 or CPU:0" in panel.devices_message.text()
    assert not first.start_action.isEnabled()
    panel.devices.setText("GPU:0, GPU:0")
    assert "GPU:0 given more than once" in panel.devices_message.text()
    panel.devices.setText("gpu:0 GPU:1")
    panel.parallel.setChecked(True)
    assert first.start_action.isEnabled() and not panel.devices_message.isVisible()
    config = panel.config("d", "o").validate()
    assert (config.devices, config.parallel) == (["GPU:0", "GPU:1"], True)
    panel.devices.clear()
    assert panel.config("d", "o").devices is None  # empty: every visible GPU
    panel.devices.setText("CPU:0")
    first.close()

    second = make_window()
    config = second.settings_panel.config("d", "o")
    assert (config.devices, config.parallel) == (["CPU:0"], True)
    assert second.settings_panel.devices.text() == "CPU:0"


def test_the_progress_strip_names_the_device_and_precision(qtbot, make_window, images):
    window = make_window(data_dir=images)
    ready(qtbot, window)
    window.settings_panel.batch_sizes.setText("8")
    run_to_end(qtbot, window)
    assert window.progress.device_label.text() == "CPU (scripted) · fp32"
    assert "fp32 precision" in window.progress.device_label.toolTip()


def test_per_run_actions_follow_the_selection(qtbot, make_window, images):
    window = make_window(data_dir=images)
    ready(qtbot, window)
    assert not window.save_csv_action.isEnabled() and not window.export_action.isEnabled()
    window.settings_panel.batch_sizes.setText("8, 32")
    run_to_end(qtbot, window)
    assert window.save_csv_action.isEnabled()
    assert all(action.isEnabled() for action in window.save_plot_actions.values())
    window.table.selectRow(0)
    assert not window.export_action.isEnabled()  # the scripted runs saved no checkpoint
    assert "The selected run has no saved checkpoint" in window.export_action.toolTip()
    window.views.setCurrentWidget(window.evaluation_view)
    assert "has no finished checkpoint yet" in window.evaluation_view.title.text()
    assert window.evaluation_view.job is None
    window.views.setCurrentWidget(window.advice_panel)
    assert "batch size" in window.advice_panel.advice.text()
    assert "Best val. accuracy (single runs)" in window.summary.text()


def test_probe_throughput_opens_on_the_chosen_data(qtbot, make_window, images):
    window = make_window(data_dir=images)
    ready(qtbot, window)
    window.settings_panel.image_size.setValue(48)
    assert window.probe_action.isEnabled()
    window.probe_action.trigger()
    dialog = window.probe_dialog
    assert dialog.isVisible()
    assert (dialog.data_dir, dialog.image_size, dialog.experiment_dir) == (str(images), 48, None)
    assert (dialog.model, dialog.weights) == ("seed", "none")
    dialog.reject()


def test_probe_measures_what_the_experiment_shown_trained(qtbot, make_window, images, trained_experiment):
    """Its probe.json feeds that experiment's prediction: the experiment's image size and model, not the form's."""
    window = make_window(data_dir=images)
    ready(qtbot, window)
    window.settings_panel.image_size.setValue(48)
    window.settings_panel.model.setCurrentIndex(window.settings_panel.model.findText("seed-bn"))
    assert window.open_experiment(trained_experiment)
    window.probe_action.trigger()
    dialog = window.probe_dialog
    assert (dialog.image_size, dialog.model, dialog.experiment_dir) == (32, "seed", trained_experiment)
    dialog.reject()


# -- the settings panel, generated from the config's setting definitions --------------------------

def every_setting_changed() -> ExperimentConfig:
    return ExperimentConfig(
        data_dir="d", batch_sizes=[8, 64], epochs=7, patience=0, image_size=48, val_split=0.2, lr=0.0003, seed=9,
        augment=False, out="o", precision="fp32", lr_scaling="sqrt", lr_reference_batch=16, warmup_epochs=1.5,
        budget="steps", budget_seconds=90.0, repeats=2, target_accuracy=0.8, noise_scale=True, name="n",
        devices=["CPU:0"], parallel=True, lr_grid=1, lr_grid_factor=2.5, lrs=[0.001, 0.003], tune="halving",
        halving_eta=2, model="resnet50", weights="imagenet", freeze_backbone=True,
        fine_tune_from="conv5_block1_out").validate()


def test_the_panel_has_a_widget_per_setting_and_gives_back_the_config_it_was_given(qtbot):
    from PySide6.QtWidgets import QDoubleSpinBox, QSpinBox

    from engine.config import DEFAULTS, OPTIONAL, SETTINGS
    from gui.settings_panel import HIDDEN, SettingsPanel

    panel = SettingsPanel()
    qtbot.addWidget(panel)
    assert set(panel.editors) == set(SETTINGS) - set(HIDDEN)
    for name, editor in panel.editors.items():
        spec = SETTINGS[name]
        assert editor.toolTip() == spec.help and getattr(panel, name) is editor, name
        if isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            scale = 100 if spec.percent else 1
            assert editor.maximum() <= spec.high * scale, name
            if name in OPTIONAL:
                assert editor.specialValueText() == spec.none_text and editor.minimum() < spec.low * scale + 1, name
    assert panel.image_size.text() == "auto" and panel.target_accuracy.text() == "auto (95 % of the best)"
    assert panel.val_split.suffix() == " %" and panel.patience.maximum() == 100_000
    assert panel.config("d", "o") == ExperimentConfig("d", [32, 256], out="o")  # the specs' defaults
    assert (panel.epochs.value(), panel.lr.text()) == (DEFAULTS["epochs"], str(DEFAULTS["lr"]))
    config = every_setting_changed()
    panel.set_config(config)
    assert panel.problems() == []
    assert panel.config("d", "o") == config
    panel.set_config(ExperimentConfig("d", [4], image_size=None, target_accuracy=None, budget_seconds=None))
    assert panel.config("d", "o") == ExperimentConfig("d", [4], out="o")


def test_the_panel_shows_every_problem_at_once(qtbot):
    from gui.settings_panel import SettingsPanel

    panel = SettingsPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.batch_sizes.setText("32, abc")
    panel.lr.setText("fast")
    panel.lrs.setText("0.001 0.01")
    panel.lr_grid.setValue(3)
    panel.budget.setCurrentIndex(panel.budget.findData("time"))
    assert panel.problems() == [
        "Batch sizes: 'abc' is not a positive whole number; type e.g. 32 256 or 32,256",
        "Learning rate: 'fast' is not a number (e.g. 0.001 or 1e-3)",
        "Budget: 'time' needs a positive number of seconds per run (the time budget)",
        "Learning rates: give explicit learning rates or an lr grid above 1 (it is 3), not both",
    ]
    assert [panel.sections[title].toggle.text() for title in ("Study", "Model", "Advanced")] == [
        "Study (1 to fix)", "Model", "Advanced (1 to fix)"]  # closed sections say they hold a problem
    for section in panel.sections.values():
        section.toggle.setChecked(True)
    for name, label in (("batch_sizes", "Batch sizes"), ("lr", "Learning rate"), ("budget", "Budget"),
                        ("lrs", "Learning rates")):
        assert panel.messages[name].isVisible() and panel.messages[name].text().startswith(label + ":")
    panel.batch_sizes.setText("32,256")
    assert not panel.messages["batch_sizes"].isVisible() and len(panel.problems()) == 3


def test_start_lists_every_problem_and_training_locks_the_settings(qtbot, make_window, images):
    window = make_window(run=ScriptedEngine(epochs=5, hold_after=1), data_dir=images)
    ready(qtbot, window)
    panel = window.settings_panel
    panel.batch_sizes.setText("abc")
    panel.lr.setText("fast")
    tip = window.start_action.toolTip()
    assert "'abc' is not a positive whole number" in tip and "'fast' is not a number" in tip
    panel.batch_sizes.setText("8")
    panel.lr.setText("1e-3")
    load_action, _save_action = window.settings_actions
    assert not panel.is_locked() and load_action.isEnabled()
    window.start_action.trigger()
    qtbot.waitUntil(lambda: window.record is not None)
    assert panel.is_locked() and not load_action.isEnabled()
    assert not any(editor.isEnabled() for editor in panel.editors.values()) and not panel.cluster.isEnabled()
    window.stop_action.trigger()
    qtbot.waitUntil(lambda: window.worker is None, timeout=10_000)
    assert not panel.is_locked() and panel.epochs.isEnabled() and load_action.isEnabled()
    assert not panel.budget_seconds.isEnabled()  # still greyed out: it matters only for the time budget


def test_set_locked_disables_and_restores_every_setting(qtbot):
    from gui.settings_panel import SettingsPanel

    panel = SettingsPanel()
    qtbot.addWidget(panel)
    enabled = {name: editor.isEnabled() for name, editor in panel.editors.items()}
    seen: list[bool] = []
    panel.lock_changed.connect(seen.append)
    panel.set_locked(True)
    assert not any(editor.isEnabled() for editor in panel.editors.values())
    panel.set_locked(False)
    assert {name: editor.isEnabled() for name, editor in panel.editors.items()} == enabled
    assert seen == [True, False] and enabled["epochs"] and not enabled["halving_eta"]  # eta: halving only


def test_the_model_picker_offers_a_keras_file_and_the_backbone_size(qtbot, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog

    from engine.config import MODEL_NAMES
    from gui.settings_panel import OWN_MODEL, SettingsPanel

    panel = SettingsPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.sections["Model"].toggle.setChecked(True)
    assert [panel.model.itemText(i) for i in range(panel.model.count())] == [*MODEL_NAMES, OWN_MODEL]
    answers = iter([(str(tmp_path / "mine.keras"), ""), ("", "")])
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args: next(answers))
    own = panel.model.findText(OWN_MODEL)
    panel.model.setCurrentIndex(own)
    panel.model.activated.emit(own)
    assert panel.config("d", "o").model == str(tmp_path / "mine.keras")
    own = panel.model.findText(OWN_MODEL)
    panel.model.setCurrentIndex(own)
    panel.model.activated.emit(own)  # dialog cancelled: the file chosen before stays
    assert panel.config("d", "o").model == str(tmp_path / "mine.keras")

    assert not panel.suggestion.isVisible()
    panel.model.set_value("mobilenetv3small")
    assert panel.image_size.text() == "auto" and panel.suggestion.isVisible()
    assert panel.suggestion.text() == ("mobilenetv3small was made for 224 px images and needs at least 32 px; the "
                                       "image size is auto.")
    assert panel.freeze_backbone.isEnabled()
    panel.use_native.click()
    assert panel.config("d", "o").image_size == 224 and not panel.suggestion.isVisible()
    panel.model.set_value("seed")
    assert not panel.freeze_backbone.isEnabled() and not panel.suggestion.isVisible()


def test_settings_files_load_and_save_the_same_toml_as_the_command_line(qtbot, make_window, images, tmp_path):
    from engine.config_file import read_config, write_config
    from gui.settings_file import load_settings, save_settings

    window = make_window(data_dir=images)
    ready(qtbot, window)
    config = dataclasses.replace(every_setting_changed(), data_dir=str(images), out=str(window.checkpoints))
    window.settings_panel.set_config(config)
    path = tmp_path / "my settings.toml"
    assert save_settings(window, str(path))
    assert read_config(path) == config  # what `run --config` would train

    other = tmp_path / "other.toml"
    write_config(ExperimentConfig(str(images), [4, 16], epochs=3), other)
    assert load_settings(window, str(other))
    assert window.settings_panel.config(str(images), "o") == ExperimentConfig(str(images), [4, 16], epochs=3, out="o")
    assert any("Settings loaded from" in line for line in window.log.lines())

    other.write_text("epochs = 'many'\n", encoding="utf-8")
    assert not load_settings(window, str(other))
    assert f"{other}: epochs: 'many' is not a whole number" in html.unescape(window.notice.text())
    window.settings_panel.batch_sizes.setText("x")
    assert not save_settings(window, str(tmp_path / "refused.toml"))
    assert "not saved" in window.notice.text() and not (tmp_path / "refused.toml").exists()


# -- plots, progress, export, reopening and overlay (issue 14) ------------------------------------

def test_the_running_loss_is_drawn_before_the_first_epoch_ends(qtbot, make_window, images):
    window = make_window(run=ScriptedEngine(epochs=3, hold_after=0), data_dir=images)
    ready(qtbot, window)
    window.settings_panel.batch_sizes.setText("8")
    window.start_action.trigger()
    provisional = window.curves.provisional
    qtbot.waitUntil(lambda: provisional["loss"].getData()[0] is not None and len(provisional["loss"].getData()[0]))
    assert window.record["runs"][0]["history"] == []  # no epoch has ended: the line is all there is
    x, y = provisional["loss"].getData()
    assert list(x) == [1 / 12] and list(y) == [1.0]  # step 1 of 12 in epoch 1; the running loss
    assert list(provisional["accuracy"].getData()[1]) == [50.0]
    window.curves.set_x_axis("steps")
    assert list(provisional["loss"].getData()[0]) == [1.0]
    window.stop_action.trigger()
    qtbot.waitUntil(lambda: window.worker is None, timeout=10_000)
    assert provisional["loss"].getData()[0] is None  # the run ended: no provisional line is left


def test_accuracy_axes_are_fixed_at_0_to_100_and_the_target_is_a_line(qtbot, make_window, images):
    window = make_window(data_dir=images)
    ready(qtbot, window)
    curves = window.curves
    for key in ("val_accuracy", "accuracy"):  # empty plots: percent from 0 to 100, not 0.2-0.8
        low, high = curves.plots[key].getViewBox().viewRange()[1]
        assert low <= 0 and 100 <= high <= 110
    window.settings_panel.batch_sizes.setText("8, 32")
    run_to_end(qtbot, window)
    ranges = [curves.plots[key].getViewBox().viewRange()[1] for key in ("val_accuracy", "accuracy")]
    assert all(low <= 0 and high >= 100 for low, high in ranges)  # data at 27-78 % does not zoom by default
    target = window.record["target_accuracy"]
    assert target is not None and curves.target_line.isVisible()
    assert curves.target_line.value() == pytest.approx(100 * target)
    assert f"target {100 * target:.1f} %" in curves.target_line.label.toPlainText()
    curves.set_auto_accuracy(True)
    zoomed = [curves.plots[key].getViewBox().viewRange()[1] for key in ("val_accuracy", "accuracy")]
    assert zoomed[0] == pytest.approx(zoomed[1])  # training and validation share one range
    assert zoomed[0][0] > 5 and zoomed[0][1] < 95
    curves.set_log_loss(True)
    assert curves.plots["loss"].getAxis("left").logMode


def test_hover_reads_out_the_nearest_point_and_smoothing_keeps_raw_values(qtbot, make_window, images):
    window = make_window(data_dir=images)
    ready(qtbot, window)
    window.settings_panel.batch_sizes.setText("8, 32")
    run_to_end(qtbot, window)
    curves = window.curves
    run = window.record["runs"][1]
    value = 100 * run["history"][1]["val_accuracy"]
    assert curves.readout("val_accuracy", 2, value) == f"batch 32\nepoch 2: validation accuracy {value:.1f} %"
    assert curves.readout("val_accuracy", 2, value + 60) is None  # far from every point: nothing
    curves.set_smoothing("strong")
    smoothed = curves.curve("val_accuracy", 1).getData()[1]
    assert smoothed[1] != pytest.approx(value)
    assert curves.readout("val_accuracy", 2, smoothed[1]).endswith(f"{value:.1f} %")  # the raw value


def test_the_progress_strip_gives_the_whole_experiments_time_left(qtbot):
    from gui.progress_panel import experiment_seconds_left

    def run(index, size, status, planned, seconds):
        return {"run_index": index, "batch_size": size, "status": status, "epochs_planned": planned,
                "epochs_run": len(seconds), "history": [{"epoch": e + 1, "seconds": s} for e, s in enumerate(seconds)]}

    record = {"runs": [run(0, 32, "completed", 4, [10, 10, 10, 10]), run(1, 32, "running", 4, [12]),
                       run(2, 256, "pending", 6, [])], "tuning": {"method": "grid"}}
    # batch 32: 3 epochs left at 10.4 s (its 5 epochs' mean); batch 256 (not timed yet): 6 epochs at batch 32's
    assert experiment_seconds_left(record) == pytest.approx(9 * 10.4)
    halving = {"runs": [run(i, 32, "pending" if i else "running", 9, [5.0]) for i in range(3)],
               "tuning": {"method": "halving", "eta": 3, "rungs": {"32": [3, 9]}}}
    # rung 0: 3 trials x 3 epochs, rung 1: 1 trial x 6 more; 3 epochs done
    assert experiment_seconds_left(halving) == pytest.approx((9 + 6 - 3) * 5.0)
    assert experiment_seconds_left({"runs": [run(0, 32, "pending", 4, [])]}) is None


def test_the_time_left_covers_every_remaining_run(qtbot, make_window, images):
    window = make_window(run=ScriptedEngine(epochs=4, hold_after=2), data_dir=images)
    ready(qtbot, window)
    window.settings_panel.batch_sizes.setText("8, 32")
    window.start_action.trigger()
    qtbot.waitUntil(lambda: window.record is not None and len(window.record["runs"][0]["history"]) >= 2)
    qtbot.waitUntil(lambda: "left" in window.progress.time_label.text())
    # run 1: 2 epochs left, run 2: 4 epochs, 0.5 s each; the run's own time left follows
    assert window.progress.time_label.text().startswith("3 s left")
    window.stop_action.trigger()
    qtbot.waitUntil(lambda: window.worker is None, timeout=10_000)


def test_ready_is_never_shown_while_start_is_disabled(qtbot, make_window, images):
    window = make_window(data_dir=images)
    ready(qtbot, window)
    assert window.progress.run_label.text().startswith("Ready")
    window.settings_panel.batch_sizes.setText("abc")
    window.settings_panel.lr.setText("fast")
    text = window.progress.run_label.text()
    assert text.startswith("Not ready, 2 problems:") and "'abc'" in text and "'fast'" in text
    assert "'abc'" in window.statusBar().currentMessage() and "'fast'" in window.statusBar().currentMessage()


def test_export_follows_the_star_unless_another_row_is_selected(qtbot, make_window, images):
    from gui.window_actions import export_target

    window = make_window(run=ScriptedEngine(epochs=2, checkpoints=True), data_dir=images)
    ready(qtbot, window)
    window.settings_panel.batch_sizes.setText("8, 32")
    run_to_end(qtbot, window)
    assert window.table.selected_run() is None
    assert window.export_action.isEnabled() and window.export_action.text() == "Export best model…"
    assert export_target(window)["run_index"] == 0 == window.table.best_row()  # batch 8 has the star
    window.table.selectRow(1)
    assert window.export_action.text() == "Export batch 32, lr 0.001…"
    assert export_target(window)["run_index"] == 1
    window.export_action.trigger()
    assert window.export_dialog.selected_run()["run_index"] == 1
    window.export_dialog.reject()
    window.table.clearSelection()
    assert export_target(window)["run_index"] == 0


def test_the_last_experiment_is_reopened_on_launch(qtbot, make_window, images, tmp_path):
    first = make_window(data_dir=images)
    ready(qtbot, first)
    first.settings_panel.batch_sizes.setText("8")
    run_to_end(qtbot, first)
    folder = first.record_dir
    first.close()
    second = make_window()
    assert second.record_dir == folder and second.windowTitle() == f"BatchLab — {folder.name}"
    assert second.table.rowCount() == 1 and len(second.curves.curve("loss", 0).getData()[0]) == 3
    second.close()
    (folder / rec.RECORD_NAME).write_text("{ broken")
    third = make_window()
    assert third.record is None and third.windowTitle() == "BatchLab — new experiment"
    assert "could not be reopened" in third.notice.text() and "starting fresh" in third.notice.text()


def test_history_overlays_experiments_and_goes_back_to_one(qtbot, make_window, images):
    window = make_window(data_dir=images)
    ready(qtbot, window)
    window.settings_panel.batch_sizes.setText("8, 32")
    run_to_end(qtbot, window)
    first = window.record_dir
    window.settings_panel.batch_sizes.setText("16")
    run_to_end(qtbot, window)
    second = window.record_dir
    history = window.history
    window.side_tabs.setCurrentWidget(history)
    assert [history.tree.headerItem().text(i) for i in range(4)] == ["Experiment", "Date", "Status", "Best"]
    history.select([str(first), str(second)])
    assert history.overlay_button.isEnabled() and history.overlay_button.text() == "Overlay 2"
    history.overlay_button.click()
    curves = window.curves
    assert [name for name, _style in curves.overlaid()] == [second.name, first.name]  # the list's order
    assert [style for _name, style in curves.overlaid()] == ["solid", "dashed"]
    assert curves.curve("loss", 0, experiment=1).opts["pen"].style() == Qt.PenStyle.DashLine
    assert curves.trace_label(1, experiment=1) == f"batch 32 · {first.name}"
    assert "Overlay of 2 experiments" in window.notice.text() and window.windowTitle().endswith("overlay of 2 "
                                                                                                 "experiments")
    assert not window.save_csv_action.isEnabled() and not window.export_action.isEnabled()
    window.notice_bar.button.click()  # "Back to ... alone"
    assert curves.overlaid() == [] and window.record_dir == second and window.windowTitle().endswith(second.name)


def test_several_learning_rates_share_a_colour_and_the_best_is_the_strong_line(qtbot, make_window):
    from gui.curves import FAINT_ALPHA

    window = make_window()
    runs = []
    for index, (size, lr, best) in enumerate([(8, 0.001, 0.6), (8, 0.003, 0.8), (32, 0.001, 0.7), (32, 0.003, 0.5)]):
        run = rec.new_run(index, size, 0, 0)
        run.update(lr=lr, status="completed", best={"epoch": 1, "val_accuracy": best, "val_loss": 1.0},
                   history=[{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": best,
                             "steps": 1, "samples": 8, "elapsed": 1.0}])
        runs.append(run)
    window.show_record({"id": "grid", "runs": runs, "config": {}}, None)
    curves = window.curves
    assert [curves.is_strong(i) for i in range(4)] == [False, True, True, False]
    pens = [curves.curve("val_accuracy", i).opts["pen"] for i in range(4)]
    assert pens[0].color().rgb() == pens[1].color().rgb() and pens[0].color().alpha() == FAINT_ALPHA
    assert pens[0].style() == Qt.PenStyle.DashLine and pens[1].style() == Qt.PenStyle.SolidLine
    assert curves.trace_label(0) == "batch 8 · lr 0.001"
    assert curves.legend.entries[:2] == ["batch 8 (best lr 0.003)", "batch 32 (best lr 0.001)"]
    table = window.table
    assert [table.cell_text(r, "LR") for r in range(4)] == ["0.001", "0.003", "0.001", "0.003"]
    table.sortItems(COLUMNS.index("Best val. accuracy"), Qt.SortOrder.DescendingOrder)
    assert [table.cell_text(r, "Best val. accuracy") for r in range(4)] == ["★ 80.0 %", "70.0 %", "60.0 %", "50.0 %"]
    table.selectRow(0)
    assert table.selected_run()["run_index"] == 1  # the sorted row still names its own trial


def test_the_fate_column_says_why_a_trial_ended(qtbot):
    from gui.results_table import ResultsTable

    table = ResultsTable()
    qtbot.addWidget(table)
    runs = []
    for index, (reason, stopped_at, note) in enumerate([("completed", None, None), ("halved", 1, "halved at rung 1"),
                                                        ("dead", 0, "loss stayed at ln(5): try a lower lr"),
                                                        (None, None, None)]):
        run = rec.new_run(index, 8, 0, 0)
        run.update(status="completed" if reason else "pending",
                   trial={"rung": stopped_at or 0, "stopped_at_rung": stopped_at, "stop_reason": reason, "note": note})
        runs.append(run)
    table.set_runs(runs)
    assert [table.cell_text(r, "Fate") for r in range(4)] == ["full budget", "halved after rung 1", "dead", "queued"]
    assert table.item(2, COLUMNS.index("Fate")).toolTip() == "loss stayed at ln(5): try a lower lr"


def test_after_the_study_the_strong_line_is_the_learning_rate_it_chose(qtbot, make_window):
    window = make_window()
    runs = []
    for index, (lr, best) in enumerate([(0.001, 0.8), (0.003, 0.7)]):
        run = rec.new_run(index, 8, 0, 0)
        run.update(lr=lr, status="completed", best={"epoch": 1, "val_accuracy": best, "val_loss": 1.0},
                   history=[{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": best,
                             "steps": 1, "samples": 8, "elapsed": 1.0}])
        runs.append(run)
    record = {"id": "tuned", "runs": runs, "config": {}}
    window.show_record(record, None)
    assert [window.curves.is_strong(i) for i in range(2)] == [True, False]  # live: the best accuracy so far
    record["tuning"] = {"method": "grid", "best": {"8": {"lr": 0.003}}}  # the study chose by time to target
    window.show_record(record, None)
    assert [window.curves.is_strong(i) for i in range(2)] == [False, True]
    assert window.curves.legend.entries[0] == "batch 8 (tuned lr 0.003)"


def test_the_stall_report_names_what_ran_and_leaves_out_the_machines_own_pauses():
    from batchlab.window_bench import long_stalls, own_stall_max

    ticks = [0.0, 0.01, 0.32, 0.33, 0.64, 0.65]  # two gaps of 300 ms beyond the 10 ms tick
    marks = [(0.2, "EpochEnded"), (0.5, "BatchProgress")]
    machine = [(0.34, 0.63)]  # a control process on the same machine stalled through the second gap
    found = long_stalls(ticks, marks, start=0.0, limit_ms=100, machine=machine)
    assert [(round(late), what) for _when, late, what in found] == [
        (300, "EpochEnded"), (300, "BatchProgress, machine busy: the control process stalled too")]
    assert own_stall_max(ticks, machine) == pytest.approx(300.0)  # the first gap was the window's own
    assert own_stall_max(ticks[3:], machine) == pytest.approx(10.0, abs=0.5)  # the second was the machine's
