"""Time to target: when a run first reached the target validation accuracy, and the default target.

Record bookkeeping, not training: the runner, the window and the analysis all read it
from the same histories, so a figure means the same thing live and after reopening.
"""

from __future__ import annotations

import math
from typing import Any, Optional


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


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


