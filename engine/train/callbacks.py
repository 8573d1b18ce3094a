"""The Keras callback that connects one training run to the outside world.

It turns progress into plain-data events, honours the stop token within one
batch, enforces a wall-clock budget, and hands each finished epoch to the
runner (which checkpoints and rewrites the record). With the TensorFlow backend
Keras converts the step logs to Python numbers after every batch whatever the
callbacks do, so the per-step cost here is kept to a clock read and a compare:
events are built only when one is due (a few times per second).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Optional

import keras

from engine.events import BatchProgress, Listener
from engine.stop import StopToken


class TrainingFailed(RuntimeError):
    """The run cannot go on (e.g. the loss diverged); the message says why."""


class RunMonitor(keras.callbacks.Callback):
    """Events, stop token and time budget for one run; ``on_epoch`` does the bookkeeping."""

    def __init__(self, *, run_index: int, batch_size: int, steps_per_epoch: int, epochs: int,
                 listener: Listener, stop: StopToken, on_epoch: Callable[[int, dict[str, Any], float, float], None],
                 time_budget_s: Optional[float] = None, min_interval_s: float = 0.25,
                 clock: Callable[[], float] = time.perf_counter,
                 side_seconds: Optional[Callable[[], float]] = None) -> None:
        """``side_seconds`` gives the time callbacks before this one spent measuring at the epoch
        end (the noise scale): kept out of the epoch's seconds so throughput and time to target
        compare training alone."""
        super().__init__()
        self.run_index = run_index
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.listener = listener
        self.stop = stop
        self.on_epoch = on_epoch
        self.time_budget_s = time_budget_s
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.side_seconds = side_seconds or (lambda: 0.0)
        self.started = 0.0
        self.epoch_started = 0.0
        self.train_seconds = 0.0
        self.last_emit = 0.0
        self.epoch = 0
        self.epoch_seconds: list[float] = []
        self.out_of_time = False

    def on_train_begin(self, logs=None) -> None:
        self.started = self.last_emit = self.clock()

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch = epoch
        self.epoch_started = self.clock()
        self.train_seconds = 0.0

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        self.stop.raise_if_set()
        now = self.clock()
        if self.time_budget_s is not None and now - self.started >= self.time_budget_s:
            self.out_of_time = True
            self.model.stop_training = True
        if batch > 0 and now - self.last_emit >= self.min_interval_s:
            self.last_emit = now
            self._emit_progress(batch, now)

    def on_test_begin(self, logs=None) -> None:
        self.train_seconds = self.clock() - self.epoch_started

    def on_test_batch_begin(self, batch: int, logs=None) -> None:
        self.stop.raise_if_set()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = dict(logs or {})
        loss = logs.get("loss")
        if loss is None or not math.isfinite(loss):
            raise TrainingFailed(f"loss became {loss} in epoch {epoch + 1}: training diverged "
                                 "(try a lower learning rate)")
        now = self.clock()
        seconds = max(now - self.epoch_started - self.side_seconds(), 0.0)
        self.epoch_seconds.append(seconds)
        train_seconds = self.train_seconds or seconds
        self.on_epoch(epoch + 1, logs, seconds, train_seconds)

    def eta_s(self, now: float) -> float:
        """Seconds left in the epoch budget: an upper bound, since early stopping may end sooner."""
        done = self.epoch + (now - self.epoch_started) / max(self._mean_epoch(), 1e-9)
        left = max(self.epochs - done, 0.0) * self._mean_epoch()
        if self.time_budget_s is not None:
            left = min(left, max(self.time_budget_s - (now - self.started), 0.0))
        return left

    def _mean_epoch(self) -> float:
        if self.epoch_seconds:
            return sum(self.epoch_seconds) / len(self.epoch_seconds)
        return float("inf")

    def _emit_progress(self, steps_done: int, now: float) -> None:
        metrics = {k: float(v) for k, v in self.model.get_metrics_result().items()}
        in_epoch = now - self.epoch_started
        rate = steps_done * self.batch_size / in_epoch if in_epoch > 0 else 0.0
        if self.epoch_seconds:
            eta = self.eta_s(now)
        else:  # first epoch: extrapolate from the steps so far
            per_step = in_epoch / steps_done
            eta = per_step * (self.steps_per_epoch * self.epochs - steps_done)
            if self.time_budget_s is not None:
                eta = min(eta, max(self.time_budget_s - (now - self.started), 0.0))
        self.listener(BatchProgress(
            run_index=self.run_index, batch_size=self.batch_size, epoch=self.epoch + 1, step=steps_done,
            steps_per_epoch=self.steps_per_epoch, loss=metrics.get("loss", float("nan")),
            accuracy=metrics.get("accuracy", float("nan")), images_per_s=rate,
            elapsed_s=now - self.started, eta_s=eta,
        ))
