"""What an experiment's record says, per batch size: the figures the table, the verdict, the
critical-batch fit and the advice all draw on, computed once so the window and the command
line can never disagree.

Repeats of one batch size are pooled here (mean and spread of the best val accuracy, mean cost
to the target), because the question users ask is about batch sizes, not about seeds.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from engine.analysis.advice import AdviceFacts, TargetReach, advise
from engine.analysis.critical_batch import TradeoffError, fit_tradeoff
from engine.analysis.stats import compare_verdict
from engine.record import target as targets

PROBE_NAME = "probe.json"
TARGET_KEYS = ("epoch", "steps", "samples", "seconds")


@dataclass
class BatchSummary:
    """One batch size of an experiment, over all its repeats."""

    batch_size: int
    runs: list[dict[str, Any]]
    best_mean: Optional[float]
    best_std: Optional[float]
    lr: Optional[float]
    reached: int
    to_target: Optional[dict[str, float]]
    images_per_s: Optional[float]
    noise_scale: Optional[float]

    @property
    def bests(self) -> list[float]:
        return [r["best"]["val_accuracy"] for r in self.runs if r.get("best") and _finite(r["best"]["val_accuracy"])]


@dataclass
class Summary:
    """Everything a reader of the record wants beyond the raw runs."""

    target_accuracy: Optional[float]
    batches: list[BatchSummary]
    verdict: Optional[str]
    critical: Optional[dict[str, Any]]
    critical_problem: Optional[str]
    advice: str


def summarize(record: dict[str, Any], probe: Optional[dict[str, Any]] = None) -> Summary:
    """Pool the record's runs per batch size and draw the conclusions the data supports."""
    target = record.get("target_accuracy")
    if target is None:
        target = record.get("config", {}).get("target_accuracy")
    if target is None:
        target = targets.default_target([(r.get("best") or {}).get("val_accuracy") for r in record["runs"]])
    batches = [_batch_summary(size, [r for r in record["runs"] if r["batch_size"] == size], target)
               for size in _batch_order(record)]
    critical, problem = _critical(batches)
    summary = Summary(target, batches, _verdict(batches), critical, problem, "")
    summary.advice = advise(_facts(summary, probe))
    return summary


def load_probe(experiment_dir: Path | str) -> Optional[dict[str, Any]]:
    """The throughput probe saved beside the record, if any; a malformed file counts as none."""
    import json

    path = Path(experiment_dir) / PROBE_NAME
    try:
        probe = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return probe if isinstance(probe, dict) and isinstance(probe.get("points"), list) else None


def _batch_order(record: dict[str, Any]) -> list[int]:
    sizes = record.get("config", {}).get("batch_sizes") or []
    extra = [r["batch_size"] for r in record["runs"] if r["batch_size"] not in sizes]
    return list(dict.fromkeys([*sizes, *extra]))


def _batch_summary(size: int, runs: list[dict[str, Any]], target: Optional[float]) -> BatchSummary:
    bests = [r["best"]["val_accuracy"] for r in runs if r.get("best") and _finite(r["best"]["val_accuracy"])]
    reaches = [targets.time_to_target(r.get("history") or [], target) for r in runs] if target is not None else []
    reaches = [t for t in reaches if t is not None]
    rates = [r["images_per_s"] for r in runs if _finite(r.get("images_per_s"))]
    lrs = [r["lr"] for r in runs if _finite(r.get("lr"))]
    noise = [h["noise_scale"] for r in runs for h in (r.get("history") or []) if _finite(h.get("noise_scale"))]
    return BatchSummary(
        batch_size=size, runs=runs,
        best_mean=statistics.fmean(bests) if bests else None,
        best_std=statistics.stdev(bests) if len(bests) >= 2 else None,
        lr=lrs[0] if lrs else None,
        reached=len(reaches),
        to_target={k: statistics.fmean(t[k] for t in reaches) for k in TARGET_KEYS} if reaches else None,
        images_per_s=statistics.fmean(rates) if rates else None,
        noise_scale=noise[-1] if noise else None,
    )


def _verdict(batches: list[BatchSummary]) -> Optional[str]:
    """Best batch size against the runner-up; None until two batch sizes have a best accuracy."""
    ranked = sorted((b for b in batches if b.bests), key=lambda b: b.best_mean, reverse=True)
    if len(ranked) < 2:
        return None
    first, second = ranked[0], ranked[1]
    return compare_verdict(f"batch size {first.batch_size}", first.bests,
                           f"batch size {second.batch_size}", second.bests)


def _critical(batches: list[BatchSummary]) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    reached = [b for b in batches if b.to_target]
    if len(reached) < 3:
        return None, f"needs 3 or more batch sizes that reach the target, {len(reached)} did"
    try:
        return fit_tradeoff([b.to_target["steps"] for b in reached], [b.to_target["samples"] for b in reached]), None
    except TradeoffError as error:
        return None, str(error).removeprefix("critical batch: ")


def _facts(summary: Summary, probe: Optional[dict[str, Any]]) -> AdviceFacts:
    done = [b for b in summary.batches if b.bests]
    noise = [b.noise_scale for b in summary.batches if b.noise_scale is not None]
    throughput = {int(p["batch_size"]): float(p["images_per_s"]) for p in (probe or {}).get("points", [])
                  if p.get("status") == "ok" and _finite(p.get("images_per_s"))}
    return AdviceFacts(
        batch_sizes=[b.batch_size for b in done],
        best_val_accuracy={b.batch_size: b.best_mean for b in done},
        val_accuracy_spread={b.batch_size: b.best_std for b in done if b.best_std is not None},
        target_accuracy=summary.target_accuracy,
        time_to_target={b.batch_size: (TargetReach(b.to_target["seconds"], b.to_target["steps"],
                                                   b.to_target["samples"]) if b.to_target else None) for b in done},
        throughput=throughput,
        max_fitting_batch=(probe or {}).get("max_fitting_batch"),
        noise_scale=statistics.median(noise) if noise else None,
        b_crit=summary.critical["b_crit"] if summary.critical else None,
        verdict=summary.verdict if any(b.best_std is not None for b in done) else None,
    )


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
