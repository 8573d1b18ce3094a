"""The window on a real experiment (real engine, repeats=2): export, evaluation, trying the model,
saving plots and histories, the fairness columns and summary, mean bands, and the advisor.

One tiny experiment is trained once for the module; every test opens it in a fresh window,
as a user reopening it from the History tab would.
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import csv  # noqa: E402
import math  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtWidgets import QFileDialog  # noqa: E402

from engine.analysis.summary import summarize  # noqa: E402
from engine.artifacts.evaluate import HISTORY_COLUMNS  # noqa: E402
from engine.record import store as rec  # noqa: E402
from gui.curves import PLOTS  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from tests.helpers import write_image_folder  # noqa: E402

SIZES = [4, 8]

pytestmark = pytest.mark.slow  # real training or a real X server: over 20 s each


@pytest.fixture(scope="module")
def experiment(qapp, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.config import ExperimentConfig
    from engine.study.launch import run_experiment

    root = tmp_path_factory.mktemp("workflow")
    data = write_image_folder(root / "data", classes=2, per_class=12)
    config = ExperimentConfig(data_dir=str(data), batch_sizes=SIZES, epochs=2, patience=0, image_size=32,
                              augment=False, repeats=2, noise_scale=True, out=str(root / "checkpoints"),
                              name="workflow")
    return run_experiment(config)


@pytest.fixture
def window(qtbot, tmp_path: Path, experiment: Path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("experiment/data_dir", str(experiment.parent.parent / "data"))
    window = MainWindow(settings, data_root=tmp_path / "demo", checkpoints=experiment.parent)
    qtbot.addWidget(window)
    window.show()
    assert window.open_experiment(experiment)
    yield window
    for job in (window.evaluation_view.job, window.predict_panel.job,
                window.export_dialog.job if window.export_dialog else None):
        if job is not None:
            job.wait()
    window.data_panel.wait_idle()


def row_of(window: MainWindow, run_index: int) -> int:
    return next(i for i, run in enumerate(window.record["runs"]) if run["run_index"] == run_index)


def test_table_shows_lr_time_to_target_and_the_repeat_summary(window, experiment):
    record = rec.load(experiment)
    table = window.table
    assert table.rowCount() == 4
    for row, run in enumerate(record["runs"]):
        assert table.cell_text(row, "LR") == f"{run['lr']:.3g}" == "0.001"
        reach = run["time_to_target"]
        if reach is None:
            assert table.cell_text(row, "Time to target") == "not reached"
        else:
            minutes, seconds = divmod(round(reach["seconds"]), 60)
            assert table.cell_text(row, "Time to target") == (f"{reach['epoch']} ep · {reach['steps']} steps · "
                                                              f"{minutes}:{seconds:02d}")
    assert any(run["time_to_target"] for run in record["runs"])  # the best run reaches 95 % of itself
    summary = summarize(record)
    text = window.summary.text()
    assert "mean ± std over 2 seeds" in text
    for batch in summary.batches:
        assert f"batch {batch.batch_size}: <b>{100 * batch.best_mean:.1f} ± {100 * batch.best_std:.1f} %</b>" in text
    assert summary.verdict[1:] in text  # the Welch t-test sentence, in words
    assert window.summary.isVisible()


def test_repeats_draw_one_mean_line_and_band_per_batch_size(window, experiment):
    record = rec.load(experiment)
    for key, (_title, _label, scale) in PLOTS.items():
        plot = window.curves.plots[key]
        assert len([i for i in plot.items if isinstance(i, pg.FillBetweenItem)]) == len(SIZES)
        for size in SIZES:
            band = window.curves.band(key, size)
            values = np.array([[h[key] for h in r["history"]] for r in record["runs"] if r["batch_size"] == size])
            x, mean = band.mean.getData()
            assert list(x) == [1, 2]
            assert np.allclose(mean, scale * values.mean(axis=0))
            low = band.low.getData()[1]
            spread = scale * values.std(axis=0, ddof=1)
            assert np.allclose(low, np.clip(scale * values.mean(axis=0) - spread, 0, None))
        for run in record["runs"]:  # single repeats stay behind the means, faint
            assert window.curves.curve(key, run["run_index"]).opts["pen"].color().alpha() < 255
    assert window.curves.legend.entries[-1].startswith("line: mean over repeats")


def test_export_best_model_from_the_selected_run(qtbot, window, experiment):
    from engine.record.runs import best_run

    best = best_run(window.record["runs"], with_checkpoint=True)
    assert window.table.selected_run() is None  # nothing selected: Export exports the starred run
    assert window.export_action.isEnabled() and window.export_action.text() == "Export best model…"
    assert "★" in window.table.cell_text(row_of(window, best["run_index"]), "Best val. accuracy")
    window.export_action.trigger()
    assert window.export_dialog.selected_run()["run_index"] == best["run_index"]
    window.export_dialog.reject()

    run = next(r for r in window.record["runs"] if r["repeat"] == 1 and r["checkpoint"] and r is not best)
    window.table.selectRow(row_of(window, run["run_index"]))
    assert window.export_action.isEnabled()
    assert window.export_action.text() == f"Export batch {run['batch_size']}, lr 0.001, repeat 2…"
    window.export_action.trigger()
    dialog = window.export_dialog
    assert dialog.isVisible() and dialog.experiment_dir == experiment
    assert dialog.selected_run()["run_index"] == run["run_index"]  # the very repeat selected, not just its size
    dialog.set_format("keras")
    with qtbot.waitSignal(dialog.exported, timeout=120_000) as blocker:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    assert result.verification.matched
    assert Path(result.target).is_relative_to(experiment / "exports")
    assert "predictions match the checkpoint" in dialog.status.text()
    assert any("Exported to" in line for line in window.log.lines())
    qtbot.waitUntil(lambda: dialog.job is None, timeout=10_000)
    dialog.reject()


def test_evaluation_and_try_the_model_follow_the_selected_run(qtbot, window, experiment):
    record = rec.load(experiment)
    run = record["runs"][1]
    window.table.selectRow(row_of(window, run["run_index"]))
    window.views.setCurrentWidget(window.evaluation_view)
    view = window.evaluation_view
    qtbot.waitUntil(lambda: view.evaluation is not None and view.job is None, timeout=120_000)
    assert int(view.evaluation.confusion.sum()) == record["dataset"]["val_count"]
    assert view.confusion.rowCount() == 2 and view.metrics.rowCount() == 2
    assert view.title.text().startswith(f"Batch size {run['batch_size']}: validation accuracy")
    assert math.isclose(view.evaluation.accuracy, run["best"]["val_accuracy"], abs_tol=1e-6)

    panel = window.predict_panel
    assert f"batch size {run['batch_size']}, repeat 1" in panel.model_label.text()
    window.views.setCurrentWidget(panel)
    images = experiment.parent.parent / "data" / "class_0"
    with qtbot.waitSignal(panel.predicted, timeout=120_000) as blocker:
        panel.predict_paths([images])
    assert len(blocker.args[0]) == 12 and panel.list.count() == 12
    assert str(panel.predictor.source).endswith(f"{run['checkpoint']}")


def test_save_plot_as_png_and_svg_and_histories_as_csv(window, experiment, tmp_path, monkeypatch):
    answers: list[str] = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (answers.pop(0), ""))
    answers.append(str(tmp_path / "val.png"))
    window.save_plot_actions["val_accuracy"].trigger()
    with Image.open(tmp_path / "val.png") as picture:
        picture.load()
        assert picture.format == "PNG" and picture.width >= 800
        pixels = np.asarray(picture.convert("RGB")).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 20  # curves and bands drawn, not a blank image
    answers.append(str(tmp_path / "loss.svg"))
    window.save_plot_actions["loss"].trigger()
    svg = (tmp_path / "loss.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "<path" in svg

    answers.append(str(tmp_path / "histories.csv"))
    window.save_csv_action.trigger()
    with open(tmp_path / "histories.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    record = rec.load(experiment)
    assert len(rows) == sum(len(r["history"]) for r in record["runs"]) == 8  # 4 runs x 2 epochs
    assert {(int(r["run_index"]), int(r["epoch"])) for r in rows} == {(i, e) for i in range(4) for e in (1, 2)}
    assert list(rows[0]) == list(HISTORY_COLUMNS)
    assert all(float(r["val_accuracy"]) >= 0 for r in rows)


def test_the_advisor_tab_shows_the_advice_and_the_noise_scale(window, experiment):
    record = rec.load(experiment)
    window.views.setCurrentWidget(window.advice_panel)
    panel = window.advice_panel
    assert panel.advice.text() == summarize(record).advice
    assert "batch size" in panel.advice.text()
    noise_runs = [r for r in record["runs"] if any(h.get("noise_scale", 0) and h["noise_scale"] > 0
                                                   for h in r["history"])]
    assert noise_runs, "the engine recorded no positive noise scale"
    curves = [i for i in panel.noise_plot.listDataItems() if isinstance(i, pg.PlotDataItem)]
    assert len(curves) == len(noise_runs)
    marks = sorted(round(10 ** i.value()) for i in panel.noise_plot.items if isinstance(i, pg.InfiniteLine))
    assert marks == SIZES  # one horizontal mark per batch size tried
    assert "3 or more batch sizes" in panel.critical_note.text()  # two sizes cannot support the fit


@pytest.mark.slow
def test_file_export_report_writes_the_experiment_shown(qtbot, window, experiment, tmp_path, monkeypatch):
    """File > Export report: the HTML report of the experiment the window shows, written in the background."""
    from PySide6.QtWidgets import QMessageBox

    target = tmp_path / "report.html"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(target), ""))
    monkeypatch.setattr(QMessageBox, "open", lambda self: None)  # the "open it?" offer, not shown in tests
    assert window.report_action.isEnabled()
    window.report_action.trigger()
    qtbot.waitUntil(target.is_file, timeout=120_000)
    text = target.read_text()
    assert experiment.name in text and "<svg" in text
