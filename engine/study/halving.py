"""Successive halving: the rung budgets and the decisions at each rung, as pure functions of the record.

All of a batch size's learning rates start on a small budget; at each rung the best 1/eta of them
(seeds pooled) go on, and trials that are dead or diverged stop at once (Jamieson & Talwalkar
2016; Li et al. 2018). The same decisions serve a local study, parallel child processes and a
Ray cluster, and a resumed study, since they read nothing but the trials' histories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

def rung_epochs(epochs: int, configurations: int, eta: int) -> list[int]:
    """Epochs trained by the end of each rung, ending with ``epochs`` (one rung without a choice to make).

    With n configurations there are R = floor(log_eta n) halvings (at least one when n > 1), and
    rung k ends at epochs * eta^(k - R): n=3, eta=3, 30 epochs -> [10, 30]; n=9 -> [3, 10, 30].
    """
    if configurations <= 1 or epochs <= 1:
        return [epochs]
    halvings = max(1, int(math.floor(math.log(configurations, eta) + 1e-9)))
    points = {max(1, round(epochs * eta ** (k - halvings))) for k in range(halvings + 1)}
    return sorted(points | {epochs})


def rung_score(history: list[dict[str, Any]], epochs: int) -> tuple[float, float]:
    """(best val accuracy, lowest val loss) over the first ``epochs`` epochs; missing values rank last."""
    seen = history[:epochs]
    accuracies = [h["val_accuracy"] for h in seen if _number(h.get("val_accuracy"))]
    losses = [h["val_loss"] for h in seen if _number(h.get("val_loss"))]
    return (max(accuracies) if accuracies else -math.inf, min(losses) if losses else math.inf)


@dataclass(frozen=True)
class Decision:
    promoted: list[int]  # lr indices that go on
    halved: list[int]  # lr indices that stop here


def decide(trials: list[dict[str, Any]], epochs: int, eta: int) -> Decision:
    """Rank one batch size's configurations (lr, seeds pooled) at a rung; the best ceil(n/eta) go on.

    ``trials`` are the batch size's trials still in the running at this rung (paused at it, or
    finished early by patience); failed, dead and diverged ones are left out by the caller.
    Ties in mean best validation accuracy go to the lower mean validation loss, then the lower lr.
    """
    by_lr: dict[int, list[dict[str, Any]]] = {}
    for trial in trials:
        by_lr.setdefault(int(trial.get("lr_index", 0)), []).append(trial)
    scores = {}
    for lr_index, group in by_lr.items():
        pairs = [rung_score(t.get("history") or [], epochs) for t in group]
        scores[lr_index] = (-_mean([a for a, _ in pairs]), _mean([loss for _, loss in pairs]), lr_index)
    ranked = sorted(scores, key=scores.__getitem__)
    keep = max(1, math.ceil(len(ranked) / eta))
    return Decision(promoted=sorted(ranked[:keep]), halved=sorted(ranked[keep:]))


def _mean(values: list[float]) -> float:
    """A trial without a value (-inf accuracy, +inf loss) ranks its whole configuration last."""
    return sum(values) / len(values)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
