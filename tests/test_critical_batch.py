"""The trade-off fit recovers S_min, E_min and B_crit from points drawn off a known curve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.analysis.critical_batch import TradeoffError, fit_steps, fit_tradeoff, predicted_steps

S_MIN, B_CRIT = 2000.0, 100.0
E_MIN = S_MIN * B_CRIT
BATCHES = np.array([16.0, 32.0, 64.0, 128.0, 256.0])


def on_curve(batches: np.ndarray, noise: float = 0.0, seed: int = 0) -> tuple[list[float], list[float]]:
    """Steps S = S_min (1 + B_crit/B), optionally with log-normal noise; samples E = B S as in a real run."""
    rng = np.random.default_rng(seed)
    steps = S_MIN * (1.0 + B_CRIT / batches) * np.exp(rng.normal(0.0, noise, len(batches)))
    return list(steps), list(batches * steps)


def test_exact_points_give_back_the_parameters_and_a_curve_on_the_tradeoff() -> None:
    fit = fit_tradeoff(*on_curve(BATCHES), curve_points=20)
    assert fit["s_min"] == pytest.approx(S_MIN, rel=1e-6)
    assert fit["e_min"] == pytest.approx(E_MIN, rel=1e-6)
    assert fit["b_crit"] == pytest.approx(B_CRIT, rel=1e-6)
    assert fit["residual"] < 1e-6
    assert fit["points"] == 5 and fit["extrapolated"] is False
    assert len(fit["curve"]) == 20
    for s, e in fit["curve"]:
        assert (s / fit["s_min"] - 1.0) * (e / fit["e_min"] - 1.0) == pytest.approx(1.0)
    assert fit["curve"][0][0] > fit["curve"][-1][0]  # small batches first: many steps, few samples


def test_three_points_are_enough() -> None:
    fit = fit_tradeoff(*on_curve(np.array([32.0, 128.0, 512.0])))
    assert fit["b_crit"] == pytest.approx(B_CRIT, rel=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_noisy_points_land_near_the_parameters(seed: int) -> None:
    fit = fit_tradeoff(*on_curve(BATCHES, noise=0.02, seed=seed))
    assert fit["b_crit"] == pytest.approx(B_CRIT, rel=0.2)
    assert fit["s_min"] == pytest.approx(S_MIN, rel=0.1)
    assert 0.0 < fit["residual"] < 0.04  # the fit's misfit is on the scale of the 2% noise


def test_critical_batch_beyond_the_tried_sizes_is_flagged_as_extrapolated() -> None:
    batches = np.array([4.0, 8.0, 16.0, 32.0])  # all below B_CRIT = 100
    fit = fit_tradeoff(*on_curve(batches))
    assert fit["b_crit"] == pytest.approx(B_CRIT, rel=1e-4)
    assert fit["extrapolated"] is True


def test_too_few_batch_sizes_are_refused() -> None:
    steps, samples = on_curve(BATCHES[:2])
    with pytest.raises(TradeoffError, match="3 or more batch sizes"):
        fit_tradeoff(steps, samples)
    repeats = on_curve(np.array([32.0, 32.0, 32.0, 64.0]))  # four runs, two batch sizes
    with pytest.raises(TradeoffError, match="got 2"):
        fit_tradeoff(*repeats)


def test_no_tradeoff_in_the_points_is_refused_with_the_direction() -> None:
    flat = [1000.0, 1000.0, 1000.0]  # steps do not fall: every batch is far above B_crit
    with pytest.raises(TradeoffError, match="below the smallest batch tried"):
        fit_tradeoff(flat, [1000.0 * b for b in (64, 128, 256)])
    samples = [64000.0] * 3  # samples constant: steps halve with each doubling
    with pytest.raises(TradeoffError, match="above the largest batch tried"):
        fit_tradeoff([1000.0, 500.0, 250.0], samples)


@pytest.mark.parametrize(
    "steps, samples, message",
    [
        ([1.0, 2.0], [10.0, 20.0, 30.0], "2 step counts but 3"),
        ([100.0, -1.0, 50.0], [1000.0, 2000.0, 3000.0], "positive"),
        ([100.0, math.nan, 50.0], [1000.0, 2000.0, 3000.0], "finite"),
        ([100.0, 200.0, 50.0], [1000.0, 100.0, 3000.0], "samples >= steps"),
    ],
)
def test_bad_numbers_are_refused(steps: list[float], samples: list[float], message: str) -> None:
    with pytest.raises(TradeoffError, match=message):
        fit_tradeoff(steps, samples)


@pytest.mark.parametrize("seed", range(4))
def test_the_fit_is_the_least_squares_minimum_in_log_space(seed: int) -> None:
    """Against a brute-force search: for each B_noise on a fine grid, the best log S_min is the mean residual."""
    steps, _ = on_curve(BATCHES, noise=0.15, seed=seed)
    fit = fit_steps(list(BATCHES), steps)
    log_steps = np.log(steps)
    grid = np.exp(np.linspace(np.log(1.0), np.log(5000.0), 20001))
    residuals = log_steps[None, :] - np.log1p(grid[:, None] / BATCHES[None, :])
    rss = ((residuals - residuals.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    best = int(np.argmin(rss))
    assert fit["b_noise"] == pytest.approx(grid[best], rel=2e-3)
    assert fit["residual"] ** 2 * len(BATCHES) <= rss[best] + 1e-12  # never worse than the grid's best
    assert fit["b_crit"] == fit["b_noise"] and fit["e_min"] == pytest.approx(fit["s_min"] * fit["b_noise"])


def test_two_points_determine_the_curve_for_leave_one_out_checks() -> None:
    fit = fit_steps([16.0, 256.0], [1000.0, 300.0], min_sizes=2)
    # S = a + b/B through both points: b = 700 / (1/16 - 1/256), a = 300 - b/256.
    b = 700 / (1 / 16 - 1 / 256)
    assert fit["s_min"] == pytest.approx(300 - b / 256, rel=1e-9)
    assert fit["b_noise"] == pytest.approx(b / (300 - b / 256), rel=1e-9)
    assert predicted_steps(fit, 64.0) == pytest.approx(440.0, rel=1e-9)
    with pytest.raises(TradeoffError, match="3 or more batch sizes"):
        fit_steps([16.0, 256.0], [1000.0, 300.0])
