"""Steps to target against batch size: McCandlish et al.'s (2018) trade-off
(S/S_min - 1)(E/E_min - 1) = 1 between optimizer steps S and training samples E.

Along that curve a run at batch size B needs S(B) = S_min (1 + B_noise/B) steps and
E = E_min (1 + B/B_noise) samples, with B_noise = E_min / S_min, the critical batch size: below it,
doubling the batch nearly halves the steps; above it, it mostly wastes samples. One fit serves
both the critical batch size and the predicted steps at untried sizes.

The fit is least squares on log S (relative misfit, as steps to target vary over orders of
magnitude). It starts from the exact answer of the same model written as S = a + b/B, linear in
(a, b) >= 0 when weighted by 1/S, then refines in log space with scipy's bounded least squares.
The linear form also says when the data have no trade-off at all: a = 0 (steps fall in proportion
to the batch: B_noise above every size tried) or b = 0 (steps do not fall: B_noise below them).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import optimize

RANGE_FACTOR = 100.0  # B_noise is searched from (smallest batch / 100) to (largest batch * 100)


class TradeoffError(ValueError):
    """The points cannot support a fit; the message says why in one line."""


def tradeoff_curve(s_min: float, b_crit: float, batch_low: float, batch_high: float, n: int = 50) -> list[list[float]]:
    """[steps, samples] points of the fitted curve for batch sizes from batch_low to batch_high."""
    e_min = s_min * b_crit
    points = []
    for i in range(n):
        b = batch_low * (batch_high / batch_low) ** (i / (n - 1))
        points.append([s_min * (1.0 + b_crit / b), e_min * (1.0 + b / b_crit)])
    return points


def predicted_steps(fit: dict[str, Any], batch_size: float) -> float:
    """S(B) of a fit from fit_steps."""
    return fit["s_min"] * (1.0 + fit["b_noise"] / batch_size)


def fit_steps(batch_sizes: Sequence[float], steps: Sequence[float], curve_points: int = 50,
              min_sizes: int = 3) -> dict[str, Any]:
    """Fit S(B) = S_min (1 + B_noise/B) to steps to target at batch sizes (repeats may share a size).

    Returns s_min, b_noise, b_crit (the same number), e_min, residual (root-mean-square error of
    log steps, roughly the relative misfit), points, extrapolated (B_noise outside the sizes
    tried) and curve ([steps, samples] from half the smallest to twice the largest batch size).
    ``min_sizes`` below 3 is for leave-one-out checks: two points determine the two parameters.
    Raises TradeoffError when the points cannot support a fit.
    """
    if len(batch_sizes) != len(steps):
        raise TradeoffError(f"critical batch: {len(batch_sizes)} batch sizes but {len(steps)} step counts")
    if any(not (_positive(b) and _positive(s)) for b, s in zip(batch_sizes, steps)):
        raise TradeoffError("critical batch: batch sizes and steps must be finite and positive")
    distinct = {round(float(b), 6) for b in batch_sizes}
    if len(distinct) < min_sizes:
        raise TradeoffError(
            f"critical batch: needs runs at {min_sizes} or more batch sizes that reach the target, got {len(distinct)}")
    batches, counts = np.asarray(batch_sizes, dtype=float), np.asarray(steps, dtype=float)
    low, high = min(batches) / RANGE_FACTOR, max(batches) * RANGE_FACTOR
    below = (f"critical batch: steps to target do not fall as the batch grows, so B_crit is below the smallest "
             f"batch tried ({min(batches):g}) and smaller batches would locate it")
    above = (f"critical batch: steps to target fall in proportion to the batch, so B_crit is above the largest "
             f"batch tried ({max(batches):g}) and larger batches would locate it")
    # S = a + b/B, each row divided by S so that the misfit is relative, as in log space.
    linear = optimize.lsq_linear(np.column_stack([1.0 / counts, 1.0 / (batches * counts)]), np.ones_like(counts),
                                 bounds=(0.0, np.inf), method="bvls")
    a, b = linear.x
    if linear.active_mask[0] != 0 or a <= 0.0:
        raise TradeoffError(above)
    if linear.active_mask[1] != 0 or b <= 0.0:
        raise TradeoffError(below)
    log_low, log_high = math.log(low), math.log(high)
    start = [math.log(a), min(max(math.log(b / a), log_low + 1e-9), log_high - 1e-9)]
    log_steps = np.log(counts)

    def residuals(params: np.ndarray) -> np.ndarray:
        return log_steps - params[0] - np.log1p(np.exp(params[1]) / batches)

    result = optimize.least_squares(residuals, start, bounds=([-np.inf, log_low], [np.inf, log_high]),
                                    ftol=1e-14, xtol=1e-14, gtol=1e-14)
    log_s_min, log_b_noise = result.x
    if log_b_noise <= log_low + 1e-6:
        raise TradeoffError(below)
    if log_b_noise >= log_high - 1e-6:
        raise TradeoffError(above)
    s_min, b_noise = math.exp(log_s_min), math.exp(log_b_noise)
    return {
        "s_min": s_min,
        "b_noise": b_noise,
        "b_crit": b_noise,
        "e_min": s_min * b_noise,
        "residual": math.sqrt(float(np.mean(residuals(result.x) ** 2))),
        "points": len(batches),
        "extrapolated": not min(batches) <= b_noise <= max(batches),
        "curve": tradeoff_curve(s_min, b_noise, min(batches) / 2, max(batches) * 2, curve_points),
    }


def fit_tradeoff(steps: Sequence[float], samples: Sequence[float], curve_points: int = 50) -> dict[str, Any]:
    """The same fit from (steps, samples) to target per run: each run's batch size is E/S, its
    average batch (a last, smaller batch of an epoch counts as it was)."""
    if len(steps) != len(samples):
        raise TradeoffError(f"critical batch: {len(steps)} step counts but {len(samples)} sample counts")
    if any(not (_positive(s) and _positive(e) and s <= e) for s, e in zip(steps, samples)):
        raise TradeoffError("critical batch: steps and samples must be finite, positive, with samples >= steps")
    return fit_steps([e / s for s, e in zip(steps, samples)], steps, curve_points)


def _positive(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0
