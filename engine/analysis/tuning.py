"""The tuned answer: per batch size, the learning rate that did best, pooled over seeds.

Shallue et al. (2019) show that most disagreements about batch size come from comparing batch
sizes at one learning rate: a fair comparison tunes it per batch size and measures steps to a goal.
So each batch size's *configurations* (one per learning rate, its seeds pooled) are ranked: the
best is the one that reached the target in the fewest steps (mean over seeds, and every seed must
reach: a trial that never reached it is censored, "not reached", never a number); if none reached,
the one with the highest best val accuracy. The *band* is the run of neighbouring learning rates
whose best val accuracy is within 2 points of the best one's: how forgiving that batch size is.
Under successive halving a learning rate dropped early trained fewer epochs, so it is compared with
the best learning rate's accuracy over the same number of epochs.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any, Optional

from engine.analysis.diagnosis import Diagnosis, diagnose
from engine.analysis.stats import ACCURACY, TIME_TO_TARGET, Comparison, compare
from engine.analysis.words import finite, lr
from engine.record import target as targets

LR_BAND = 0.02  # accuracy (as a fraction) within which a learning rate is "as good"
TARGET_KEYS = ("epoch", "steps", "samples", "seconds")
# A configuration's stop reason when its seeds differ: the most telling one.
REASON_ORDER = ("diverged", "dead", "failed", "stopped", "halved", "early_stopped", "completed")


@dataclass
class Configuration:
    """One learning rate at one batch size, over its seeds."""

    batch_size: int
    lr: Optional[float]
    lr_index: int
    runs: list[dict[str, Any]]
    reaches: list[Optional[dict[str, Any]]]  # per run: time to target, None when not reached
    diagnoses: list[Diagnosis]

    @property
    def trials(self) -> int:
        return len(self.runs)

    @property
    def reached(self) -> int:
        return sum(r is not None for r in self.reaches)

    @property
    def all_reached(self) -> bool:
        return self.trials > 0 and self.reached == self.trials

    @property
    def bests(self) -> list[float]:
        """Best val accuracy of each seed that has one."""
        return [r["best"]["val_accuracy"] for r in self.runs if finite((r.get("best") or {}).get("val_accuracy"))]

    @property
    def best_val_accuracy(self) -> Optional[float]:
        return statistics.fmean(self.bests) if self.bests else None

    @property
    def best_std(self) -> Optional[float]:
        return statistics.stdev(self.bests) if len(self.bests) >= 2 else None

    @property
    def to_target(self) -> Optional[dict[str, float]]:
        """Mean epoch, steps, samples and seconds to the target; None unless every seed reached it."""
        if not self.all_reached:
            return None
        return {k: statistics.fmean(r[k] for r in self.reaches if r is not None) for k in TARGET_KEYS}

    @property
    def seconds_to_target(self) -> list[float]:
        """Per seed that reached the target."""
        return [r["seconds"] for r in self.reaches if r is not None]

    @property
    def seconds_per_step(self) -> Optional[float]:
        """Wall-clock seconds per optimizer step, validation included: what time to target is made of."""
        ends = [(r.get("history") or [{}])[-1] for r in self.runs]
        seconds = sum(e["elapsed"] for e in ends if finite(e.get("elapsed")) and finite(e.get("steps")))
        steps = sum(e["steps"] for e in ends if finite(e.get("elapsed")) and finite(e.get("steps")))
        return seconds / steps if steps > 0 and seconds > 0 else None

    @property
    def stop_reasons(self) -> list[str]:
        """Why each seed's trial ended (seeds without a reason yet left out)."""
        return [reason for reason in (stop_reason(r, self.diagnoses) for r in self.runs) if reason]

    @property
    def stop_reason(self) -> Optional[str]:
        """The most telling of the seeds' reasons."""
        return min(self.stop_reasons, key=REASON_ORDER.index) if self.stop_reasons else None

    @property
    def rung(self) -> Optional[int]:
        """The highest rung any seed reached (successive halving); None without halving."""
        rungs = [(r.get("trial") or {}).get("rung") for r in self.runs]
        rungs = [x for x in rungs if isinstance(x, int)]
        return max(rungs) if rungs else None

    @property
    def learned(self) -> bool:
        """At least one seed trained (was neither dead, diverged nor failed)."""
        failed = {d.run_index for d in self.diagnoses}
        return any(r.get("run_index") not in failed for r in self.runs)

    def halved_epochs(self) -> Optional[int]:
        """Epochs its seeds trained when halving dropped it, else None (it had its full budget)."""
        if not any((r.get("trial") or {}).get("stop_reason") == "halved" for r in self.runs):
            return None
        return max(len(r.get("history") or []) for r in self.runs)

    def best_within(self, epochs: int) -> Optional[float]:
        """Mean over seeds of the best val accuracy in the first ``epochs`` epochs."""
        values = [max((h["val_accuracy"] for h in (r.get("history") or [])[:epochs] if finite(h.get("val_accuracy"))),
                      default=None) for r in self.runs]
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else None


@dataclass
class TunedBatch:
    """One batch size: its configurations (ascending lr), the best one, the band, and its state:
    ok, dead (no trial learned), failed (every trial failed), incomplete (stopped before every trial
    finished) or empty (nothing ran yet)."""

    batch_size: int
    configurations: list[Configuration]
    best: Optional[Configuration]
    lr_band: Optional[tuple[float, float]]
    edge: Optional[str]  # "lowest" | "highest": the best lr is at the edge of a grid of 2+ lrs
    state: str

    @property
    def runs(self) -> list[dict[str, Any]]:
        return [r for c in self.configurations for r in c.runs]


def method(record: dict[str, Any]) -> str:
    """How the learning rate was chosen: none (one per batch size), grid or halving."""
    return (record.get("tuning") or {}).get("method") or "none"


def tune(record: dict[str, Any], target: Optional[float]) -> dict[int, TunedBatch]:
    """The tuned answer per batch size, in the record's batch-size order."""
    grouped: dict[int, dict[Any, list[dict[str, Any]]]] = {}
    for run in record.get("runs", []):
        key = run.get("lr_index")
        if not isinstance(key, int):
            key = round(run["lr"], 12) if finite(run.get("lr")) else None
        grouped.setdefault(run["batch_size"], {}).setdefault(key, []).append(run)
    found = {d.run_index: d for d in (diagnose(r, record) for r in record.get("runs", [])) if d is not None}
    tuned_grid = method(record) != "none"
    out = {}
    for size in batch_order(record):
        configurations = []
        for runs in grouped.get(size, {}).values():
            rates = [r["lr"] for r in runs if finite(r.get("lr"))]
            index = runs[0].get("lr_index") if isinstance(runs[0].get("lr_index"), int) else -1
            reaches = [targets.time_to_target(r.get("history") or [], target) if target is not None else None
                       for r in runs]
            labelled = [found[r.get("run_index")] for r in runs if r.get("run_index") in found]
            configurations.append(Configuration(size, rates[0] if rates else None, index, runs, reaches, labelled))
        configurations.sort(key=lambda c: (c.lr is None, c.lr or 0.0))
        for i, configuration in enumerate(configurations):  # records from before trials: by position
            configuration.lr_index = i if configuration.lr_index < 0 else configuration.lr_index
        out[size] = _tuned_batch(size, configurations, tuned_grid)
    return out


def batch_order(record: dict[str, Any]) -> list[int]:
    """Batch sizes as configured, then any others the runs have."""
    sizes = (record.get("config") or {}).get("batch_sizes") or []
    extra = [r["batch_size"] for r in record.get("runs", []) if r["batch_size"] not in sizes]
    return list(dict.fromkeys([*sizes, *extra]))


def _tuned_batch(size: int, configurations: list[Configuration], tuned_grid: bool) -> TunedBatch:
    reached = [c for c in configurations if c.all_reached]
    scored = [c for c in configurations if c.best_val_accuracy is not None]
    if reached:
        best: Optional[Configuration] = min(reached, key=lambda c: (c.to_target["steps"], -(c.best_val_accuracy or 0)))
    else:
        best = max(scored, key=lambda c: c.best_val_accuracy, default=None)
    state = _state(configurations)
    if state == "dead":  # a band or a grid edge among networks that never learned means nothing
        return TunedBatch(size, configurations, best, None, None, state)
    band = _band(configurations, best) if best is not None else None
    edge = None
    rated = [c for c in configurations if c.lr is not None]
    if tuned_grid and best is not None and len(rated) >= 2:
        edge = "lowest" if best is rated[0] else "highest" if best is rated[-1] else None
    return TunedBatch(size, configurations, best, band, edge, state)


def _band(configurations: list[Configuration], best: Configuration) -> Optional[tuple[float, float]]:
    """Lowest and highest lr of the unbroken run of neighbours within LR_BAND of the best."""
    if best.lr is None or best.best_val_accuracy is None:
        return None
    rated = [c for c in configurations if c.lr is not None]

    def as_good(c: Configuration) -> bool:
        epochs = c.halved_epochs()
        reference = best.best_within(epochs) if epochs else best.best_val_accuracy
        return c.best_val_accuracy is not None and reference is not None and c.best_val_accuracy >= reference - LR_BAND

    i = rated.index(best)
    low, high = i, i
    while low > 0 and as_good(rated[low - 1]):
        low -= 1
    while high < len(rated) - 1 and as_good(rated[high + 1]):
        high += 1
    return rated[low].lr, rated[high].lr


def _state(configurations: list[Configuration]) -> str:
    runs = [(r, reach) for c in configurations for r, reach in zip(c.runs, c.reaches)]
    if not any(r.get("history") or r.get("status") == "failed" for r, _ in runs):
        return "empty"
    if any(not (targets.is_finished(r) or r.get("status") == "failed" or reach is not None) for r, reach in runs):
        return "incomplete"
    if not any(c.learned for c in configurations):
        kinds = {d.kind for c in configurations for d in c.diagnoses}
        return "dead" if kinds & {"dead", "diverged"} else "failed"
    return "ok"


def stop_reason(run: dict[str, Any], found: list[Diagnosis]) -> Optional[str]:
    """Why a trial ended: dead, diverged or failed when it did not train (also in a full grid, where
    the runner lets dead trials finish), else the runner's label, else what the record shows."""
    diagnosis = next((d for d in found if d.run_index == run.get("run_index")), None)
    if diagnosis is not None:
        return diagnosis.kind
    reason = (run.get("trial") or {}).get("stop_reason")
    if reason:
        return reason
    status = run.get("status")
    if status == "completed":
        planned, done = run.get("epochs_planned"), len(run.get("history") or [])
        return "early_stopped" if isinstance(planned, int) and 0 < done < planned else "completed"
    return status if status in ("stopped", "failed") else None


def ranking(tuned: dict[int, TunedBatch]) -> list[TunedBatch]:
    """Batch sizes that can be compared, best first: those whose best lr reached the target with
    every seed by mean seconds to target, then the others by best val accuracy."""
    usable = [t for t in tuned.values() if t.state == "ok" and t.best is not None and t.best.bests]
    fast = sorted((t for t in usable if t.best.all_reached), key=lambda t: t.best.to_target["seconds"])
    rest = sorted((t for t in usable if not t.best.all_reached), key=lambda t: -t.best.best_val_accuracy)
    return fast + rest


def verdict(tuned: dict[int, TunedBatch], name_lrs: bool = False) -> Optional[Comparison]:
    """The leader against the runner-up, at their best learning rates: on seconds to target when
    both reached it with every seed, else on best val accuracy; None with fewer than two."""
    ranked = ranking(tuned)
    if len(ranked) < 2:
        return None
    first, second = ranked[0], ranked[1]

    def name(t: TunedBatch) -> str:
        return f"batch size {t.batch_size}" + (f" (lr {lr(t.best.lr)})" if name_lrs and t.best.lr else "")

    if first.best.all_reached and second.best.all_reached:
        result = compare(name(first), first.best.seconds_to_target, name(second), second.best.seconds_to_target,
                         TIME_TO_TARGET)
    else:
        result = compare(name(first), first.best.bests, name(second), second.best.bests, ACCURACY)
    if result.settled and not result.text.startswith(name(first)):  # the runner-up is the more accurate
        result = Comparison(result.text, False, result.p, result.low, result.high)
    return result


@dataclass(frozen=True)
class Cell:
    """One square of the learning rate x batch size heat map."""

    batch_size: int
    lr: Optional[float]
    lr_index: int
    best_val_accuracy: Optional[float]
    rung: Optional[int]
    stop_reason: Optional[str]
    reason_trials: int  # how many of the trials ended for that reason
    reached: int
    trials: int
    best: bool
    in_band: bool


def heat_cells(tuned: dict[int, TunedBatch]) -> list[Cell]:
    """Batch size x learning rate: pooled best val accuracy, rung reached and why the trials ended."""
    cells = []
    for t in tuned.values():
        for c in t.configurations:
            in_band = bool(t.lr_band and c.lr is not None and t.lr_band[0] <= c.lr <= t.lr_band[1])
            cells.append(Cell(t.batch_size, c.lr, c.lr_index, c.best_val_accuracy, c.rung, c.stop_reason,
                              c.stop_reasons.count(c.stop_reason), c.reached, c.trials,
                              c is t.best and t.state != "dead", in_band))
    return cells


def best_entry(tuned: dict[int, TunedBatch]) -> dict[str, dict[str, Any]]:
    """``tuning.best`` of the record: per batch size, its best configuration (censored figures null)."""
    out = {}
    for size, t in tuned.items():
        if t.best is None:
            continue
        c, reach = t.best, t.best.to_target
        out[str(size)] = {
            "lr": c.lr, "lr_band": list(t.lr_band) if t.lr_band else None,
            "steps_to_target": reach["steps"] if reach else None,
            "samples_to_target": reach["samples"] if reach else None,
            "seconds_to_target": reach["seconds"] if reach else None,
            "best_val_accuracy": c.best_val_accuracy, "reached": c.reached, "trials": c.trials,
        }
    return out


def compute(record: dict[str, Any]) -> dict[str, int]:
    """``tuning.compute``: epochs actually trained over all trials, and what the full grid (every
    trial its whole budget, no halving) would have cost."""
    rungs = (record.get("tuning") or {}).get("rungs") or {}
    default = (record.get("config") or {}).get("epochs") or 0
    trained, full = 0, 0
    for run in record.get("runs", []):
        done = run.get("epochs_run")
        trained += done if isinstance(done, int) else len(run.get("history") or [])
        budget = (rungs.get(str(run["batch_size"])) or [None])[-1] or run.get("epochs_planned") or default
        full += int(budget)
    return {"trial_epochs": trained, "full_grid_epochs": full}


@dataclass(frozen=True)
class Updates:
    """Optimizer updates the budget gave the smallest and the largest batch size."""

    small: int
    small_updates: int
    large: int
    large_updates: int

    @property
    def ratio(self) -> float:
        return self.small_updates / self.large_updates


def updates(record: dict[str, Any]) -> Optional[Updates]:
    """Under an epochs budget, the planned updates of the smallest and the largest batch size
    (steps per epoch x epochs): an equal-epoch budget gives a larger batch fewer updates."""
    config = record.get("config") or {}
    sizes = sorted({r["batch_size"] for r in record.get("runs", [])})
    if config.get("budget", "epochs") != "epochs" or len(sizes) < 2:
        return None
    rungs = (record.get("tuning") or {}).get("rungs") or {}
    train = (record.get("dataset") or {}).get("train_count")

    def planned(size: int) -> Optional[int]:
        runs = [r for r in record["runs"] if r["batch_size"] == size]
        per_epoch = next((r["steps_per_epoch"] for r in runs if isinstance(r.get("steps_per_epoch"), int)), None)
        if per_epoch is None and isinstance(train, int) and train > 0:
            per_epoch = math.ceil(train / size)
        epochs = (rungs.get(str(size)) or [None])[-1] or \
            next((r["epochs_planned"] for r in runs if isinstance(r.get("epochs_planned"), int)), None) or \
            config.get("epochs")
        return per_epoch * epochs if per_epoch and epochs else None

    small, large = planned(sizes[0]), planned(sizes[-1])
    if not small or not large:
        return None
    return Updates(sizes[0], small, sizes[-1], large)


def reason_counts(tuned: dict[int, TunedBatch]) -> Counter:
    """How many trials were dead, diverged or failed."""
    return Counter(d.kind for t in tuned.values() for c in t.configurations for d in c.diagnoses)
