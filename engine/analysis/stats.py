"""Seed-to-seed statistics: mean curves with a band, and whether two batch sizes really differ.

A difference between batch sizes only means something when it is larger than what changing the
seed alone does, so repeats are compared with Welch's t-test (scipy.stats.ttest_ind with unequal
variances: it does not assume equal spreads), and the gap is given with its 95% confidence
interval so a reader sees how large it could plausibly be, not only whether it is "significant".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from scipy import stats

from engine.analysis.words import duration

CONFIDENCE = 0.95


def welch_t_test(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """Two-sided Welch t-test of equal means: {"t", "df", "p", "low", "high"}.

    t > 0 when a's mean is higher; [low, high] is the ``confidence`` interval of mean(a) - mean(b).
    Needs at least 2 values per group. When neither group varies at all, equal means give p = 1,
    different means p = 0, and the interval shrinks to the difference (df: n_a + n_b - 2).
    """
    n_a, n_b = len(a), len(b)
    if n_a < 2 or n_b < 2:
        raise ValueError(f"Welch t-test: need at least 2 values per group, got {n_a} and {n_b}")
    diff = float(np.mean(a)) - float(np.mean(b))
    if float(np.var(a)) == 0.0 and float(np.var(b)) == 0.0:  # scipy answers NaN here; the answer is known
        t = 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
        return {"t": t, "df": float(n_a + n_b - 2), "p": 1.0 if diff == 0.0 else 0.0, "low": diff, "high": diff}
    result = stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(confidence)
    return {"t": float(result.statistic), "df": float(result.df), "p": float(result.pvalue),
            "low": float(interval.low), "high": float(interval.high)}


@dataclass(frozen=True)
class Quantity:
    """How a compared quantity reads in a sentence."""

    higher_is_better: bool
    beats: str  # "{a} beats {b} by {gap}"
    ahead: str  # "{a} is ahead of {b} by {gap}, but ..."
    better: str  # "cannot tell whether {a} or {b} {better}"
    number: Callable[[float], str]  # a difference without its unit, e.g. "6.0"
    unit: str  # of a difference, e.g. "points"
    level: Callable[[float], str]  # a value, e.g. "62.5%"


def _seconds(d: float) -> str:
    return f"{d:.2g}" if abs(d) < 1 else f"{d:.1f}" if abs(d) < 100 else f"{d:.0f}"


ACCURACY = Quantity(True, "{a} beats {b} by {gap}", "{a} is ahead of {b} by {gap}", "is better",
                    lambda d: f"{100 * d:.1f}", "points", lambda v: f"{100 * v:.1f}%")
TIME_TO_TARGET = Quantity(False, "{a} reaches the target sooner than {b}, by {gap}",
                          "{a} reaches the target sooner than {b}, by {gap}", "reaches the target sooner",
                          _seconds, "s", duration)


@dataclass(frozen=True)
class Comparison:
    """The verdict between two batch sizes: one sentence, and whether the gap beats the seed noise
    (None when there are too few repeats to tell)."""

    text: str
    settled: Optional[bool]
    p: Optional[float] = None
    low: Optional[float] = None  # confidence interval of the leader's advantage, in the quantity's units
    high: Optional[float] = None


def compare(name_a: str, a: Sequence[Optional[float]], name_b: str, b: Sequence[Optional[float]],
            quantity: Quantity = ACCURACY, alpha: float = 0.05) -> Comparison:
    """Which of two batch sizes is better on ``quantity``, and whether the gap is larger than the
    seed-to-seed noise (Welch t-test at ``alpha``, with the 1 - alpha confidence interval).

    One value per repeat; missing ones (failed runs, None or NaN) are left out.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"significance level: {alpha} must be between 0 and 1")
    a = [float(v) for v in a if v is not None and math.isfinite(v)]
    b = [float(v) for v in b if v is not None and math.isfinite(v)]
    if len(a) < 2 or len(b) < 2:
        return Comparison(f"cannot tell whether {name_a} or {name_b} {quantity.better}: need at least 2 repeats "
                          f"per batch size (have {len(a)} and {len(b)}).", None)
    mean_a, mean_b = float(np.mean(a)), float(np.mean(b))
    if (mean_a < mean_b) == quantity.higher_is_better:
        name_a, a, mean_a, name_b, b, mean_b = name_b, b, mean_b, name_a, a, mean_a
    seeds = f"mean of {len(a)} seeds each" if len(a) == len(b) else f"mean of {len(a)} and {len(b)} seeds"
    if mean_a == mean_b:
        return Comparison(f"{name_a} and {name_b} tie at {quantity.level(mean_a)} ({seeds}): no difference at all.",
                          False, 1.0, 0.0, 0.0)
    test = welch_t_test(a, b, 1.0 - alpha)
    sign = 1.0 if quantity.higher_is_better else -1.0  # the interval of the leader's advantage
    low, high = sorted((sign * test["low"], sign * test["high"]))
    gap = (f"{quantity.number(abs(mean_a - mean_b))} {quantity.unit} ({seeds}), between {quantity.number(low)} and "
           f"{quantity.number(high)} {quantity.unit} with {100 * (1 - alpha):.0f}% confidence")
    p_text = f"Welch t-test {_format_p(test['p'])}"
    if test["p"] < alpha:
        text = (f"{quantity.beats.format(a=name_a, b=name_b, gap=gap)}; this is larger than the seed-to-seed noise "
                f"({p_text}).")
    else:
        text = (f"{quantity.ahead.format(a=name_a, b=name_b, gap=gap)}, but this is within the seed-to-seed noise "
                f"({p_text}): no real difference shown.")
    return Comparison(text, test["p"] < alpha, test["p"], low, high)


def compare_verdict(name_a: str, a: list[Optional[float]], name_b: str, b: list[Optional[float]],
                    alpha: float = 0.05) -> str:
    """One sentence on which of two batch sizes has the better best val accuracy (in [0, 1], one per
    repeat), and whether the gap is larger than the seed-to-seed noise; gaps in percentage points."""
    return compare(name_a, a, name_b, b, ACCURACY, alpha).text


def _format_p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3g}"


def mean_band(curves: list[list[float]]) -> tuple[list[float], list[float], list[float]]:
    """Per-epoch mean, mean - std and mean + std over repeats, for drawing a curve with a band.

    Curves may differ in length (early stopping): each index uses the curves that reach
    it, and missing values (None, NaN) are skipped. The std is the sample std (ddof=1),
    zero where only one value is available; an index with no value at all gives NaN.
    """
    means: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    for index in range(max((len(c) for c in curves), default=0)):
        values = [c[index] for c in curves if index < len(c) and c[index] is not None and math.isfinite(c[index])]
        mean = float(np.mean(values)) if values else math.nan
        std = float(np.std(values, ddof=1)) if len(values) >= 2 else 0.0
        means.append(mean)
        lows.append(mean - std)
        highs.append(mean + std)
    return means, lows, highs
