"""The advice paragraph: recommends only what the data supports and names what is missing."""

from __future__ import annotations

from engine.analysis.advice import AdviceFacts, TargetReach, advise
from engine.analysis.tuning import Updates

S_MIN, B_CRIT = 2000.0, 100.0
THROUGHPUT = {32: 1000.0, 64: 1800.0, 128: 2400.0, 256: 2600.0}


def reach(batch: int) -> TargetReach:
    """A run on the trade-off curve S = S_min (1 + B_crit/B) at the probe's throughput.

    Seconds = S * B / throughput: 32 -> 264 s, 64 -> 182 s, 128 -> 190 s, 256 -> 274 s.
    """
    steps = S_MIN * (1.0 + B_CRIT / batch)
    return TargetReach(seconds=steps * batch / THROUGHPUT[batch], steps=steps, samples=steps * batch)


def full_facts() -> AdviceFacts:
    sizes = [32, 64, 128, 256]
    return AdviceFacts(
        batch_sizes=sizes,
        best_val_accuracy={32: 0.91, 64: 0.92, 128: 0.92, 256: 0.915},
        val_accuracy_spread={32: 0.010, 64: 0.012, 128: 0.008, 256: 0.015},
        target_accuracy=0.9,
        time_to_target={b: reach(b) for b in sizes},
        throughput=dict(THROUGHPUT),
        max_fitting_batch=256,
        noise_scale=80.0,
        verdict="batch size 64 reaches the target sooner than batch size 128, by 8 s; this is larger than the "
                "seed-to-seed noise (Welch t-test p=0.01).",
        settled=True,
    )


def assert_no_recommendation(text: str) -> None:
    assert "Use batch size" not in text and "try batch size" not in text


def test_nothing_measured_recommends_nothing_and_says_what_to_run() -> None:
    text = advise(AdviceFacts())
    assert_no_recommendation(text)
    assert "nothing to recommend" in text
    for step in ("train at 3 or more batch sizes", "run the throughput probe", "turn on the noise-scale estimate"):
        assert step in text
    assert "\n" not in text


def test_one_run_cannot_show_how_batch_size_matters() -> None:
    text = advise(AdviceFacts(batch_sizes=[32], best_val_accuracy={32: 0.812}))
    assert_no_recommendation(text)
    assert "Only batch size 32 has been trained (best validation accuracy 81.2%)" in text
    assert "train at 3 or more batch sizes that reach the target" in text
    assert "run the throughput probe" in text


def test_one_run_with_noise_scale_and_probe_gives_a_labelled_first_guess() -> None:
    facts = AdviceFacts(
        batch_sizes=[32],
        best_val_accuracy={32: 0.812},
        noise_scale=B_CRIT,
        # (B + 100) / throughput: 32 -> 0.132, 64 -> 0.091, 128 -> 0.095, 256 -> 0.137; 512 does not fit
        throughput={**THROUGHPUT, 512: 20000.0},
        max_fitting_batch=256,
    )
    text = advise(facts)
    assert "first guess not yet confirmed by training, try batch size 64" in text
    assert "gradient noise scale of about 100" in text
    assert "off by a factor of several" in text
    assert "Use batch size" not in text
    assert "run the throughput probe" not in text and "noise-scale estimate" not in text


def test_full_data_recommends_the_fastest_with_reasons_and_uncertainty() -> None:
    text = advise(full_facts())
    assert text.startswith("Use batch size 64: it reached the target of 90.0% fastest, in 3.0 min against 3.2 min "
                           "for 128.")
    assert "near the critical batch size of about 100" in text  # fitted from the four runs' steps and samples
    assert "up to ±1.5 points" in text
    assert "differ by only 4%" not in text  # 182 s against 190 s, but the t-test already decided
    assert "Batch size 64 reaches the target sooner than batch size 128, by 8 s; this is larger than" in text
    assert "Missing" not in text
    assert "\n" not in text and len(text) < 600


def test_an_untested_gap_gives_a_tentative_pick_as_the_verdict_says() -> None:
    facts = full_facts()
    facts.settled, facts.verdict = None, "cannot tell whether batch size 64 or batch size 128 reaches the target " \
                                          "sooner: need at least 2 repeats per batch size (have 2 and 1)."
    text = advise(facts)
    assert_no_recommendation(text)
    assert text.startswith("Batch size 64 is the tentative pick: it reached the target of 90.0% fastest, in 3.0 min "
                           "against 3.2 min for 128, but the verdict could not test the gap against the "
                           "seed-to-seed noise.")
    assert "differ by only 4%, which one repeat could overturn" in text


def test_caller_b_crit_is_used_and_an_out_of_range_one_is_called_an_extrapolation() -> None:
    facts = full_facts()
    facts.b_crit = 1000.0
    text = advise(facts)
    assert "well below the critical batch size of about 1,000" in text
    assert "extrapolation" in text


def test_no_run_reaching_the_target_gives_no_recommendation() -> None:
    facts = AdviceFacts(batch_sizes=[32, 256], best_val_accuracy={32: 0.81, 256: 0.83}, target_accuracy=0.9,
                        time_to_target={32: None, 256: None})
    text = advise(facts)
    assert_no_recommendation(text)
    assert "No run reached the target of 90.0%" in text
    assert "train longer or lower the target" in text


def test_the_only_batch_size_that_reached_the_target_is_recommended_with_repeats_only() -> None:
    facts = AdviceFacts(batch_sizes=[32, 256], target_accuracy=0.9, time_to_target={32: None, 256: reach(256)})
    text = advise(facts)  # one run each: a tentative pick, never "Use"
    assert_no_recommendation(text)
    assert "Batch size 256 is the tentative pick: it is the only one that reached the target of 90.0%" in text
    assert "32 did not within the budget, but with one run per batch size this could be seed luck" in text
    assert "(so far 1)" in text and "repeats to tell a gap from seed luck" in text
    facts.val_accuracy_spread = {32: 0.01, 256: 0.02}
    facts.settled = True
    assert "Use batch size 256: it is the only one that reached the target of 90.0%" in advise(facts)
    facts.settled = False
    text = advise(facts)
    assert_no_recommendation(text)
    assert "Prefer batch size 256, narrowly" in text
    assert "its lead in accuracy over the runner-up is within the seed-to-seed noise" in text


def test_runs_without_a_tradeoff_say_why_no_critical_batch_size_was_fitted() -> None:
    flat = {b: TargetReach(seconds=4000.0 / b, steps=1000.0, samples=1000.0 * b) for b in (32, 64, 128)}
    text = advise(AdviceFacts(batch_sizes=[32, 64, 128], target_accuracy=0.9, time_to_target=flat))
    assert text.startswith("Batch size 128 is the tentative pick")
    assert "No critical batch size could be fitted" in text
    assert "below the smallest batch tried (32)" in text
    assert "largest size tried, so a larger batch may be faster still" in text


def test_a_gap_within_the_seed_noise_gives_either_not_a_winner() -> None:
    facts = full_facts()
    facts.settled = False
    text = advise(facts)
    assert_no_recommendation(text)
    assert text.startswith("Batch sizes 64 and 128 reach the target of 90.0% about equally fast: 64 took 3.0 min "
                           "and 128 3.2 min, a gap within the seed-to-seed noise; use either (64 was faster on "
                           "average).")
    assert "which one repeat could overturn" not in text  # the test already said so, with the numbers
    facts.settled = True
    assert advise(facts).startswith("Use batch size 64: it reached")


def test_dead_batch_sizes_get_no_recommendation_and_say_what_to_try() -> None:
    facts = full_facts()
    facts.dead = [256]
    facts.remedies = ["a lower learning rate (e.g. 0.0003)", "a small model (--model mobilenetv3small)"]
    facts.trouble = {"dead": 3}
    text = advise(facts)
    assert_no_recommendation(text)
    assert text.startswith("This comparison includes dead networks: no trial of batch size 256 learned")
    assert "comparing it with 32, 64 and 128 says nothing about the batch size and none is recommended; try a lower " \
           "learning rate (e.g. 0.0003) or a small model (--model mobilenetv3small)." in text
    assert "Trials that did not train: 3 dead (stuck at chance)" in text
    facts.dead = [32, 64, 128, 256]
    text = advise(facts)
    assert text.startswith("This compares dead networks: no trial of batch size 32, 64, 128 and 256 learned")
    assert_no_recommendation(text)


def test_untuned_comparisons_say_so_and_state_the_update_ratio() -> None:
    facts = AdviceFacts(batch_sizes=[32, 256], val_accuracy_spread={32: 0.01, 256: 0.01}, target_accuracy=0.9,
                        time_to_target={32: reach(32), 256: None}, tuning="none", settled=True,
                        updates=Updates(32, 2950, 256, 400))
    text = advise(facts)
    assert text.startswith("Use batch size 32: it is the only one that reached")
    assert "Untuned: one learning rate per batch size, so the gap may be the learning rate; tune it per batch size " \
           "with --lr-grid 3." in text
    assert "Under the epochs budget batch size 256 got 7.4 times fewer optimizer updates than 32 (400 against " \
           "2,950): a batch size that did not reach the target may only have run out of steps" in text
    assert "a learning rate tuned per batch size (--lr-grid 3)" in text


def test_tuned_advice_names_the_learning_rate_and_a_grid_edge() -> None:
    facts = full_facts()
    facts.settled = True
    facts.tuning = "halving"
    facts.lrs_tried = {b: 3 for b in facts.batch_sizes}
    facts.best_lr = {32: 0.0003, 64: 0.001, 128: 0.001, 256: 0.003}
    facts.lr_edge = {256: "highest", 32: "lowest"}
    text = advise(facts)
    assert text.startswith("Use batch size 64 at learning rate 0.001: it reached the target of 90.0% fastest")
    assert "The learning rate was tuned per batch size (3 learning rates each, successive halving)." in text
    assert "The best learning rate of batch size 256 was the highest tried, so the optimum may lie beyond the grid" \
        in text
    assert "The best learning rate of batch size 32 was the lowest tried" in text
    assert "Untuned" not in text


def test_the_fitted_prediction_is_stated_with_its_leave_one_out_error() -> None:
    facts = full_facts()
    facts.settled = True
    facts.prediction = {"recommended": {"batch_size": 64, "predicted_seconds": 180.0}, "loo_error": 0.12}
    assert "The S(B) fit agrees (leave-one-out error 12%)." in advise(facts)
    facts.prediction = {"recommended": {"batch_size": 96, "predicted_seconds": 170.0}, "loo_error": 0.05}
    text = advise(facts)
    assert "The S(B) fit (leave-one-out error 5%) predicts that batch size 96, not trained yet, would reach the " \
           "target in 2.8 min: train it to confirm." in text
    facts.prediction = {"recommended": {"batch_size": 128, "predicted_seconds": 181.0}, "loo_error": None}
    assert "The S(B) fit would pick 128 (predicted 3.0 min), so the measured lead of 64 is within what the fit " \
           "resolves (no leave-one-out check possible)." in advise(facts)


def test_batch_normalization_below_16_per_replica_is_warned_about() -> None:
    facts = full_facts()
    assert "Batch normalization" not in advise(facts)
    facts.bn_per_replica = {32: 32, 64: 8, 128: 16}
    text = advise(facts)
    assert "Batch normalization sees fewer than 16 samples per replica (8 at batch size 64)" in text
    assert "at batch size 128" not in text and "at batch size 32" not in text
