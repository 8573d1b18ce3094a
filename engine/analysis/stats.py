"""Seed-to-seed statistics: mean curves with a band, and whether two batch sizes really differ.

A difference between batch sizes only means something when it is larger than what
changing the seed alone does, so repeats are compared with Welch's t-test (it does
not assume equal spreads). The Student-t distribution is computed here, through the
regularized incomplete beta function, to keep the engine free of scipy.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

_EPS = 1e-15  # relative accuracy of the continued fraction
_TINY = 1e-300  # keeps Lentz's method away from division by zero
_MAX_TERMS = 10_000  # enough for any df below ~1e8; Welch df here is at most a few hundred


def regularized_beta(a: float, b: float, x: float, y: Optional[float] = None) -> float:
    """I_x(a, b), the regularized incomplete beta function, for a, b > 0 and 0 <= x <= 1.

    ``y`` is 1 - x when the caller knows it more precisely than 1 - x can be computed.
    Continued fraction (modified Lentz) on whichever side converges fast, as in
    Numerical Recipes' betai.
    """
    if not (a > 0 and b > 0):
        raise ValueError(f"incomplete beta: a={a} and b={b} must be positive")
    if y is None:
        y = 1.0 - x
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ValueError(f"incomplete beta: x={x} must be in [0, 1]")
    if x == 0.0:
        return 0.0
    if y == 0.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), evaluated by the modified Lentz method."""
    c = 1.0
    d = _nonzero(1.0 - (a + b) * x / (a + 1.0))
    d = 1.0 / d
    h = d
    for m in range(1, _MAX_TERMS + 1):
        even = m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m))
        d = 1.0 / _nonzero(1.0 + even * d)
        c = _nonzero(1.0 + even / c)
        h *= d * c
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0))
        d = 1.0 / _nonzero(1.0 + odd * d)
        c = _nonzero(1.0 + odd / c)
        step = d * c
        h *= step
        if abs(step - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta: no convergence for a={a}, b={b}, x={x}")


def _nonzero(value: float) -> float:
    return value if abs(value) >= _TINY else _TINY


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` (possibly fractional) degrees of freedom.

    Uses P = I_{df/(df+t^2)}(df/2, 1/2), with 1 - x passed exactly as t^2/(df+t^2).
    """
    if not df > 0:
        raise ValueError(f"t distribution: {df} degrees of freedom must be positive")
    if math.isnan(t):
        raise ValueError("t distribution: t is not a number")
    if math.isinf(t):
        return 0.0
    denominator = df + t * t
    return regularized_beta(df / 2.0, 0.5, df / denominator, t * t / denominator)


def welch_t_test(a: list[float], b: list[float]) -> dict[str, float]:
    """Two-sided Welch t-test of equal means: {"t", "df", "p"}; t > 0 when a's mean is higher.

    Needs at least 2 values per group. When neither group varies at all, equal means
    give p = 1 and different means p = 0 (df then falls back to n_a + n_b - 2).
    """
    n_a, n_b = len(a), len(b)
    if n_a < 2 or n_b < 2:
        raise ValueError(f"Welch t-test: need at least 2 values per group, got {n_a} and {n_b}")
    var_a = float(np.var(a, ddof=1)) / n_a
    var_b = float(np.var(b, ddof=1)) / n_b
    diff = float(np.mean(a)) - float(np.mean(b))
    spread = var_a + var_b
    if spread == 0.0:
        t = 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
        return {"t": t, "df": float(n_a + n_b - 2), "p": 1.0 if diff == 0.0 else 0.0}
    t = diff / math.sqrt(spread)
    df = spread**2 / (var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1))
    return {"t": t, "df": df, "p": t_two_sided_p(t, df)}


def compare_verdict(name_a: str, a: list[float], name_b: str, b: list[float], alpha: float = 0.05) -> str:
    """One sentence on which of two batch sizes has the better best val accuracy, and whether
    the gap is larger than the seed-to-seed noise (Welch t-test at ``alpha``).

    ``a`` and ``b`` are accuracies in [0, 1], one per repeat; missing ones (failed runs)
    are left out. Gaps are given in percentage points.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"significance level: {alpha} must be between 0 and 1")
    a = [v for v in a if v is not None and math.isfinite(v)]
    b = [v for v in b if v is not None and math.isfinite(v)]
    if len(a) < 2 or len(b) < 2:
        return (f"cannot tell whether {name_a} or {name_b} is better: need at least 2 repeats per "
                f"batch size (have {len(a)} and {len(b)}).")
    mean_a, mean_b = float(np.mean(a)), float(np.mean(b))
    if mean_a < mean_b:
        name_a, a, mean_a, name_b, b, mean_b = name_b, b, mean_b, name_a, a, mean_a
    seeds = f"mean of {len(a)} seeds each" if len(a) == len(b) else f"mean of {len(a)} and {len(b)} seeds"
    if mean_a == mean_b:
        return f"{name_a} and {name_b} tie at {100 * mean_a:.1f}% ({seeds}): no difference at all."
    p = welch_t_test(a, b)["p"]
    gap = f"{100 * (mean_a - mean_b):.1f} points ({seeds})"
    test = f"Welch t-test {_format_p(p)}"
    if p < alpha:
        return f"{name_a} beats {name_b} by {gap}; this is larger than the seed-to-seed noise ({test})."
    return (f"{name_a} is ahead of {name_b} by {gap}, but this is within the seed-to-seed noise "
            f"({test}): no real difference shown.")


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
