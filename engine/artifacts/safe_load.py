"""Open models that came from disk, possibly from someone else, without running their code.

A ``.keras`` file is a zip holding a JSON description and the weights. Keras' own
``safe_mode=True`` refuses Lambda layers (pickled Python); on top of that we refuse any
description that names a class outside Keras itself, so a file can only rebuild
stock layers. A SavedModel graph may hold file-system ops, which run when the model
is called: we refuse those before loading. Every failure is one line naming the file.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Iterator

MAX_CONFIG_BYTES = 16 * 2**20
"""A BatchLab model's config.json is a few kB; anything huge is not one of ours."""
MAX_MODEL_BYTES = 4 * 2**30

# Ops that touch files, the network or Python: a trained classifier never needs them.
UNSAFE_GRAPH_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "MergeV2Checkpoints", "Save", "SaveV2", "SaveSlices",
    "PyFunc", "PyFuncStateless", "EagerPyFunc", "DeleteFile", "CreateSummaryFileWriter",
    "WriteSummary", "ImmutableConst", "DebugIdentityV2",
})


class ModelLoadError(ValueError):
    """A model file that cannot be used; the message names the file and the reason."""


def load_keras_model(path: Path | str) -> Any:
    """Load a ``.keras`` file for inference only (no optimizer), after checking what it contains."""
    path = Path(path)
    check_keras_archive(path)
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for foreign or damaged files
        raise ModelLoadError(f"{path}: not a usable Keras model ({first_line(exc)})") from None
    check_classifier_shape(path, model)
    return model


def check_keras_archive(path: Path) -> None:
    """Refuse anything that is not a zip with a stock-Keras config, before Keras parses it."""
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
    for module, name in _named_objects(config):
        if name == "Lambda":
            raise ModelLoadError(f"{path}: contains a Lambda layer (arbitrary Python code); refused")
        if not (module == "keras" or module.startswith("keras.")):
            raise ModelLoadError(f"{path}: uses code from outside Keras ({module}.{name}); refused")


def check_classifier_shape(path: Path, model: Any) -> None:
    """A BatchLab model takes square RGB images and returns one probability per class."""
    inputs = getattr(model, "inputs", None) or []
    outputs = getattr(model, "outputs", None) or []
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelLoadError(f"{path}: not an image classifier (expects one input and one output)")
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[1] != shape[2]:
        raise ModelLoadError(f"{path}: not an image classifier for square RGB images (input shape {shape})")
    if len(tuple(outputs[0].shape)) != 2:
        raise ModelLoadError(f"{path}: not a classifier (output shape {tuple(outputs[0].shape)})")


def check_saved_model(folder: Path) -> None:
    """Refuse a SavedModel whose signatures (or load-time init op) reach ops outside the model.

    Only what the signatures can run is checked: every SavedModel also carries a saver
    graph (SaveV2 and friends) that loading for inference never calls.
    """
    pb = folder / "saved_model.pb"
    if not pb.is_file():
        raise ModelLoadError(f"{folder}: not a SavedModel folder (no saved_model.pb)")
    from tensorflow.core.protobuf import saved_model_pb2

    message = saved_model_pb2.SavedModel()
    try:
        message.ParseFromString(pb.read_bytes())
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ModelLoadError(f"{pb}: damaged SavedModel ({first_line(exc)})") from None
    for meta in message.meta_graphs:
        unsafe = sorted(_reachable_ops(meta) & UNSAFE_GRAPH_OPS)
        if unsafe:
            raise ModelLoadError(f"{folder}: graph uses {', '.join(unsafe)} (file or Python access); refused")


def _reachable_ops(meta: Any) -> set[str]:
    """Op types reachable from any signature output, through nested function calls."""
    nodes = {node.name: node for node in meta.graph_def.node}
    functions = {f.signature.name: f for f in meta.graph_def.library.function}
    pending = [t.name.split(":")[0].lstrip("^") for s in meta.signature_def.values() for t in s.outputs.values()]
    seen_nodes: set[str] = set()
    seen_functions: set[str] = set()
    ops: set[str] = set()

    def visit(node: Any) -> None:
        ops.add(node.op)
        called = [node.op] + [v.func.name for v in node.attr.values() if v.func.name]
        called += [f.name for v in node.attr.values() for f in v.list.func]
        for name in called:
            if name in functions and name not in seen_functions:
                seen_functions.add(name)
                for inner in functions[name].node_def:
                    visit(inner)

    while pending:
        name = pending.pop()
        if name in seen_nodes or name not in nodes:
            continue
        seen_nodes.add(name)
        visit(nodes[name])
        pending.extend(i.split(":")[0].lstrip("^") for i in nodes[name].input)
    return ops


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def _named_objects(config: Any) -> Iterator[tuple[str, str]]:
    """Every (module, class_name) a Keras config would import, at any depth."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "class_name" in item and ("module" in item or "registered_name" in item):
                module = item.get("module")
                name = str(item.get("class_name"))
                yield (module if isinstance(module, str) else "<custom>"), name
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
