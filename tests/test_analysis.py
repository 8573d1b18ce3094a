"""engine.analysis.summary and the closing text of `main.py run`, on hand-made records whose answers are known."""

from __future__ import annotations

import json

import pytest

from engine.analysis.summary import load_probe, summarize
from engine.cli.terminal import conclusions, fmt_reach, results_table


def history(accuracies: list[float], batch: int, train: int = 1000) -> list[dict]:
    steps = -(-train // batch)
    return [{"epoch": i + 1, "loss": 1.0, "accuracy": a, "val_loss": 1.0, "val_accuracy": a, "lr": 0.001,
             "steps": steps * (i + 1), "samples": train * (i + 1), "seconds": 10.0, "elapsed": 10.0 * (i + 1),
             "images_per_s": 100.0} for i, a in enumerate(accuracies)]


def run(index: int, batch: int, accuracies: list[float], repeat: int = 0, lr: float = 0.001) -> dict:
    best = max(range(len(accuracies)), key=accuracies.__getitem__) if accuracies else None
    return {"run_index": index, "batch_size": batch, "repeat": repeat, "seed": repeat, "status": "completed",
            "error": None, "lr": lr, "history": history(accuracies, batch), "epochs_run": len(accuracies),
            "seconds_per_epoch": 10.0, "images_per_s": 100.0,
            "best": {"epoch": best + 1, "val_accuracy": accuracies[best], "val_loss": 1.0} if accuracies else None}


def record(runs: list[dict], sizes: list[int], repeats: int = 1, target: float | None = None) -> dict:
    return {"config": {"batch_sizes": sizes, "repeats": repeats, "target_accuracy": target},
            "target_accuracy": target, "runs": runs}


def test_repeats_pool_per_batch_size_and_the_verdict_uses_them() -> None:
    runs = [run(0, 32, [0.5, 0.90]), run(1, 256, [0.3, 0.60]),
            run(2, 32, [0.5, 0.92], repeat=1), run(3, 256, [0.3, 0.62], repeat=1),
            run(4, 32, [0.6, 0.91], repeat=2), run(5, 256, [0.4, 0.61], repeat=2)]
    summary = summarize(record(runs, [32, 256], repeats=3))
    small, large = summary.batches
    assert [b.batch_size for b in summary.batches] == [32, 256]
    assert small.best_mean == pytest.approx(0.91) and small.best_std == pytest.approx(0.01)
    assert large.best_mean == pytest.approx(0.61)
    # Default target: 95% of the best run (0.92) = 0.874; only batch 32 reaches it, at epoch 2.
    assert summary.target_accuracy == pytest.approx(0.874)
    assert small.reached == 3 and small.to_target == {"epoch": 2, "steps": 64, "samples": 2000, "seconds": 20.0}
    assert large.reached == 0 and large.to_target is None
    assert summary.verdict.startswith("batch size 32 beats batch size 256 by 30.0 points")
    assert "larger than the seed-to-seed noise" in summary.verdict
    assert "Use batch size 32: it is the only one that reached the target of 87.4%" in summary.advice
    assert summary.critical is None
    assert summary.critical_problem == "needs 3 or more batch sizes that reach the target, 1 did"


def test_single_runs_say_the_noise_is_unknown() -> None:
    summary = summarize(record([run(0, 32, [0.8, 0.9]), run(1, 256, [0.7, 0.88])], [32, 256]))
    assert summary.batches[0].best_std is None
    # Both reached the target: the verdict is about time to target, as the advice is.
    assert summary.verdict.startswith("cannot tell whether batch size 32 or batch size 256 reaches the target sooner: "
                                      "need at least 2 repeats")
    assert summary.settled is None
    assert "Each batch size ran once, so run-to-run noise is unknown." in summary.advice
    assert "run the throughput probe" in summary.advice
    # ... so the advice carries the same uncertainty instead of contradicting it.
    assert "Use batch size" not in summary.advice
    assert summary.advice.startswith("Batch size 32 is the tentative pick: it reached the target of 85.5% fastest")
    assert "repeats to tell a gap from seed luck (--repeats 3)" in summary.advice
    assert "Untuned: one learning rate per batch size, so the gap may be the learning rate" in summary.advice


def test_critical_batch_is_fitted_from_three_sizes_on_mcCandlish_curve() -> None:
    s_min, b_crit = 200.0, 64.0
    runs = []
    for i, batch in enumerate([16, 64, 256]):
        steps = s_min * (1 + b_crit / batch)
        entry = {"epoch": 1, "val_accuracy": 0.9, "steps": steps, "samples": steps * batch, "elapsed": steps / 10}
        runs.append({**run(i, batch, [0.9]), "history": [entry]})
    summary = summarize(record(runs, [16, 64, 256], target=0.85))
    assert summary.critical["b_crit"] == pytest.approx(b_crit, rel=1e-3)
    assert summary.critical["s_min"] == pytest.approx(s_min, rel=1e-3)
    text = conclusions(summary)
    assert "Critical batch size: 64 (S_min 200 steps, E_min 12800 samples" in text


def test_probe_throughput_reaches_the_advice(tmp_path) -> None:
    probe = {"points": [{"batch_size": 32, "images_per_s": 100.0, "status": "ok"},
                        {"batch_size": 64, "images_per_s": 190.0, "status": "ok"},
                        {"batch_size": 128, "images_per_s": None, "status": "out_of_memory"}],
             "max_fitting_batch": 64}
    (tmp_path / "probe.json").write_text(json.dumps(probe))
    assert load_probe(tmp_path) == probe
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "probe.json").write_text("{not json")
    assert load_probe(tmp_path / "other") is None and load_probe(tmp_path / "none") is None
    runs = [run(0, 32, [0.8, 0.9]), run(1, 64, [0.7, 0.88])]
    for r in runs:
        for h in r["history"]:
            h["noise_scale"] = 50.0
    without = summarize(record(runs, [32, 64]))
    with_probe = summarize(record(runs, [32, 64]), probe)
    assert "run the throughput probe" in without.advice and "run the throughput probe" not in with_probe.advice
    assert with_probe.batches[0].noise_scale == 50.0


def test_failed_and_empty_runs_do_not_break_the_summary() -> None:
    failed = {**run(1, 512, []), "status": "failed", "error": "out of memory at this batch size"}
    summary = summarize(record([run(0, 32, [0.5, 0.7]), failed], [32, 512]))
    assert summary.batches[1].best_mean is None and summary.batches[1].reached == 0
    assert summary.verdict is None  # one batch size has a result: nothing to compare
    assert "Only batch size 32 has been trained" in summary.advice
    reaching = {**run(0, 32, [0.5, 0.7]), "time_to_target": {"epoch": 2, "steps": 64, "samples": 2000, "seconds": 20.0}}
    table = results_table(record([reaching, failed], [32, 512], target=0.6))
    assert "failed (out of memory at this batch size)" in table
    assert "ep 2, 64 steps, 00:20" in table and "not reached" in table


def test_fmt_reach_without_target() -> None:
    assert fmt_reach(None, None) == "-"
    assert fmt_reach(None, 0.9) == "not reached"
    empty = summarize(record([], []))
    assert empty.batches == [] and empty.target_accuracy is None
    assert empty.advice.startswith("No run has finished yet")
