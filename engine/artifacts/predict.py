"""Classify image files with a checkpoint, an export folder or an experiment's best run.

Every model BatchLab writes takes raw 0-255 RGB float pixels of one square size and
rescales them itself, so the only preprocessing here is decoding and resizing the file
the way training did (engine.data.imagefile: RGB, squash to size, bilinear).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from engine.artifacts.safe_load import ModelLoadError, check_saved_model, first_line, load_keras_model
from engine.data.imagefile import UnusableImage, read_image
from engine.native_logs import filtered_stderr
from engine.record import store as rec
from engine.record.runs import choose_run

META_NAME = "batchlab_export.json"
MODEL_FILES = {"keras": "model.keras", "savedmodel": "saved_model", "onnx": "model.onnx", "litert": "model.tflite"}
MAX_META_BYTES = 1 * 2**20
MAX_IMAGES = 100_000


@dataclass
class Predictor:
    """A loaded model: ``run(pixels float32 [N, S, S, 3] 0-255) -> probabilities [N, K]``."""

    run: Callable[[np.ndarray], np.ndarray]
    classes: list[str]
    image_size: int
    source: str  # what was loaded, for messages

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        out = [np.asarray(self.run(np.ascontiguousarray(pixels[i:i + 32], dtype=np.float32)), dtype=np.float64)
               for i in range(0, len(pixels), 32)]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)))


@dataclass
class Prediction:
    path: Path
    class_name: Optional[str]
    confidence: Optional[float]
    error: Optional[str] = None  # why the file could not be classified

    def line(self) -> str:
        if self.error:
            return f"{self.path}: skipped ({self.error})"
        return f"{self.path}: {self.class_name} ({self.confidence:.1%})"


def load_predictor(source: Path | str, batch_size: Optional[int] = None, repeat: Optional[int] = None) -> Predictor:
    """Open a ``.keras`` file, an export folder (with its JSON) or an experiment folder.

    For an experiment, the best checkpoint of ``batch_size`` is used (best repeat unless
    ``repeat`` is given), or of the best run overall without a batch size.
    """
    source = Path(source)
    if source.is_dir() and (source / META_NAME).is_file():
        return _load_export(source)
    if source.is_dir() and (source / rec.RECORD_NAME).is_file():
        record = rec.load(source)
        run = choose_run(record, batch_size, repeat)
        checkpoint = rec.inside(source, run["checkpoint"])
        classes = _record_classes(record)
        return _keras_predictor(checkpoint, classes, f"{source} (batch size {run['batch_size']})")
    if source.is_dir():
        raise ModelLoadError(f"{source}: neither an export folder ({META_NAME}) nor an experiment folder "
                             f"({rec.RECORD_NAME})")
    if source.suffix == ".onnx" or source.suffix == ".tflite":
        raise ModelLoadError(f"{source}: give the export folder that holds it (class names are in its {META_NAME})")
    return _keras_predictor(source, _classes_beside(source), str(source))


def _keras_predictor(path: Path, classes: Optional[list[str]], label: str) -> Predictor:
    model = load_keras_model(path)
    size = int(model.inputs[0].shape[1])
    count = int(model.outputs[0].shape[-1])
    if classes is None or len(classes) != count:
        classes = [f"class {i}" for i in range(count)]
    return Predictor(lambda x: model.predict_on_batch(x), classes, size, label)


def _classes_beside(path: Path) -> Optional[list[str]]:
    """Class names for a bare checkpoint: from an export JSON beside it, or its experiment's record."""
    meta = path.parent / META_NAME
    if meta.is_file():
        return read_meta(path.parent)["classes"]
    for folder in (path.parent, path.parent.parent):
        if (folder / rec.RECORD_NAME).is_file():
            try:
                return _record_classes(rec.load(folder))
            except rec.RecordError:
                return None
    return None


def _record_classes(record: dict[str, Any]) -> Optional[list[str]]:
    classes = record.get("dataset", {}).get("classes")
    return [str(c) for c in classes] if isinstance(classes, list) else None


def read_meta(folder: Path) -> dict[str, Any]:
    """The export's JSON, checked: it names a known format and a model inside the folder."""
    path = folder / META_NAME
    try:
        if path.stat().st_size > MAX_META_BYTES:
            raise ModelLoadError(f"{path}: larger than 1 MiB; not a BatchLab export description")
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: cannot be read ({first_line(exc)})") from None
    if not isinstance(meta, dict) or meta.get("format") not in MODEL_FILES:
        raise ModelLoadError(f"{path}: 'format' must be one of {', '.join(MODEL_FILES)}")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise ModelLoadError(f"{path}: 'classes' must be a list of class names")
    size = meta.get("input", {}).get("height") if isinstance(meta.get("input"), dict) else None
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 4096:
        raise ModelLoadError(f"{path}: 'input.height' must be the image size in pixels")
    model = meta.get("model")
    if model != MODEL_FILES[meta["format"]]:
        raise ModelLoadError(f"{path}: 'model' must be {MODEL_FILES[meta['format']]!r} for format {meta['format']}")
    return meta


def _load_export(folder: Path) -> Predictor:
    meta = read_meta(folder)
    fmt, classes, size = meta["format"], meta["classes"], meta["input"]["height"]
    model_path = folder / meta["model"]
    if not model_path.exists():
        raise ModelLoadError(f"{model_path}: missing from the export folder")
    run = open_artifact(fmt, model_path)
    return Predictor(run, classes, size, f"{folder} ({fmt})")


def open_artifact(fmt: str, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function from pixels to probabilities for an exported artifact of format ``fmt``."""
    if fmt == "keras":
        model = load_keras_model(path)
        return lambda x: model.predict_on_batch(x)
    if fmt == "savedmodel":
        check_saved_model(path)
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(path))
            serve = loaded.signatures["serving_default"]
        except Exception as exc:  # noqa: BLE001 - TF raises many types for damaged folders
            raise ModelLoadError(f"{path}: not a usable SavedModel ({first_line(exc)})") from None
        name = next(iter(serve.structured_input_signature[1]))
        return lambda x: next(iter(serve(**{name: tf.constant(x)}).values())).numpy()
    if fmt == "onnx":
        import onnxruntime

        try:
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
            raise ModelLoadError(f"{path}: not a usable ONNX model ({first_line(exc)})") from None
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]
    if fmt == "litert":
        return _litert_runner(path)
    raise ModelLoadError(f"{path}: unknown format {fmt!r}")


def litert_interpreter_class() -> Any:
    """LiteRT's own interpreter when installed, else TensorFlow's (deprecated but still shipped)."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        import tensorflow as tf

        return getattr(tf.lite, "Interpreter", None)


def _litert_runner(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    interpreter_class = litert_interpreter_class()
    if interpreter_class is None:
        raise ModelLoadError(f"{path}: no LiteRT interpreter installed (pip install ai-edge-litert)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interpreter = interpreter_class(model_path=str(path))
        with filtered_stderr():  # the first allocation creates the XNNPACK delegate, which announces itself
            interpreter.allocate_tensors()
    except Exception as exc:  # noqa: BLE001 - the interpreter raises ValueError/RuntimeError for bad files
        raise ModelLoadError(f"{path}: not a usable LiteRT model ({first_line(exc)})") from None
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]

    def run(pixels: np.ndarray) -> np.ndarray:
        interpreter.resize_tensor_input(source, pixels.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(source, pixels)
        interpreter.invoke()
        return interpreter.get_tensor(target).copy()

    return run


def image_files(target: Path | str) -> list[Path]:
    """A single file, or every non-hidden file under a folder (sorted, symlink loops avoided)."""
    target = Path(target)
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise FileNotFoundError(f"{target}: no such file or folder")
    found: list[Path] = []
    for folder, dirs, files in os.walk(target):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(folder) / f for f in sorted(files) if not f.startswith("."))
        if len(found) > MAX_IMAGES:
            raise ValueError(f"{target}: more than {MAX_IMAGES} files; point at a smaller folder")
    return found


def predict_files(predictor: Predictor, paths: list[Path], chunk: int = 256) -> list[Prediction]:
    """Classify each file; a file that is not a usable image gets its reason instead.

    Files are decoded ``chunk`` at a time so a large folder never sits in memory at once.
    """
    results: list[Prediction] = [Prediction(p, None, None) for p in paths]
    for start in range(0, len(paths), chunk):
        pixels: list[np.ndarray] = []
        usable: list[int] = []
        for i in range(start, min(start + chunk, len(paths))):
            try:
                pixels.append(read_image(str(paths[i]), predictor.image_size))
                usable.append(i)
            except UnusableImage as exc:
                results[i].error = str(exc)
        if not usable:
            continue
        probabilities = predictor.probabilities(np.stack(pixels).astype(np.float32))
        for row, i in enumerate(usable):
            best = int(probabilities[row].argmax())
            results[i].class_name = predictor.classes[best]
            results[i].confidence = float(probabilities[row, best])
    return results
