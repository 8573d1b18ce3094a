"""The advice paragraph: recommends only what the data supports and names what is missing."""

from __future__ import annotations

from engine.analysis.advice import AdviceFacts, TargetReach, advise

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
        verdict="The accuracy differences are within run-to-run noise.",
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
    assert text.startswith("Use batch size 64: it reached the target of 90.0% fastest, in 3.0 min against 3.2 min for 128.")
    assert "near the critical batch size of about 100" in text  # fitted from the four runs' steps and samples
    assert "up to ±1.5 points" in text
    assert "differ by only 4%" in text  # 182 s against 190 s
    assert "within run-to-run noise" in text
    assert "Missing" not in text
    assert "\n" not in text and len(text) < 600


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


def test_the_only_batch_size_that_reached_the_target_is_recommended() -> None:
    facts = AdviceFacts(batch_sizes=[32, 256], target_accuracy=0.9, time_to_target={32: None, 256: reach(256)})
    text = advise(facts)
    assert "Use batch size 256: it is the only one that reached the target of 90.0%" in text
    assert "32 did not within the budget" in text
    assert "(so far 1)" in text


def test_runs_without_a_tradeoff_say_why_no_critical_batch_size_was_fitted() -> None:
    flat = {b: TargetReach(seconds=4000.0 / b, steps=1000.0, samples=1000.0 * b) for b in (32, 64, 128)}
    text = advise(AdviceFacts(batch_sizes=[32, 64, 128], target_accuracy=0.9, time_to_target=flat))
    assert text.startswith("Use batch size 128")
    assert "No critical batch size could be fitted" in text
    assert "below the smallest batch tried (32)" in text
    assert "largest size tried, so a larger batch may be faster still" in text
