"""Successive halving: rung budgets and decisions as pure functions, then a real tuned study on image files."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import ExperimentConfig
from engine.events import RunPaused, RunStarted
from engine.record import store as rec
from engine.stop import StopToken
from engine.study.halving import decide, rung_epochs, rung_score
from engine.study.launch import run_experiment
from engine.study.resume import resume_experiment


def test_rung_budgets_grow_by_eta_and_end_at_the_whole_budget() -> None:
    assert rung_epochs(30, 3, 3) == [10, 30]
    assert rung_epochs(30, 9, 3) == [3, 10, 30]
    assert rung_epochs(30, 2, 3) == [10, 30]  # two rates: still one halving
    assert rung_epochs(30, 1, 3) == [30]  # nothing to choose between
    assert rung_epochs(1, 3, 3) == [1]  # no room for a rung
    assert rung_epochs(2, 9, 3) == [1, 2]  # budgets never fall below one epoch


def history(*pairs: tuple[float, float]) -> list[dict]:
    return [{"epoch": i + 1, "val_accuracy": acc, "val_loss": loss, "loss": loss}
            for i, (acc, loss) in enumerate(pairs)]


def trial(lr_index: int, hist: list[dict], repeat: int = 0) -> dict:
    return {"lr_index": lr_index, "repeat": repeat, "history": hist}


def test_the_best_third_go_on_ranked_by_accuracy_at_the_rung_then_loss() -> None:
    trials = [trial(0, history((0.5, 1.0), (0.9, 0.5))),  # its 0.9 comes after the rung: not counted
              trial(1, history((0.7, 0.9))),
              trial(2, history((0.7, 0.8)))]  # ties lr 1 on accuracy, lower loss wins
    assert rung_score(trials[0]["history"], 1) == (0.5, 1.0)
    decision = decide(trials, epochs=1, eta=3)
    assert decision.promoted == [2] and decision.halved == [0, 1]
    assert decide(trials, epochs=2, eta=3).promoted == [0]
    assert decide(trials, epochs=1, eta=2).promoted == [1, 2]  # ceil(3 / 2)


def test_seeds_are_pooled_and_a_trial_without_a_value_sinks_its_rate() -> None:
    trials = [trial(0, history((0.9, 0.5)), 0), trial(0, history((0.3, 1.0)), 1),  # mean 0.6
              trial(1, history((0.7, 0.6)), 0), trial(1, history((0.7, 0.6)), 1),  # mean 0.7
              trial(2, history((0.95, 0.1)), 0), trial(2, [{"epoch": 1, "val_accuracy": None}], 1)]
    assert decide(trials, epochs=1, eta=3).promoted == [1]


def config(data: Path, out: Path, **overrides) -> ExperimentConfig:
    values = dict(data_dir=str(data), batch_sizes=[4, 8], epochs=3, patience=0, image_size=32, out=str(out),
                  augment=False, lr_grid=3, lr_grid_factor=10.0, tune="halving", precision="fp32")
    values.update(overrides)
    return ExperimentConfig(**values)


@pytest.mark.slow
def test_a_halving_study_trains_the_best_rate_to_the_end_and_spends_less(tiny_data, tmp_path) -> None:
    events = []
    exp = run_experiment(config(tiny_data, tmp_path / "out"), events.append)
    record = rec.load(exp)
    tuning = record["tuning"]
    assert tuning["method"] == "halving" and tuning["eta"] == 3 and tuning["rungs"] == {"4": [1, 3], "8": [1, 3]}
    assert tuning["lrs"]["4"] == pytest.approx([1e-4, 1e-3, 1e-2])
    for size in (4, 8):
        trials = [r for r in record["runs"] if r["batch_size"] == size]
        assert [r["lr_index"] for r in trials] == [0, 1, 2]
        finished = [r for r in trials if r["trial"]["stop_reason"] == "completed"]
        assert len(finished) == 1 and finished[0]["epochs_run"] == 3 and finished[0]["trial"]["rung"] == 1
        for other in trials:
            if other is not finished[0]:
                assert other["trial"]["stop_reason"] in ("halved", "dead", "diverged")
                assert other["trial"]["stopped_at_rung"] == 0 and other["epochs_run"] == 1
        assert all(r["status"] == "completed" and r["state_file"] is None for r in trials)
    assert not list(exp.rglob("state.keras"))  # saved states go once their trials are final
    assert sum(r["epochs_run"] for r in record["runs"]) == 2 * (3 + 1 + 1)  # full grid: 2 * 3 * 3
    paused = [e for e in events if isinstance(e, RunPaused)]
    continued = [e for e in events if isinstance(e, RunStarted) and e.first_epoch == 1]
    assert len(paused) == 6 and len(continued) == 2


@pytest.mark.slow
def test_a_study_stopped_between_rungs_resumes_from_the_saved_states(tiny_data, tmp_path) -> None:
    stop = StopToken()

    def listener(event) -> None:
        if isinstance(event, RunPaused) and event.run_index == 5:  # every trial has reached rung 1
            stop.set()

    exp = run_experiment(config(tiny_data, tmp_path / "out"), listener, stop)
    record = rec.load(exp)
    assert record["status"] == "stopped"
    assert [r["status"] for r in record["runs"]] == ["pending"] * 6
    states = [exp / r["state_file"] for r in record["runs"]]
    assert all(state.is_file() for state in states)
    first_epochs = [r["history"][0] for r in record["runs"]]

    resumed = []
    resume_experiment(exp, resumed.append)
    record = rec.load(exp)
    assert record["status"] == "completed"
    assert [r["history"][0] for r in record["runs"]] == first_epochs  # kept, not retrained
    assert not any(isinstance(e, RunStarted) and e.first_epoch == 0 for e in resumed)
    assert sum(r["trial"]["stop_reason"] == "completed" for r in record["runs"]) == 2
    assert not any(state.exists() for state in states)


@pytest.mark.slow
def test_a_trial_that_never_leaves_chance_is_stopped_dead_after_the_first_rung(tiny_data, tmp_path) -> None:
    """lr 1e-9 cannot move the weights: its loss stays at the loss of guessing; it stops at rung 1 with a note."""
    exp = run_experiment(config(tiny_data, tmp_path / "out", batch_sizes=[8], lr_grid=1, lrs=[1e-9, 3e-3]))
    record = rec.load(exp)
    frozen, learning = record["runs"]
    assert frozen["trial"]["stop_reason"] == "dead" and frozen["trial"]["stopped_at_rung"] == 0
    assert frozen["epochs_run"] == 1 and "loss of guessing" in frozen["trial"]["note"]
    assert "lower learning rate" not in frozen["trial"]["note"] or "higher" in frozen["trial"]["note"]
    assert learning["trial"]["stop_reason"] in ("completed", "halved")
    assert record["tuning"]["best"] and record["tuning"]["compute"]["trial_epochs"] < \
        record["tuning"]["compute"]["full_grid_epochs"]
