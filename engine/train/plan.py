"""The plan of an experiment: reference batch, learning rate and epochs per run, repeat seeds.

One place computes what every run gets, so the runner, resume and the record agree; no
TensorFlow here, so planning is cheap and testable.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from engine.config import BUDGETS, LR_SCALINGS, ExperimentConfig

MAX_SEED = 2**32 - 1  # keras.utils.set_random_seed goes through numpy, which takes 32-bit seeds


def reference_batch(batch_sizes: list[int], reference: Optional[int]) -> int:
    """The batch size that lr scaling and the ``steps`` budget are relative to.

    ``reference`` wins when given (it need not be one of the sizes, e.g. 256 as in
    Goyal et al.); otherwise the smallest size, whose settings the seed notebook used.
    """
    if reference is not None:
        check_positive("lr reference batch", reference)
        return reference
    if not batch_sizes:
        raise ValueError("batch sizes: give at least one")
    for size in batch_sizes:
        check_positive("batch size", size)
    return min(batch_sizes)


def steps_per_epoch(train_samples: int, batch_size: int) -> int:
    """Optimizer steps in one pass over the training set; the last batch may be partial."""
    check_positive("training samples", train_samples)
    check_positive("batch size", batch_size)
    return math.ceil(train_samples / batch_size)


def budget_steps(epochs: int, reference: int, train_samples: int) -> int:
    """Optimizer updates every run gets under the ``steps`` budget: the reference's over ``epochs``."""
    check_positive("epochs", epochs)
    return steps_per_epoch(train_samples, reference) * epochs


def planned_epochs(budget: str, epochs: int, batch_size: int, reference: int, train_samples: int) -> int:
    """Epochs to plan for one batch size (early stopping may end a run sooner).

    epochs: ``epochs`` for everyone. steps: the fewest whole epochs whose steps reach
    budget_steps(...), so a larger batch trains for proportionally more epochs and
    overshoots the budget by less than one of its epochs. time: ``epochs`` is only the
    cap; the clock is enforced elsewhere.
    """
    check_positive("epochs", epochs)
    if budget in ("epochs", "time"):
        return epochs
    if budget == "steps":
        per_epoch = steps_per_epoch(train_samples, batch_size)
        return math.ceil(budget_steps(epochs, reference, train_samples) / per_epoch)
    raise ValueError(f"budget: {budget!r} is not one of {', '.join(BUDGETS)}")


def scaled_lr(base_lr: float, batch_size: int, reference: int, scaling: str) -> float:
    """The peak rate for ``batch_size`` when ``base_lr`` suits the ``reference`` batch size.

    none: base_lr (the seed notebook's behaviour); linear: base_lr * b / ref;
    sqrt: base_lr * sqrt(b / ref).
    """
    if not base_lr > 0:
        raise ValueError(f"learning rate: {base_lr} must be positive")
    check_positive("batch size", batch_size)
    check_positive("lr reference batch", reference)
    if scaling == "none":
        return float(base_lr)
    if scaling == "linear":
        return base_lr * batch_size / reference
    if scaling == "sqrt":
        return base_lr * math.sqrt(batch_size / reference)
    raise ValueError(f"lr scaling: {scaling!r} is not one of {', '.join(LR_SCALINGS)}")


def repeat_seeds(base_seed: int, repeats: int) -> list[int]:
    """One seed per repeat: base_seed, base_seed + 1, ...

    Every batch size of repeat r uses the r-th seed, so batch sizes differ only in
    batch size, and repeat 0 reproduces a single-run experiment with the same seed.
    """
    check_positive("repeats", repeats)
    if isinstance(base_seed, bool) or not isinstance(base_seed, int) or base_seed < 0:
        raise ValueError(f"seed: {base_seed!r} must be a whole number, not negative")
    if base_seed + repeats - 1 > MAX_SEED:
        raise ValueError(f"seed: {base_seed} + {repeats} repeats goes past the largest seed {MAX_SEED}")
    return [base_seed + r for r in range(repeats)]


def trial_lrs(config: ExperimentConfig, batch_size: int, reference: int) -> list[float]:
    """The learning rates a batch size is tried at, ascending.

    ``lrs`` when given (the same for every batch size); else ``lr_grid`` rates log-spaced
    ``lr_grid_factor`` apart around the batch size's scaled rate (3 and 3: lr/3, lr, 3 lr).
    Shallue et al. (2019): a fair comparison tunes the learning rate per batch size.
    """
    if config.lrs:
        return sorted(float(lr) for lr in config.lrs)
    centre = scaled_lr(config.lr, batch_size, reference, config.lr_scaling)
    n = config.lr_grid
    return [centre * config.lr_grid_factor ** (i - (n - 1) / 2) for i in range(n)]


def tuning_method(config: ExperimentConfig) -> str:
    """none: one rate per batch size; grid: every rate trains its whole budget; halving."""
    if len(config.lrs or []) <= 1 and config.lr_grid == 1:
        return "none"
    return config.tune


def plan_trials(config: ExperimentConfig, train_samples: int, reference: int) -> list[dict[str, Any]]:
    """Every trial in the record's order: repeat, batch size (as given), learning rate (ascending).

    Each trial of a repeat uses that repeat's seed, so trials differ only in batch size and rate.
    """
    seeds = repeat_seeds(config.seed, config.repeats)
    trials = []
    for repeat, seed in enumerate(seeds):
        for size in config.batch_sizes:
            for lr_index, lr in enumerate(trial_lrs(config, size, reference)):
                trials.append({
                    "run_index": len(trials), "batch_size": size, "repeat": repeat, "seed": seed, "lr": lr,
                    "lr_index": lr_index, "steps_per_epoch": steps_per_epoch(train_samples, size),
                    "epochs_planned": planned_epochs(config.budget, config.epochs, size, reference, train_samples),
                })
    return trials


def check_positive(label: str, value: Any) -> None:
    """Raise ValueError naming ``label`` unless ``value`` is an int >= 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{label}: {value!r} must be a positive whole number")
