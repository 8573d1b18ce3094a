"""Critical batch size from runs that reached the target: McCandlish et al.'s trade-off
(S/S_min - 1)(E/E_min - 1) = 1 between optimizer steps S and training samples E.

Along that curve a run at batch size B = E/S needs S = S_min (1 + B_crit/B) steps and
E = E_min (1 + B/B_crit) samples, with B_crit = E_min / S_min: below B_crit, doubling the batch
nearly halves the steps; above it, it mostly wastes samples. Since E = B S, both relations are
the same equation, so the fit is least squares on log S over two parameters. For a given B_crit
the best log S_min is the mean residual, which leaves a one-dimensional search over log B_crit:
a grid then golden-section refinement, which cannot diverge or stall the way Newton steps can.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

GRID_POINTS = 400
RANGE_FACTOR = 100.0  # search B_crit from (smallest batch / 100) to (largest batch * 100)


class TradeoffError(ValueError):
    """The points cannot support a fit; the message says why in one line."""


def _residuals(log_steps: list[float], batches: list[float], log_b_crit: float) -> tuple[float, float]:
    """(best log S_min, residual sum of squares) for one candidate B_crit."""
    b_crit = math.exp(log_b_crit)
    r = [ls - math.log1p(b_crit / b) for ls, b in zip(log_steps, batches)]
    log_s_min = sum(r) / len(r)
    return log_s_min, sum((x - log_s_min) ** 2 for x in r)


def tradeoff_curve(s_min: float, b_crit: float, batch_low: float, batch_high: float, n: int = 50) -> list[list[float]]:
    """[steps, samples] points of the fitted curve for batch sizes from batch_low to batch_high."""
    e_min = s_min * b_crit
    points = []
    for i in range(n):
        b = batch_low * (batch_high / batch_low) ** (i / (n - 1))
        points.append([s_min * (1.0 + b_crit / b), e_min * (1.0 + b / b_crit)])
    return points


def fit_tradeoff(steps: Sequence[float], samples: Sequence[float], curve_points: int = 50) -> dict[str, Any]:
    """Fit S_min and E_min to (steps, samples) to target of runs at different batch sizes.

    Returns s_min, e_min, b_crit, residual (root-mean-square error of log steps, roughly the
    relative misfit), points, extrapolated (B_crit outside the batch sizes tried) and curve
    ([steps, samples] pairs from half the smallest to twice the largest batch size).
    Raises TradeoffError when the points cannot support a fit.
    """
    if len(steps) != len(samples):
        raise TradeoffError(f"critical batch: {len(steps)} step counts but {len(samples)} sample counts")
    pairs = list(zip(steps, samples))
    if any(not (math.isfinite(s) and math.isfinite(e) and 0 < s <= e) for s, e in pairs):
        raise TradeoffError("critical batch: steps and samples must be finite, positive, with samples >= steps")
    batches = [e / s for s, e in pairs]
    distinct = sorted({round(b, 6) for b in batches})
    if len(distinct) < 3:
        raise TradeoffError(
            f"critical batch: needs runs at 3 or more batch sizes that reach the target, got {len(distinct)}"
        )
    log_steps = [math.log(s) for s in steps]
    low, high = math.log(min(batches) / RANGE_FACTOR), math.log(max(batches) * RANGE_FACTOR)
    grid = [low + (high - low) * i / (GRID_POINTS - 1) for i in range(GRID_POINTS)]
    rss = [_residuals(log_steps, batches, c)[1] for c in grid]
    best = min(range(GRID_POINTS), key=rss.__getitem__)
    if best == 0:
        raise TradeoffError(
            f"critical batch: steps to target do not fall as the batch grows, so B_crit is below the "
            f"smallest batch tried ({min(batches):g}) and smaller batches would locate it"
        )
    if best == GRID_POINTS - 1:
        raise TradeoffError(
            f"critical batch: steps to target fall in proportion to the batch, so B_crit is above the "
            f"largest batch tried ({max(batches):g}) and larger batches would locate it"
        )
    log_b_crit = _golden_min(lambda c: _residuals(log_steps, batches, c)[1], grid[best - 1], grid[best + 1])
    log_s_min, final_rss = _residuals(log_steps, batches, log_b_crit)
    s_min, b_crit = math.exp(log_s_min), math.exp(log_b_crit)
    return {
        "s_min": s_min,
        "e_min": s_min * b_crit,
        "b_crit": b_crit,
        "residual": math.sqrt(final_rss / len(batches)),
        "points": len(batches),
        "extrapolated": not min(batches) <= b_crit <= max(batches),
        "curve": tradeoff_curve(s_min, b_crit, min(batches) / 2, max(batches) * 2, curve_points),
    }


def _golden_min(f: Callable[[float], float], a: float, b: float, tol: float = 1e-10) -> float:
    """Minimum of a unimodal f on [a, b] by golden-section search."""
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    return (a + b) / 2.0
