"""The export dialog, evaluation view, predict panel and plot/CSV saving, driven as a user would."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from engine.artifacts.evaluate import ValidationSet, evaluate  # noqa: E402
from engine.artifacts.export import FORMATS  # noqa: E402
from gui.evaluation_view import EvaluationView  # noqa: E402
from gui.export_dialog import ExportDialog, save_plot  # noqa: E402
from gui.predict_panel import PredictPanel  # noqa: E402
from tests.helpers import write_image_folder  # noqa: E402


@pytest.fixture(scope="module")
def experiment(qapp, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.config import ExperimentConfig
    from engine.study.launch import run_experiment

    root = tmp_path_factory.mktemp("gui_export")
    data = write_image_folder(root / "data", classes=2, per_class=6)
    config = ExperimentConfig(data_dir=str(data), batch_sizes=[4], epochs=1, image_size=32, augment=False,
                              out=str(root / "out"), name="exp")
    return run_experiment(config)


def test_export_dialog_exports_and_reports_the_check(qtbot, experiment: Path) -> None:
    dialog = ExportDialog(experiment)
    qtbot.addWidget(dialog)
    assert dialog.run_combo.count() == 1 and "batch size 4" in dialog.run_combo.currentText()
    for i, fmt in enumerate(FORMATS):  # every format listed; only the installable ones selectable
        item = dialog.format_combo.model().item(i)
        assert item.isEnabled() == (dialog.availability[fmt] is None)
    dialog.set_format("keras")
    assert dialog.target_edit.text() == str(experiment / "exports" / "bs4-keras")
    with qtbot.waitSignal(dialog.exported, timeout=120_000) as blocker:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    assert result.verification.matched
    qtbot.waitUntil(lambda: dialog.job is None and dialog.export_button.isEnabled(), timeout=10_000)
    assert "predictions match the checkpoint" in dialog.status.text()
    assert "writing Keras" in dialog.log.toPlainText()
    meta = json.loads((experiment / "exports" / "bs4-keras" / "batchlab_export.json").read_text())
    assert meta["classes"] == ["class_0", "class_1"]


def test_export_dialog_refusal_is_shown_not_raised(qtbot, experiment: Path, tmp_path: Path) -> None:
    dialog = ExportDialog(experiment)
    qtbot.addWidget(dialog)
    (tmp_path / "own.txt").write_text("mine")
    dialog.target_edit.setText(str(tmp_path))
    dialog.start_export()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=60_000)
    assert "holds no earlier export" in dialog.status.text() and dialog.result is None
    assert (tmp_path / "own.txt").read_text() == "mine"

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "experiment.json").write_text("{")
    assert dialog.set_experiment(broken) is False
    assert "cannot be read as JSON" in dialog.status.text()


def test_evaluation_view_shows_matrix_metrics_and_mistakes(qtbot, tmp_path: Path) -> None:
    image = tmp_path / "wrong.png"
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(image)
    validation = ValidationSet(np.zeros((3, 8, 8, 3), np.uint8), np.array([0, 1, 1]),
                               ["a.png", "wrong.png", "c.png"], ["cat", "dog"], tmp_path, True)
    evaluation = evaluate(np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]), validation)
    view = EvaluationView()
    qtbot.addWidget(view)
    view.set_evaluation(evaluation, {"batch_size": 16})
    assert view.confusion.item(1, 0).text() == "1" and view.confusion.item(0, 0).text() == "1"
    assert view.metrics.item(1, 0).text() == "dog" and view.metrics.item(1, 2).text() == "50.0%"
    assert view.mistakes.count() == 1 and "cat 80%" in view.mistakes.item(0).text()
    assert not view.mistakes.item(0).icon().isNull()
    assert "66.7%" in view.title.text()


def test_evaluation_view_evaluates_a_real_run(qtbot, experiment: Path) -> None:
    from engine.record import store as rec

    record = rec.load(experiment)
    view = EvaluationView()
    qtbot.addWidget(view)
    view.show_run(experiment, record, record["runs"][0])
    qtbot.waitUntil(lambda: view.evaluation is not None and view.job is None, timeout=120_000)
    assert int(view.evaluation.confusion.sum()) == record["dataset"]["val_count"]
    assert view.confusion.rowCount() == 2


def test_predict_panel_classifies_dropped_paths(qtbot, experiment: Path) -> None:
    panel = PredictPanel()
    qtbot.addWidget(panel)
    panel.set_model(experiment, batch_size=4)
    folder = experiment.parent.parent / "data" / "class_1"
    with qtbot.waitSignal(panel.predicted, timeout=120_000) as blocker:
        panel.predict_paths([folder])
    results = blocker.args[0]
    assert len(results) == 6 and all(r.class_name in ("class_0", "class_1") for r in results)
    assert panel.list.count() == 6 and "%" in panel.list.item(0).text()


def test_save_plot_writes_png_and_svg(qtbot, tmp_path: Path) -> None:
    widget = pg.PlotWidget()
    qtbot.addWidget(widget)
    widget.plot([1, 2, 3], [0.2, 0.5, 0.4])
    png = save_plot(widget, tmp_path / "curve.png", width=800)
    with Image.open(png) as picture:
        assert picture.format == "PNG" and picture.width == 800
    svg = save_plot(widget.getPlotItem(), tmp_path / "curve.svg")
    text = svg.read_text()
    assert "<svg" in text and ("<path" in text or "<polyline" in text)
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        save_plot(widget, tmp_path / "curve.gif")
