"""The one place the record's run state changes: fold an engine event into a record.

The runner applies every event to the record it writes to experiment.json; the window
applies the same events to its copy of the record (``ExperimentStarted.record``) to draw.
Derived figures (mean throughput, seconds per epoch, the target and every run's time to
it) are computed here, so the table shows the same numbers live and after reopening.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Optional

from engine import events as ev
from engine.record.target import experiment_target, time_to_target

# Events after which the record on disk must be rewritten.
RECORD_EVENTS = (ev.RunStarted, ev.EpochEnded, ev.RunPaused, ev.RunFinished, ev.RecordUpdated,
                 ev.ExperimentFinished)


def apply_event(record: dict[str, Any], event: ev.Event) -> Optional[dict[str, Any]]:
    """Fold ``event`` into ``record``; return the run it changed (None when no single run changed)."""
    if isinstance(event, ev.RecordUpdated):
        record.update(event.updates)
        return None
    if isinstance(event, ev.ExperimentFinished):
        record["status"] = event.status
        refresh_targets(record)
        return None
    run = find_run(record, getattr(event, "run_index", None))
    if run is None:
        return None
    if isinstance(event, ev.RunStarted):
        run.update(copy.deepcopy(event.updates))  # a record never shares a list with an event (or another record)
        run.update(status="running", error=None, lr=event.lr, steps_per_epoch=event.steps_per_epoch,
                   epochs_planned=event.epochs, train_samples=event.train_samples, seed=event.seed)
    elif isinstance(event, ev.EpochEnded):
        _add_epoch(run, event)
        refresh_targets(record)
    elif isinstance(event, ev.RunPaused):
        run.update(status="pending", state_file=event.state_file)
        run.setdefault("trial", {})["rung"] = event.rung
    elif isinstance(event, ev.RunFinished):
        run.update(status=event.status, error=event.error, checkpoint=event.checkpoint or run.get("checkpoint"))
        if event.best is not None:
            run["best"] = dict(event.best)
        for key, value in copy.deepcopy(event.updates).items():
            if isinstance(value, dict) and isinstance(run.get(key), dict):
                run[key] = {**run[key], **value}
            else:
                run[key] = value
        refresh_targets(record)
    else:
        return None
    return run


def find_run(record: dict[str, Any], run_index: Optional[int]) -> Optional[dict[str, Any]]:
    if run_index is None:
        return None
    runs = record.get("runs") or []
    if 0 <= run_index < len(runs) and runs[run_index].get("run_index") == run_index:
        return runs[run_index]
    return next((r for r in runs if r.get("run_index") == run_index), None)


def _add_epoch(run: dict[str, Any], event: ev.EpochEnded) -> None:
    history = run.setdefault("history", [])
    history.append(dict(event.entry))
    if event.improved:
        run["best"] = {"epoch": event.entry["epoch"], "val_accuracy": event.entry["val_accuracy"],
                       "val_loss": event.entry["val_loss"]}
        run.update(event.checkpoint)
    run["epochs_run"] = len(history)
    seconds = [h["seconds"] for h in history if _number(h.get("seconds"))]
    run["seconds_per_epoch"] = round(sum(seconds) / len(seconds), 4) if seconds else None
    rates = [h["images_per_s"] for h in history if _number(h.get("images_per_s"))]
    run["images_per_s"] = round(sum(rates) / len(rates), 2) if rates else None


def refresh_targets(record: dict[str, Any]) -> None:
    """The target accuracy (configured, else 95% of the best finished trial so far) and each run's time to it."""
    runs = record.get("runs") or []
    target = experiment_target(record)
    record["target_accuracy"] = target
    for run in runs:
        if run.get("history"):
            run["time_to_target"] = time_to_target(run["history"], target) if target is not None else None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
