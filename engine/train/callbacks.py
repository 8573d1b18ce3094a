"""The Keras callbacks that connect one training run to the outside world, each doing one thing.

RunMonitor turns progress into throttled events, honours the stop token within one batch,
enforces a wall-clock budget, catches divergence and times each epoch. BestCheckpoint saves
the best model atomically. PatienceStop is early stopping that can pick up where an earlier
segment of the same trial left off. HistoryRecorder turns an epoch into the record's history
entry and the EpochEnded event. With the TensorFlow backend Keras converts the step logs to
Python numbers after every batch whatever the callbacks do, so the per-step cost here is kept
to a clock read and a compare: events are built only when one is due (a few times per second).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Optional

import keras
import tensorflow as tf

from engine import atomic
from engine.events import BatchProgress, EpochEnded, Listener
from engine.record.store import clean_number
from engine.stop import StopToken
from engine.train.models.files import file_sha256, save_for_inference


class TrainingFailed(RuntimeError):
    """The run cannot go on; the message says why."""


class Diverged(TrainingFailed):
    """The loss became NaN or infinite: this learning rate is too high for this batch size."""


class RunMonitor(keras.callbacks.Callback):
    """Events, stop token, time budget and epoch timing for one run."""

    def __init__(self, *, run_index: int, batch_size: int, steps_per_epoch: int, epochs: int,
                 listener: Listener, stop: StopToken, time_budget_s: Optional[float] = None,
                 min_interval_s: float = 0.25, clock: Callable[[], float] = time.perf_counter,
                 side_seconds: Optional[Callable[[], float]] = None, progress_metrics: bool = True) -> None:
        """``side_seconds`` gives the time callbacks before this one spent measuring at the epoch
        end (the noise scale): kept out of the epoch's seconds so throughput and time to target
        compare training alone. ``progress_metrics=False`` leaves loss and accuracy out of the
        progress events: on several machines reading a metric is a collective operation, and
        progress comes on each worker's own clock, so the workers' collectives would not match."""
        super().__init__()
        self.run_index = run_index
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.listener = listener
        self.stop = stop
        self.time_budget_s = time_budget_s
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.side_seconds = side_seconds or (lambda: 0.0)
        self.progress_metrics = progress_metrics
        self.started = 0.0
        self.epoch_started = 0.0
        self.train_seconds = 0.0
        self.last_emit = 0.0
        self.epoch = 0
        self.first_epoch: Optional[int] = None
        self.epoch_seconds: list[float] = []
        self.last_seconds = 0.0  # the last finished epoch: all of it, and its training part
        self.last_train_seconds = 0.0
        self.out_of_time = False

    def on_train_begin(self, logs=None) -> None:
        self.started = self.last_emit = self.clock()

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        if self.first_epoch is None:
            self.first_epoch = epoch
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
        loss = (logs or {}).get("loss")
        if loss is None or not math.isfinite(loss):
            raise Diverged(f"loss became {loss} in epoch {epoch + 1}: training diverged "
                           "(try a lower learning rate)")
        now = self.clock()
        self.last_seconds = max(now - self.epoch_started - self.side_seconds(), 0.0)
        self.last_train_seconds = self.train_seconds or self.last_seconds
        self.epoch_seconds.append(self.last_seconds)

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
        metrics = ({k: float(v) for k, v in self.model.get_metrics_result().items()} if self.progress_metrics
                   else {})
        in_epoch = now - self.epoch_started
        rate = steps_done * self.batch_size / in_epoch if in_epoch > 0 else 0.0
        if self.epoch_seconds:
            eta = self.eta_s(now)
        else:  # first epoch of this fit: extrapolate from the steps so far
            per_step = in_epoch / steps_done
            eta = per_step * (self.steps_per_epoch * (self.epochs - self.epoch) - steps_done)
            if self.time_budget_s is not None:
                eta = min(eta, max(self.time_budget_s - (now - self.started), 0.0))
        self.listener(BatchProgress(
            run_index=self.run_index, batch_size=self.batch_size, epoch=self.epoch + 1, step=steps_done,
            steps_per_epoch=self.steps_per_epoch, loss=metrics.get("loss", float("nan")),
            accuracy=metrics.get("accuracy", float("nan")), images_per_s=rate,
            elapsed_s=now - self.started, eta_s=eta,
        ))


class BestCheckpoint(keras.callbacks.Callback):
    """Save the model (no optimizer state) whenever validation accuracy beats the best so far.

    Written to a temporary file, synced and renamed, unlike Keras' ModelCheckpoint, which writes
    in place: a crash leaves the previous best or the new one, never half of one.
    """

    def __init__(self, path: Path, best_so_far: Optional[float]) -> None:
        super().__init__()
        self.path = Path(path)
        self.best = best_so_far
        self.saved: Optional[dict[str, Any]] = None  # what the last epoch wrote, for its record entry

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        accuracy = clean_number(float((logs or {}).get("val_accuracy", float("nan"))))
        self.saved = None
        if accuracy is None or (self.best is not None and accuracy <= self.best):
            return
        atomic.write_with_suffix(self.path, lambda path: save_for_inference(self.model, path), ".keras")
        self.best = accuracy
        self.saved = {"sha256": file_sha256(self.path)}


class PatienceStop(keras.callbacks.Callback):
    """Early stopping on validation accuracy that starts from a trial's earlier epochs.

    Keras' EarlyStopping forgets everything at each fit; a trial continued after a rung must
    keep counting. The best weights are already in the best checkpoint, so none are restored.
    """

    def __init__(self, patience: int, history: list[dict[str, Any]]) -> None:
        super().__init__()
        self.patience = patience
        self.best: Optional[float] = None
        self.wait = 0
        for entry in history:
            self._see(entry.get("val_accuracy"))
        self.stopped = False

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self._see(clean_number(float((logs or {}).get("val_accuracy", float("nan")))))
        if self.wait >= self.patience:
            self.stopped = True
            self.model.stop_training = True

    def _see(self, accuracy: Optional[float]) -> None:
        if accuracy is not None and (self.best is None or accuracy > self.best):
            self.best, self.wait = accuracy, 0
        else:
            self.wait += 1


class HistoryRecorder(keras.callbacks.Callback):
    """Turn each finished epoch into the record's history entry, log it to TensorBoard, and emit it.

    Cumulative ``steps``, ``samples`` and ``elapsed`` continue from ``previous`` (the trial's last
    entry), so a trial trained in segments counts like one trained in one go.
    """

    SCALARS = ("loss", "tail_loss", "accuracy", "val_loss", "val_accuracy", "lr", "images_per_s", "noise_scale")
    TAIL = 4  # tail_loss: the last quarter of the epoch's batches,
    TAIL_SAMPLES = 128  # and at least this many samples (fewer judge a loss to 1% only by luck)
    EXTRA = ("noise_scale", "gns_trace", "gns_grad_sq")

    def __init__(self, *, run_index: int, batch_size: int, steps_per_epoch: int, train_samples: int,
                 previous: Optional[dict[str, Any]], monitor: RunMonitor, checkpoint: BestCheckpoint,
                 checkpoint_name: str, writer: Any, emit: Listener, best: Optional[dict[str, Any]]) -> None:
        super().__init__()
        self.run_index = run_index
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.train_samples = train_samples
        self.previous = previous or {"steps": 0, "samples": 0, "elapsed": 0.0}
        self.monitor = monitor
        self.checkpoint = checkpoint
        self.checkpoint_name = checkpoint_name
        self.writer = writer
        self.emit = emit
        self.best = best
        tail = max(steps_per_epoch // self.TAIL, -(-self.TAIL_SAMPLES // batch_size))
        self.tail_from = steps_per_epoch - tail  # batches before the tail; < 1: the epoch is too short for one
        self.loss_before_tail: Optional[float] = None

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.loss_before_tail = None

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        if batch + 1 == self.tail_from and logs and "loss" in logs:  # logs are Python numbers already
            self.loss_before_tail = float(logs["loss"])

    def tail_loss(self, loss: float, samples: int) -> Optional[float]:
        """Mean training loss over the epoch's last batches, from the running means before and after them.
        The epoch's loss averages in its first steps; a network that died within its first epoch (its
        ReLUs dead after a few large steps) shows a mean above the loss of guessing and a tail right on it."""
        before = self.loss_before_tail
        done = self.tail_from * self.batch_size
        if before is None or self.tail_from < 1 or samples <= done or not math.isfinite(loss):
            return None
        return clean_number((loss * samples - before * done) / (samples - done))

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        prev = self.previous
        steps, samples = self.steps_per_epoch, self.train_samples
        if self.monitor.out_of_time:  # the time budget cut this epoch short
            steps = int(self.model.optimizer.iterations.numpy()) - prev["steps"]
            samples = min(samples, steps * self.batch_size)
        seconds, train_seconds = self.monitor.last_seconds, self.monitor.last_train_seconds
        entry = {
            "epoch": epoch + 1,
            "loss": clean_number(float(logs.get("loss", float("nan")))),
            "tail_loss": None if self.monitor.out_of_time else self.tail_loss(float(logs.get("loss", float("nan"))),
                                                                              samples),
            "accuracy": clean_number(float(logs.get("accuracy", float("nan")))),
            "val_loss": clean_number(float(logs.get("val_loss", float("nan")))),
            "val_accuracy": clean_number(float(logs.get("val_accuracy", float("nan")))),
            "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            "steps": prev["steps"] + steps,
            "samples": prev["samples"] + samples,
            "seconds": round(seconds, 4),
            "elapsed": round(prev["elapsed"] + seconds, 4),
            "images_per_s": round(samples / train_seconds, 2) if train_seconds > 0 else None,
        }
        for key in self.EXTRA:
            if key in logs:
                entry[key] = clean_number(float(logs[key]))
        with self.writer.as_default(step=epoch + 1):
            for key in self.SCALARS:
                if entry.get(key) is not None:
                    tf.summary.scalar(key, entry[key])
        self.writer.flush()
        saved = self.checkpoint.saved
        if saved is not None:
            self.best = {"epoch": entry["epoch"], "val_accuracy": entry["val_accuracy"],
                         "val_loss": entry["val_loss"]}
        self.previous = entry
        best = self.best or {}
        self.emit(EpochEnded(
            self.run_index, self.batch_size, entry, best.get("val_accuracy", float("nan")), best.get("epoch", 0),
            entry["images_per_s"] or 0.0, self.monitor.eta_s(self.monitor.clock()), saved is not None,
            {"checkpoint": self.checkpoint_name, "checkpoint_sha256": saved["sha256"]} if saved else {}))
