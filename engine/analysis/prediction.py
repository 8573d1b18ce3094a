"""Predicted time to target for every batch size that fits in memory, checked by leave-one-out.

T(B) = S(B) x seconds per step(B). S(B) = S_min (1 + B_noise/B) is fitted to the tuned steps to
target of 3 or more batch sizes (McCandlish et al. 2018; critical_batch.fit_steps). Seconds per step
come from the trials where a batch size was trained (wall-clock, validation included, as measured
time to target is) and from the throughput probe's ladder elsewhere (B / images per second). The
probe times training steps only, so its figures are scaled by the median ratio of trial to probe
seconds per step at the sizes both measured, which keeps the two sources comparable.

The model is checked the only honest way available: leave each measured batch size out, refit on
the others (two points still determine the two parameters), predict its steps, report the error.
"""

from __future__ import annotations

import statistics
from typing import Any, Optional

from engine.analysis.critical_batch import TradeoffError, fit_steps, predicted_steps
from engine.analysis.tuning import TunedBatch
from engine.analysis.words import finite


def measured_steps(tuned: dict[int, TunedBatch]) -> dict[int, float]:
    """Tuned steps to target of the batch sizes whose best lr reached it with every seed."""
    return {size: t.best.to_target["steps"] for size, t in tuned.items()
            if t.state == "ok" and t.best is not None and t.best.all_reached}


def fit(tuned: dict[int, TunedBatch]) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """The S(B) fit (critical_batch.fit_steps) or why there is none."""
    steps = measured_steps(tuned)
    if len(steps) < 3:
        return None, f"needs 3 or more batch sizes that reach the target, {len(steps)} did"
    try:
        return fit_steps(list(steps), list(steps.values())), None
    except TradeoffError as error:
        return None, str(error).removeprefix("critical batch: ")


def predict(tuned: dict[int, TunedBatch], probe: Optional[dict[str, Any]] = None,
            fitted: Optional[dict[str, Any]] = None) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """The record's ``prediction`` entry, or (None, why not)."""
    problem = None
    if fitted is None:
        fitted, problem = fit(tuned)
    if fitted is None:
        return None, problem
    steps = measured_steps(tuned)
    per_step = _seconds_per_step(tuned, probe)
    points = []
    for size in sorted(per_step):
        seconds, source = per_step[size]
        predicted = predicted_steps(fitted, size)
        reach = tuned[size].best.to_target if size in tuned and tuned[size].best is not None else None
        points.append({"batch_size": size, "steps": steps.get(size), "seconds_per_step": seconds,
                       "predicted_steps": predicted, "predicted_seconds": predicted * seconds,
                       "measured_seconds": reach["seconds"] if reach and size in steps else None, "source": source})
    fastest = min(points, key=lambda p: p["predicted_seconds"])
    return {
        "s_min": fitted["s_min"], "b_noise": fitted["b_noise"], "fit_residual": fitted["residual"],
        "points": points, "loo_error": leave_one_out(steps),
        "recommended": {"batch_size": fastest["batch_size"], "predicted_seconds": fastest["predicted_seconds"]},
    }, None


def leave_one_out(steps: dict[int, float]) -> Optional[float]:
    """Mean absolute relative error of each measured size's steps predicted by a fit to the others;
    None when no such fit exists (e.g. the others show no trade-off)."""
    errors = []
    for size, measured in steps.items():
        others = {b: s for b, s in steps.items() if b != size}
        try:
            refit = fit_steps(list(others), list(others.values()), curve_points=2, min_sizes=2)
        except TradeoffError:
            continue
        errors.append(abs(predicted_steps(refit, size) - measured) / measured)
    return statistics.fmean(errors) if errors else None


def _seconds_per_step(tuned: dict[int, TunedBatch], probe: Optional[dict[str, Any]]) -> dict[int, tuple[float, str]]:
    """Per batch size: (seconds per step, "trial" | "probe"), for sizes trained or that fit in memory."""
    out: dict[int, tuple[float, str]] = {}
    for size, t in tuned.items():
        seconds = t.best.seconds_per_step if t.best is not None else None
        if seconds is None:  # the best lr has no timing (e.g. failed); any trial of the size times a step
            timed = [c.seconds_per_step for c in t.configurations if c.seconds_per_step is not None]
            seconds = statistics.median(timed) if timed else None
        if seconds is not None and t.state in ("ok", "incomplete"):
            out[size] = (seconds, "trial")
    limit = (probe or {}).get("max_fitting_batch")
    ladder = {int(p["batch_size"]): p["batch_size"] / p["images_per_s"] for p in (probe or {}).get("points", [])
              if p.get("status") == "ok" and finite(p.get("images_per_s")) and p["images_per_s"] > 0
              and finite(p.get("batch_size")) and (not finite(limit) or p["batch_size"] <= limit)}
    both = [out[b][0] / ladder[b] for b in ladder if b in out]
    scale = statistics.median(both) if both else 1.0
    for size, seconds in ladder.items():
        out.setdefault(size, (seconds * scale, "probe"))
    return out
