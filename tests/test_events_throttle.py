"""Progress events are throttled: thousands of fast steps give a few events per second, not one per step."""

from __future__ import annotations

import time

import keras
import numpy as np

from engine.events import BatchProgress, Event
from engine.stop import StopToken
from engine.train.callbacks import RunMonitor

MIN_INTERVAL_S = 0.05


def test_batch_progress_rate_is_bounded_during_a_real_fit() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    events: list[Event] = []
    epochs_seen: list[int] = []
    steps = 600
    monitor = RunMonitor(run_index=0, batch_size=2, steps_per_epoch=steps, epochs=2, listener=events.append,
                         stop=StopToken(), min_interval_s=MIN_INTERVAL_S)
    epoch_ends = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: epochs_seen.append(epoch + 1))
    started = time.perf_counter()
    model.fit(x, y, batch_size=2, epochs=2, verbose=0, shuffle=False, callbacks=[monitor, epoch_ends])
    elapsed = time.perf_counter() - started
    progress = [e for e in events if isinstance(e, BatchProgress)]
    assert epochs_seen == [1, 2] and len(monitor.epoch_seconds) == 2 and monitor.last_seconds > 0
    assert progress, "a fit of several seconds must report progress"
    assert len(progress) / elapsed <= 1 / MIN_INTERVAL_S + 1  # per second: one per interval at most
    times = [e.elapsed_s for e in progress]
    assert all(b - a >= MIN_INTERVAL_S * 0.99 for a, b in zip(times, times[1:]))
    last = progress[-1]
    assert 0 < last.step <= steps and last.images_per_s > 0 and np.isfinite(last.loss)


def test_progress_leaves_metrics_out_when_reading_them_would_be_a_collective() -> None:
    """On several machines (progress_metrics=False) progress still counts steps, but reads no metric: each
    worker's clock decides when it reports, and a metric read there would be an all-reduce the others skip."""
    x = np.zeros((400, 4), dtype="float32")
    y = np.zeros(400, dtype="int32")
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    events: list[Event] = []
    monitor = RunMonitor(run_index=0, batch_size=2, steps_per_epoch=200, epochs=1, listener=events.append,
                         stop=StopToken(), min_interval_s=0.0, progress_metrics=False)
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[monitor])
    progress = [e for e in events if isinstance(e, BatchProgress)]
    assert progress and all(np.isnan(e.loss) and np.isnan(e.accuracy) for e in progress)
    assert progress[-1].step == 199 and progress[-1].images_per_s > 0
