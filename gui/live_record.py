"""Grow an experiment.json-shaped record from engine events.

The plots and the table only ever draw run dicts shaped like ``engine.record.store``'s, so a
live experiment and one reopened from disk go through the same drawing code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from engine import events as ev
from engine.record import store as rec


def start_record(event: ev.ExperimentStarted, config: dict[str, Any]) -> dict[str, Any]:
    """The record as it stands when the engine announces the experiment: every run queued."""
    sizes = list(event.batch_sizes)
    repeats = max(1, event.total_runs // max(1, len(sizes)))
    runs = [rec.new_run(repeat * len(sizes) + i, size, repeat, seed=None)
            for repeat in range(repeats) for i, size in enumerate(sizes)]
    return {
        "id": Path(event.experiment_dir).name,
        "status": "running",
        "created": rec.utc_now(),
        "config": dict(config),
        "dataset": {"classes": list(event.classes), "train_count": event.train_samples,
                    "val_count": event.val_samples},
        "environment": {"device": event.device, "precision": event.precision},
        "runs": runs,
    }


def apply_event(record: dict[str, Any], event: ev.Event) -> Optional[dict[str, Any]]:
    """Fold one event into ``record``; return the run dict it changed (None if no run changed)."""
    if isinstance(event, ev.ExperimentFinished):
        record["status"] = event.status
        return None
    run = _run(record, getattr(event, "run_index", None))
    if run is None:
        return None
    if isinstance(event, ev.RunStarted):
        run.update(status="running", seed=event.seed, epochs_planned=event.epochs,
                   steps_per_epoch=event.steps_per_epoch, train_samples=event.train_samples, lr=event.lr)
    elif isinstance(event, ev.EpochEnded):
        run["history"].append(dict(event.entry))
        run["epochs_run"] = len(run["history"])
        run["images_per_s"] = event.images_per_s
        seconds = [h["seconds"] for h in run["history"] if isinstance(h.get("seconds"), (int, float))]
        run["seconds_per_epoch"] = sum(seconds) / len(seconds) if seconds else None
        best = next((h for h in run["history"] if h.get("epoch") == event.best_epoch), {})
        run["best"] = {"epoch": event.best_epoch, "val_accuracy": event.best_val_accuracy,
                       "val_loss": best.get("val_loss")}
    elif isinstance(event, ev.RunFinished):
        run.update(status=event.status, error=event.error, epochs_run=event.epochs_run,
                   checkpoint=event.checkpoint)
        if event.best is not None:
            run["best"] = dict(event.best)
    else:
        return None
    return run


def _run(record: dict[str, Any], run_index: Optional[int]) -> Optional[dict[str, Any]]:
    if run_index is None:
        return None
    for run in record["runs"]:
        if run["run_index"] == run_index:
            return run
    return None
