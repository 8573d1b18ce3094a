"""Trials that did not train, named with the reason and what to try.

A *dead* trial never left chance: its training loss ended within 1% of the loss of guessing
(ln(classes) on balanced data; the entropy of the class shares in general, which is what a network
that learned only the class biases reaches) and its val accuracy at chance. "Ended" is the mean of
the last epoch's last quarter of batches (``tail_loss``), not the epoch's mean, which still averages
in the steps before a network that dies within its first epoch has died. At 150 px the seed CNN's
Dense(512) often ends up with its ReLUs dead after Adam's first steps; comparing batch sizes there
compares two dead networks. A *diverged* trial's loss became NaN. The runner may already have
labelled a trial (``trial.stop_reason`` and ``trial.note``); its note is kept as written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from engine.analysis.words import either, finite, lr, pct
from engine.config import SEED_MODELS
from engine.record.target import chance_accuracy, chance_margin, is_finished

DEAD_LOSS_TOLERANCE = 0.01  # within 1% of the loss of guessing
SMALL_IMAGE = 32  # the size the seed CNN trains reliably at (README)
# The seed CNN with batch normalization did no better at 150 px (README: 37.3% against the seed's 50.9%
# at batch 32); this smaller model with batch normalization reached 99.2% with the same command.
SMALL_BN_MODEL = "mobilenetv3small"


@dataclass(frozen=True)
class Diagnosis:
    """One trial that did not train: kind is dead, diverged or failed; note says why and what to try."""

    run_index: int
    batch_size: int
    lr: Optional[float]
    seed: Optional[int]
    kind: str
    note: str


def chance_loss(dataset: Optional[dict[str, Any]]) -> Optional[float]:
    """Cross-entropy of guessing the class shares: ln(classes) when balanced; None if unknown."""
    counts = [n for n in ((dataset or {}).get("counts") or {}).values() if finite(n) and n > 0]
    if counts:
        total = sum(counts)
        return -sum(n / total * math.log(n / total) for n in counts)
    classes = (dataset or {}).get("classes") or []
    return math.log(len(classes)) if len(classes) >= 2 else None


def diagnose(run: dict[str, Any], record: dict[str, Any]) -> Optional[Diagnosis]:
    """The diagnosis of one trial, or None when it trained (or has not run yet). Only a trial that
    trained all it was given can be called dead: one stopped by the user after an epoch has not
    yet had the chance to leave the loss of guessing."""
    trial = run.get("trial") or {}
    reason = trial.get("stop_reason")
    history = run.get("history") or []
    error = run.get("error") or ""
    if reason == "diverged" or (run.get("status") == "failed" and "diverged" in error) or \
            any("loss" in h and not finite(h["loss"]) for h in history):
        kind = "diverged"
    elif reason == "dead" or (is_finished(run) and is_dead(history, record.get("dataset"))):
        kind = "dead"
    elif run.get("status") == "failed" or reason == "failed":
        kind = "failed"
    else:
        return None
    note = trial.get("note") or explain(kind, run, record)
    return Diagnosis(run.get("run_index", 0), run["batch_size"], run.get("lr"), run.get("seed"), kind, note)


def diagnoses(record: dict[str, Any]) -> list[Diagnosis]:
    """Every trial of the record that did not train, in run order."""
    found = (diagnose(run, record) for run in record.get("runs", []))
    return [d for d in found if d is not None]


def end_loss(history: list[dict[str, Any]]) -> Optional[float]:
    """The training loss where the trial stands now: the last epoch's tail (its last quarter of batches)
    when recorded, else that epoch's mean, which still averages in its first steps."""
    last = next((h for h in reversed(history) if finite(h.get("loss"))), None)
    if last is None:
        return None
    return last["tail_loss"] if finite(last.get("tail_loss")) else last["loss"]


def is_dead(history: list[dict[str, Any]], dataset: Optional[dict[str, Any]]) -> bool:
    """The training loss at the end sits within 1% of the loss of guessing (either side) and val accuracy
    never left chance: the network learned nothing beyond the class shares. A loss far above the
    loss of guessing is a network making confident mistakes, which may still learn: not dead."""
    guess, chance, loss = chance_loss(dataset), chance_accuracy(dataset), end_loss(history)
    accuracies = [h["val_accuracy"] for h in history if finite(h.get("val_accuracy"))]
    if guess is None or chance is None or loss is None or not accuracies:
        return False
    return abs(loss - guess) <= DEAD_LOSS_TOLERANCE * guess and max(accuracies) <= chance + chance_margin(dataset)


def remedies(record: dict[str, Any], run: Optional[dict[str, Any]] = None) -> list[str]:
    """What to try when networks do not train, most likely first, for this record's settings."""
    config = record.get("config") or {}
    rate = (run or {}).get("lr") or config.get("lr")
    learned = sorted(r["lr"] for r in record.get("runs", []) if run is not None and r is not run
                     and r["batch_size"] == run["batch_size"] and finite(r.get("lr")) and _learned(r, record))
    if finite(rate) and rate in learned:  # the learning rate is not the problem
        out = []
    elif learned and finite(rate) and rate < learned[0]:
        out = [f"a higher learning rate ({lr(learned[0])} learned at this batch size)"]
    elif learned and finite(rate) and rate > learned[-1]:
        out = [f"a lower learning rate ({lr(learned[-1])} learned at this batch size)"]
    else:  # nothing learned: below every rate tried (suggesting one that already died helps nobody)
        tried = [r["lr"] for r in record.get("runs", []) if finite(r.get("lr"))
                 and (run is None or r["batch_size"] == run["batch_size"])]
        lowest = min(tried + ([rate] if finite(rate) else []), default=None)
        out = [f"a lower learning rate (e.g. {lr(lowest / 3)})" if lowest is not None else "a lower learning rate"]
    size = config.get("image_size")
    if isinstance(size, int) and size > SMALL_IMAGE:
        out.append(f"a smaller image size (now {size} px; --image-size {SMALL_IMAGE})")
    if config.get("model", "seed") in SEED_MODELS:
        out.append(f"a small model with batch normalization (--model {SMALL_BN_MODEL} --weights none)")
    return out or ["another seed (--seed)"]


def _learned(run: dict[str, Any], record: dict[str, Any]) -> bool:
    """Left chance without diverging or failing (finished, or still in the running at a rung)."""
    history = run.get("history") or []
    return bool(history) and all(finite(h.get("loss")) for h in history) \
        and (run.get("trial") or {}).get("stop_reason") not in ("dead", "diverged", "failed") \
        and not is_dead(history, record.get("dataset"))


def explain(kind: str, run: dict[str, Any], record: dict[str, Any]) -> str:
    """The one-line note for a dead, diverged or failed trial: what happened and what to try."""
    history = run.get("history") or []
    tries = "try " + either(remedies(record, run))
    if kind == "dead" and any(r is not run and r["batch_size"] == run["batch_size"] and r.get("lr") == run.get("lr")
                              and _learned(r, record) for r in record.get("runs", [])):
        tries = "the same learning rate learned with another seed, so the initial weights decided it; " + tries
    if kind == "dead":
        loss = end_loss(history)
        guess = chance_loss(record.get("dataset")) or loss
        classes = len((record.get("dataset") or {}).get("classes") or [])
        named = f"ln {classes} = {guess:.4f}" if classes and abs(guess - math.log(classes)) < 1e-9 else f"{guess:.4f}"
        best = max(h["val_accuracy"] for h in history if finite(h.get("val_accuracy")))
        chance = chance_accuracy(record.get("dataset"))
        return (f"dead: training loss ended at {loss:.4f}, the loss of guessing ({named}), and validation accuracy "
                f"at chance ({pct(best)}, chance {pct(chance)}); {tries}")
    if kind == "diverged":
        epoch = next((h.get("epoch") for h in history if "loss" in h and not finite(h["loss"])), len(history) + 1)
        return f"diverged: the loss became NaN in epoch {epoch}; {tries}"
    return f"failed: {run.get('error') or 'no reason recorded'}"
