"""Build the model a run trains, and describe it for the record's top-level ``model`` entry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import keras

from engine.config import ExperimentConfig, image_sizes
from engine.train.models import backbones, training, user_file
from engine.train.models.files import file_sha256
from engine.train.models.flops import batch_norm_layers, forward_flops, parameter_counts
from engine.train.models.seed import build_seed_cnn
from engine.train.models.settings import SEED_MODELS, check_model_settings, is_builtin


@dataclass(frozen=True)
class BuiltModel:
    model: keras.Model  # input: raw 0-255 RGB float32 (N, S, S, 3); output: float32 softmax over the classes
    info: dict[str, Any]  # the record's top-level "model" entry
    warnings: tuple[str, ...] = ()  # one line each, for the user (a cached weights file with another hash)


def build_model(config: ExperimentConfig, num_classes: int, seed: int) -> BuiltModel:
    """The configured model under the current dtype policy, its random draws seeded by ``seed``.

    Called inside the placement scope, so a distribution strategy owns its variables.
    Raises ConfigError (one line, naming the setting) for a setting only a built model can
    check: a layer name for fine-tuning, a weights file that does not fit, a user's model.
    """
    check_model_settings(config)
    keras.utils.set_random_seed(seed)
    name, size, weights = config.model, int(config.image_size), config.weights
    notes: list[str] = []
    head_replaced = False
    sha256: Optional[str] = None
    if name in SEED_MODELS:
        model = build_seed_cnn(size, num_classes, seed, batch_norm=name == "seed-bn")
        if weights != "none":
            training.load_weights_file(Path(weights), [(f"the {name} CNN", model)])
        low, native = image_sizes(name)
    elif is_builtin(name):
        model, notes = backbones.build_classifier(name, size, num_classes, seed, weights, config.freeze_backbone,
                                                  config.fine_tune_from)
        low, native = image_sizes(name)
    else:
        path = Path(name)
        model, head_replaced, low = user_file.build_file_model(path, size, num_classes, seed, weights,
                                                               config.freeze_backbone, config.fine_tune_from)
        native = low
        sha256 = file_sha256(path)
    info: dict[str, Any] = {"name": name, "source": "builtin" if is_builtin(name) else "file", "weights": weights}
    if sha256 is not None:
        info["sha256"] = sha256
    info.update(parameters=parameter_counts(model), flops_per_image=forward_flops(model),
                batch_norm_layers=batch_norm_layers(model), head_replaced=head_replaced,
                frozen_backbone=bool(config.freeze_backbone), fine_tune_from=config.fine_tune_from,
                min_image_size=low, native_image_size=native)
    return BuiltModel(model, info, tuple(notes))
