"""What an experiment's record says, per batch size: the figures the table, the verdict, the
S(B) fit, the prediction, the diagnoses and the advice all draw on, computed once so the window,
the command line and the report can never disagree.

Each batch size is represented by its tuned configuration (its best learning rate, seeds pooled:
engine.analysis.tuning), because the question users ask is about batch sizes, not about seeds or
about one learning rate that suits one batch size better than another. Records from before trials
(one learning rate per batch size) are the same thing with one configuration each.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from engine.analysis import prediction as predictions
from engine.analysis import tuning
from engine.analysis.advice import AdviceFacts, TargetReach, advise
from engine.analysis.diagnosis import Diagnosis, remedies
from engine.analysis.tuning import Cell, TunedBatch, Updates
from engine.analysis.words import finite
from engine.record import target as targets

PROBE_NAME = "probe.json"


@dataclass
class BatchSummary:
    """One batch size at its best learning rate, over that configuration's seeds."""

    batch_size: int
    runs: list[dict[str, Any]]  # the best learning rate's trials (one per seed)
    best_mean: Optional[float]
    best_std: Optional[float]
    lr: Optional[float]
    reached: int  # seeds of the best learning rate that reached the target
    to_target: Optional[dict[str, float]]  # mean epoch/steps/samples/seconds; None unless every seed reached
    images_per_s: Optional[float]
    noise_scale: Optional[float]
    trials: list[dict[str, Any]] = field(default_factory=list)  # every trial of this batch size
    lrs: list[float] = field(default_factory=list)  # learning rates tried, ascending
    lr_band: Optional[tuple[float, float]] = None  # learning rates within 2 points of the best
    lr_edge: Optional[str] = None  # "lowest" | "highest" when the best lr is at the grid's edge
    state: str = "ok"  # ok | dead | failed | incomplete | empty (tuning.TunedBatch)

    @property
    def bests(self) -> list[float]:
        return [r["best"]["val_accuracy"] for r in self.runs if r.get("best") and finite(r["best"]["val_accuracy"])]


@dataclass
class Summary:
    """Everything a reader of the record wants beyond the raw runs."""

    target_accuracy: Optional[float]
    batches: list[BatchSummary]
    verdict: Optional[str]
    critical: Optional[dict[str, Any]]  # the S(B) fit (critical_batch.fit_steps), None when there is none
    critical_problem: Optional[str]
    advice: str
    method: str = "none"  # how learning rates were chosen: none | grid | halving
    target_problem: Optional[str] = None  # why there is no target accuracy
    settled: Optional[bool] = None  # the verdict's gap is beyond seed noise (True), within it (False), untested
    prediction: Optional[dict[str, Any]] = None  # the record's prediction entry
    prediction_problem: Optional[str] = None
    diagnoses: list[Diagnosis] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)  # the learning rate x batch size heat map
    compute: dict[str, int] = field(default_factory=dict)  # trial_epochs, full_grid_epochs
    updates: Optional[Updates] = None  # under an epochs budget: updates of the smallest and largest batch
    tuned: dict[int, TunedBatch] = field(default_factory=dict)


def summarize(record: dict[str, Any], probe: Optional[dict[str, Any]] = None) -> Summary:
    """The tuned answer per batch size and the conclusions the data supports."""
    target = targets.experiment_target(record)
    tuned = tuning.tune(record, target)
    method = tuning.method(record)
    fitted, problem = predictions.fit(tuned)
    predicted, prediction_problem = predictions.predict(tuned, probe, fitted) if fitted else (None, problem)
    comparison = tuning.verdict(tuned, name_lrs=method != "none")
    summary = Summary(
        target_accuracy=target, batches=[_batch_summary(t) for t in tuned.values()],
        verdict=comparison.text if comparison else None, critical=fitted, critical_problem=problem, advice="",
        method=method, target_problem=_target_problem(record, target),
        settled=comparison.settled if comparison else None, prediction=predicted,
        prediction_problem=prediction_problem,
        diagnoses=[d for t in tuned.values() for c in t.configurations for d in c.diagnoses],
        cells=tuning.heat_cells(tuned), compute=tuning.compute(record), updates=tuning.updates(record), tuned=tuned,
    )
    summary.diagnoses.sort(key=lambda d: d.run_index)
    summary.advice = advise(_facts(summary, record, probe))
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


def _batch_summary(t: TunedBatch) -> BatchSummary:
    best = t.best
    runs = best.runs if best is not None else t.runs
    rates = [r["images_per_s"] for r in runs if finite(r.get("images_per_s"))]
    noise = [h["noise_scale"] for r in runs for h in (r.get("history") or []) if finite(h.get("noise_scale"))]
    return BatchSummary(
        batch_size=t.batch_size, runs=runs,
        best_mean=best.best_val_accuracy if best else None, best_std=best.best_std if best else None,
        lr=best.lr if best and t.state != "dead" else None,  # where nothing learned, no rate is the best
        reached=best.reached if best else 0, to_target=best.to_target if best else None,
        images_per_s=statistics.fmean(rates) if rates else None, noise_scale=noise[-1] if noise else None,
        trials=t.runs, lrs=[c.lr for c in t.configurations if c.lr is not None], lr_band=t.lr_band,
        lr_edge=t.edge, state=t.state,
    )


def _target_problem(record: dict[str, Any], target: Optional[float]) -> Optional[str]:
    """Why the experiment has no target, in words (None when it has one or nothing ran)."""
    runs = record.get("runs", [])
    if target is not None or not any(r.get("history") for r in runs):
        return None
    if not any(targets.is_finished(r) for r in runs):
        return "no trial finished (the experiment was stopped before any trial completed its budget)"
    chance = targets.chance_accuracy(record.get("dataset"))
    if chance is None:
        return "no finished trial has a validation accuracy"
    return f"every finished trial stayed at chance ({100 * chance:.1f}%), so there is nothing to reach"


def _facts(summary: Summary, record: dict[str, Any], probe: Optional[dict[str, Any]]) -> AdviceFacts:
    comparable = [b for b in summary.batches if b.bests and b.state in ("ok", "dead")]
    noise = [b.noise_scale for b in summary.batches if b.noise_scale is not None]
    throughput = {int(p["batch_size"]): float(p["images_per_s"]) for p in (probe or {}).get("points", [])
                  if p.get("status") == "ok" and finite(p.get("images_per_s"))}
    dead = [b.batch_size for b in summary.batches if b.state == "dead"]
    return AdviceFacts(
        batch_sizes=[b.batch_size for b in comparable],
        best_val_accuracy={b.batch_size: b.best_mean for b in comparable},
        val_accuracy_spread={b.batch_size: b.best_std for b in comparable if b.best_std is not None},
        target_accuracy=summary.target_accuracy,
        time_to_target={b.batch_size: (TargetReach(b.to_target["seconds"], b.to_target["steps"],
                                                   b.to_target["samples"]) if b.to_target else None)
                        for b in comparable if summary.target_accuracy is not None},
        throughput=throughput,
        max_fitting_batch=(probe or {}).get("max_fitting_batch"),
        noise_scale=statistics.median(noise) if noise else None,
        b_crit=summary.critical["b_crit"] if summary.critical else None,
        verdict=summary.verdict if any(b.best_std is not None for b in comparable) else None,
        settled=summary.settled,
        tuning=summary.method,
        lrs_tried={b.batch_size: len(b.lrs) for b in comparable},
        best_lr={b.batch_size: b.lr for b in comparable if b.lr is not None},
        lr_edge={b.batch_size: b.lr_edge for b in comparable if b.lr_edge and b.state == "ok"},
        updates=summary.updates,
        dead=dead,
        remedies=remedies(record) if dead else [],
        trouble=dict(tuning.reason_counts(summary.tuned)),
        incomplete=[b.batch_size for b in summary.batches if b.state == "incomplete"],
        target_problem=summary.target_problem,
        prediction=summary.prediction,
        bn_per_replica={int(r["batch_size"]): int(r["bn_per_replica_batch"]) for r in record.get("runs", [])
                        if isinstance(r.get("bn_per_replica_batch"), int)},
    )
