"""Batch-normalization statistics recomputed before every validation ("precise BN").

Keras keeps each BatchNormalization layer's moving mean and variance as an exponential average
that starts at 0 and 1 and forgets at its momentum (0.99 per step). In a short run from scratch
the start never fades: after 236 steps 0.99^236 = 9% of the initial variance 1.0 is still there,
while a MobileNetV3 depthwise layer's real variance is about 0.0004, so in inference mode every
image is squashed alike and validation sits at chance while training accuracy reaches 95%
(measured: README, "Your model"). Batch size 256 takes 8 times fewer steps per epoch and suffers
most, which would bias the very comparison BatchLab makes. Following Wu & Johnson 2021
("Rethinking 'Batch' in BatchNorm"), the statistics are recomputed from a fixed number of training
images before each validation: a plain average over a few batches, so the checkpoint and the
validation accuracy describe the network as it is.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from engine.data.pipeline import make_dataset
from engine.train.models.flops import leaf_layers

CALIBRATION_SAMPLES = 256  # per validation: per-channel statistics over 256 images x height x width
CALIBRATION_BATCH = 32


def calibrated_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The batch-normalization layers training updates (a frozen backbone's do not change)."""
    return [layer for layer in leaf_layers(model)
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]


class BatchNormCalibration(keras.callbacks.Callback):
    """Before fit's validation, set every updated layer's moving statistics to their average over
    ``images`` (training images, not augmented: what the network will be asked about).

    The forward passes run as one traced function with momentum 0, so each call leaves one batch's
    statistics in the moving variables; they are summed here and averaged. (Changing the momentum
    per batch instead would need eager calls, measured 3-4 times slower than a traced forward pass.)
    """

    def __init__(self, images: tf.data.Dataset) -> None:
        super().__init__()
        self.images = images
        self.layers: list[keras.layers.BatchNormalization] = []
        self.forward: Any = None

    def on_train_begin(self, logs=None) -> None:
        self.layers = calibrated_layers(self.model)

    def on_test_begin(self, logs=None) -> None:
        momenta = [layer.momentum for layer in self.layers]
        try:
            for layer in self.layers:
                layer.momentum = 0.0  # read when the function is traced, the first time only
            if self.forward is None:
                self.forward = tf.function(lambda x: self.model(x, training=True))
            sums = [[np.zeros(v.shape, "float64") for v in (layer.moving_mean, layer.moving_variance)]
                    for layer in self.layers]
            batches = 0
            for batch in self.images:
                self.forward(batch)
                batches += 1
                for layer, (mean, variance) in zip(self.layers, sums):
                    mean += keras.ops.convert_to_numpy(layer.moving_mean)
                    variance += keras.ops.convert_to_numpy(layer.moving_variance)
            for layer, (mean, variance) in zip(self.layers, sums if batches else []):
                layer.moving_mean.assign(mean / batches)
                layer.moving_variance.assign(variance / batches)
        finally:
            for layer, momentum in zip(self.layers, momenta):
                layer.momentum = momentum


def calibration_images(images: np.ndarray, labels: np.ndarray, indices: np.ndarray, seed: int) -> tf.data.Dataset:
    """CALIBRATION_SAMPLES training images, drawn anew (seeded) for each validation; pixels only."""
    batches = -(-CALIBRATION_SAMPLES // CALIBRATION_BATCH)
    return make_dataset(images, labels, indices, CALIBRATION_BATCH, shuffle_seed=seed).take(batches).map(
        lambda x, _: x)


def calibrates(model: keras.Model, replicas: int) -> bool:
    """Whether to calibrate: the model has batch normalization that trains, on one replica (with
    several, each replica keeps its own statistics and an eager call would update one)."""
    return replicas == 1 and bool(calibrated_layers(model))


def calibration_record(model: Any) -> dict[str, Any]:
    """The run's record entry for a calibrated trial."""
    return {"samples": CALIBRATION_SAMPLES, "layers": len(calibrated_layers(model)),
            "images": "training, not augmented"}
