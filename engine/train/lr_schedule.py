"""Learning rate per optimizer step: a linear warm-up (the rate per batch size is planned in engine.train.plan).

Comparing batch sizes at one learning rate favours whichever size that rate happens
to suit. The usual remedies are to scale the rate with the batch size (linearly,
Goyal et al. 2017, or by the square root, Krizhevsky 2014 / Hoffer et al. 2017) and
to ramp it up over the first epochs so the large rates do not blow up early training.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import keras

from engine.train.plan import check_positive


def warmup_steps(warmup_epochs: float, steps_per_epoch: int) -> int:
    """Warm-up length in optimizer steps: ceil(warmup_epochs * steps_per_epoch).

    Rounding up means a fractional warm-up is never shorter than asked for.
    """
    if not warmup_epochs >= 0 or math.isinf(warmup_epochs):
        raise ValueError(f"warm-up epochs: {warmup_epochs} must be a finite number, not negative")
    check_positive("steps per epoch", steps_per_epoch)
    return math.ceil(warmup_epochs * steps_per_epoch)


def lr_at(step: int, steps_per_epoch: int, peak_lr: float, warmup_epochs: float) -> float:
    """The rate for optimizer step ``step`` (0-based, counted over the whole run).

    With W = warmup_steps(warmup_epochs, steps_per_epoch) > 0 the ramp is linear in the
    step number, as in Goyal et al. 2017 ("a constant amount at each iteration") but
    starting near zero rather than at the small-batch rate:

        lr(s) = peak_lr * (s + 1) / W   for 0 <= s < W   (first step peak_lr / W, step W-1 peak_lr)
        lr(s) = peak_lr                 for s >= W

    So the peak is reached on the last warm-up step and kept afterwards; W = 0 means
    no warm-up.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step: {step!r} must be a whole number, not negative")
    total = warmup_steps(warmup_epochs, steps_per_epoch)
    if step >= total:
        return float(peak_lr)
    return peak_lr * (step + 1) / total


class WarmupCallback(keras.callbacks.Callback):
    """Sets the optimizer's learning rate before each step of the warm-up, then leaves it alone.

    Only ``on_train_batch_begin`` is hooked (never ``on_train_batch_end``), so Keras keeps
    dispatching batch-end callbacks asynchronously; once the warm-up is over each call
    returns after one comparison. Steps are counted across ``fit`` calls, so one callback
    can serve a run trained one epoch at a time; ``initial_step`` resumes a run part-way.
    Assumes ``steps_per_execution=1`` (the Keras default): with more, one rate would
    apply to each whole chunk of steps.
    """

    def __init__(self, peak_lr: float, warmup_epochs: float, steps_per_epoch: int,
                 initial_step: int = 0) -> None:
        super().__init__()
        if not peak_lr > 0:
            raise ValueError(f"learning rate: {peak_lr} must be positive")
        if isinstance(initial_step, bool) or not isinstance(initial_step, int) or initial_step < 0:
            raise ValueError(f"initial step: {initial_step!r} must be a whole number, not negative")
        self.peak_lr = float(peak_lr)
        self.warmup_epochs = float(warmup_epochs)
        self.steps_per_epoch = steps_per_epoch
        self.warmup_total = warmup_steps(warmup_epochs, steps_per_epoch)
        self._next_step = initial_step
        self._epoch_start = initial_step

    @property
    def step(self) -> int:
        """Optimizer steps taken so far, ``initial_step`` included (pass it on to resume)."""
        return self._next_step

    @property
    def current_lr(self) -> float:
        """The rate the most recent step used (before any step: the one the first will use)."""
        return lr_at(max(self._next_step - 1, 0), self.steps_per_epoch, self.peak_lr, self.warmup_epochs)

    def on_train_begin(self, logs: Optional[dict[str, Any]] = None) -> None:
        # Once per fit: make the optimizer agree with the schedule even when resuming past warm-up.
        self._set(lr_at(self._next_step, self.steps_per_epoch, self.peak_lr, self.warmup_epochs))

    def on_epoch_begin(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        self._epoch_start = self._next_step

    def on_train_batch_begin(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        step = self._epoch_start + batch
        self._next_step = step + 1
        if step < self.warmup_total:
            self._set(lr_at(step, self.steps_per_epoch, self.peak_lr, self.warmup_epochs))

    def _set(self, lr: float) -> None:
        self.model.optimizer.learning_rate = lr

