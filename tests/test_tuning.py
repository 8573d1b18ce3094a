"""The tuned answer (best lr per batch size, band, censoring, verdict, heat map, compute), the target of
stopped and dead experiments, and the diagnoses, on hand-made trial records whose answers are known."""

from __future__ import annotations

import math

import pytest

from engine.analysis import tuning
from engine.analysis.diagnosis import diagnoses, explain, is_dead
from engine.analysis.finalize import finalize
from engine.analysis.summary import summarize
from engine.analysis.words import lr as lr_words
from engine.cli.terminal import conclusions
from engine.record.target import experiment_target
from tests.trial_records import experiment, reaching, trial

LRS = [0.0003, 0.001, 0.003]
PLATEAU = [0.5, 0.7, 0.8, 0.8]  # never reaches a target of 0.85
# Steps to target per (batch size, lr index), one per seed; None: that seed never reached it.
GRID = {
    16: [(800, 800), (600, 620), (500, None)],
    64: [(400, 420), (250, 260), (200, 210)],
}
# Batch 256 reaches nothing; best val accuracy per lr index and seed.
NEVER = [(0.80, 0.82), (0.84, 0.83), (0.70, 0.71)]


def grid_record() -> dict:
    runs = []
    for seed in (0, 1):
        for batch in (16, 64, 256):
            for i, lr in enumerate(LRS):
                if batch == 256:
                    top = NEVER[i][seed]
                    run = trial(len(runs), batch, lr, i, [0.5, 0.6, top - 0.01, top], seed=seed)
                elif GRID[batch][i][seed] is None:
                    run = trial(len(runs), batch, lr, i, PLATEAU, seed=seed)
                else:
                    accuracies, steps = reaching(GRID[batch][i][seed])
                    run = trial(len(runs), batch, lr, i, accuracies, seed=seed, steps=steps)
                runs.append(run)
    return experiment(runs, [16, 64, 256], repeats=2, target=0.85)


def test_best_lr_is_the_fewest_steps_with_every_seed_reaching_and_censored_trials_are_not_numbers() -> None:
    tuned = tuning.tune(grid_record(), 0.85)
    small, middle, large = tuned[16], tuned[64], tuned[256]
    # 16: lr 0.003 had the fastest seed (500 steps) but its other seed never reached: censored, not a mean.
    fast_but_censored = small.configurations[2]
    assert fast_but_censored.reached == 1 and fast_but_censored.trials == 2 and fast_but_censored.to_target is None
    assert small.best.lr == 0.001 and small.best.to_target["steps"] == pytest.approx(610)
    assert middle.best.lr == 0.003 and middle.best.to_target["steps"] == pytest.approx(205)
    assert middle.edge == "highest" and small.edge is None
    # 256 reached nothing: the best lr is the one with the highest best val accuracy.
    assert large.best.lr == 0.001 and large.best.best_val_accuracy == pytest.approx(0.835)
    assert large.best.to_target is None and large.lr_band == (0.001, 0.001)  # 0.81 is 2.5 points below
    assert small.lr_band == (0.0003, 0.001)  # 0.003 averages 0.865, 6.5 points below 0.93
    assert middle.lr_band == (0.0003, 0.003)
    assert all(t.state == "ok" for t in tuned.values())


def test_tuning_best_and_compute_are_the_record_entries_of_design_md() -> None:
    record = grid_record()
    update = finalize(record)
    assert set(update) == {"target_accuracy", "tuning", "prediction", "prediction_problem"}
    assert update["target_accuracy"] == 0.85
    best = update["tuning"]["best"]
    assert set(best) == {"16", "64", "256"}
    assert best["64"] == {"lr": 0.003, "lr_band": [0.0003, 0.003], "steps_to_target": pytest.approx(205),
                          "samples_to_target": pytest.approx(205 * 64), "seconds_to_target": pytest.approx(2.05),
                          "best_val_accuracy": pytest.approx(0.93), "reached": 2, "trials": 2}
    assert best["256"]["steps_to_target"] is None and best["256"]["seconds_to_target"] is None
    assert best["256"]["reached"] == 0 and best["256"]["lr"] == 0.001
    # 18 trials of 4 epochs each, against 18 x 10 planned epochs for the full grid.
    assert update["tuning"]["compute"] == {"trial_epochs": 72, "full_grid_epochs": 180}
    assert update["tuning"]["method"] == "grid" and update["tuning"]["lrs"]["16"] == LRS
    assert update["prediction"] is None
    assert update["prediction_problem"] == "needs 3 or more batch sizes that reach the target, 2 did"
    assert "tuning" in record and "best" not in record["tuning"]  # finalize does not touch the record


def test_the_verdict_compares_the_best_two_at_their_best_lrs_on_time_to_target() -> None:
    summary = summarize(grid_record())
    # 64 at lr 0.003: 2.0 and 2.1 s; 16 at lr 0.001: 6.0 and 6.2 s.
    assert summary.verdict.startswith("batch size 64 (lr 0.003) reaches the target sooner than batch size 16 "
                                      "(lr 0.001), by 4.0 s (mean of 2 seeds each), between ")
    assert "larger than the seed-to-seed noise" in summary.verdict and summary.settled is True
    assert summary.advice.startswith("Use batch size 64 at learning rate 0.003: it reached the target of 85.0% "
                                     "fastest, in 2.05 s against 6.1 s for 16 (256 never reached it).")
    assert "The best learning rate of batch size 64 was the highest tried" in summary.advice
    assert [b.lr for b in summary.batches] == [0.001, 0.003, 0.001]
    assert [len(b.runs) for b in summary.batches] == [2, 2, 2] and len(summary.batches[0].trials) == 6


def test_heat_cells_carry_accuracy_reach_rung_and_reason_per_lr_and_batch_size() -> None:
    cells = tuning.heat_cells(tuning.tune(grid_record(), 0.85))
    assert len(cells) == 9
    by_key = {(c.batch_size, c.lr): c for c in cells}
    censored = by_key[(16, 0.003)]
    assert (censored.reached, censored.trials, censored.best, censored.in_band) == (1, 2, False, False)
    assert censored.best_val_accuracy == pytest.approx(0.865) and censored.lr_index == 2
    assert by_key[(64, 0.003)].best and by_key[(64, 0.0003)].in_band
    assert {c.stop_reason for c in cells} == {"completed"}


def halving_record() -> dict:
    """Batch 64, 3 lrs, eta 3, budget 9 epochs: rungs [3, 9]; lrs 0.0003 and 0.001 halved after rung 0."""
    runs = [
        trial(0, 64, 0.0003, 0, [0.5, 0.6, 0.7], stop_reason="halved", rung=0, stopped_at_rung=0, epochs_planned=9),
        trial(1, 64, 0.001, 1, [0.55, 0.75, 0.88], stop_reason="halved", rung=0, stopped_at_rung=0, epochs_planned=9),
        trial(2, 64, 0.003, 2, [0.6, 0.8, 0.89, 0.9, 0.91, 0.92, 0.93, 0.94, 0.95], rung=1, epochs_planned=9),
    ]
    return experiment(runs, [64], method="halving", eta=3, rungs={"64": [3, 9]}, epochs=9)


def test_under_halving_a_dropped_lr_is_compared_at_the_same_number_of_epochs() -> None:
    record = halving_record()
    tuned = tuning.tune(record, experiment_target(record))[64]
    assert tuned.best.lr == 0.003
    # 0.001 reached 0.88 in its 3 epochs; the best lr had 0.89 after 3 epochs (0.95 after 9): in the band.
    assert tuned.lr_band == (0.001, 0.003)
    assert tuning.compute(record) == {"trial_epochs": 15, "full_grid_epochs": 27}
    cells = {c.lr: c for c in tuning.heat_cells({64: tuned})}
    assert (cells[0.0003].rung, cells[0.0003].stop_reason) == (0, "halved")
    assert (cells[0.003].rung, cells[0.003].stop_reason) == (1, "completed")


def test_band_stops_at_a_worse_neighbour() -> None:
    tops = {1e-4: 0.9, 3e-4: 0.7, 1e-3: 0.91, 3e-3: 0.9}
    runs = [trial(i, 32, lr, i, [0.5, top]) for i, (lr, top) in enumerate(tops.items())]
    tuned = tuning.tune(experiment(runs, [32]), 0.95)[32]  # nothing reaches 0.95: best by accuracy
    assert tuned.best.lr == 1e-3 and tuned.lr_band == (1e-3, 3e-3)  # 1e-4 is as good, but 3e-4 between is not


def stopped_record() -> dict:
    """Ctrl+C during epoch 2 of the first run (issue 15 item 5): one epoch at chance, the other run pending."""
    stopped = trial(0, 32, 0.001, 0, [0.19], status="stopped", stop_reason="stopped", losses=[1.6094])
    pending = {**trial(1, 256, 0.001, 0, [], status="pending", stop_reason=None), "history": [], "best": None}
    record = experiment([stopped, pending], [32, 256], method="none")
    record["status"] = "stopped"
    return record


def test_a_stopped_run_at_chance_sets_no_target_and_no_recommendation() -> None:
    record = stopped_record()
    assert experiment_target(record) is None
    summary = summarize(record)
    assert summary.target_accuracy is None and summary.verdict is None
    assert summary.target_problem.startswith("no trial finished (the experiment was stopped")
    assert summary.batches[0].state == "incomplete" and summary.batches[1].state == "empty"
    assert summary.advice.startswith("No run has finished yet, so there is nothing to recommend a batch size from.")
    assert "Batch size 32 was stopped before every trial finished" in summary.advice
    assert "Use batch size" not in summary.advice and "tentative" not in summary.advice
    text = conclusions(summary)
    assert text.startswith("Target accuracy: none, as no trial finished (the experiment was stopped")
    assert not summary.diagnoses  # one epoch at chance before Ctrl+C is not a dead network


def dead_record(image_size: int = 150) -> dict:
    """5 classes at 150 px: batch 256 dead at every lr; batch 32 learns at lr 0.0003 only; one diverged."""
    guess = math.log(5)
    runs = []
    for batch in (32, 256):
        for i, lr in enumerate(LRS):
            if batch == 32 and i == 0:
                runs.append(trial(len(runs), batch, lr, i, [0.4, 0.7, 0.9]))
            elif batch == 32 and i == 2:
                runs.append(trial(len(runs), batch, lr, i, [0.2], status="failed", stop_reason="diverged",
                                  error="loss became nan in epoch 2: training diverged",
                                  note="diverged: the loss became NaN in epoch 2; try a lower learning rate"))
            else:
                runs.append(trial(len(runs), batch, lr, i, [0.2, 0.2, 0.2], losses=[guess + 0.002, guess, guess]))
    return experiment(runs, [32, 256], image_size=image_size)


def test_dead_and_diverged_trials_are_labelled_with_the_reason_and_what_to_try() -> None:
    record = dead_record()
    found = {d.run_index: d for d in diagnoses(record)}
    assert sorted(found) == [1, 2, 3, 4, 5]
    assert found[2].kind == "diverged"
    assert found[2].note == "diverged: the loss became NaN in epoch 2; try a lower learning rate"  # the runner's
    dead = found[1]
    assert dead.kind == "dead" and dead.batch_size == 32 and dead.lr == 0.001
    assert dead.note.startswith("dead: training loss ended at 1.6094, the loss of guessing (ln 5 = 1.6094), and "
                                "validation accuracy at chance (20.0%, chance 20.0%)")
    # 0.0003 learned at this batch size, so the lower learning rate to try is that one.
    assert dead.note.endswith("try a lower learning rate (0.0003 learned at this batch size), a smaller image size "
                              "(now 150 px; --image-size 32) or a small model with batch normalization "
                              "(--model mobilenetv3small --weights none)")
    at_256 = found[3].note  # nothing learned at 256: a generic lower learning rate
    assert at_256.endswith("try a lower learning rate (e.g. 0.0001), a smaller image size (now 150 px; "
                           "--image-size 32) or a small model with batch normalization (--model mobilenetv3small "
                           "--weights none)")
    assert "smaller image size" not in diagnoses(dead_record(image_size=32))[0].note
    with_bn = dead_record()
    with_bn["config"]["model"] = "seed-bn"  # measured no better than the seed at 150 px (README)
    assert "--model mobilenetv3small" in diagnoses(with_bn)[0].note
    with_bn["config"]["model"] = "mobilenetv3small"
    assert "--model" not in diagnoses(with_bn)[0].note
    # A trial that learned slowly is not dead: its loss left the loss of guessing.
    assert 0 not in found


def test_a_trial_that_died_in_its_first_epoch_is_dead_by_its_tail_loss() -> None:
    """The epoch's mean averages in the steps before the network died; the last quarter of batches does not."""
    record = dead_record()
    guess = math.log(5)
    run = trial(0, 32, 0.003, 0, [0.2], losses=[2.04])
    assert not is_dead(run["history"], record["dataset"])  # by the epoch's mean it looks like confident mistakes
    run["history"][0]["tail_loss"] = guess + 0.001
    assert is_dead(run["history"], record["dataset"])
    assert explain("dead", run, record).startswith(f"dead: training loss ended at {guess + 0.001:.4f}, the loss")
    run["history"][0]["tail_loss"] = 1.2  # the tail left the loss of guessing: still learning
    assert not is_dead(run["history"], record["dataset"])


def test_when_every_rate_of_a_batch_size_died_the_rate_to_try_is_below_the_lowest_tried() -> None:
    record = dead_record()
    middle = next(r for r in record["runs"] if r["batch_size"] == 256 and r["lr"] == LRS[1])
    lowest = min(LRS)
    assert f"try a lower learning rate (e.g. {lr_words(lowest / 3)})" in explain("dead", middle, record)
    assert f"none is recommended; try a lower learning rate (e.g. {lr_words(lowest / 3)})" in \
        summarize(record).advice


def test_a_batch_size_where_no_trial_learned_makes_a_comparison_of_dead_networks() -> None:
    summary = summarize(dead_record())
    assert [b.state for b in summary.batches] == ["ok", "dead"]
    assert summary.target_accuracy == pytest.approx(0.855)  # 95% of 0.9: the learning trial sets it
    assert summary.advice.startswith("This comparison includes dead networks: no trial of batch size 256 learned")
    assert "none is recommended; try a lower learning rate" in summary.advice
    assert "Trials that did not train: 4 dead (stuck at chance), 1 diverged" in summary.advice
    assert "Use batch size" not in summary.advice and "tentative" not in summary.advice
    cells = {(c.batch_size, c.lr): c for c in summary.cells}
    assert cells[(256, 0.001)].stop_reason == "dead" and cells[(32, 0.003)].stop_reason == "diverged"
    assert not any(c.best or c.in_band for c in summary.cells if c.batch_size == 256)  # no best among the dead
    assert summary.batches[1].lr_band is None and summary.batches[1].lr_edge is None
    assert summary.batches[1].lr is None and summary.batches[0].lr == LRS[0]  # no best rate among the dead
    text = conclusions(summary)
    assert "Diagnoses (5 trials did not train):" in text
    assert "bs 256 lr 0.001 seed 0: dead: training loss ended at 1.6094" in text


def test_every_trial_at_chance_gives_no_target() -> None:
    record = dead_record()
    record["runs"] = [r for r in record["runs"] if r["batch_size"] == 256]
    record["config"]["batch_sizes"] = [256]
    assert experiment_target(record) is None
    summary = summarize(record)
    assert summary.target_problem == "every finished trial stayed at chance (20.0%), so there is nothing to reach"
    assert summary.advice.startswith("This compares dead networks: no trial of batch size 256 learned")


def old_record() -> dict:
    """A record from before trials: no tuning, no lr_index, no trial keys; one lr per batch size."""
    runs = []
    for i, batch in enumerate((32, 256)):
        run = trial(i, batch, 0.001, 0, [0.6, 0.9, 0.95] if batch == 32 else [0.3, 0.5, 0.6])
        for key in ("lr_index", "trial"):
            del run[key]
        runs.append(run)
    record = experiment(runs, [32, 256], method="none")
    del record["tuning"]
    return record


def test_old_untuned_records_say_so_and_state_the_update_ratio_under_an_epochs_budget() -> None:
    record = old_record()
    summary = summarize(record)
    assert summary.method == "none"
    assert summary.updates == tuning.Updates(32, 300, 256, 40)  # 30 and 4 steps per epoch, 10 epochs
    assert "Untuned: one learning rate per batch size, so the gap may be the learning rate" in summary.advice
    assert "Under the epochs budget batch size 256 got 7.5 times fewer optimizer updates than 32 (40 against 300): a " \
           "batch size that did not reach the target may only have run out of steps" in summary.advice
    assert summary.advice.startswith("Batch size 32 is the tentative pick: it is the only one that reached")
    update = finalize(record)
    assert update["tuning"]["method"] == "none" and update["tuning"]["lrs"] == {"32": [0.001], "256": [0.001]}
    assert update["tuning"]["rungs"] == {"32": [10], "256": [10]} and update["tuning"]["eta"] is None
    assert update["tuning"]["best"]["32"]["lr_band"] == [0.001, 0.001]
    record["config"]["budget"] = "steps"
    assert tuning.updates(record) is None


def two_sizes(steps: dict[int, tuple[float, ...]]) -> dict:
    """One lr, one trial per seed and batch size, reaching the target at the given steps."""
    runs = []
    for seed in range(max(len(s) for s in steps.values())):
        for batch, per_seed in steps.items():
            if seed < len(per_seed):
                accuracies, cumulative = reaching(per_seed[seed])
                runs.append(trial(len(runs), batch, 0.001, 0, accuracies, seed=seed, steps=cumulative))
    return experiment(runs, list(steps), target=0.85, repeats=max(len(s) for s in steps.values()))


@pytest.mark.parametrize("steps, settled", [
    ({32: (600.0, 620.0, 610.0), 256: (200.0, 210.0, 205.0)}, True),   # a clear gap
    ({32: (600.0, 300.0, 450.0), 256: (500.0, 350.0, 420.0)}, False),  # within the seed noise
    ({32: (600.0, 620.0), 256: (200.0,)}, None),                        # 256 has one seed: untestable
    ({32: (600.0,), 256: (200.0,)}, None),                              # one run each
])
def test_the_advice_never_claims_more_than_the_verdict(steps: dict, settled) -> None:
    summary = summarize(two_sizes(steps))
    assert summary.settled is settled
    recommends = "Use batch size" in summary.advice
    assert recommends == (settled is True)
    if settled is None:
        assert summary.verdict.startswith("cannot tell") and "tentative pick" in summary.advice
    if settled is False:
        assert "within the seed-to-seed noise" in summary.verdict and "use either" in summary.advice
