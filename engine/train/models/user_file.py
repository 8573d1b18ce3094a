"""A user's own ``.keras`` model, rebuilt from its description for every run.

The file is checked and loaded in Keras' safe mode (engine.train.models.archive). Its
description is rebuilt at the experiment's image size and precision (the last layer
computes in float32), so every batch size starts from the same fresh, seeded weights;
``--weights from-file`` starts from the file's own weights instead. When its output
width is not the number of classes, its last Dense layer is replaced by a new softmax
head; the layers before that are the "backbone" that ``--freeze-backbone`` and
``--fine-tune-from`` act on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Optional

import keras

from engine.config import ConfigError
from engine.train.models import training
from engine.train.models.archive import ModelLoadError, config_dicts, first_line, load_checked
from engine.train.models.backbones import softmax_head
from engine.train.models.settings import check_input_shape, input_layer_configs

PRECISE_LAYERS = ("Rescaling", "Normalization")


def build_file_model(path: Path, image_size: int, num_classes: int, seed: int, weights: str, freeze: bool,
                     fine_tune_from: Optional[str]) -> tuple[keras.Model, bool, Optional[int]]:
    """The model to train, whether its head was replaced, and the input size the file fixes (or None)."""
    try:
        loaded = load_checked(path)
    except ModelLoadError as exc:
        raise ConfigError(f"model: {exc}") from None
    if len(loaded.inputs) != 1 or len(loaded.outputs) != 1:
        raise ConfigError(f"model: {path} must have one input and one output "
                          f"(it has {len(loaded.inputs)} and {len(loaded.outputs)})")
    shape = tuple(loaded.inputs[0].shape)
    check_input_shape(str(path), shape, image_size)
    rebuilt = rebuild(loaded, path, image_size)
    if weights == "from-file":
        training.copy_weights(loaded, rebuilt)
    elif weights != "none":
        training.load_weights_file(Path(weights), [(f"the model in {path.name}", rebuilt)])
    output = tuple(rebuilt.outputs[0].shape)
    if len(output) != 2:
        raise ConfigError(f"model: {path} is not a classifier (output shape {output}; expected (batch, classes))")
    replace = output[1] != num_classes
    model = replace_head(rebuilt, path, num_classes, seed) if replace else check_softmax(rebuilt, path)
    backbone = model.layers[:head_index(model, path)]
    if freeze:
        training.freeze(backbone)
    elif fine_tune_from is not None:
        training.fine_tune_from(training.trainable_leaves(backbone), fine_tune_from, f"{path.name} (before its head)")
    return model, replace, shape[1] if shape[1] == shape[2] else None


def rebuild(loaded: keras.Model, path: Path, image_size: int) -> keras.Model:
    """Fresh layers from the description: this precision and input size, with the last layer and
    the pixel preprocessing (bfloat16 would round 0-255 values by up to 0.5) in float32."""
    config = training.with_dtype_policy(loaded.get_config(), keras.mixed_precision.global_policy().name)
    for layer in input_layer_configs(config):
        layer["batch_shape"] = [None, image_size, image_size, 3]
    for layer in [config["layers"][-1], *preprocessing_layers(config)]:
        dtype = layer["config"].get("dtype")
        layer["config"]["dtype"] = training.with_dtype_policy(dtype, "float32") if isinstance(dtype, dict) \
            else "float32"
    try:
        return type(loaded).from_config(config)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a description it cannot rebuild
        raise ConfigError(f"model: {path} cannot be rebuilt at {image_size} px ({first_line(exc)})") from None


def preprocessing_layers(config: Any) -> Iterator[dict[str, Any]]:
    """Every Rescaling and Normalization layer's entry in a model description, at any depth."""
    return (item for item in config_dicts(config)
            if item.get("class_name") in PRECISE_LAYERS and isinstance(item.get("config"), dict))


def head_index(model: keras.Model, path: Path) -> int:
    """Position of the last layer with weights: the classifier head."""
    for index in range(len(model.layers) - 1, -1, -1):
        if model.layers[index].weights:
            return index
    raise ConfigError(f"model: {path} has no layer with weights to train")


def replace_head(model: keras.Model, path: Path, num_classes: int, seed: int) -> keras.Model:
    """The model up to its last Dense layer's input, then a new Dense(classes) and float32 softmax."""
    head = model.layers[head_index(model, path)]
    if not isinstance(head, keras.layers.Dense) or len(head.input.shape) != 2:
        raise ConfigError(f"model: {path} gives {model.outputs[0].shape[1]} outputs, not {num_classes}, and its "
                          f"last layer with weights ({head.name}, {type(head).__name__}) is not a Dense layer on "
                          "features that BatchLab could replace")
    taken = {layer.name for layer in model.layers}
    dense_name, output_name = (unused_name(base, taken) for base in ("head", "probabilities"))
    outputs = softmax_head(head.input, num_classes, seed, dense_name, output_name)
    return keras.Model(model.inputs, outputs, name=model.name)


def check_softmax(model: keras.Model, path: Path) -> keras.Model:
    """A model with the right width must already give probabilities: the loss expects them."""
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax) or getattr(last, "activation", None) is keras.activations.softmax:
        return model
    raise ConfigError(f"model: {path} must end in a softmax (its last layer, {last.name}, gives "
                      f"{getattr(getattr(last, 'activation', None), '__name__', type(last).__name__)} outputs)")


def unused_name(base: str, taken: set[str]) -> str:
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}_{number}"
    return name
