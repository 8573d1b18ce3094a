"""Time to target: when a run first reached the target validation accuracy, and the default target.

Record bookkeeping, not training: the runner, the window and the analysis all read it
from the same histories, so a figure means the same thing live and after reopening.

The default target is 95% of the best val accuracy a *finished* trial reached. A run the user
stopped has a partial history: after Ctrl+C in epoch 1 it sits at chance, and 95% of chance is a
"target" every run reaches at once. Trials that stopped early by design (early stopping, halving,
dead) finished what they were given, so they count. A best accuracy that is itself at chance gives
no target at all: there is nothing to reach.
"""

from __future__ import annotations

import math
from typing import Any, Optional

ENDED_BY_DESIGN = ("completed", "early_stopped", "halved", "dead")


def time_to_target(history: list[dict[str, Any]], target: float) -> Optional[dict[str, Any]]:
    """Cost of the first epoch whose val accuracy reaches ``target``; None if none did.

    ``steps``, ``samples`` and ``elapsed`` in history entries are cumulative since the
    run started (as the record stores them), so they are the cost to get there.
    Entries without a val accuracy (null in the record) are skipped.
    """
    for entry in history:
        accuracy = entry.get("val_accuracy")
        if _finite(accuracy) and accuracy >= target:
            return {
                "epoch": entry["epoch"],
                "steps": entry["steps"],
                "samples": entry["samples"],
                "seconds": entry["elapsed"],
            }
    return None


def default_target(best_accuracies: list[Optional[float]], fraction: float = 0.95) -> Optional[float]:
    """``fraction`` of the best val accuracy any run reached: a bar every good run can clear.

    Missing values (failed runs) are ignored; None when no run has one.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"target fraction: {fraction} must be in (0, 1]")
    values = [a for a in best_accuracies if _finite(a)]
    return fraction * max(values) if values else None


def experiment_target(record: dict[str, Any]) -> Optional[float]:
    """The target of an experiment: the configured one, else the default from its finished trials,
    else None (nothing finished, or the best of them is at chance)."""
    configured = (record.get("config") or {}).get("target_accuracy")
    if _finite(configured):
        return configured
    finished = [a for a in ((r.get("best") or {}).get("val_accuracy") for r in record.get("runs", [])
                            if is_finished(r)) if _finite(a)]
    chance = chance_accuracy(record.get("dataset"))
    if not finished or (chance is not None and max(finished) <= chance + chance_margin(record.get("dataset"))):
        return None
    return default_target(finished)


def is_finished(run: dict[str, Any]) -> bool:
    """Whether a run trained all it was given: completed, or ended by design (early stopping,
    halving, a dead network), as opposed to stopped by the user, failed or not yet run."""
    reason = (run.get("trial") or {}).get("stop_reason")
    return run.get("status") == "completed" or (run.get("status") == "stopped" and reason in ENDED_BY_DESIGN)


def chance_accuracy(dataset: Optional[dict[str, Any]]) -> Optional[float]:
    """Accuracy of always answering the most common class (1/classes when balanced); None if unknown."""
    counts = [n for n in ((dataset or {}).get("counts") or {}).values() if _finite(n) and n > 0]
    if counts:
        return max(counts) / sum(counts)
    classes = (dataset or {}).get("classes") or []
    return 1.0 / len(classes) if classes else None


def chance_margin(dataset: Optional[dict[str, Any]]) -> float:
    """How far above chance a val accuracy still counts as chance: 2 points plus one validation image."""
    val_count = (dataset or {}).get("val_count")
    return 0.02 + (1.0 / val_count if _finite(val_count) and val_count > 0 else 0.0)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


