"""Export a run's best checkpoint to a folder others can use, and prove it predicts the same.

An export is one folder, put in place whole by ``atomic_dir``:

    model.keras | saved_model/ | model.onnx | model.tflite   the model
    batchlab_export.json                                      classes in order, input size,
                                                              preprocessing, source run, check

Before the folder replaces anything, the written artifact is reloaded and run on a few
validation images (random pixels when the data folder is gone), and its probabilities
are compared with the checkpoint's. An export that disagrees is not put in place.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from engine import __version__, atomic
from engine.artifacts.evaluate import EvaluationError, checkpoint_path, validation_set
from engine.artifacts.predict import META_NAME, MODEL_FILES, open_artifact
from engine.record import store as rec
from engine.record.runs import NoRunError, choose_run
from engine.train.models.settings import RAW_PIXELS, preprocessing_note

FORMATS = ("keras", "savedmodel", "onnx", "litert")
FORMAT_LABELS = {"keras": "Keras (.keras)", "savedmodel": "TensorFlow SavedModel", "onnx": "ONNX (.onnx)",
                 "litert": "LiteRT / TFLite (.tflite)"}
VERIFY_IMAGES = 8
TOLERANCE = 1e-3
"""Largest probability difference accepted: float32 runtimes differ by ~1e-6, a wrong export by far more."""
PREPROCESSING = RAW_PIXELS + f"the model scales them itself ({META_NAME} says how, for its model)."
"""For any model; an export's JSON holds its own model's note (engine.train.models.settings.preprocessing_note)."""
INSTALL_HINT = 'pip install -e ".[export]"'  # the README's form, from the checkout

Log = Callable[[str], None]


class ExportError(ValueError):
    """The export cannot be made or did not verify; one line naming the run, file or format."""


@dataclass
class Verification:
    matched: bool
    images: int
    source: str  # "validation images" or why random pixels were used
    same_class: int  # images where both predict the same class
    max_difference: float  # largest absolute probability difference

    def message(self) -> str:
        verdict = "predictions match the checkpoint" if self.matched else "predictions DO NOT match the checkpoint"
        return (f"{verdict}: same class on {self.same_class}/{self.images} {self.source}, "
                f"largest probability difference {self.max_difference:.2g}")


@dataclass
class ExportResult:
    target: Path
    format: str
    run: dict[str, Any]
    verification: Verification


def format_availability() -> dict[str, Optional[str]]:
    """None for each format this installation can write and check, else the reason it cannot."""
    def missing(*modules: str) -> list[str]:
        return [m for m in modules if importlib.util.find_spec(m) is None]

    result: dict[str, Optional[str]] = {"keras": None, "savedmodel": None}
    lacking = missing("tf2onnx", "onnx", "onnxruntime")
    result["onnx"] = f"needs {', '.join(lacking)} ({INSTALL_HINT})" if lacking else None
    has_interpreter = not missing("ai_edge_litert") or not missing("tensorflow.lite.python.interpreter")
    result["litert"] = None if has_interpreter else f"needs a LiteRT interpreter: ai-edge-litert ({INSTALL_HINT})"
    return result


def export_run(experiment_dir: Path | str, fmt: str, target: Path | str, batch_size: Optional[int] = None,
               repeat: Optional[int] = None, log: Log = lambda _text: None) -> ExportResult:
    """Export the chosen run's best checkpoint to folder ``target`` and verify it.

    Raises ExportError (format unavailable, bad target, no checkpoint, predictions differ),
    RecordError (untrustworthy record) or ModelLoadError (checkpoint unusable).
    """
    experiment_dir, target = Path(experiment_dir), Path(target)
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    reason = format_availability()[fmt]
    if reason:
        raise ExportError(f"format {fmt} is unavailable: {reason}")
    check_target(target)
    record = rec.load(experiment_dir)
    try:
        run = choose_run(record, batch_size, repeat)
    except NoRunError as exc:
        raise ExportError(str(exc)) from None
    checkpoint = checkpoint_path(experiment_dir, run)
    log(f"loading {checkpoint}")
    from engine.artifacts.safe_load import load_keras_model

    model = float32_copy(load_keras_model(checkpoint))
    images, source = verification_images(experiment_dir, record, int(model.inputs[0].shape[1]), log)
    expected = np.asarray(model.predict_on_batch(images), dtype=np.float64)
    with atomic.atomic_dir(target) as tmp:
        artifact = tmp / MODEL_FILES[fmt]
        log(f"writing {FORMAT_LABELS[fmt]}")
        write_artifact(model, fmt, artifact)
        log(f"reloading the export and comparing on {len(images)} {source}")
        actual = np.asarray(open_artifact(fmt, artifact)(images), dtype=np.float64)
        verification = compare(expected, actual, source)
        if not verification.matched:
            raise ExportError(f"{target}: not written, {verification.message()}")
        atomic.write_json(tmp / META_NAME, export_meta(record, run, fmt, model, verification))
    log(f"exported to {target}: {verification.message()}")
    return ExportResult(target, fmt, run, verification)


def check_target(target: Path) -> None:
    """Only ever replace an earlier export: never a user's folder or file."""
    if target.suffix in (".keras", ".onnx", ".tflite", ".json"):
        raise ExportError(f"{target}: give a folder name for the export (it will hold the model and {META_NAME})")
    if target.exists() and not target.is_dir():
        raise ExportError(f"{target}: a file is in the way; choose another export folder")
    if target.is_dir() and any(target.iterdir()) and not (target / META_NAME).is_file():
        raise ExportError(f"{target}: folder is not empty and holds no earlier export; choose an empty or new folder")


def float32_copy(model: Any) -> Any:
    """The same network with float32 layers (nested ones included): ONNX and LiteRT converters
    need them, and a mixed-precision checkpoint keeps float32 weights, so nothing is lost."""
    from engine.train.models.flops import leaf_layers
    from engine.train.models.training import copy_weights, with_dtype_policy

    if all(getattr(layer.dtype_policy, "name", "float32") == "float32" for layer in leaf_layers(model)):
        return model
    copy = type(model).from_config(with_dtype_policy(model.get_config(), "float32"))
    copy_weights(model, copy)
    return copy


def verification_images(experiment_dir: Path, record: dict[str, Any], size: int, log: Log) -> tuple[np.ndarray, str]:
    """A few validation images spread over the classes, or seeded random pixels (and why)."""
    try:
        validation = validation_set(experiment_dir, record)
    except EvaluationError as exc:
        log(f"{exc}; verifying on random pixels instead")
        pixels = np.random.default_rng(0).uniform(0, 255, (VERIFY_IMAGES, size, size, 3))
        return pixels.astype(np.float32), "random images (validation images unavailable)"
    if validation.images.shape[1] != size:
        raise ExportError(f"checkpoint takes {size} px images, the record says {validation.images.shape[1]} px")
    per_class = [np.flatnonzero(validation.labels == k) for k in range(len(validation.classes))]
    picks = [ids[column] for column in range(VERIFY_IMAGES) for ids in per_class if column < len(ids)]
    return validation.images[np.array(picks[:VERIFY_IMAGES])].astype(np.float32), "validation images"


def write_artifact(model: Any, fmt: str, path: Path) -> None:
    if fmt == "keras":
        model.save(path)
    elif fmt == "savedmodel":
        model.export(str(path), format="tf_saved_model", verbose=False)
    else:
        with warnings.catch_warnings():  # Keras' tf2onnx numpy-2 patch warns about np.object on every export
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"keras\.src\.export")
            model.export(str(path), format=fmt, verbose=False)


def compare(expected: np.ndarray, actual: np.ndarray, source: str) -> Verification:
    if actual.shape != expected.shape:
        return Verification(False, len(expected), f"{source} (output shape {actual.shape} instead of "
                                                  f"{expected.shape})", 0, float("inf"))
    same = int((expected.argmax(axis=1) == actual.argmax(axis=1)).sum())
    difference = float(np.abs(expected - actual).max()) if expected.size else 0.0
    return Verification(same == len(expected) and difference <= TOLERANCE, len(expected), source, same, difference)


def export_meta(record: dict[str, Any], run: dict[str, Any], fmt: str, model: Any,
                verification: Verification) -> dict[str, Any]:
    size = int(model.inputs[0].shape[1])
    return {
        "batchlab_export": 1,
        "app": f"BatchLab {__version__}",
        "created": rec.utc_now(),
        "format": fmt,
        "model": MODEL_FILES[fmt],
        "classes": list(record["dataset"]["classes"]),
        "input": {"height": size, "width": size, "channels": 3, "color": "RGB", "layout": "NHWC",
                  "dtype": "float32", "range": [0, 255]},
        "preprocessing": preprocessing_note(str((record.get("model") or {}).get("name", "seed"))),
        "output": "softmax probabilities, one per class, in the order of 'classes'",
        "source": {
            "experiment": record.get("id"),
            "batch_size": run["batch_size"],
            "repeat": run.get("repeat", 0),
            "seed": run.get("seed"),
            "epoch": run["best"].get("epoch"),
            "val_accuracy": run["best"].get("val_accuracy"),
            "checkpoint_sha256": run.get("checkpoint_sha256"),
        },
        "verification": {**asdict(verification), "tolerance": TOLERANCE},
    }
