"""The noise-scale estimator against a problem whose noise scale is known in closed form.

Linear regression, y = x.w* + eps, x ~ N(0, I_d), eps ~ N(0, s^2), loss 0.5 (x.w - y)^2.
At parameters w, write delta = w - w*. The per-example gradient is

    g = x (x.w - y) = x (x.delta - eps).

True gradient: G = E[x x^T] delta - E[x eps] = delta, so |G|^2 = |delta|^2.
Second moment (eps independent of x, mean zero, so the cross term vanishes):

    E[g g^T] = E[x x^T (x.delta)^2] + s^2 E[x x^T].

For Gaussian x, Isserlis' theorem gives E[x_i x_j x_k x_l] delta_k delta_l
= |delta|^2 I_ij + 2 delta_i delta_j, hence

    E[g g^T] = (|delta|^2 + s^2) I + 2 delta delta^T,
    Sigma    = E[g g^T] - G G^T = (|delta|^2 + s^2) I + delta delta^T,
    tr(Sigma) = d (|delta|^2 + s^2) + |delta|^2,

    B_simple = tr(Sigma) / |G|^2 = (d (|delta|^2 + s^2) + |delta|^2) / |delta|^2.

Keras' mean squared error, mean (x.w - y)^2, doubles every gradient: both tr(Sigma) and |G|^2
grow by 4 and B_simple is unchanged, so the same formula checks the Keras callback.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from engine.train.noise_scale import (
    BiasCorrectedEMA,
    NoiseScaleCallback,
    NoiseScaleEstimator,
    grad_sq_estimate,
    trace_sigma_estimate,
)
from tests.helpers import write_image_folder

D, NOISE_STD = 10, 1.0


def closed_form(delta: np.ndarray, noise_std: float) -> tuple[float, float]:
    """(tr(Sigma), |G|^2) of the per-example gradient, from the derivation in the module docstring."""
    d2 = float(delta @ delta)
    return len(delta) * (d2 + noise_std**2) + d2, d2


def regression_problem(seed: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray, float]:
    """Random w*, a point w at unit distance from it, and the true B_simple there."""
    rng = np.random.default_rng(seed)
    w_star = rng.normal(size=D)
    delta = rng.normal(size=D)
    delta /= np.linalg.norm(delta)
    trace, grad_sq = closed_form(delta, NOISE_STD)
    return rng, w_star, w_star + delta, trace / grad_sq


def draw(rng: np.random.Generator, w_star: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(n, D))
    return x, x @ w_star + NOISE_STD * rng.normal(size=n)


def test_closed_form_matches_monte_carlo_per_example_gradients() -> None:
    """The derivation itself: empirical tr(Sigma) and |G|^2 of many per-example gradients."""
    rng, w_star, w, _ = regression_problem(1)
    x, y = draw(rng, w_star, 400_000)
    g = x * (x @ w - y)[:, None]
    trace, grad_sq = closed_form(w - w_star, NOISE_STD)
    assert g.var(axis=0, ddof=1).sum() == pytest.approx(trace, rel=0.02)
    assert float(g.mean(axis=0) @ g.mean(axis=0)) == pytest.approx(grad_sq, rel=0.05)


def test_two_batch_estimators_invert_the_expected_norms() -> None:
    """E|G_B|^2 = |G|^2 + tr(Sigma)/B at two sizes must give back |G|^2 and tr(Sigma) exactly."""
    grad_sq, trace, b_small, b_big = 3.0, 120.0, 16, 128
    small, big = grad_sq + trace / b_small, grad_sq + trace / b_big
    assert grad_sq_estimate(small, big, b_small, b_big) == pytest.approx(grad_sq)
    assert trace_sigma_estimate(small, big, b_small, b_big) == pytest.approx(trace)
    with pytest.raises(ValueError, match="batch sizes"):
        grad_sq_estimate(small, big, 64, 64)


def test_bias_corrected_ema_is_a_normalised_weighted_mean() -> None:
    ema = BiasCorrectedEMA(0.5)
    assert ema.value is None
    assert ema.update(2.0) == pytest.approx(2.0)  # no pull towards the zero start
    # weights 0.5 (older) and 1 (newer): (0.5 * 2 + 1 * 4) / 1.5
    assert ema.update(4.0) == pytest.approx(5.0 / 1.5)
    constant = BiasCorrectedEMA(0.99)
    assert all(constant.update(7.0) == pytest.approx(7.0) for _ in range(5))
    with pytest.raises(ValueError, match="beta"):
        BiasCorrectedEMA(1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimator_recovers_closed_form_noise_scale(seed: int) -> None:
    b_small, k, groups = 8, 8, 300
    rng, w_star, w, true_b = regression_problem(seed)
    estimator = NoiseScaleEstimator(b_small, k, beta=0.99)
    assert estimator.value is None
    for _ in range(groups):
        x, y = draw(rng, w_star, k * b_small)
        per_example = x * (x @ w - y)[:, None]
        small = per_example.reshape(k, b_small, D).mean(axis=1)
        estimator.add_group([float(g @ g) for g in small], float(small.mean(axis=0) @ small.mean(axis=0)))
    assert estimator.groups == groups
    assert estimator.value == pytest.approx(true_b, rel=0.15)
    assert estimator.value == pytest.approx(estimator.trace_sigma / estimator.grad_sq)


def test_estimator_is_undefined_while_gradient_estimate_is_not_positive() -> None:
    estimator = NoiseScaleEstimator(4, 2)
    # |G_big|^2 far below what pure noise predicts: the |G|^2 estimate comes out negative
    estimator.add_group([10.0, 10.0], 1.0)
    assert estimator.grad_sq is not None and estimator.grad_sq < 0
    assert estimator.value is None
    with pytest.raises(ValueError, match="expected k = 2"):
        estimator.add_group([1.0], 1.0)
    with pytest.raises(ValueError, match="not finite"):
        estimator.add_group([1.0, float("inf")], 1.0)


@pytest.mark.parametrize("precision", ["float32", "mixed_float16"])
def test_callback_on_keras_model_recovers_closed_form_noise_scale(precision: str) -> None:
    """The Keras path (GradientTape, compiled loss, float32 norms) on the same regression.

    Under mixed_float16 the optimizer is a LossScaleOptimizer whose initial scale (2^15)
    overflows float16 here: the callback must back off like dynamic loss scaling and unscale.
    """
    b_small, k, groups = 8, 8, 250
    rng, w_star, w, true_b = regression_problem(3)
    x, y = draw(rng, w_star, b_small * k * groups)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((D,))
    model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False, dtype=precision)(inputs))
    sgd = keras.optimizers.SGD()
    model.compile(optimizer=keras.optimizers.LossScaleOptimizer(sgd) if precision == "mixed_float16" else sgd, loss="mse")
    model.layers[-1].kernel.assign(w[:, None].astype("float32"))
    data = tf.data.Dataset.from_tensor_slices((x.astype("float32"), y[:, None].astype("float32"))).batch(b_small)
    callback = NoiseScaleCallback(data, b_small, k=k, groups=groups, beta=0.99)
    callback.set_model(model)
    assert callback.measure() == pytest.approx(true_b, rel=0.15)
    trace, grad_sq = closed_form(w - w_star, NOISE_STD)
    assert callback.estimator.trace_sigma == pytest.approx(4 * trace, rel=0.15)  # mse: gradients doubled
    assert callback.estimator.grad_sq == pytest.approx(4 * grad_sq, rel=0.15)
    assert callback.last_seconds > 0


def image_dataset(root: Path, batch_size: int) -> tf.data.Dataset:
    """(image, one-hot label) batches from a class-per-folder tree of PNGs."""
    paths = sorted(root.rglob("*.png"))
    classes = sorted({p.parent.name for p in paths})
    labels = [classes.index(p.parent.name) for p in paths]

    def load(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.io.decode_png(tf.io.read_file(path), channels=3)
        return tf.cast(image, tf.float32) / 255.0, tf.one_hot(label, len(classes))

    data = tf.data.Dataset.from_tensor_slices(([str(p) for p in paths], labels))
    return data.shuffle(len(paths), seed=0).map(load).batch(batch_size)


def tiny_cnn() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.MaxPooling2D(4),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.25),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def test_callback_during_fit_logs_noise_scale_and_leaves_the_model_alone(tmp_path: Path) -> None:
    data = write_image_folder(tmp_path / "data", per_class=16)  # 48 images: 6 batches of 8
    model = tiny_cnn()
    callback = NoiseScaleCallback(image_dataset(data, 8), 8, k=4, groups=3)
    history = model.fit(image_dataset(data, 8), epochs=2, verbose=0, shuffle=False, callbacks=[callback])

    assert callback.estimator.groups == 6
    for epoch in range(2):
        trace = history.history["gns_trace"][epoch]
        grad_sq = history.history["gns_grad_sq"][epoch]
        noise_scale = history.history["noise_scale"][epoch]
        assert math.isfinite(trace) and math.isfinite(grad_sq)
        if trace > 0 and grad_sq > 0:
            assert noise_scale == pytest.approx(trace / grad_sq)
        else:
            assert math.isnan(noise_scale)
    assert history.history["noise_scale"][-1] > 0  # early in training the gradient dominates

    before = [v.numpy().copy() for v in model.variables]  # weights, BatchNorm stats, dropout seed
    callback.measure()
    assert callback.estimator.groups == 9
    for old, variable in zip(before, model.variables):
        np.testing.assert_array_equal(old, variable.numpy())


def test_callback_reports_too_little_data_without_failing_the_run(tmp_path: Path) -> None:
    data = write_image_folder(tmp_path / "data", per_class=2)  # 6 images: one full batch of 4
    model = tiny_cnn()
    callback = NoiseScaleCallback(image_dataset(data, 4), 4, k=4, groups=1)
    history = model.fit(image_dataset(data, 4), epochs=1, verbose=0, shuffle=False, callbacks=[callback])
    assert math.isnan(history.history["noise_scale"][0])
    assert callback.problem is not None and "fewer than k = 4 full batches of 4" in callback.problem
