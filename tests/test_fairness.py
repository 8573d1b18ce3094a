"""Learning-rate scaling and warm-up, training budgets, repeat seeds and time to target."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import keras
import numpy as np
import pytest
from PIL import Image

from engine.config import ExperimentConfig
from engine.record.target import default_target, time_to_target
from engine.train.lr_schedule import WarmupCallback, lr_at, warmup_steps
from engine.train.models.seed import build_seed_cnn
from engine.train.plan import (budget_steps, plan_trials, planned_epochs, reference_batch, repeat_seeds, scaled_lr,
                               steps_per_epoch, trial_lrs, tuning_method)


def test_reference_batch() -> None:
    assert reference_batch([64, 16, 256], None) == 16
    assert reference_batch([64, 16, 256], 256) == 256
    assert reference_batch([64], 100) == 100  # need not be one of the sizes
    with pytest.raises(ValueError, match="batch sizes: give at least one"):
        reference_batch([], None)
    with pytest.raises(ValueError, match="lr reference batch: 0"):
        reference_batch([32], 0)


def test_scaled_lr_per_rule() -> None:
    assert scaled_lr(0.001, 256, 32, "none") == 0.001
    assert scaled_lr(0.001, 256, 32, "linear") == pytest.approx(0.008)
    assert scaled_lr(0.001, 16, 32, "linear") == pytest.approx(0.0005)
    assert scaled_lr(0.001, 128, 32, "sqrt") == pytest.approx(0.002)
    assert scaled_lr(0.001, 32, 32, "sqrt") == pytest.approx(0.001)
    with pytest.raises(ValueError, match="lr scaling: 'cubic' is not one of none, linear, sqrt"):
        scaled_lr(0.001, 64, 32, "cubic")


def test_lr_schedule_per_batch_size_and_epoch() -> None:
    # 1000 training images, reference 32, base lr 0.001 scaled linearly, 2 warm-up epochs.
    # batch 32: 32 steps per epoch, ramp over 64 steps to 0.001;
    # batch 256: 4 steps per epoch, ramp over 8 steps to 0.008.
    small = [lr_at(s, 32, scaled_lr(0.001, 32, 32, "linear"), 2.0) for s in (0, 31, 32, 63, 64, 500)]
    assert small == pytest.approx([0.001 / 64, 0.001 * 32 / 64, 0.001 * 33 / 64, 0.001, 0.001, 0.001])
    peak = scaled_lr(0.001, 256, 32, "linear")
    large = [lr_at(s, 4, peak, 2.0) for s in range(10)]
    # epoch 1: steps 0-3, epoch 2: steps 4-7, epoch 3 onwards at the peak
    assert large == pytest.approx([0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.008, 0.008])


def test_warmup_length_and_no_warmup() -> None:
    assert warmup_steps(1.5, 4) == 6
    assert warmup_steps(0.5, 3) == 2  # 1.5 steps rounds up: never shorter than asked
    assert warmup_steps(0.0, 50) == 0
    assert [lr_at(s, 3, 0.3, 0.5) for s in range(3)] == pytest.approx([0.15, 0.3, 0.3])
    assert lr_at(0, 10, 0.01, 0.0) == 0.01
    with pytest.raises(ValueError, match="warm-up epochs"):
        warmup_steps(-1.0, 4)
    with pytest.raises(ValueError, match="step: -1"):
        lr_at(-1, 4, 0.1, 1.0)


@pytest.mark.parametrize("train_samples,reference,sizes", [
    (1024, 32, [32, 64, 128, 256, 1024]),  # sizes divide the set: exactly equal steps
    (1000, 16, [16, 24, 100, 256, 999, 1500]),  # partial last batches, a batch larger than the set
])
def test_steps_budget_gives_equal_optimizer_steps(train_samples: int, reference: int, sizes: list[int]) -> None:
    epochs = 10
    budget = budget_steps(epochs, reference, train_samples)
    assert budget == math.ceil(train_samples / reference) * epochs
    for size in sizes:
        planned = planned_epochs("steps", epochs, size, reference, train_samples)
        total = planned * steps_per_epoch(train_samples, size)
        # at least the reference's updates, over by less than one of this size's epochs
        assert budget <= total < budget + steps_per_epoch(train_samples, size)
        if train_samples % size == 0 and budget % steps_per_epoch(train_samples, size) == 0:
            assert total == budget
    assert planned_epochs("steps", epochs, reference, reference, train_samples) == epochs


def test_other_budgets_keep_the_epochs() -> None:
    assert planned_epochs("epochs", 7, 256, 32, 1000) == 7
    assert planned_epochs("time", 7, 256, 32, 1000) == 7  # the cap; the clock is enforced elsewhere
    with pytest.raises(ValueError, match="budget: 'flops' is not one of epochs, steps, time"):
        planned_epochs("flops", 7, 256, 32, 1000)


def test_repeats_share_seeds_across_batch_sizes_and_differ_across_repeats() -> None:
    assert repeat_seeds(7, 1) == [7]
    config = ExperimentConfig(data_dir="d", batch_sizes=[256, 32, 64], seed=7, repeats=3)
    plan = plan_trials(config, train_samples=1000, reference=32)
    assert [r["run_index"] for r in plan] == list(range(9))
    assert [(r["repeat"], r["batch_size"]) for r in plan[:4]] == [(0, 256), (0, 32), (0, 64), (1, 256)]
    seeds_by_size: dict[int, list[int]] = {}
    for run in plan:
        seeds_by_size.setdefault(run["batch_size"], []).append(run["seed"])
    assert seeds_by_size[32] == seeds_by_size[64] == seeds_by_size[256] == repeat_seeds(7, 3)
    assert len(set(repeat_seeds(7, 3))) == 3
    assert repeat_seeds(7, 3)[0] == 7  # repeat 0 is the single-run experiment
    with pytest.raises(ValueError, match="seed: 4294967295 \\+ 2 repeats"):
        repeat_seeds(2**32 - 1, 2)
    with pytest.raises(ValueError, match="repeats: 0"):
        repeat_seeds(0, 0)


def history_entry(epoch: int, val_accuracy: Optional[float], batch: int = 32, spe: int = 10,
                  seconds: float = 2.5) -> dict[str, Any]:
    return {"epoch": epoch, "val_accuracy": val_accuracy, "steps": epoch * spe, "samples": epoch * spe * batch,
            "seconds": seconds, "elapsed": epoch * seconds}


def test_lr_grid_is_log_spaced_around_each_scaled_rate_and_ordered_in_the_record() -> None:
    config = ExperimentConfig(data_dir="d", batch_sizes=[32, 128], lr=0.001, lr_scaling="linear", lr_grid=3,
                              lr_grid_factor=3.0, repeats=2)
    assert trial_lrs(config, 32, 32) == pytest.approx([0.001 / 3, 0.001, 0.003])
    assert trial_lrs(config, 128, 32) == pytest.approx([0.004 / 3, 0.004, 0.012])
    two = ExperimentConfig(data_dir="d", batch_sizes=[32], lr=0.001, lr_grid=2, lr_grid_factor=4.0)
    assert trial_lrs(two, 32, 32) == pytest.approx([0.0005, 0.002])  # factor 4 apart, centred on lr
    plan = plan_trials(config, train_samples=1000, reference=32)
    assert len(plan) == 2 * 2 * 3
    assert [(t["repeat"], t["batch_size"], t["lr_index"]) for t in plan[:4]] == [(0, 32, 0), (0, 32, 1), (0, 32, 2),
                                                                               (0, 128, 0)]
    assert {t["seed"] for t in plan if t["repeat"] == 1} == {1}
    assert tuning_method(config) == "grid" and tuning_method(ExperimentConfig(data_dir="d", batch_sizes=[8])) == "none"
    explicit = ExperimentConfig(data_dir="d", batch_sizes=[8, 64], lrs=[0.01, 0.001], tune="halving")
    assert [t["lr"] for t in plan_trials(explicit, 100, 8)] == [0.001, 0.01, 0.001, 0.01]  # same for every size
    assert tuning_method(explicit) == "halving"


def test_time_to_target_on_a_hand_made_history() -> None:
    history = [history_entry(1, 0.55), history_entry(2, None), history_entry(3, 0.80),
               history_entry(4, 0.78), history_entry(5, 0.91)]
    assert time_to_target(history, 0.80) == {"epoch": 3, "steps": 30, "samples": 960, "seconds": 7.5}
    assert time_to_target(history, 0.85) == {"epoch": 5, "steps": 50, "samples": 1600, "seconds": 12.5}
    assert time_to_target(history, 0.5) == {"epoch": 1, "steps": 10, "samples": 320, "seconds": 2.5}
    assert time_to_target(history, 0.92) is None
    assert time_to_target([], 0.5) is None


def test_default_target() -> None:
    assert default_target([0.80, None, 0.90, math.nan]) == pytest.approx(0.855)
    assert default_target([0.80, 0.90], fraction=0.5) == pytest.approx(0.45)
    assert default_target([None]) is None
    with pytest.raises(ValueError, match="target fraction"):
        default_target([0.9], fraction=1.5)


class LrProbe(keras.callbacks.Callback):
    """Records the optimizer's rate after each step (nothing changes it between begin and end)."""

    def __init__(self) -> None:
        super().__init__()
        self.lrs: list[float] = []

    def on_train_batch_end(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        self.lrs.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


class BiasProbe(LrProbe):
    """Also records the bias after each step, and can change the rate after a given step."""

    def __init__(self, override_after: Optional[int] = None) -> None:
        super().__init__()
        self.biases: list[float] = []
        self.override_after = override_after

    def on_train_batch_end(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        super().on_train_batch_end(batch, logs)
        self.biases.append(float(keras.ops.convert_to_numpy(self.model.layers[-1].bias)[0]))
        if len(self.lrs) == self.override_after:
            self.model.optimizer.learning_rate = 0.25


def constant_gradient_model() -> keras.Model:
    """Dense(1) on zero inputs with targets far above it under MAE and plain SGD: the bias
    gradient is exactly -1 at every step, so each step moves the bias by the rate it used."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=123.0), loss="mae")
    return model


def fit_linear(callback: WarmupCallback, fits: int, epochs: int, probe: BiasProbe) -> np.ndarray:
    """Train 8 samples at batch 2 (4 steps per epoch); return the bias change of every step."""
    model = constant_gradient_model()
    x, y = np.zeros((8, 1), "float32"), np.full((8, 1), 1000.0, "float32")
    for _ in range(fits):
        model.fit(x, y, batch_size=2, epochs=epochs, verbose=0, shuffle=False, callbacks=[callback, probe])
    return np.diff([0.0] + probe.biases)


def test_warmup_callback_sets_the_rate_each_step_actually_uses() -> None:
    callback = WarmupCallback(peak_lr=0.5, warmup_epochs=1.5, steps_per_epoch=4)
    assert callback.current_lr == pytest.approx(0.5 / 6)
    probe = BiasProbe()
    moves = fit_linear(callback, fits=1, epochs=3, probe=probe)
    expected = [0.5 * s / 6 for s in range(1, 7)] + [0.5] * 6
    assert probe.lrs == pytest.approx(expected, abs=1e-7)
    assert moves == pytest.approx(expected, abs=1e-5)  # the compiled 123.0 was never used
    assert callback.step == 12 and callback.current_lr == 0.5


def test_warmup_callback_continues_across_fits_and_from_an_initial_step() -> None:
    callback = WarmupCallback(peak_lr=0.5, warmup_epochs=1.5, steps_per_epoch=4)
    probe = BiasProbe()
    fit_linear(callback, fits=3, epochs=1, probe=probe)  # one epoch per fit, as a runner might
    assert probe.lrs == pytest.approx([lr_at(s, 4, 0.5, 1.5) for s in range(12)], abs=1e-7)

    resumed = WarmupCallback(peak_lr=0.5, warmup_epochs=1.5, steps_per_epoch=4, initial_step=3)
    probe = BiasProbe()
    fit_linear(resumed, fits=1, epochs=1, probe=probe)
    assert probe.lrs == pytest.approx([lr_at(s, 4, 0.5, 1.5) for s in range(3, 7)], abs=1e-7)
    assert resumed.step == 7

    past_warmup = WarmupCallback(peak_lr=0.5, warmup_epochs=1.5, steps_per_epoch=4, initial_step=40)
    probe = BiasProbe()
    moves = fit_linear(past_warmup, fits=1, epochs=1, probe=probe)
    assert moves == pytest.approx([0.5] * 4, abs=1e-5)  # set once at the start of fit, not 123.0


def test_warmup_callback_leaves_the_rate_alone_after_warmup() -> None:
    callback = WarmupCallback(peak_lr=0.5, warmup_epochs=1.5, steps_per_epoch=4)
    probe = BiasProbe(override_after=8)  # someone else changes the rate after step 8
    moves = fit_linear(callback, fits=1, epochs=3, probe=probe)
    assert moves[:8] == pytest.approx([0.5 * s / 6 for s in range(1, 7)] + [0.5, 0.5], abs=1e-5)
    assert moves[8:] == pytest.approx([0.25] * 4, abs=1e-5)


def write_images(root: Path, per_class: int) -> None:
    rng = np.random.default_rng(0)
    for label, shade in (("cats", 40), ("dogs", 210)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(shade, 30, (32, 32, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(root / label / f"{i}.png")


def test_seed_cnn_on_image_files_under_steps_budget_with_scaled_warmup(tmp_path: Path) -> None:
    write_images(tmp_path / "data", per_class=5)
    sizes, train_samples, epochs = [5, 2], 10, 1
    reference = reference_batch(sizes, None)
    budget = budget_steps(epochs, reference, train_samples)
    for size in sizes:
        data = keras.utils.image_dataset_from_directory(
            tmp_path / "data", image_size=(32, 32), batch_size=size, label_mode="categorical", seed=0, verbose=False)
        peak = scaled_lr(0.001, size, reference, "linear")
        per_epoch = steps_per_epoch(train_samples, size)
        callback = WarmupCallback(peak, warmup_epochs=1.0, steps_per_epoch=per_epoch)
        model = build_seed_cnn(32, 2, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=peak), loss="categorical_crossentropy")
        probe = LrProbe()
        planned = planned_epochs("steps", epochs, size, reference, train_samples)
        model.fit(data, epochs=planned, verbose=0, shuffle=False, callbacks=[callback, probe])
        steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        assert steps == planned * per_epoch and budget <= steps < budget + per_epoch
        assert probe.lrs == pytest.approx([lr_at(s, per_epoch, peak, 1.0) for s in range(steps)], rel=1e-6)
    # batch 2: 5 steps ramping to 0.001 over one epoch; batch 5: 3 epochs of 2 steps, peak 0.0025
    assert probe.lrs == pytest.approx([0.0002, 0.0004, 0.0006, 0.0008, 0.001], rel=1e-6)
