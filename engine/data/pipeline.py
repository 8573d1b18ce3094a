"""tf.data input pipelines over the decoded uint8 cache: shuffle, batch, augment, prefetch.

Images are decoded and resized once (engine.data.dataset); each epoch only gathers
indices from that cache, so the pipeline stays far ahead of training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class Augmentation:
    """Keras 3 stand-ins for the seed notebook's ImageDataGenerator settings.

    The notebook's ``shear_range=0.2`` was in degrees (Keras 2), i.e. almost none;
    here shear is RandomShear's factor, as the issue asks ("shear, zoom 0.2").
    """

    shear: float = 0.2
    zoom: float = 0.2
    shift: float = 0.1
    horizontal_flip: bool = True

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def build_augmenter(spec: Augmentation, seed: int) -> keras.Sequential:
    """Float32 layers whatever the global precision policy: augmentation is input work."""
    stack: list[keras.layers.Layer] = []
    if spec.horizontal_flip:
        stack.append(keras.layers.RandomFlip("horizontal", seed=seed, dtype="float32"))
    if spec.shear:
        stack.append(keras.layers.RandomShear(x_factor=spec.shear, seed=seed + 1, dtype="float32"))
    if spec.zoom:
        stack.append(keras.layers.RandomZoom(spec.zoom, spec.zoom, seed=seed + 2, dtype="float32"))
    if spec.shift:
        stack.append(keras.layers.RandomTranslation(spec.shift, spec.shift, seed=seed + 3, dtype="float32"))
    return keras.Sequential(stack, name="augmentation")


def _gatherer(images: np.ndarray, labels: np.ndarray, image_size: int):
    """tf.data map that pulls one batch of pixels out of the (possibly memory-mapped) cache."""

    def gather(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.sort(indices)  # sequential reads from a memmap, shuffle already applied
        return images[order], labels[order]

    def fn(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        pixels, targets = tf.numpy_function(gather, [indices], [tf.uint8, tf.int32], stateful=False)
        pixels = tf.ensure_shape(pixels, [None, image_size, image_size, 3])
        targets = tf.ensure_shape(targets, [None])
        return tf.cast(pixels, tf.float32), targets

    return fn


def make_dataset(images: np.ndarray, labels: np.ndarray, indices: np.ndarray, batch_size: int,
                 *, shuffle_seed: int | None = None, augmenter: keras.Sequential | None = None) -> tf.data.Dataset:
    """Batches of (float32 pixels 0-255, int32 labels); shuffled anew every epoch when seeded.

    Sorting within a batch (see _gatherer) does not change which images share a
    batch, so the optimisation is the same as with unsorted batches.
    """
    image_size = int(images.shape[1])
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(indices, dtype=np.int64))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(indices), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(_gatherer(images, labels.astype(np.int32), image_size),
                                  num_parallel_calls=tf.data.AUTOTUNE)
    if augmenter is not None:
        ds = ds.map(lambda x, y: (augmenter(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)

