"""What a model costs: forward FLOPs per image, parameters, batch-normalization layers.

FLOPs count the multiply-adds (x2) of convolutions (plain, depthwise, separable) and
dense layers, the layers that hold nearly all of a classifier's arithmetic; activations,
pooling, normalization and element-wise operations are left out. Nested models (a
Keras Applications backbone inside its classifier) are counted layer by layer.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import keras

CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)


def leaf_layers(model: Any) -> Iterator[Any]:
    """Every layer that is not itself a model, in order, nested models expanded where they sit."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


def forward_flops(model: Any) -> float:
    """Multiply-adds x2 of one image's forward pass (the rest is noise)."""
    return float(sum(layer_flops(layer) for layer in leaf_layers(model)))


def layer_flops(layer: Any) -> float:
    """FLOPs of one layer for one image, from its input and output shapes (0 for uncounted layers)."""
    if not isinstance(layer, CONVOLUTIONS + DEPTHWISE + SEPARABLE + (keras.layers.Dense,)):
        return 0.0
    cin = int(layer.input.shape[-1])
    out_shape = tuple(int(d) for d in layer.output.shape[1:])
    positions = math.prod(out_shape[:-1])  # output pixels (or tokens for a Dense on a sequence)
    if isinstance(layer, keras.layers.Dense):
        return 2.0 * positions * cin * int(layer.units)
    window = math.prod(layer.kernel_size)
    if isinstance(layer, CONVOLUTIONS):
        return 2.0 * positions * window * (cin // layer.groups) * out_shape[-1]
    depthwise = 2.0 * positions * window * cin * layer.depth_multiplier
    if isinstance(layer, DEPTHWISE):
        return depthwise
    return depthwise + 2.0 * positions * cin * layer.depth_multiplier * out_shape[-1]


def parameter_counts(model: Any) -> dict[str, int]:
    """Every weight, and those the optimizer updates (frozen layers excluded)."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    return {"total": int(model.count_params()), "trainable": int(trainable)}


def batch_norm_layers(model: Any) -> int:
    return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in leaf_layers(model))
