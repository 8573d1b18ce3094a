"""Gradient noise scale B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018, "An Empirical
Model of Large-Batch Training"), estimated from squared gradient norms at two batch sizes.

For a mini-batch gradient averaged over B independent examples, E|G_B|^2 = |G|^2 + tr(Sigma)/B.
Measuring |G_B|^2 at B_small and B_big = k * B_small (the mean of k mini-batch gradients taken
at the same weights) gives two equations and so unbiased estimates of both |G|^2 and tr(Sigma).
Single estimates are very noisy (and can be negative), so each is smoothed with a bias-corrected
moving average before the ratio is taken.

Cost of ``NoiseScaleCallback`` (opt-in): per epoch, ``groups * k`` extra forward+backward passes
at the run's batch size B (no optimizer update, about 0.75 of a training step on CPU), i.e. about
``groups * k * B / train_samples`` of an epoch's compute; a group needs k * B distinct samples, so
at large B on a small data set that can exceed a whole epoch. Memory: one float32 copy of the
trainable weights (the running sum of the k gradients) and of the non-trainable state (restored).
"""

from __future__ import annotations

import math
import time
from typing import Any, Optional, Sequence

import keras
import tensorflow as tf


class BiasCorrectedEMA:
    """Exponential moving average with Adam's 1 - beta^t correction, so early values are not
    dragged towards the zero the average starts from."""

    def __init__(self, beta: float) -> None:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"moving-average beta: {beta} must be in [0, 1)")
        self.beta = beta
        self.count = 0
        self._raw = 0.0

    def update(self, x: float) -> float:
        """Fold in one observation and return the corrected average."""
        self.count += 1
        self._raw = self.beta * self._raw + (1.0 - self.beta) * x
        return self._raw / (1.0 - self.beta**self.count)

    @property
    def value(self) -> Optional[float]:
        """The corrected average, or None before the first observation."""
        if self.count == 0:
            return None
        return self._raw / (1.0 - self.beta**self.count)


def _check_sizes(b_small: float, b_big: float) -> None:
    if not 0 < b_small < b_big:
        raise ValueError(f"noise scale: batch sizes must satisfy 0 < small ({b_small}) < big ({b_big})")


def grad_sq_estimate(small_sq: float, big_sq: float, b_small: float, b_big: float) -> float:
    """Unbiased |G|^2 from |G_small|^2 and |G_big|^2: (B_big|G_big|^2 - B_small|G_small|^2) / (B_big - B_small)."""
    _check_sizes(b_small, b_big)
    return (b_big * big_sq - b_small * small_sq) / (b_big - b_small)


def trace_sigma_estimate(small_sq: float, big_sq: float, b_small: float, b_big: float) -> float:
    """Unbiased tr(Sigma) (per-example gradient covariance): (|G_small|^2 - |G_big|^2) / (1/B_small - 1/B_big)."""
    _check_sizes(b_small, b_big)
    return (small_sq - big_sq) / (1.0 / b_small - 1.0 / b_big)


class NoiseScaleEstimator:
    """Running B_simple from groups of k mini-batch gradients taken at the same weights."""

    def __init__(self, b_small: int, k: int, beta: float = 0.9) -> None:
        if b_small < 1:
            raise ValueError(f"noise scale: batch size {b_small} must be at least 1")
        if k < 2:
            raise ValueError(f"noise scale: k = {k} must be at least 2 (B_big = k * B_small)")
        self.b_small = b_small
        self.k = k
        self.b_big = k * b_small
        self._grad_sq = BiasCorrectedEMA(beta)
        self._trace = BiasCorrectedEMA(beta)

    def add_group(self, small_sq: Sequence[float], big_sq: float) -> None:
        """Fold in one group: the k values |G_small|^2 and |G_big|^2 of their mean gradient.

        The k small norms are averaged first: that is still unbiased and has less variance than
        using any one of them.
        """
        if len(small_sq) != self.k:
            raise ValueError(f"noise scale: got {len(small_sq)} small-batch norms, expected k = {self.k}")
        values = [*small_sq, big_sq]
        if not all(math.isfinite(v) for v in values):
            raise ValueError("noise scale: a squared gradient norm is not finite")
        small = sum(small_sq) / self.k
        self._grad_sq.update(grad_sq_estimate(small, big_sq, self.b_small, self.b_big))
        self._trace.update(trace_sigma_estimate(small, big_sq, self.b_small, self.b_big))

    @property
    def groups(self) -> int:
        return self._grad_sq.count

    @property
    def grad_sq(self) -> Optional[float]:
        """Smoothed |G|^2 (may be negative while the true gradient is small against the noise)."""
        return self._grad_sq.value

    @property
    def trace_sigma(self) -> Optional[float]:
        """Smoothed tr(Sigma)."""
        return self._trace.value

    @property
    def value(self) -> Optional[float]:
        """B_simple, or None until both smoothed estimates exist and are positive."""
        g, t = self.grad_sq, self.trace_sigma
        if g is None or t is None or g <= 0 or t <= 0:
            return None
        return t / g


def _nan_if_none(x: Optional[float]) -> float:
    return float("nan") if x is None else float(x)


class NoiseScaleCallback(keras.callbacks.Callback):
    """Measure B_simple at each epoch end of ``model.fit`` and add it to the epoch logs.

    ``dataset`` yields (x, y) batches of the run's training data at ``batch_size``; batches of
    another size (a last partial batch) are skipped. Give it its own dataset object rather than
    the one passed to fit: drawing from a reshuffling dataset can change the order fit sees.
    Writes ``noise_scale``, ``gns_trace`` and ``gns_grad_sq`` (NaN while undefined) into the
    logs, so place it before callbacks that read them; History always comes last.
    Weights, BatchNorm statistics and dropout seeds are left as they were (state is restored).
    ``last_seconds`` is the time the last measurement took, to keep it out of throughput figures.
    Measurements are sparse (a few groups per epoch), so the default beta is lower than the
    estimator's: the average spans about 1 / (1 - beta) = 5 groups, some 2.5 epochs at the
    default 2 groups per epoch, and so still follows the noise scale as training moves on.
    """

    def __init__(self, dataset: tf.data.Dataset, batch_size: int, k: int = 8, groups: int = 2, beta: float = 0.8) -> None:
        super().__init__()
        if groups < 1:
            raise ValueError(f"noise scale: groups per epoch = {groups} must be at least 1")
        self.estimator = NoiseScaleEstimator(batch_size, k, beta)
        self.groups = groups
        self.last_seconds = 0.0
        self.problem: Optional[str] = None  # why no measurement could be made, if so
        self._dataset = dataset
        self._iterator: Optional[Any] = None
        self._position = 0  # full batches drawn from the current pass
        self._pass_length: Optional[int] = None  # full batches per pass, once one pass has ended
        self._sums: list[tf.Variable] = []
        self._small_step: Optional[Any] = None
        self._big_step: Optional[Any] = None
        self._scale = 1.0  # loss scale (mixed precision), from the optimizer at each measurement

    def on_epoch_end(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        self.measure()
        if logs is not None:
            logs["noise_scale"] = _nan_if_none(self.estimator.value)
            logs["gns_trace"] = _nan_if_none(self.estimator.trace_sigma)
            logs["gns_grad_sq"] = _nan_if_none(self.estimator.grad_sq)

    def measure(self) -> Optional[float]:
        """Run ``groups`` groups at the current weights; return the updated B_simple or None."""
        start = time.perf_counter()
        if self._small_step is None:
            self._build()
        self._scale = float(self.model.optimizer.scale_loss(tf.constant(1.0)))
        saved = [tf.identity(v.value) for v in self.model.non_trainable_variables]
        try:
            for _ in range(self.groups):
                group = self._group()
                if group is None:
                    break
                self.estimator.add_group(*group)
        finally:
            for variable, value in zip(self.model.non_trainable_variables, saved):
                variable.assign(value)
        self.last_seconds = time.perf_counter() - start
        return self.estimator.value

    def _build(self) -> None:
        """Create the gradient-sum buffer and the compiled steps for this model."""
        model = self.model
        if model.optimizer is None or not model.compiled:
            raise ValueError("noise scale: the model must be compiled with a loss and an optimizer")
        weights = model.trainable_variables
        self._sums = [tf.Variable(tf.zeros(w.shape, tf.float32), trainable=False) for w in weights]
        sums = self._sums

        @tf.function(reduce_retracing=True)
        def small_step(x: Any, y: Any, scale: tf.Tensor) -> tf.Tensor:
            """|g|^2 of one mini-batch gradient, added to the running sum only when finite."""
            with tf.GradientTape() as tape:
                y_pred = model(x, training=True)
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
                scaled = tf.cast(loss, tf.float32) * scale
            grads = [
                tf.zeros(w.shape, tf.float32) if g is None else tf.cast(tf.convert_to_tensor(g), tf.float32) / scale
                for w, g in zip(weights, tape.gradient(scaled, weights))
            ]
            total = tf.add_n([tf.reduce_sum(tf.square(g)) for g in grads])
            if tf.math.is_finite(total):
                for buffer, g in zip(sums, grads):
                    buffer.assign_add(g)
            return total

        @tf.function
        def big_step(k: tf.Tensor) -> tf.Tensor:
            total = tf.constant(0.0, tf.float32)
            for buffer in sums:
                total += tf.reduce_sum(tf.square(buffer / k))
                buffer.assign(tf.zeros_like(buffer))
            return total

        self._small_step, self._big_step = small_step, big_step

    def _group(self) -> Optional[tuple[list[float], float]]:
        """k consecutive full batches from one pass over the data, or None (see ``problem``).

        Batches of one group must be distinct samples for the two-batch-size estimate to be
        unbiased, so a group never spans two passes: once the number of full batches in a pass
        is known, a pass with fewer than k left is abandoned before any gradient is computed.
        """
        k, size = self.estimator.k, self.estimator.b_small
        if self._pass_length is not None and self._pass_length - self._position < k:
            self._iterator = None
        small: list[float] = []
        for buffer in self._sums:
            buffer.assign(tf.zeros_like(buffer))
        while len(small) < k:
            if self._iterator is None:
                self._iterator, self._position = iter(self._dataset), 0
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator, self._pass_length = None, self._position
                if self._position < k:
                    self.problem = f"noise scale: the training data gives fewer than k = {k} full batches of {size}"
                    return None
                small.clear()
                for buffer in self._sums:
                    buffer.assign(tf.zeros_like(buffer))
                continue
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise ValueError("noise scale: the dataset must yield (x, y) pairs")
            x, y = batch
            if tf.nest.flatten(x)[0].shape[0] != size:
                continue
            self._position += 1
            value = self._norm_sq(x, y)
            if value is None:
                self.problem = "noise scale: gradients are not finite (the loss has diverged)"
                return None
            small.append(value)
        return small, float(self._big_step(tf.constant(float(k))))

    def _norm_sq(self, x: Any, y: Any) -> Optional[float]:
        """|g|^2 of one batch, or None if it is not finite even without loss scaling (diverged).

        Like dynamic loss scaling, a float16 overflow halves the scale and retries the same
        batch: skipping it instead would keep only the small gradients and bias the estimate.
        """
        while True:
            value = float(self._small_step(x, y, tf.constant(self._scale, tf.float32)))
            if math.isfinite(value):
                return value
            if self._scale <= 1.0:
                return None
            self._scale /= 2.0
