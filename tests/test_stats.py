"""Seed-to-seed statistics against a published Welch example (R), hand-made numbers and numerical integration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.analysis.stats import TIME_TO_TARGET, compare, compare_verdict, mean_band, welch_t_test

# R's sleep data; `t.test(extra ~ group, data = sleep)` (Welch by default) reports
# t = -1.8608, df = 17.776, p-value = 0.07939, 95 percent confidence interval -3.3654832 0.2054832.
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


def test_welch_reproduces_r_sleep_example() -> None:
    result = welch_t_test(SLEEP_1, SLEEP_2)
    assert result["t"] == pytest.approx(-1.8608, abs=1e-4)
    assert result["df"] == pytest.approx(17.776, abs=1e-3)
    assert result["p"] == pytest.approx(0.07939, abs=1e-5)
    assert result["low"] == pytest.approx(-3.3654832, abs=1e-6)
    assert result["high"] == pytest.approx(0.2054832, abs=1e-6)


def test_welch_on_hand_made_numbers() -> None:
    # means 2 and 5, both variances 1: t = -3 / sqrt(1/3 + 1/3), df = 4 exactly.
    result = welch_t_test([1, 2, 3], [4, 5, 6])
    assert result["t"] == pytest.approx(-3 / math.sqrt(2 / 3), abs=1e-12)
    assert result["df"] == pytest.approx(4.0, abs=1e-12)
    assert result["p"] == pytest.approx(t_p_by_integration(3 / math.sqrt(2 / 3), 4), abs=1e-9)
    # 95% interval: difference -3 +- t_{0.975, 4} * sqrt(2/3), with t_{0.975, 4} = 2.776445 (tables).
    assert result["low"] == pytest.approx(-3 - 2.776445 * math.sqrt(2 / 3), abs=1e-5)
    assert result["high"] == pytest.approx(-3 + 2.776445 * math.sqrt(2 / 3), abs=1e-5)
    # Unequal spreads: var/n = 5/12 and 25, so t = -12.5 / sqrt(25 + 5/12) and
    # df = (25 + 5/12)^2 / ((5/12)^2 / 3 + 25^2 / 1) = 1.03351541...
    result = welch_t_test([1, 2, 3, 4], [10, 20])
    assert result["t"] == pytest.approx(-12.5 / math.sqrt(25 + 5 / 12), abs=1e-12)
    assert result["df"] == pytest.approx(1.0335154152393298, abs=1e-12)
    assert result["p"] == pytest.approx(t_p_by_integration(result["t"], result["df"]), abs=1e-9)
    assert welch_t_test([4, 5, 6], [1, 2, 3])["t"] > 0


def test_welch_without_any_spread_and_with_too_few_values() -> None:
    assert welch_t_test([0.5, 0.5], [0.5, 0.5, 0.5]) == {"t": 0.0, "df": 3.0, "p": 1.0, "low": 0.0, "high": 0.0}
    assert welch_t_test([0.75, 0.75], [0.5, 0.5]) == {"t": math.inf, "df": 2.0, "p": 0.0, "low": 0.25, "high": 0.25}
    with pytest.raises(ValueError, match="at least 2 values per group, got 1 and 3"):
        welch_t_test([0.9], [0.8, 0.7, 0.6])


def test_verdict_when_the_gap_beats_the_noise() -> None:
    verdict = compare_verdict("batch 256", [0.85, 0.86, 0.84], "batch 32", [0.90, 0.91, 0.92])
    assert verdict.startswith("batch 32 beats batch 256 by 6.0 points (mean of 3 seeds each)")
    assert "larger than the seed-to-seed noise" in verdict
    p = welch_t_test([0.90, 0.91, 0.92], [0.85, 0.86, 0.84])["p"]
    assert p < 0.05 and f"p={p:.3g}" in verdict


def test_verdict_gives_the_confidence_interval_of_the_gap_in_points() -> None:
    # Both sds 0.01, n = 3: standard error sqrt(2 * 0.0001 / 3), df = 4, t_{0.975, 4} = 2.776445 (tables):
    # 0.06 +- 0.022669 -> 95% interval 0.037331 to 0.082669.
    verdict = compare_verdict("batch 32", [0.90, 0.91, 0.92], "batch 256", [0.85, 0.86, 0.84])
    assert "(mean of 3 seeds each), between 3.7 and 8.3 points with 95% confidence; this is larger" in verdict
    result = compare("batch 32", [0.90, 0.91, 0.92], "batch 256", [0.85, 0.86, 0.84])
    assert result.settled is True and result.text == verdict
    assert result.low == pytest.approx(0.037331, abs=1e-6) and result.high == pytest.approx(0.082669, abs=1e-6)


def test_time_to_target_verdict_prefers_the_shorter_time() -> None:
    slow, fast = [130.0, 120.0, 125.0], [60.0, 65.0, 70.0]
    result = compare("batch size 32", slow, "batch size 256", fast, TIME_TO_TARGET)
    assert result.text.startswith("batch size 256 reaches the target sooner than batch size 32, by 60.0 s (mean of 3 "
                                  "seeds each), between ")
    assert "larger than the seed-to-seed noise" in result.text and result.settled is True
    assert 0 < result.low < 60 < result.high  # the interval of the leader's advantage, in seconds
    close = compare("batch size 32", [61.0, 70.0], "batch size 256", [60.0, 75.0], TIME_TO_TARGET)
    assert close.settled is False and "within the seed-to-seed noise" in close.text
    assert close.low < 0 < close.high
    alone = compare("batch size 32", [61.0], "batch size 256", [60.0, 75.0], TIME_TO_TARGET)
    assert alone.settled is None
    assert alone.text.startswith("cannot tell whether batch size 32 or batch size 256 reaches the target sooner")


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
