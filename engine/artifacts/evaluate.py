"""What a finished run got right and wrong on its validation set, and the histories as CSV.

The validation set is rebuilt exactly as training built it: same data folder, image
size and seed-driven split (engine.data.dataset + engine.data.split), read through the cache the
training left beside the experiment folder when it is still valid. The record's split
digest proves the rebuilt set is the one the run was validated on.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from engine import atomic
from engine.data.dataset import load_dataset
from engine.data.scan import DatasetError
from engine.data.split import split_digest, stratified_split
from engine.record import store as rec
from engine.stop import StopToken

HISTORY_COLUMNS = ("experiment", "run_index", "batch_size", "repeat", "seed", "status", "epoch", "loss",
                   "accuracy", "val_loss", "val_accuracy", "lr", "steps", "samples", "seconds", "elapsed",
                   "images_per_s")
PREDICT_BATCH = 64


class EvaluationError(ValueError):
    """The run cannot be evaluated (no checkpoint, data folder gone or changed); one line."""


@dataclass
class ValidationSet:
    """Validation pixels (uint8 [N, S, S, 3]) with labels and data-relative file names."""

    images: np.ndarray
    labels: np.ndarray
    files: list[str]
    classes: list[str]
    root: Path
    split_matches: bool  # False: the data folder changed since training (files added or removed)


@dataclass
class Mistake:
    file: str  # relative to the data folder
    path: Path
    true_class: str
    predicted_class: str
    confidence: float  # the model's probability for its (wrong) prediction


@dataclass
class Evaluation:
    classes: list[str]
    confusion: np.ndarray  # int [true, predicted]
    precision: list[Optional[float]]  # None where the class was never predicted
    recall: list[Optional[float]]  # None where the class has no validation image
    support: list[int]
    accuracy: float
    mistakes: list[Mistake]  # most confident first
    split_matches: bool


def validation_set(experiment_dir: Path, record: dict[str, Any],
                   progress: Optional[Callable[[int, int], None]] = None,
                   stop: Optional[StopToken] = None) -> ValidationSet:
    """Rebuild the run's validation images; raises EvaluationError with the folder named."""
    config = record.get("config", {})
    dataset = record.get("dataset", {})
    root = dataset.get("root") or config.get("data_dir")
    size, val_split, seed = config.get("image_size"), config.get("val_split"), config.get("seed", 0)
    if not isinstance(root, str) or not isinstance(size, int) or not isinstance(val_split, (int, float)):
        raise EvaluationError(f"{Path(experiment_dir) / rec.RECORD_NAME}: data folder or image size missing")
    cache = Path(experiment_dir).resolve().parent / ".cache"  # where engine.train.prepare put it during training
    try:
        data = load_dataset(root, size, cache_dir=cache if cache.is_dir() else None, progress=progress, stop=stop)
    except DatasetError as exc:
        raise EvaluationError(f"validation images unavailable: {exc}") from None
    classes = list(data.report.classes)
    if classes != list(dataset.get("classes", classes)):
        raise EvaluationError(f"data folder {root} now has classes {classes}, the run was trained on "
                              f"{dataset.get('classes')}")
    labels = np.asarray(data.labels)
    train_idx, val_idx = stratified_split(labels, classes, float(val_split), int(seed))
    matches = split_digest(data.report.files, train_idx, val_idx) == dataset.get("split_sha256")
    return ValidationSet(np.asarray(data.images[val_idx]), labels[val_idx].astype(np.int64),
                         [data.report.files[int(i)] for i in val_idx], classes, Path(root), matches)


def checkpoint_path(experiment_dir: Path, run: dict[str, Any]) -> Path:
    """The run's best checkpoint, refused when the record points outside the experiment folder."""
    path = rec.inside(Path(experiment_dir), run.get("checkpoint"))
    if path is None:
        raise EvaluationError(f"batch size {run.get('batch_size')}: this run saved no checkpoint")
    if not path.is_file():
        raise EvaluationError(f"{path}: checkpoint missing")
    return path


def predict_probabilities(model: Any, images: np.ndarray) -> np.ndarray:
    """Softmax outputs for uint8 or float pixels, in batches (raw 0-255 values, as trained)."""
    out = [np.asarray(model.predict_on_batch(images[i:i + PREDICT_BATCH].astype(np.float32)))
           for i in range(0, len(images), PREDICT_BATCH)]
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def evaluate(probabilities: np.ndarray, validation: ValidationSet) -> Evaluation:
    """Confusion matrix, per-class precision and recall, and the misclassified images."""
    classes = validation.classes
    k = len(classes)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (validation.labels, predicted), 1)
    column, row = confusion.sum(axis=0), confusion.sum(axis=1)
    diagonal = np.diag(confusion)
    precision = [float(diagonal[i] / column[i]) if column[i] else None for i in range(k)]
    recall = [float(diagonal[i] / row[i]) if row[i] else None for i in range(k)]
    mistakes = [
        Mistake(validation.files[i], validation.root / validation.files[i], classes[validation.labels[i]],
                classes[predicted[i]], float(probabilities[i, predicted[i]]))
        for i in np.flatnonzero(predicted != validation.labels)
    ]
    mistakes.sort(key=lambda m: (-m.confidence, m.file))
    total = int(confusion.sum())
    return Evaluation(classes, confusion, precision, recall, [int(n) for n in row],
                      float(diagonal.sum() / total) if total else 0.0, mistakes, validation.split_matches)


def evaluate_run(experiment_dir: Path | str, record: dict[str, Any], run: dict[str, Any],
                 progress: Optional[Callable[[int, int], None]] = None,
                 stop: Optional[StopToken] = None) -> Evaluation:
    """Load the run's best checkpoint safely and evaluate it on the rebuilt validation set."""
    from engine.artifacts.safe_load import load_keras_model

    experiment_dir = Path(experiment_dir)
    model = load_keras_model(checkpoint_path(experiment_dir, run))
    validation = validation_set(experiment_dir, record, progress, stop)
    return evaluate(predict_probabilities(model, validation.images), validation)


def histories_csv(record: dict[str, Any]) -> str:
    """One row per run and epoch, runs in record order; empty cells where a value is missing."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    experiment = record.get("id", "")
    for run in record.get("runs", []):
        for entry in run.get("history", []):
            row = {"experiment": experiment, **{k: run.get(k) for k in HISTORY_COLUMNS[1:6]}, **entry}
            writer.writerow(["" if row.get(key) is None else row.get(key) for key in HISTORY_COLUMNS])
    return buffer.getvalue()


def write_histories_csv(target: Path | str, record: dict[str, Any]) -> None:
    atomic.write_bytes(target, histories_csv(record).encode("utf-8"))
