"""What a ``.keras`` file may contain, checked before Keras parses it, and loading it safely.

A ``.keras`` file is a zip holding a JSON description and the weights. Keras' own
``safe_mode=True`` refuses Lambda layers (pickled Python); on top of that we refuse any
description that names a class outside Keras itself, or a Keras layer that runs code
from elsewhere (TFSMLayer calls a SavedModel's graph), so a file can only rebuild stock
layers and operations. Training (a user's model) and export/predict (a checkpoint) both
load through here. Nothing in this module imports TensorFlow until a model is loaded.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Iterator

MAX_CONFIG_BYTES = 16 * 2**20
"""A classifier's config.json is a few kB to a few MB (ResNet50); anything huge is not one."""
MAX_MODEL_BYTES = 4 * 2**30
REFUSED_CLASSES = {
    "Lambda": "a Lambda layer (arbitrary Python code)",
    "TFSMLayer": "a TFSMLayer (runs another SavedModel's graph)",
}


class ModelLoadError(ValueError):
    """A model file that cannot be used; the message names the file and the reason."""


def check_keras_archive(path: Path) -> dict[str, Any]:
    """Refuse anything that is not a zip with a stock-Keras config; return that config."""
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file")
    if not path.is_file():
        raise ModelLoadError(f"{path}: not a file (a .keras model is a single file)")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise ModelLoadError(f"{path}: larger than {MAX_MODEL_BYTES // 2**30} GiB; refused")
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path}: not a .keras model file (not a zip archive; corrupt or another format)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = {"config.json", "model.weights.h5"} - names
            if missing:
                raise ModelLoadError(f"{path}: not a Keras 3 model file (no {', '.join(sorted(missing))} inside)")
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise ModelLoadError(f"{path}: model description larger than {MAX_CONFIG_BYTES // 2**20} MiB; refused")
            config = json.loads(archive.read("config.json").decode("utf-8"))
    except ModelLoadError:
        raise
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError, RuntimeError) as exc:
        raise ModelLoadError(f"{path}: damaged model file ({first_line(exc)})") from None
    for module, name in named_objects(config):
        if name in REFUSED_CLASSES:
            raise ModelLoadError(f"{path}: contains {REFUSED_CLASSES[name]}; refused")
        if not (module == "keras" or module.startswith("keras.")):
            raise ModelLoadError(f"{path}: uses code from outside Keras ({module}.{name}); refused")
    return config


def load_checked(path: Path) -> Any:
    """The checked file loaded by Keras in safe mode, without optimizer state."""
    check_keras_archive(path)
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for foreign or damaged files
        raise ModelLoadError(f"{path}: not a usable Keras model ({first_line(exc)})") from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def named_objects(config: Any) -> Iterator[tuple[str, str]]:
    """Every (module, class_name) a Keras config would import, at any depth."""
    for item in config_dicts(config):
        if "class_name" in item and ("module" in item or "registered_name" in item):
            module = item.get("module")
            yield (module if isinstance(module, str) else "<custom>"), str(item.get("class_name"))


def config_dicts(config: Any) -> Iterator[dict[str, Any]]:
    """Every dict in a Keras config (a JSON tree), at any depth; each may be changed before its
    contents are visited."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
