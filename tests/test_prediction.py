"""Predicted time to target: the S(B) fit on tuned steps, seconds per step from trials and the probe,
the recommendation, and leave-one-out errors worked out by hand."""

from __future__ import annotations

import json

import pytest

from engine.analysis import tuning
from engine.analysis.finalize import finalize
from engine.analysis.prediction import leave_one_out, predict
from engine.analysis.summary import summarize
from engine.cli.terminal import conclusions
from tests.trial_records import experiment, on_curve, reaching, trial

S_MIN, B_NOISE = 200.0, 64.0
POINT_KEYS = {"batch_size", "steps", "seconds_per_step", "predicted_steps", "predicted_seconds", "measured_seconds",
              "source"}


def curve_record(seconds_per_step: dict[int, float], never: tuple[int, ...] = ()) -> dict:
    """Two lrs per batch size; the better one reaches the target exactly on S(B) = 200 (1 + 64/B)."""
    runs = []
    for batch, per_step in seconds_per_step.items():
        if batch in never:
            runs.append(trial(len(runs), batch, 0.001, 0, [0.5, 0.6, 0.7, 0.7], seconds_per_step=per_step))
            continue
        accuracies, steps = reaching(on_curve(S_MIN, B_NOISE, batch))
        runs.append(trial(len(runs), batch, 0.001, 0, accuracies, steps=steps, seconds_per_step=per_step))
        slower, more = reaching(1.5 * on_curve(S_MIN, B_NOISE, batch))
        runs.append(trial(len(runs), batch, 0.003, 1, slower, steps=more, seconds_per_step=per_step))
    return experiment(runs, list(seconds_per_step), target=0.85)


def test_exact_curve_gives_back_the_parameters_times_and_the_fastest_size() -> None:
    record = curve_record({16: 0.010, 32: 0.012, 64: 0.016, 128: 0.030, 256: 0.060, 512: 0.120}, never=(512,))
    entry, problem = predict(tuning.tune(record, 0.85))
    assert problem is None
    assert set(entry) == {"s_min", "b_noise", "fit_residual", "points", "loo_error", "recommended"}
    assert entry["s_min"] == pytest.approx(S_MIN, rel=1e-6) and entry["b_noise"] == pytest.approx(B_NOISE, rel=1e-6)
    assert entry["fit_residual"] < 1e-6 and entry["loo_error"] < 1e-6
    points = {p["batch_size"]: p for p in entry["points"]}
    assert all(set(p) == POINT_KEYS for p in entry["points"]) and list(points) == [16, 32, 64, 128, 256, 512]
    # T = S(B) x seconds/step: 16 -> 10 s, 32 -> 7.2, 64 -> 6.4, 128 -> 9, 256 -> 15, 512 -> 27.
    expected = {16: 10.0, 32: 7.2, 64: 6.4, 128: 9.0, 256: 15.0, 512: 27.0}
    for size, seconds in expected.items():
        assert points[size]["predicted_seconds"] == pytest.approx(seconds, rel=1e-6)
        assert points[size]["source"] == "trial"
    assert points[64]["measured_seconds"] == pytest.approx(6.4) and points[64]["steps"] == pytest.approx(400)
    assert points[512]["steps"] is None and points[512]["measured_seconds"] is None  # tried, never reached
    assert entry["recommended"] == {"batch_size": 64, "predicted_seconds": pytest.approx(6.4)}


def test_the_probe_ladder_fills_untried_sizes_that_fit_scaled_to_the_trials() -> None:
    record = curve_record({16: 0.010, 64: 0.016, 256: 0.050})
    ladder = {8: 1000.0, 16: 2000.0, 32: 4000.0, 64: 5000.0, 128: 6400.0, 256: 6400.0}
    probe = {"points": [{"batch_size": b, "images_per_s": ips, "status": "ok"} for b, ips in ladder.items()]
             + [{"batch_size": 512, "images_per_s": None, "status": "out_of_memory"}], "max_fitting_batch": 256}
    entry, _ = predict(tuning.tune(record, 0.85), probe)
    points = {p["batch_size"]: p for p in entry["points"]}
    assert list(points) == [8, 16, 32, 64, 128, 256]  # 512 does not fit
    assert {b: p["source"] for b, p in points.items()} == {8: "probe", 16: "trial", 32: "probe", 64: "trial",
                                                          128: "probe", 256: "trial"}
    # The trials take 1.25 times the probe's seconds per step (validation, epoch ends): probe sizes are scaled.
    assert points[32]["seconds_per_step"] == pytest.approx(32 / 4000 * 1.25)
    # T: 8 -> 18 s, 16 -> 10, 32 -> 6, 64 -> 6.4, 128 -> 7.5, 256 -> 12.5: the untried 32 is the fastest.
    assert points[32]["predicted_seconds"] == pytest.approx(6.0) and points[32]["measured_seconds"] is None
    assert entry["recommended"] == {"batch_size": 32, "predicted_seconds": pytest.approx(6.0)}
    summary = summarize(record, probe)
    assert "predicts that batch size 32, not trained yet, would reach the target in 6 s: train it to confirm" \
        in summary.advice
    text = conclusions(summary)
    assert "Prediction: S(B) = 200 (1 + 64/B) steps, leave-one-out error 0%" in text
    assert "fastest predicted: batch size 32 (00:06)" in text


def test_leave_one_out_refits_on_the_others_as_worked_out_by_hand() -> None:
    # Two points fix S = a + b/B exactly. Without 64: a = 253.33, b = 11946.7 -> 440 against 420 (4.76%);
    # without 16: a = 260, b = 10240 -> 900 against 1000 (10%); without 256: a = 226.67, b = 12373.3 -> 275
    # against 300 (8.33%).
    assert leave_one_out({16: 1000.0, 64: 420.0, 256: 300.0}) == pytest.approx((20 / 420 + 0.1 + 25 / 300) / 3)
    # Without 64 steps do not fall, without 16 they rise: no fit. Without 256: a = 100, b = 6400 -> 125
    # against 500, a 75% error: the one check there is.
    assert leave_one_out({16: 500.0, 64: 200.0, 256: 500.0}) == pytest.approx(0.75, rel=1e-6)
    assert leave_one_out({16: 500.0, 64: 500.0, 256: 500.0}) is None


def test_no_prediction_below_three_sizes_or_without_a_trade_off() -> None:
    two = curve_record({16: 0.01, 64: 0.016, 256: 0.05}, never=(256,))
    assert predict(tuning.tune(two, 0.85)) == (None, "needs 3 or more batch sizes that reach the target, 2 did")
    flat = experiment([trial(i, b, 0.001, 0, *reaching(500.0)[:1], steps=reaching(500.0)[1])
                       for i, b in enumerate((16, 64, 256))], [16, 64, 256], method="none", target=0.85)
    entry, problem = predict(tuning.tune(flat, 0.85))
    assert entry is None and problem.startswith("steps to target do not fall as the batch grows")
    assert finalize(flat)["prediction_problem"] == problem


def test_the_summary_critical_batch_and_the_prediction_are_one_fit() -> None:
    record = curve_record({16: 0.010, 64: 0.016, 256: 0.050})
    summary = summarize(record)
    assert summary.critical["b_crit"] == pytest.approx(B_NOISE, rel=1e-6)
    assert summary.prediction["b_noise"] == summary.critical["b_noise"]
    update = finalize(record)
    assert update["prediction"] == summary.prediction and update["prediction_problem"] is None
    json.dumps(update, allow_nan=False)  # the record stays standard JSON
