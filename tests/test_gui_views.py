"""Evaluation (percentages, two trials side by side, tables never cut off) and Try the model (folder and
true class, top-3, the out-of-distribution warning), on a real tiny trained run with two batch sizes."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtWidgets import QBoxLayout  # noqa: E402

from engine.artifacts.evaluate import ValidationSet, evaluate  # noqa: E402
from engine.record import store  # noqa: E402
from engine.record.runs import best_run  # noqa: E402
from gui.evaluation_view import EvaluationView, default_partner  # noqa: E402
from gui.predict_panel import PredictPanel  # noqa: E402

EVALUATED_MS = 180_000


@pytest.fixture
def experiment(qapp, trained_experiment: Path) -> Path:
    return trained_experiment


def synthetic(classes: list[str], folder: Path, accuracy_boost: float = 1.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(classes)), 20)
    probabilities = rng.random((len(labels), len(classes)))
    probabilities[np.arange(len(labels)), labels] += accuracy_boost
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    files = [f"{classes[label]}/{i:03d}.png" for i, label in enumerate(labels)]
    validation = ValidationSet(np.zeros((len(labels), 8, 8, 3), np.uint8), labels, files, classes, folder, True)
    return evaluate(probabilities, validation)


def test_confusion_matrix_rows_in_percent_with_counts_on_hover_or_alongside(qtbot, tmp_path: Path) -> None:
    image = tmp_path / "wrong.png"
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(image)
    validation = ValidationSet(np.zeros((3, 8, 8, 3), np.uint8), np.array([0, 1, 1]),
                               ["a.png", "wrong.png", "c.png"], ["cat", "dog"], tmp_path, True)
    evaluation = evaluate(np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]), validation)
    view = EvaluationView()
    qtbot.addWidget(view)
    view.set_evaluation(evaluation, {"batch_size": 16, "lr": 0.001, "seed": 0})
    assert [view.confusion.item(1, j).text() for j in range(2)] == ["50%", "50%"]
    assert view.confusion.item(0, 0).text() == "100%" and view.confusion.item(0, 1).text() == "0%"
    assert view.confusion.item(1, 0).toolTip() == "1 of 2 dog images predicted as cat (50.0%)"
    view.counts.setChecked(True)
    assert view.confusion.item(1, 0).text() == "50% (1)" and view.confusion.item(0, 0).text() == "100% (1)"
    assert view.metrics.item(1, 0).text() == "dog" and view.metrics.item(1, 2).text() == "50.0%"
    assert view.mistakes.count() == 1 and "cat 80%" in view.mistakes.item(0).text()
    assert not view.mistakes.item(0).icon().isNull()
    assert view.title.text().startswith("Batch size 16: validation accuracy 66.7%")


def table_fits(table) -> bool:
    """Every row and column inside the table's own area: nothing cut off, nothing to scroll."""
    last_row, last_column = table.rowCount() - 1, table.columnCount() - 1
    bottom = table.rowViewportPosition(last_row) + table.rowHeight(last_row)
    right = table.columnViewportPosition(last_column) + table.columnWidth(last_column)
    return bottom <= table.viewport().height() and right <= table.viewport().width()


def test_tables_are_never_cut_off_and_the_pane_scrolls_only_when_it_must(qtbot, tmp_path: Path) -> None:
    classes = ["circle", "cross", "square", "star", "triangle"]
    view = EvaluationView()
    qtbot.addWidget(view)
    view.resize(1340, 760)
    view.show()
    view.set_evaluation(synthetic(classes, tmp_path), {"batch_size": 16, "lr": 0.001, "seed": 0, "run_index": 0}, 0)
    view.slots[1].run = {"batch_size": 64, "lr": 0.002, "seed": 0, "run_index": 1}
    view.set_evaluation(synthetic(classes, tmp_path, 0.8, seed=1), view.slots[1].run, 1)
    qtbot.waitUntil(lambda: view.slots_layout.direction() == QBoxLayout.Direction.LeftToRight)
    qtbot.wait(50)
    assert all(not s.box.isHidden() for s in view.slots)
    assert all(table_fits(t) for s in view.slots for t in (s.confusion, s.metrics))
    assert not view.scroll.verticalScrollBar().isVisible()
    assert view.slots[1].box.x() > view.slots[0].box.x()  # side by side
    assert "Beside it: batch size 64." in view.title.text()

    view.resize(560, 420)
    qtbot.waitUntil(lambda: view.slots_layout.direction() == QBoxLayout.Direction.TopToBottom)
    qtbot.wait(50)
    assert all(table_fits(t) for s in view.slots for t in (s.confusion, s.metrics))
    assert view.scroll.verticalScrollBar().isVisible()  # too small for everything: then, and only then

    view.compare.setChecked(False)
    assert view.slots[1].box.isHidden() and "Beside it" not in view.title.text()


@pytest.mark.slow
def test_two_trials_side_by_side_default_to_the_two_best_batch_sizes(qtbot, experiment: Path) -> None:
    record = store.load(experiment)
    best = best_run(record["runs"], with_checkpoint=True)
    partner = default_partner(record, best)
    assert partner is not None and partner["batch_size"] != best["batch_size"]
    view = EvaluationView()
    qtbot.addWidget(view)
    view.resize(1300, 700)
    view.show()
    view.show_run(experiment, record, best)
    first, second = view.slots
    qtbot.waitUntil(lambda: first.evaluation is not None and second.evaluation is not None and view.job is None,
                    timeout=EVALUATED_MS)
    assert first.run["run_index"] == best["run_index"] and second.run["run_index"] == partner["run_index"]
    assert first.combo.count() == second.combo.count() == 2
    assert second.combo.currentData() == partner["run_index"]
    for slot, run in ((first, best), (second, partner)):
        assert int(slot.evaluation.confusion.sum()) == record["dataset"]["val_count"]
        assert slot.evaluation.accuracy == pytest.approx(run["best"]["val_accuracy"], abs=1e-6)
        assert slot.confusion.rowCount() == 3 and slot.confusion.item(0, 0).text().endswith("%")
    assert view.title.text().startswith(f"Batch size {best['batch_size']}: validation accuracy")
    assert f"Beside it: batch size {partner['batch_size']}." in view.title.text()
    assert view.mistake_tabs.count() == 2 and view.mistake_tabs.tabText(1).startswith(
        f"batch size {partner['batch_size']}: ")

    second.combo.setCurrentIndex(second.combo.findData(best["run_index"]))  # the user picks: cached, at once
    assert second.run["run_index"] == best["run_index"] and second.evaluation is first.evaluation
    view.show_run(experiment, record, partner)  # the window's focus moves; the user's pick stays
    qtbot.waitUntil(lambda: first.evaluation is not None and view.job is None, timeout=EVALUATED_MS)
    assert first.run["run_index"] == partner["run_index"] and second.run["run_index"] == best["run_index"]


@pytest.mark.slow
def test_try_the_model_names_folder_true_class_top3_and_warns_about_strange_images(qtbot, experiment: Path,
                                                                                   tmp_path: Path) -> None:
    from engine.artifacts.evaluate import validation_set

    record = store.load(experiment)
    run = best_run(record["runs"], with_checkpoint=True)
    data = Path(record["dataset"]["root"])
    misc = tmp_path / "misc"
    misc.mkdir()
    Image.fromarray(np.full((40, 40, 3), (20, 60, 230), np.uint8)).save(misc / "blue.png")
    panel = PredictPanel()
    qtbot.addWidget(panel)
    panel.set_model(experiment / run["checkpoint"], label="best checkpoint")
    class_images = sorted((data / "class_1").glob("*.png"))[:4]
    with qtbot.waitSignal(panel.predicted, timeout=EVALUATED_MS):
        panel.predict_paths([*class_images, misc / "blue.png"])
    assert panel.list.count() == 5 and panel.reference is not None and panel.reference_problem is None
    *known, blue = panel.tried
    for result, path in zip(known, class_images):
        assert result.name == f"class_1/{path.name}" and result.true_class == "class_1"
        assert result.verdict() == f"true class class_1: {'right' if result.correct else 'wrong'}"
        top = result.prediction.top
        assert len(top) == 3 and [p for _, p in top] == sorted((p for _, p in top), reverse=True)
        assert {name for name, _ in top} == {"class_0", "class_1", "class_2"} and sum(p for _, p in top) <= 1.0001
        assert top[0] == (result.prediction.class_name, result.prediction.confidence)
        assert not result.unusual and "looks like the training data" in result.familiarity_words
    assert blue.name == "misc/blue.png" and blue.true_class is None
    assert blue.verdict() == "folder “misc” is not a class of this model: no true class"
    assert blue.unusual and blue.familiarity_words.startswith("looks unlike the training data: ")
    item = panel.list.item(4)
    assert "misc/blue.png" in item.text() and "⚠ looks unlike the training data" in item.text()
    assert "top 3: " in panel.list.item(0).text()
    assert "1 looks unlike the training data" in panel.hint.text()
    assert "in a class's folder are right" in panel.hint.text()
    image = panel.list.grab()  # the delegate paints the rows (bars, warning) without error
    assert not image.isNull()

    validation = validation_set(experiment, record)  # none of the validation images is called strange
    with qtbot.waitSignal(panel.predicted, timeout=EVALUATED_MS):
        panel.predict_paths([validation.root / name for name in validation.files])
    assert len(panel.tried) == len(validation.files) and not any(t.unusual for t in panel.tried)
    assert "unlike" not in panel.hint.text()


@pytest.mark.slow
def test_a_model_outside_any_experiment_says_why_there_is_no_check(qtbot, experiment: Path, tmp_path: Path) -> None:
    import shutil

    record = store.load(experiment)
    loose = tmp_path / "loose.keras"
    shutil.copy(experiment / record["runs"][0]["checkpoint"], loose)
    panel = PredictPanel()
    qtbot.addWidget(panel)
    panel.set_model(loose)
    image = next((Path(record["dataset"]["root"]) / "class_0").glob("*.png"))
    with qtbot.waitSignal(panel.predicted, timeout=EVALUATED_MS):
        panel.predict_paths([image])
    assert panel.reference is None and "not inside an experiment folder" in panel.reference_problem
    assert panel.tried[0].familiarity is None and "not inside an experiment folder" in panel.hint.text()
    assert len(panel.tried[0].prediction.top) == 3
