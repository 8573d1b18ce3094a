"""The seed notebook's CNN, built for any image size and class count, with or without batch normalization."""

from __future__ import annotations

import keras
from keras import layers


def build_seed_cnn(image_size: int, num_classes: int, seed: int = 0, batch_norm: bool = False) -> keras.Model:
    """2x conv32, pool, dropout 0.25; 2x conv64, pool, dropout 0.25; dense 512, dropout 0.5; softmax.

    The model takes raw 0-255 RGB pixels and rescales them itself, so an exported
    model needs no outside preprocessing. The softmax runs in float32 so mixed
    precision keeps stable probabilities and losses. ``batch_norm`` (``seed-bn``) puts
    BatchNormalization between each convolution and its ReLU (the convolution then
    needs no bias); the initializers and their seeds are the same either way.
    """
    init = keras.initializers.GlorotUniform

    def conv(filters: int, padding: str, index: int) -> list[keras.layers.Layer]:
        kernel = init(seed + index)
        if not batch_norm:
            return [layers.Conv2D(filters, 3, padding=padding, activation="relu", kernel_initializer=kernel)]
        return [layers.Conv2D(filters, 3, padding=padding, use_bias=False, kernel_initializer=kernel),
                layers.BatchNormalization(), layers.Activation("relu")]

    model = keras.Sequential(name="seed_cnn_bn" if batch_norm else "seed_cnn", layers=[
        keras.Input(shape=(image_size, image_size, 3), name="image"),
        layers.Rescaling(1.0 / 255, name="rescale"),
        *conv(32, "same", 0),
        *conv(32, "valid", 1),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25, seed=seed),
        *conv(64, "same", 2),
        *conv(64, "valid", 3),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25, seed=seed + 1),
        layers.Flatten(),
        layers.Dense(512, activation="relu", kernel_initializer=init(seed + 4)),
        layers.Dropout(0.5, seed=seed + 2),
        layers.Dense(num_classes, kernel_initializer=init(seed + 5)),
        layers.Activation("softmax", dtype="float32", name="probabilities"),
    ])
    return model
