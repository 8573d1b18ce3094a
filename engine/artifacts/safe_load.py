"""Open models that came from disk, possibly from someone else, without running their code.

A ``.keras`` file is checked and loaded by engine.train.models.archive (stock Keras
layers only, Keras' safe mode); here it must also be a classifier. A SavedModel graph
may hold file-system ops, which run when the model is called: we refuse those before
loading. Every failure is one line naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.train.models.archive import ModelLoadError, first_line, load_checked

__all__ = ["ModelLoadError", "check_classifier_shape", "check_saved_model", "first_line", "load_keras_model"]

# Ops that touch files, the network or Python: a trained classifier never needs them.
UNSAFE_GRAPH_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "MergeV2Checkpoints", "Save", "SaveV2", "SaveSlices",
    "PyFunc", "PyFuncStateless", "EagerPyFunc", "DeleteFile", "CreateSummaryFileWriter",
    "WriteSummary", "ImmutableConst", "DebugIdentityV2",
})


def load_keras_model(path: Path | str) -> Any:
    """Load a ``.keras`` file for inference only (no optimizer), after checking what it contains."""
    path = Path(path)
    model = load_checked(path)
    check_classifier_shape(path, model)
    return model


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
