"""Batch-normalization statistics recomputed before validation: the plain average over the calibration images."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from engine.train.bn_calibration import BatchNormCalibration, calibrates


def small_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    features = keras.layers.BatchNormalization(name="bn")(features)
    features = keras.layers.Conv2D(4, 3, name="conv2")(features)
    frozen = keras.layers.BatchNormalization(name="frozen_bn")
    frozen.trainable = False
    features = keras.layers.GlobalAveragePooling2D()(frozen(features))
    return keras.Model(inputs, keras.layers.Dense(2)(features))


def test_moving_statistics_become_the_average_over_the_calibration_batches() -> None:
    model = small_model()
    images = np.random.default_rng(0).uniform(0, 255, (96, 8, 8, 3)).astype("float32")
    callback = BatchNormCalibration(tf.data.Dataset.from_tensor_slices(images).batch(32))
    callback.set_model(model)
    callback.on_train_begin()
    frozen_before = keras.ops.convert_to_numpy(model.get_layer("frozen_bn").moving_variance).copy()
    callback.on_test_begin()
    conv = keras.ops.convert_to_numpy(model.get_layer("conv")(images)).reshape(3, 32, 6, 6, 4)
    bn = model.get_layer("bn")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), conv.mean(axis=(0, 1, 2, 3)),
                               rtol=1e-4, atol=1e-3)
    per_batch_variance = conv.var(axis=(1, 2, 3)).mean(axis=0)  # the layer's batch variances, averaged
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), per_batch_variance, rtol=1e-3)
    assert bn.momentum == pytest.approx(0.99)  # restored for training
    first = keras.ops.convert_to_numpy(bn.moving_variance).copy()
    callback.on_test_begin()  # the traced pass again, on the same images: the same statistics, not a blend
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), first, rtol=1e-6)
    # A frozen layer is not what training updates: left as it was.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("frozen_bn").moving_variance),
                                  frozen_before)


def test_only_models_with_batch_normalization_on_one_replica_are_calibrated() -> None:
    model = small_model()
    assert calibrates(model, 1) and not calibrates(model, 2)
    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    assert not calibrates(plain, 1)


def test_the_cost_benchmark_prints_the_calibration_against_an_epoch(capsys) -> None:
    from engine.measure.bn_calibration_cost import main

    assert main(["--model", "seed-bn", "--image-size", "32", "--batch-size", "8", "--steps", "2", "--rounds", "1",
                 "--train-images", "64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("seed-bn at 32 px, batch 8: ") and "an epoch is 8 steps" in lines[0]
    assert lines[1].startswith("round 1: epoch (scaled)") and "% of the epoch) | eager" in lines[1]
