"""Which layers train, where weights come from, and rebuilding a model at another precision.

Keras 3 runs a BatchNormalization layer in inference mode whenever the layer is not
trainable, so freezing a layer also freezes its running statistics.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Sequence

import keras

from engine.config import ConfigError
from engine.train.models.archive import config_dicts, first_line
from engine.train.models.flops import leaf_layers


def with_dtype_policy(config: Any, policy: str) -> Any:
    """A copy of a model's config with every layer's dtype policy named ``policy``."""
    config = copy.deepcopy(config)
    for item in config_dicts(config):
        if item.get("class_name") == "DTypePolicy" and isinstance(item.get("config"), dict):
            item["config"]["name"] = policy
    return config


def refresh_state(model: Any) -> None:
    """Layers that compute constants from their weights at load time (Normalization's mean and
    variance) recompute them: ``set_weights`` alone would leave the old constants in use."""
    for layer in leaf_layers(model):
        if layer.built and callable(getattr(layer, "finalize_state", None)):
            layer.finalize_state()


def copy_weights(source: Any, target: Any) -> None:
    target.set_weights(source.get_weights())
    refresh_state(target)


def load_weights_file(path: Path, candidates: Sequence[tuple[str, Any]]) -> str:
    """Load ``path`` into the first candidate (label, model) it fits; return that label.

    ConfigError names the file and every candidate when it fits none.
    """
    errors = []
    for label, target in candidates:
        try:
            target.load_weights(path)
        except Exception as exc:  # noqa: BLE001 - Keras raises ValueError, KeyError, OSError for a misfit
            errors.append(f"{label}: {first_line(exc)}")
            continue
        return label
    raise ConfigError(f"weights: {path} does not fit ({'; '.join(errors)})")


def trainable_leaves(layers: Sequence[Any]) -> list[Any]:
    """The leaf layers under ``layers`` in order, without Input layers (they hold nothing to train)."""
    leaves: list[Any] = []
    for layer in layers:
        found = list(leaf_layers(layer)) if isinstance(layer, keras.Model) else [layer]
        leaves.extend(leaf for leaf in found if not isinstance(leaf, keras.layers.InputLayer))
    return leaves


def freeze(layers: Sequence[Any]) -> None:
    for layer in layers:
        layer.trainable = False


def fine_tune_from(layers: Sequence[Any], name: str, label: str) -> None:
    """Freeze the layers before ``name``; it and the layers after it train.

    ConfigError names the layer and suggests near names when it is not among ``layers``.
    """
    names = [layer.name for layer in layers]
    if name not in names:
        near = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = (f"did you mean {', '.join(near)}?" if near
                else f"its {len(names)} layers run from {names[0]} to {names[-1]}" if names else "it has no layers")
        raise ConfigError(f"fine tune from: no layer named {name!r} in {label} ({hint})")
    freeze(layers[:names.index(name)])
