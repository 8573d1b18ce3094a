"""Which model an experiment trains and with which weights, checked without TensorFlow.

The built-in names and their image sizes are in engine.config; this module adds what
each Keras Applications backbone needs (its constructor, the ImageNet weights file in
Keras' cache and the hash Keras publishes for it) and answers a bad setting in one line
before any data is read or TensorFlow is imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from engine.config import MODEL_NAMES, ConfigError, ExperimentConfig, image_sizes
from engine.train.models.archive import ModelLoadError, check_keras_archive

SEED_MODELS = ("seed", "seed-bn")
WEIGHT_SUFFIXES = (".h5", ".hdf5", ".keras")
RAW_PIXELS = ("None outside the model: give raw RGB pixel values 0-255 as float32, NHWC, resized (squashed, "
              "bilinear) to the input size; ")


@dataclass(frozen=True)
class Backbone:
    application: str  # the keras.applications constructor
    imagenet_file: str  # Keras' cache name of its ImageNet weights without the top
    imagenet_md5: str  # the hash Keras publishes for that file
    preprocessing: str  # what the model does to raw pixels, for the export's description


BACKBONES = {
    "mobilenetv3small": Backbone("MobileNetV3Small", "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
                                 "d3e8ec802a04aa4fc771ee12a9a9b836",
                                 "the model scales them to [-1, 1] itself (its first layer, Keras' MobileNetV3 "
                                 "preprocessing)."),
    "mobilenetv3large": Backbone("MobileNetV3Large", "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
                                 "07fb09a5933dd0c8eaafa16978110389",
                                 "the model scales them to [-1, 1] itself (its first layer, Keras' MobileNetV3 "
                                 "preprocessing)."),
    "efficientnetb0": Backbone("EfficientNetB0", "efficientnetb0_notop.h5", "50bc09e76180e00e4465e1a485ddc09d",
                               "the model rescales and normalizes them itself (its first layers, Keras' "
                               "EfficientNet preprocessing)."),
    "resnet50": Backbone("ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                         "4d473c1dd8becc155b73f8504c6f6626",
                         "the model reorders them to BGR and subtracts the ImageNet mean itself (its first "
                         "layers, Keras' ResNet50 'caffe' preprocessing)."),
}
SEED_PREPROCESSING = "the model divides by 255 itself (its first layer is Rescaling(1/255))."
FILE_PREPROCESSING = "the model's own layers do any scaling (it was trained on raw 0-255 pixels)."


def is_builtin(model: str) -> bool:
    return model in MODEL_NAMES


def preprocessing_note(model: str) -> str:
    """How an exported model of this kind wants its input, in one sentence."""
    if model in BACKBONES:
        return RAW_PIXELS + BACKBONES[model].preprocessing
    return RAW_PIXELS + (SEED_PREPROCESSING if model in SEED_MODELS else FILE_PREPROCESSING)


def keras_models_dir() -> Path:
    """Keras' cache of downloaded weights, read now (Keras itself reads KERAS_HOME once, at import)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def imagenet_path(model: str) -> Path:
    return keras_models_dir() / BACKBONES[model].imagenet_file


def missing_imagenet(model: str, path: Path) -> str:
    """One line: the file expected and the one command that puts it in Keras' cache elsewhere."""
    call = f"import keras; keras.applications.{BACKBONES[model].application}(include_top=False, weights='imagenet')"
    return (f"weights: imagenet for {model} needs {path}, which is missing (BatchLab never downloads); on a "
            f"machine with internet run  python -c \"{call}\"  and copy ~/.keras/models/{path.name} to {path.parent}")


def check_model_settings(config: ExperimentConfig) -> None:
    """Raise ConfigError naming the setting: model, weights, freeze backbone, fine tune from, image size."""
    model = config.model
    if not isinstance(model, str) or not model:
        raise ConfigError(f"model: give one of {', '.join(MODEL_NAMES)} or the path of a .keras file")
    file_config: Optional[dict[str, Any]] = None
    if not is_builtin(model):
        if not model.endswith(".keras"):
            raise ConfigError(f"model: {model!r} is not one of {', '.join(MODEL_NAMES)} nor a .keras file")
        try:
            file_config = check_keras_archive(Path(model))
        except ModelLoadError as exc:
            raise ConfigError(f"model: {exc}") from None
    _check_weights(model, config.weights)
    _check_training_scope(model, config.freeze_backbone, config.fine_tune_from)
    size = config.image_size
    if isinstance(size, int) and not isinstance(size, bool):
        if is_builtin(model):
            check_min_size(model, size)
        elif file_config is not None:
            shape = declared_input_shape(file_config)
            if shape is not None:
                check_input_shape(model, shape, size)


def _check_weights(model: str, weights: Any) -> None:
    if not isinstance(weights, str) or not weights:
        raise ConfigError("weights: give none, imagenet, from-file or the path of a weights file")
    if weights == "imagenet":
        if model not in BACKBONES:
            label = "the seed CNN" if model in SEED_MODELS else model
            raise ConfigError(f"weights: imagenet is for {', '.join(BACKBONES)}; {label} has no ImageNet weights "
                              "(use none, or from-file for a .keras model)")
        path = imagenet_path(model)
        if not path.is_file():
            raise ConfigError(missing_imagenet(model, path))
    elif weights == "from-file":
        if is_builtin(model):
            raise ConfigError(f"weights: from-file takes the weights inside a --model .keras file; for {model} "
                              "give none, imagenet or the path of a weights file")
    elif weights != "none":
        if not weights.endswith(WEIGHT_SUFFIXES):
            raise ConfigError(f"weights: {weights!r} is not none, imagenet, from-file or a Keras weights file "
                              f"({', '.join(WEIGHT_SUFFIXES)})")
        if not Path(weights).is_file():
            raise ConfigError(f"weights: {weights}: no such file")


def _check_training_scope(model: str, freeze: Any, fine_tune_from: Any) -> None:
    if not isinstance(freeze, bool):
        raise ConfigError(f"freeze backbone: {freeze!r} must be true or false")
    if fine_tune_from is not None and (not isinstance(fine_tune_from, str) or not fine_tune_from.strip()):
        raise ConfigError(f"fine tune from: {fine_tune_from!r} must be a layer name")
    setting = "freeze backbone" if freeze else "fine tune from" if fine_tune_from is not None else None
    if setting and model in SEED_MODELS:
        raise ConfigError(f"{setting}: the seed CNN has no pretrained backbone; use it with "
                          f"{', '.join(BACKBONES)} or a .keras model")
    if freeze and fine_tune_from is not None:
        raise ConfigError("fine tune from: give --freeze-backbone or --fine-tune-from LAYER, not both "
                          "(fine-tuning from a layer keeps the layers before it frozen)")


def check_min_size(model: str, size: int) -> None:
    low, native = image_sizes(model)
    if size < low:
        note = f"; its native size is {native} px" if native else ""
        raise ConfigError(f"image size: {size} px is below the minimum of {model}, {low} px{note}")


def check_input_shape(model: str, shape: Sequence[Optional[int]], size: int) -> None:
    """A user's model must take images (rank 4, RGB) of the experiment's size, when its size is fixed."""
    shape = tuple(shape)
    if len(shape) != 4 or shape[3] != 3:
        raise ConfigError(f"model: {model} does not take RGB images (input shape {shape}; "
                          "expected (batch, height, width, 3))")
    fixed = [s for s in shape[1:3] if s is not None]
    if any(s != size for s in fixed):
        raise ConfigError(f"image size: {size} px, but {model} takes {shape[1]}x{shape[2]} images "
                          f"(set the image size to {fixed[0]})")


def input_layer_configs(model_config: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``config`` of each Input layer at the top of a model's description (``get_config()``)."""
    layers = model_config.get("layers") or []
    return [layer["config"] for layer in layers if isinstance(layer, dict) and layer.get("class_name") == "InputLayer"
            and isinstance(layer.get("config"), dict)]


def declared_input_shape(file_config: dict[str, Any]) -> Optional[tuple[Optional[int], ...]]:
    """The input shape a .keras file's description declares, when it declares exactly one."""
    inputs = input_layer_configs(file_config.get("config") or {})
    shape = inputs[0].get("batch_shape") if len(inputs) == 1 else None
    return tuple(shape) if isinstance(shape, list) else None
