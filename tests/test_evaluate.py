"""Evaluation numbers and the histories CSV, checked against hand counts and the run's own record."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from engine.artifacts.evaluate import (
    HISTORY_COLUMNS,
    EvaluationError,
    ValidationSet,
    evaluate,
    evaluate_run,
    histories_csv,
    validation_set,
    write_histories_csv,
)
from engine.record.store import RecordError


def test_confusion_precision_recall_and_mistakes_by_hand() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    probabilities = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.2, 0.7, 0.1],  # one 0 taken for 1 (0.7)
                              [0.1, 0.8, 0.1], [0.05, 0.05, 0.9],                 # one 1 taken for 2 (0.9)
                              [0.3, 0.3, 0.4]])
    files = [f"f{i}.png" for i in range(6)]
    validation = ValidationSet(np.zeros((6, 2, 2, 3), np.uint8), labels, files, ["a", "b", "c"], Path("/d"), True)
    result = evaluate(probabilities, validation)
    assert result.confusion.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert result.precision == [1.0, 0.5, 0.5] and result.recall == [2 / 3, 0.5, 1.0]
    assert result.support == [3, 2, 1] and result.accuracy == pytest.approx(4 / 6)
    assert [(m.file, m.true_class, m.predicted_class) for m in result.mistakes] == [("f4.png", "b", "c"),
                                                                                  ("f2.png", "a", "b")]
    assert result.mistakes[0].path == Path("/d/f4.png") and result.mistakes[0].confidence == pytest.approx(0.9)


def test_a_class_never_predicted_has_no_precision() -> None:
    validation = ValidationSet(np.zeros((2, 1, 1, 3), np.uint8), np.array([0, 1]), ["x", "y"], ["a", "b"],
                               Path("."), True)
    result = evaluate(np.array([[0.9, 0.1], [0.8, 0.2]]), validation)
    assert result.precision == [0.5, None] and result.recall == [1.0, 0.0]


def test_histories_csv_has_one_row_per_run_and_epoch(tmp_path: Path) -> None:
    record = {"id": "exp1", "runs": [
        {"run_index": 0, "batch_size": 8, "repeat": 0, "seed": 0, "status": "completed",
         "history": [{"epoch": 1, "loss": 1.0, "val_accuracy": 0.5, "images_per_s": None},
                     {"epoch": 2, "loss": 0.5, "val_accuracy": 0.75}]},
        {"run_index": 1, "batch_size": 64, "repeat": 0, "seed": 0, "status": "failed", "history": []},
    ]}
    text = histories_csv(record)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == HISTORY_COLUMNS and len(rows) == 2
    assert rows[1]["experiment"] == "exp1" and rows[1]["batch_size"] == "8" and rows[1]["epoch"] == "2"
    assert rows[1]["val_accuracy"] == "0.75" and rows[0]["images_per_s"] == "" and rows[0]["accuracy"] == ""
    write_histories_csv(tmp_path / "h.csv", record)
    assert (tmp_path / "h.csv").read_text() == text


@pytest.fixture
def experiment(trained_experiment: Path) -> Path:
    return trained_experiment


def test_evaluating_a_real_run_reproduces_its_recorded_validation_accuracy(experiment: Path) -> None:
    from engine.record import store as rec

    record = rec.load(experiment)
    run = record["runs"][0]
    result = evaluate_run(experiment, record, run)
    assert result.split_matches
    assert int(result.confusion.sum()) == record["dataset"]["val_count"] == 9
    assert result.accuracy == pytest.approx(run["best"]["val_accuracy"], abs=1e-6)
    assert len(result.mistakes) == int(result.confusion.sum() - np.trace(result.confusion))
    assert all(m.path.is_file() for m in result.mistakes)
    confidences = [m.confidence for m in result.mistakes]
    assert confidences == sorted(confidences, reverse=True)


def test_a_changed_data_folder_is_flagged_and_a_missing_one_refused(experiment: Path) -> None:
    from engine.record import store as rec

    record = rec.load(experiment)
    assert validation_set(experiment, {**record, "dataset": {**record["dataset"], "split_sha256": "x"}}).split_matches \
        is False
    gone = {**record, "dataset": {**record["dataset"], "root": str(experiment / "no-such-data")}}
    with pytest.raises(EvaluationError, match="validation images unavailable: data folder not found"):
        validation_set(experiment, gone)
    with pytest.raises(RecordError, match="outside the experiment folder"):
        evaluate_run(experiment, record, {**record["runs"][0], "checkpoint": "/etc/passwd"})
