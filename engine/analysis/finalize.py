"""What the runner writes into the record when an experiment ends: the target, the tuned answer
(``tuning.best``, ``tuning.compute``) and the prediction, from the same functions the summary,
the window and the report use, so the stored figures and the displayed ones cannot differ."""

from __future__ import annotations

from typing import Any, Optional

from engine.analysis import prediction, tuning
from engine.record import target as targets


def finalize(record: dict[str, Any], probe: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Top-level keys to update the record with: ``target_accuracy``, ``tuning`` (the record's own,
    or method "none" for one lr per batch size, plus ``best`` and ``compute``), ``prediction`` and
    ``prediction_problem`` (None when there is a prediction). Pure: the record is not changed."""
    target = targets.experiment_target(record)
    tuned = tuning.tune(record, target)
    predicted, problem = prediction.predict(tuned, probe)
    return {
        "target_accuracy": target,
        "tuning": {**_untuned(record), **(record.get("tuning") or {}),
                   "best": tuning.best_entry(tuned), "compute": tuning.compute(record)},
        "prediction": predicted,
        "prediction_problem": problem,
    }


def _untuned(record: dict[str, Any]) -> dict[str, Any]:
    """The ``tuning`` entry of a record written before trials: one learning rate per batch size."""
    lrs: dict[str, list[float]] = {}
    rungs: dict[str, list[int]] = {}
    for run in record.get("runs", []):
        key = str(run["batch_size"])
        if run.get("lr") is not None and run["lr"] not in lrs.setdefault(key, []):
            lrs[key].append(run["lr"])
        planned = run.get("epochs_planned") or (record.get("config") or {}).get("epochs")
        if planned and key not in rungs:
            rungs[key] = [planned]
    return {"method": "none", "lrs": {k: sorted(v) for k, v in lrs.items()}, "eta": None, "rungs": rungs}
