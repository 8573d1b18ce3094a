"""Seed-to-seed statistics against closed forms, published tables and a published Welch example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.analysis.stats import compare_verdict, mean_band, regularized_beta, t_two_sided_p, welch_t_test

# Two-sided critical values of Student's t from standard tables: (df, t, two-sided p).
T_TABLE = [
    (1, 12.7062, 0.05), (1, 63.6567, 0.01), (2, 4.3027, 0.05), (3, 5.8409, 0.01), (4, 2.7764, 0.05),
    (5, 2.5706, 0.05), (7, 1.8946, 0.10), (10, 2.2281, 0.05), (20, 2.8453, 0.01), (30, 2.0423, 0.05),
    (60, 1.6706, 0.10), (120, 1.9799, 0.05),
]

# R's sleep data; `t.test(extra ~ group, data = sleep)` (Welch by default) reports
# t = -1.8608, df = 17.776, p-value = 0.07939.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def t_p_by_integration(t: float, df: float) -> float:
    """Two-sided p from Simpson's rule on the t density over [0, |t|]: independent of the beta code."""
    xs = np.linspace(0.0, abs(t), 20_001)
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    density = np.exp(log_norm - (df + 1) / 2 * np.log1p(xs**2 / df))
    h = xs[1] - xs[0]
    area = h / 3 * (density[0] + density[-1] + 4 * density[1:-1:2].sum() + 2 * density[2:-1:2].sum())
    return 1.0 - 2.0 * area


@pytest.mark.parametrize("df,t,p", T_TABLE)
def test_t_p_matches_tabulated_quantiles(df: int, t: float, p: float) -> None:
    assert t_two_sided_p(t, df) == pytest.approx(p, abs=1e-4)
    assert t_two_sided_p(-t, df) == pytest.approx(p, abs=1e-4)


@pytest.mark.parametrize("t", [0.0, 0.01, 0.5, 1.0, 2.0, 5.0, 30.0, 1e4])
def test_t_p_matches_closed_forms(t: float) -> None:
    # df 1 is the Cauchy distribution; df 2 and 4 have elementary CDFs.
    assert t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), abs=1e-12)
    assert t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-12)
    u = t * t / 4
    half_mass = 3 / 8 * t / math.sqrt(1 + u) * (1 - u / (3 * (1 + u)))
    assert t_two_sided_p(t, 4) == pytest.approx(1 - 2 * half_mass, abs=1e-12)


@pytest.mark.parametrize("df,t", [(1.0335, 2.4794), (2.5, 1.3), (7.3, 2.2), (17.776, 1.8608), (45.5, 0.4)])
def test_t_p_with_fractional_df_matches_numerical_integration(df: float, t: float) -> None:
    assert t_two_sided_p(t, df) == pytest.approx(t_p_by_integration(t, df), abs=1e-9)


def test_t_p_edges() -> None:
    assert t_two_sided_p(math.inf, 3) == 0.0
    assert t_two_sided_p(0.0, 3) == 1.0
    # Many degrees of freedom: the normal distribution.
    assert t_two_sided_p(1.959964, 1e7) == pytest.approx(0.05, abs=1e-6)
    assert t_two_sided_p(2.0, 1e6) == pytest.approx(math.erfc(2 / math.sqrt(2)), abs=1e-6)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_two_sided_p(1.0, 0)


def test_regularized_beta_known_values() -> None:
    assert regularized_beta(1, 1, 0.3) == pytest.approx(0.3, abs=1e-14)
    assert regularized_beta(3, 1, 0.7) == pytest.approx(0.7**3, abs=1e-14)
    assert regularized_beta(1, 4, 0.2) == pytest.approx(1 - 0.8**4, abs=1e-14)
    assert regularized_beta(2.5, 0.5, 0.9) == pytest.approx(1 - regularized_beta(0.5, 2.5, 0.1), abs=1e-14)
    assert regularized_beta(2, 3, 0.0) == 0.0 and regularized_beta(2, 3, 1.0) == 1.0


def test_welch_reproduces_r_sleep_example() -> None:
    result = welch_t_test(SLEEP_1, SLEEP_2)
    assert result["t"] == pytest.approx(-1.8608, abs=1e-4)
    assert result["df"] == pytest.approx(17.776, abs=1e-3)
    assert result["p"] == pytest.approx(0.07939, abs=1e-5)


def test_welch_on_hand_made_numbers() -> None:
    # means 2 and 5, both variances 1: t = -3 / sqrt(1/3 + 1/3), df = 4 exactly.
    result = welch_t_test([1, 2, 3], [4, 5, 6])
    assert result["t"] == pytest.approx(-3 / math.sqrt(2 / 3), abs=1e-12)
    assert result["df"] == pytest.approx(4.0, abs=1e-12)
    assert result["p"] == pytest.approx(t_two_sided_p(3 / math.sqrt(2 / 3), 4), abs=1e-12)
    # Unequal spreads: var/n = 5/12 and 25, so t = -12.5 / sqrt(25 + 5/12) and
    # df = (25 + 5/12)^2 / ((5/12)^2 / 3 + 25^2 / 1) = 1.03351541...
    result = welch_t_test([1, 2, 3, 4], [10, 20])
    assert result["t"] == pytest.approx(-12.5 / math.sqrt(25 + 5 / 12), abs=1e-12)
    assert result["df"] == pytest.approx(1.0335154152393298, abs=1e-12)
    assert result["p"] == pytest.approx(t_p_by_integration(result["t"], result["df"]), abs=1e-9)
    assert welch_t_test([4, 5, 6], [1, 2, 3])["t"] > 0


def test_welch_without_any_spread_and_with_too_few_values() -> None:
    assert welch_t_test([0.5, 0.5], [0.5, 0.5, 0.5]) == {"t": 0.0, "df": 3.0, "p": 1.0}
    assert welch_t_test([0.75, 0.75], [0.5, 0.5])["p"] == 0.0
    with pytest.raises(ValueError, match="at least 2 values per group, got 1 and 3"):
        welch_t_test([0.9], [0.8, 0.7, 0.6])


def test_verdict_when_the_gap_beats_the_noise() -> None:
    verdict = compare_verdict("batch 256", [0.85, 0.86, 0.84], "batch 32", [0.90, 0.91, 0.92])
    assert verdict.startswith("batch 32 beats batch 256 by 6.0 points (mean of 3 seeds each)")
    assert "larger than the seed-to-seed noise" in verdict
    p = welch_t_test([0.90, 0.91, 0.92], [0.85, 0.86, 0.84])["p"]
    assert p < 0.05 and f"p={p:.3g}" in verdict


def test_verdict_when_the_gap_is_within_the_noise() -> None:
    verdict = compare_verdict("batch 32", [0.90, 0.85, 0.92], "batch 256", [0.88, 0.86, 0.89, 0.87])
    assert verdict.startswith("batch 32 is ahead of batch 256 by 1.5 points (mean of 3 and 4 seeds)")
    assert "within the seed-to-seed noise" in verdict and "beats" not in verdict


def test_verdict_follows_alpha() -> None:
    # The sleep example has p = 0.079: real at the 10% level, not at 5%.
    a = [v / 10 for v in SLEEP_2]
    b = [v / 10 for v in SLEEP_1]
    assert "within the seed-to-seed noise (Welch t-test p=0.0794)" in compare_verdict("A", a, "B", b)
    assert "larger than the seed-to-seed noise" in compare_verdict("A", a, "B", b, alpha=0.10)


def test_verdict_cannot_tell_with_one_repeat_or_failed_runs() -> None:
    verdict = compare_verdict("batch 32", [0.9], "batch 256", [0.8])
    assert verdict.startswith("cannot tell") and "need at least 2 repeats per batch size" in verdict
    # A failed run has no best accuracy (null in the record): it does not count as a repeat.
    verdict = compare_verdict("batch 32", [0.9, None, math.nan], "batch 256", [0.8, 0.7, 0.75])
    assert verdict.startswith("cannot tell") and "(have 1 and 3)" in verdict


def test_verdict_on_equal_means() -> None:
    verdict = compare_verdict("batch 32", [0.75, 0.5], "batch 64", [0.5, 0.75])
    assert verdict == "batch 32 and batch 64 tie at 62.5% (mean of 2 seeds each): no difference at all."


def test_mean_band_over_curves_of_different_lengths() -> None:
    means, lows, highs = mean_band([[0.5, 0.6, 0.7], [0.7, 0.8], [0.6, None, 0.9, 0.95]])
    assert means == pytest.approx([0.6, 0.7, 0.8, 0.95])
    # sample std: index 0 -> 0.1, index 1 -> sqrt(0.02) = 0.1414, index 2 -> sqrt(0.02); index 3 one value.
    std = math.sqrt(0.02)
    assert lows == pytest.approx([0.5, 0.7 - std, 0.8 - std, 0.95])
    assert highs == pytest.approx([0.7, 0.7 + std, 0.8 + std, 0.95])


def test_mean_band_edges() -> None:
    assert mean_band([]) == ([], [], [])
    means, lows, highs = mean_band([[None, 0.4], [math.nan]])
    assert math.isnan(means[0]) and math.isnan(lows[0]) and math.isnan(highs[0])
    assert (means[1], lows[1], highs[1]) == (0.4, 0.4, 0.4)
