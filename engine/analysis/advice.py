"""One plain-words paragraph recommending a batch size, from whatever an experiment measured.

Evidence is used strongest first: measured time to the target accuracy at each batch size's best
learning rate, then being the only batch size that reached it, then a prediction from the S(B) fit
(or the noise scale standing in for it) and the probe's throughput. Without enough of any of these
it recommends nothing and says what to run instead.

The paragraph never claims more than the verdict does: with one run per batch size the fastest is
a tentative pick, a gap within the seed-to-seed noise gives "use either", and only a gap beyond it
gives "Use batch size N". A comparison in which some batch size never learned compares dead
networks: nothing is recommended, and it says what to try.

The noise-scale guess: a run at batch B needs S = S_min (1 + B_crit/B) steps, each taking
B / throughput(B) seconds, so time to target is proportional to (B + B_crit) / throughput(B).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from engine.analysis.critical_batch import TradeoffError, fit_tradeoff
from engine.analysis.tuning import Updates
from engine.analysis.words import duration, either, error_pct, lr, pct, sizes, two_figures

BN_MIN_PER_REPLICA = 16  # below this, batch statistics get noisy (Wu & He 2018, Group Normalization, fig. 1)
CLOSE_CALL = 0.10  # measured times closer than this are within what one repeat could overturn
TUNE_FLAG = "--lr-grid 3"
REPEAT_FLAG = "--repeats 3"


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
    verdict: Optional[str] = None  # significance of the differences, one sentence
    settled: Optional[bool] = None  # the verdict: gap beyond seed noise (True), within it (False), untested (None)
    tuning: Optional[str] = None  # none (one lr per batch size) | grid | halving; None: not known
    lrs_tried: dict[int, int] = field(default_factory=dict)  # learning rates per batch size
    best_lr: dict[int, float] = field(default_factory=dict)
    lr_edge: dict[int, str] = field(default_factory=dict)  # "lowest" | "highest": best lr at the grid's edge
    updates: Optional[Updates] = None  # under an epochs budget
    dead: list[int] = field(default_factory=list)  # batch sizes where no trial learned
    remedies: list[str] = field(default_factory=list)  # what to try when networks do not learn
    trouble: dict[str, int] = field(default_factory=dict)  # trials dead, diverged, failed
    incomplete: list[int] = field(default_factory=list)  # batch sizes stopped before every trial finished
    target_problem: Optional[str] = None  # why there is no target accuracy
    prediction: Optional[dict[str, Any]] = None  # the record's prediction entry (S(B) fit)
    bn_per_replica: dict[int, int] = field(default_factory=dict)  # batch size -> samples each BN layer averages


def advise(facts: AdviceFacts) -> str:
    """A short paragraph: the recommendation (or why there is none), reasons, uncertainty, what is missing."""
    tried = sorted(set(facts.batch_sizes) | set(facts.best_val_accuracy) | set(facts.time_to_target))
    reached = {b: r for b, r in facts.time_to_target.items() if r is not None}
    failed = sorted(b for b, r in facts.time_to_target.items() if r is None)
    b_crit, b_crit_problem = _critical_batch(facts, reached)
    sentences: list[str] = []
    if facts.dead:
        sentences.append(_dead(facts, tried))
    elif len(reached) >= 2:
        sentences += _measured(facts, tried, reached, failed, b_crit)
    elif len(reached) == 1 and failed:
        sentences.append(_only_one(facts, reached, failed))
    else:
        sentences += _unmeasured(facts, tried, reached, b_crit)
    sentences += _tuning(facts, tried, failed)
    sentences += _trouble(facts)
    sentences += _small_bn_batches(facts)
    sentences += _uncertainty(facts, tried, reached, b_crit)
    if b_crit_problem and not facts.dead:
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


def _single(facts: AdviceFacts, tried: list[int]) -> bool:
    """One run per batch size: no way to tell a gap from seed luck."""
    return len(tried) >= 2 and not facts.val_accuracy_spread


def _doubt(facts: AdviceFacts, tried: list[int]) -> Optional[str]:
    """Why a lead cannot be called a winner yet, the same doubt the verdict states; None when it can."""
    if _single(facts, tried):
        return "with one run per batch size this could be seed luck"
    if facts.settled is None and facts.verdict:
        return "the verdict could not test the gap against the seed-to-seed noise"
    return None


def _dead(facts: AdviceFacts, tried: list[int]) -> str:
    what = "training loss stuck at the loss of guessing, validation accuracy at chance"
    remedies = f"; try {either(facts.remedies)}" if facts.remedies else ""
    if set(tried) <= set(facts.dead):
        return (f"This compares dead networks: no trial of batch size {sizes(facts.dead)} learned ({what}), "
                f"so no batch size is recommended{remedies}.")
    others = sizes([b for b in tried if b not in facts.dead])
    return (f"This comparison includes dead networks: no trial of batch size {sizes(facts.dead)} learned ({what}), "
            f"so comparing it with {others} says nothing about the batch size and none is recommended{remedies}.")


def _measured(
    facts: AdviceFacts, tried: list[int], reached: dict[int, TargetReach], failed: list[int], b_crit: Optional[float]
) -> list[str]:
    ranked = sorted(reached, key=lambda b: reached[b].seconds)
    best, runner_up = ranked[0], ranked[1]
    target = _target(facts.target_accuracy)
    times = f"in {duration(reached[best].seconds)} against {duration(reached[runner_up].seconds)} for {runner_up}"
    never = f" ({', '.join(map(str, failed))} never reached it)" if failed else ""
    doubt = _doubt(facts, tried)
    if doubt:
        out = [f"Batch size {best} is the tentative pick: it reached {target} fastest, {times}{never}, but {doubt}."]
    elif facts.settled is False:
        out = [f"Batch sizes {best} and {runner_up} reach {target} about equally fast: {best} took "
               f"{duration(reached[best].seconds)} and {runner_up} {duration(reached[runner_up].seconds)}, a gap "
               f"within the seed-to-seed noise{never}; use either ({best} was faster on average)."]
    else:
        out = [f"Use batch size {best}{_at_lr(facts, best)}: it reached {target} fastest, {times}"
               + (f"{never}." if failed else ".")]
    if b_crit is not None:
        out.append(_against_b_crit(best, b_crit))
    if facts.prediction is not None:
        out.append(_fitted_prediction(facts.prediction, tried, best))
        if facts.prediction["recommended"]["batch_size"] not in tried:
            return out
    guess = _prediction(facts, b_crit) if facts.prediction is None else None
    if guess is not None:
        pick, source, _ = guess
        if pick not in tried:
            out.append(f"The {source} and the measured throughput predict that {pick}, not trained yet, could be "
                       "faster still.")
    elif best == max(tried) and (facts.max_fitting_batch is None or facts.max_fitting_batch > best):
        if b_crit is None or best < 2 * b_crit:
            room = f" (up to {facts.max_fitting_batch} fits)" if facts.max_fitting_batch else ""
            out.append(f"It was the largest size tried, so a larger batch{room} may be faster still.")
    elif best == min(tried) and best > 1 and (b_crit is None or best > b_crit / 2):
        out.append("It was the smallest size tried, so a smaller batch may be faster still.")
    return out


def _fitted_prediction(prediction: dict[str, Any], tried: list[int], best: int) -> str:
    pick = prediction["recommended"]["batch_size"]
    error = prediction.get("loo_error")
    check = f"leave-one-out error {error_pct(error)}" if error is not None else "no leave-one-out check possible"
    when = duration(prediction["recommended"]["predicted_seconds"])
    if pick not in tried:
        return (f"The S(B) fit ({check}) predicts that batch size {pick}, not trained yet, would reach the target "
                f"in {when}: train it to confirm.")
    if pick == best:
        return f"The S(B) fit agrees ({check})."
    return (f"The S(B) fit would pick {pick} (predicted {when}), so the measured lead of {best} is within what the fit "
            f"resolves ({check}).")


def _only_one(facts: AdviceFacts, reached: dict[int, TargetReach], failed: list[int]) -> str:
    (only, reach), = reached.items()
    what = (f"it is the only one that reached {_target(facts.target_accuracy)} (in {duration(reach.seconds)}); "
            f"{', '.join(map(str, failed))} did not within the budget")
    doubt = _doubt(facts, [only, *failed])
    if doubt:
        return f"Batch size {only} is the tentative pick: {what}, but {doubt}."
    if facts.settled is False:
        return (f"Prefer batch size {only}, narrowly: {what}, but its lead in accuracy over the runner-up is within "
                "the seed-to-seed noise.")
    return f"Use batch size {only}{_at_lr(facts, only)}: {what}."


def _unmeasured(facts: AdviceFacts, tried: list[int], reached: dict[int, TargetReach],
                b_crit: Optional[float]) -> list[str]:
    out: list[str] = []
    if not tried:
        out.append("No run has finished yet, so there is nothing to recommend a batch size from.")
    elif len(tried) == 1:
        acc = facts.best_val_accuracy.get(tried[0])
        shown = f" (best validation accuracy {pct(acc)})" if acc is not None else ""
        out.append(f"Only batch size {tried[0]} has been trained{shown}; one batch size cannot show how the batch "
                   "size matters.")
    elif not reached and facts.time_to_target:
        out.append(f"No run reached {_target(facts.target_accuracy)}, so there is no time to target to compare; "
                   "train longer or lower the target.")
    else:
        accs = ", ".join(f"{pct(facts.best_val_accuracy[b])} at {b}" for b in tried if b in facts.best_val_accuracy)
        shown = f"Best validation accuracy was {accs}; " if accs else ""
        out.append(f"{shown}without times to a target accuracy this does not show which batch size trains fastest.")
    if facts.target_problem:
        out.append(f"There is no target accuracy, as {facts.target_problem}.")
    prediction = _prediction(facts, b_crit)
    if prediction is not None:
        pick, source, guide = prediction
        out.append(
            f"As a first guess not yet confirmed by training, try batch size {pick}: with a {source} of about "
            f"{two_figures(guide)} and the measured throughput, it gives the shortest predicted time to target."
        )
    elif tried:
        out.append("No batch size is recommended until there is more evidence.")
    return out


def _prediction(facts: AdviceFacts, b_crit: Optional[float]) -> Optional[tuple[int, str, float]]:
    """(batch size, source, B_crit used): the probed size with the least predicted time to target,
    (B + B_crit) / throughput(B), using the noise scale when there is no fitted B_crit."""
    source, guide = (("critical batch size", b_crit) if b_crit is not None
                     else ("gradient noise scale", facts.noise_scale))
    limit = facts.max_fitting_batch
    options = {b: t for b, t in facts.throughput.items() if t > 0 and (limit is None or b <= limit)}
    if guide is None or len(options) < 2:
        return None
    return min(options, key=lambda b: (b + guide) / options[b]), source, guide


def _tuning(facts: AdviceFacts, tried: list[int], failed: list[int]) -> list[str]:
    """How the learning rate was chosen, and what an equal-epoch budget did to the update counts."""
    out: list[str] = []
    if len(tried) >= 2 and facts.tuning == "none":
        out.append("Untuned: one learning rate per batch size, so the gap may be the learning rate; tune it per "
                   f"batch size with {TUNE_FLAG}.")
    elif len(tried) >= 2 and facts.tuning in ("grid", "halving") and facts.lrs_tried:
        how = "successive halving" if facts.tuning == "halving" else "every trial trained in full"
        out.append(f"The learning rate was tuned per batch size ({max(facts.lrs_tried.values())} learning rates "
                   f"each, {how}).")
        for edge in ("lowest", "highest"):
            at = sorted(b for b, e in facts.lr_edge.items() if e == edge)
            if at:
                whose = f"rates of batch sizes {sizes(at)} were" if len(at) > 1 else f"rate of batch size {at[0]} was"
                out.append(f"The best learning {whose} the {edge} tried, so the optimum may lie beyond the grid: "
                           "widen it (--lrs or --lr-grid-factor).")
    u = facts.updates
    if len(tried) >= 2 and u is not None and u.ratio >= 1.05:
        why = (": a batch size that did not reach the target may only have run out of steps; --budget steps gives "
               "every batch size the same number") if set(failed) - set(facts.dead) else ""
        out.append(f"Under the epochs budget batch size {u.large} got {two_figures(u.ratio)} times fewer optimizer "
                   f"updates than {u.small} ({u.large_updates:,} against {u.small_updates:,}){why}.")
    return out


def _trouble(facts: AdviceFacts) -> list[str]:
    out: list[str] = []
    words = {"dead": "dead (stuck at chance)", "diverged": "diverged", "failed": "failed"}
    parts = [f"{facts.trouble[k]} {words[k]}" for k in words if facts.trouble.get(k)]
    if parts:
        out.append(f"Trials that did not train: {', '.join(parts)}; the diagnoses say why and what to try.")
    if facts.incomplete:
        many = len(facts.incomplete) > 1
        out.append(f"Batch size {sizes(facts.incomplete)} {'were' if many else 'was'} stopped before every trial "
                   f"finished, so {'they are' if many else 'it is'} left out; resume the experiment (run --resume) "
                   f"to include {'them' if many else 'it'}.")
    return out


def _small_bn_batches(facts: AdviceFacts) -> list[str]:
    """Batch normalization averages over each replica's share of the batch; too few samples make its
    statistics noisy, so a small batch size may lose for that reason rather than for its gradient noise."""
    small = sorted(b for b, n in facts.bn_per_replica.items() if n < BN_MIN_PER_REPLICA)
    if not small:
        return []
    seen = ", ".join(f"{facts.bn_per_replica[b]} at batch size {b}" for b in small)
    return [f"Batch normalization sees fewer than {BN_MIN_PER_REPLICA} samples per replica ({seen}): its batch "
            f"statistics are noisy there, which can cost accuracy whatever the batch size's gradient noise; compare "
            f"with a model without batch normalization or use fewer devices per run."]


def _uncertainty(facts: AdviceFacts, tried: list[int], reached: dict[int, TargetReach],
                 b_crit: Optional[float]) -> list[str]:
    out: list[str] = []
    if facts.val_accuracy_spread:
        spread = max(facts.val_accuracy_spread.values())
        out.append(f"Repeats vary by up to ±{100 * spread:.1f} points of accuracy.")
    elif len(tried) >= 2:
        out.append("Each batch size ran once, so run-to-run noise is unknown.")
    times = sorted(r.seconds for r in reached.values())
    if len(times) >= 2 and times[1] - times[0] < CLOSE_CALL * times[0] and facts.settled is None and not facts.dead:
        out.append(f"The two best times differ by only {100 * (times[1] / times[0] - 1):.0f}%, which one repeat "
                   "could overturn.")
    if facts.verdict:
        verdict = facts.verdict.strip()
        out.append(verdict[:1].upper() + verdict[1:])
    if b_crit is not None and tried and not min(tried) <= b_crit <= max(tried):
        out.append("The critical batch size lies outside the sizes tried, so it is an extrapolation.")
    if b_crit is None and facts.noise_scale is not None and len(reached) < 2:
        out.append("The noise scale only approximates the critical batch size and can be off by a factor of several.")
    return out


def _missing(facts: AdviceFacts, tried: list[int], reached: dict[int, TargetReach],
             b_crit: Optional[float]) -> list[str]:
    out: list[str] = []
    if _single(facts, tried):
        out.append(f"repeats to tell a gap from seed luck ({REPEAT_FLAG})")
    if len(tried) >= 2 and facts.tuning == "none":
        out.append(f"a learning rate tuned per batch size ({TUNE_FLAG})")
    if b_crit is None and len(reached) < 3:
        so_far = f" (so far {len(reached)})" if reached else ""
        out.append(f"train at 3 or more batch sizes that reach the target{so_far}")
    if tried and facts.target_accuracy is None and not facts.time_to_target and not facts.target_problem:
        out.append("set a target accuracy to measure time to target")
    if not facts.throughput:
        out.append("run the throughput probe")
    if b_crit is None and facts.noise_scale is None:
        out.append("turn on the noise-scale estimate")
    return out


def _against_b_crit(batch: int, b_crit: float) -> str:
    about = f"the critical batch size of about {two_figures(b_crit)}"
    if batch < b_crit / 2:
        return f"That is well below {about}, so larger batches would still cut the steps almost in proportion."
    if batch > 2 * b_crit:
        return (f"That is well above {about}, so most extra images per step are wasted and the speed comes from "
                "throughput.")
    return f"That is near {about}, the balance point between fewer steps and more images."


def _at_lr(facts: AdviceFacts, batch: int) -> str:
    """' at learning rate 0.001' when the learning rate was tuned: the answer is the pair."""
    tuned = facts.tuning in ("grid", "halving") and batch in facts.best_lr
    return f" at learning rate {lr(facts.best_lr[batch])}" if tuned else ""


def _target(x: Optional[float]) -> str:
    return "the target accuracy" if x is None else f"the target of {pct(x)}"
