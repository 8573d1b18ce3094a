"""One plain-words paragraph recommending a batch size, from whatever an experiment measured.

Evidence is used strongest first: measured time to the target accuracy, then being the only
batch size that reached it, then a prediction from the critical batch size (or the noise scale
standing in for it) and the probe's throughput. Without enough of any of these it recommends
nothing and says what to run instead.

The prediction: a run at batch B needs S = S_min (1 + B_crit/B) steps, each taking B / throughput(B)
seconds, so time to target is proportional to (B + B_crit) / throughput(B).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from engine.analysis.critical_batch import TradeoffError, fit_tradeoff

CLOSE_CALL = 0.10  # measured times closer than this are within what one repeat could overturn


@dataclass(frozen=True)
class TargetReach:
    """When a run first reached the target accuracy."""

    seconds: float
    steps: float
    samples: float


@dataclass
class AdviceFacts:
    """Everything advice may draw on; leave out what was not measured."""

    batch_sizes: list[int] = field(default_factory=list)  # trained
    best_val_accuracy: dict[int, float] = field(default_factory=dict)  # mean over repeats, 0..1
    val_accuracy_spread: dict[int, float] = field(default_factory=dict)  # std over repeats, where repeated
    target_accuracy: Optional[float] = None  # 0..1
    time_to_target: dict[int, Optional[TargetReach]] = field(default_factory=dict)  # None: never reached
    throughput: dict[int, float] = field(default_factory=dict)  # images/s from the probe
    max_fitting_batch: Optional[int] = None  # from the probe
    noise_scale: Optional[float] = None  # latest B_simple
    b_crit: Optional[float] = None  # None: fitted here from time_to_target when possible
    verdict: Optional[str] = None  # significance of the accuracy differences, one sentence


def advise(facts: AdviceFacts) -> str:
    """A short paragraph: the recommendation (or why there is none), reasons, uncertainty, what is missing."""
    tried = sorted(set(facts.batch_sizes) | set(facts.best_val_accuracy) | set(facts.time_to_target))
    reached = {b: r for b, r in facts.time_to_target.items() if r is not None}
    failed = sorted(b for b, r in facts.time_to_target.items() if r is None)
    b_crit, b_crit_problem = _critical_batch(facts, reached)
    sentences: list[str] = []
    if len(reached) >= 2:
        sentences += _measured(facts, tried, reached, failed, b_crit)
    elif len(reached) == 1 and failed:
        (only, reach), = reached.items()
        others = ", ".join(map(str, failed))
        sentences.append(
            f"Use batch size {only}: it is the only one that reached {_target(facts.target_accuracy)} "
            f"(in {_duration(reach.seconds)}); {others} did not within the budget."
        )
    else:
        sentences += _unmeasured(facts, tried, reached, b_crit)
    sentences += _uncertainty(facts, tried, reached, b_crit)
    if b_crit_problem:
        sentences.append(f"No critical batch size could be fitted: {b_crit_problem}.")
    missing = _missing(facts, tried, reached, b_crit)
    if missing:
        sentences.append("Missing: " + "; ".join(missing) + ".")
    return " ".join(sentences)


def _critical_batch(facts: AdviceFacts, reached: dict[int, TargetReach]) -> tuple[Optional[float], Optional[str]]:
    """The given B_crit, else one fitted from the runs that reached the target, else why not."""
    if facts.b_crit is not None:
        return facts.b_crit, None
    if len(reached) < 3:
        return None, None
    try:
        fit = fit_tradeoff([r.steps for r in reached.values()], [r.samples for r in reached.values()])
    except TradeoffError as error:
        return None, str(error).removeprefix("critical batch: ")
    return fit["b_crit"], None


def _measured(
    facts: AdviceFacts, tried: list[int], reached: dict[int, TargetReach], failed: list[int], b_crit: Optional[float]
) -> list[str]:
    ranked = sorted(reached, key=lambda b: reached[b].seconds)
    best, runner_up = ranked[0], ranked[1]
    out = [
        f"Use batch size {best}: it reached {_target(facts.target_accuracy)} fastest, in "
        f"{_duration(reached[best].seconds)} against {_duration(reached[runner_up].seconds)} for {runner_up}"
        + (f" ({', '.join(map(str, failed))} never reached it)." if failed else ".")
    ]
    if b_crit is not None:
        out.append(_against_b_crit(best, b_crit))
    prediction = _prediction(facts, b_crit)
    if prediction is not None:
        pick, source, _ = prediction
        if pick not in tried:
            out.append(f"The {source} and the measured throughput predict that {pick}, not trained yet, could be faster still.")
    elif best == max(tried) and (facts.max_fitting_batch is None or facts.max_fitting_batch > best):
        if b_crit is None or best < 2 * b_crit:
            room = f" (up to {facts.max_fitting_batch} fits)" if facts.max_fitting_batch else ""
            out.append(f"It was the largest size tried, so a larger batch{room} may be faster still.")
    elif best == min(tried) and best > 1 and (b_crit is None or best > b_crit / 2):
        out.append("It was the smallest size tried, so a smaller batch may be faster still.")
    return out


def _unmeasured(facts: AdviceFacts, tried: list[int], reached: dict[int, TargetReach], b_crit: Optional[float]) -> list[str]:
    out: list[str] = []
    if not tried:
        out.append("No run has finished yet, so there is nothing to recommend a batch size from.")
    elif len(tried) == 1:
        acc = facts.best_val_accuracy.get(tried[0])
        shown = f" (best validation accuracy {_pct(acc)})" if acc is not None else ""
        out.append(f"Only batch size {tried[0]} has been trained{shown}; one batch size cannot show how the batch size matters.")
    elif not reached and facts.time_to_target:
        out.append(f"No run reached {_target(facts.target_accuracy)}, so there is no time to target to compare; train longer or lower the target.")
    else:
        accs = ", ".join(f"{_pct(facts.best_val_accuracy[b])} at {b}" for b in tried if b in facts.best_val_accuracy)
        shown = f"Best validation accuracy was {accs}; " if accs else ""
        out.append(f"{shown}without times to a target accuracy this does not show which batch size trains fastest.")
    prediction = _prediction(facts, b_crit)
    if prediction is not None:
        pick, source, guide = prediction
        out.append(
            f"As a first guess not yet confirmed by training, try batch size {pick}: with a {source} of about "
            f"{_round(guide)} and the measured throughput, it gives the shortest predicted time to target."
        )
    elif tried:
        out.append("No batch size is recommended until there is more evidence.")
    return out


def _prediction(facts: AdviceFacts, b_crit: Optional[float]) -> Optional[tuple[int, str, float]]:
    """(batch size, source, B_crit used): the probed size with the least predicted time to target,
    (B + B_crit) / throughput(B), using the noise scale when there is no fitted B_crit."""
    source, guide = ("critical batch size", b_crit) if b_crit is not None else ("gradient noise scale", facts.noise_scale)
    limit = facts.max_fitting_batch
    options = {b: t for b, t in facts.throughput.items() if t > 0 and (limit is None or b <= limit)}
    if guide is None or len(options) < 2:
        return None
    return min(options, key=lambda b: (b + guide) / options[b]), source, guide


def _uncertainty(facts: AdviceFacts, tried: list[int], reached: dict[int, TargetReach], b_crit: Optional[float]) -> list[str]:
    out: list[str] = []
    if facts.val_accuracy_spread:
        spread = max(facts.val_accuracy_spread.values())
        out.append(f"Repeats vary by up to ±{100 * spread:.1f} points of accuracy.")
    elif len(tried) >= 2:
        out.append("Each batch size ran once, so run-to-run noise is unknown.")
    times = sorted(r.seconds for r in reached.values())
    if len(times) >= 2 and times[1] - times[0] < CLOSE_CALL * times[0]:
        out.append(f"The two best times differ by only {100 * (times[1] / times[0] - 1):.0f}%, which one repeat could overturn.")
    if facts.verdict:
        verdict = facts.verdict.strip()
        out.append(verdict[:1].upper() + verdict[1:])
    if b_crit is not None and tried and not min(tried) <= b_crit <= max(tried):
        out.append("The critical batch size lies outside the sizes tried, so it is an extrapolation.")
    if b_crit is None and facts.noise_scale is not None and len(reached) < 2:
        out.append("The noise scale only approximates the critical batch size and can be off by a factor of several.")
    return out


def _missing(facts: AdviceFacts, tried: list[int], reached: dict[int, TargetReach], b_crit: Optional[float]) -> list[str]:
    out: list[str] = []
    if b_crit is None and len(reached) < 3:
        so_far = f" (so far {len(reached)})" if reached else ""
        out.append(f"train at 3 or more batch sizes that reach the target{so_far}")
    if tried and facts.target_accuracy is None and not facts.time_to_target:
        out.append("set a target accuracy to measure time to target")
    if not facts.throughput:
        out.append("run the throughput probe")
    if b_crit is None and facts.noise_scale is None:
        out.append("turn on the noise-scale estimate")
    return out


def _against_b_crit(batch: int, b_crit: float) -> str:
    about = f"the critical batch size of about {_round(b_crit)}"
    if batch < b_crit / 2:
        return f"That is well below {about}, so larger batches would still cut the steps almost in proportion."
    if batch > 2 * b_crit:
        return f"That is well above {about}, so most extra images per step are wasted and the speed comes from throughput."
    return f"That is near {about}, the balance point between fewer steps and more images."


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _target(x: Optional[float]) -> str:
    return "the target accuracy" if x is None else f"the target of {_pct(x)}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _round(x: float) -> str:
    """Two significant figures: these estimates are not more precise than that."""
    return f"{float(f'{x:.2g}'):,.0f}" if x >= 10 else f"{x:.2g}"
