"""``experiment.json``: the one record of an experiment that the window and other tools read.

Layout (schema version 1; keys are a contract, only ever added to):

    schema_version  int, 1
    app             "BatchLab <version>"
    id              folder name of the experiment
    created, updated ISO-8601 UTC timestamps
    status          running | completed | stopped | failed | interrupted (set on load when the
                    writing process died: status running but a run never finished)
    config          engine.config.ExperimentConfig as a dict
    dataset         root, classes, counts {class: n}, skipped [{path, reason}], train_count,
                    val_count, split_sha256 (of the train/val file lists)
    environment     python, tensorflow, keras, platform, hostname, devices [str], device,
                    precision, precision_reason
    runs            one per (repeat, batch size), batch sizes in the order given:
        run_index, batch_size, repeat, seed, status (pending|running|completed|stopped|failed),
        error, initial_weights_sha256, lr (base lr after scaling), epochs_planned,
        steps_per_epoch, train_samples, device, precision, replicas,
        history [{epoch, loss, accuracy, val_loss, val_accuracy, lr, steps, samples,
                  seconds, elapsed, images_per_s}],
        best {epoch, val_accuracy, val_loss} or null, checkpoint (relative path) or null,
        tensorboard (relative path), epochs_run, seconds_per_epoch, images_per_s,
        started, finished

All paths inside are relative to the experiment folder and are never followed outside it.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any, Optional

from engine import atomic

SCHEMA_VERSION = 1
RECORD_NAME = "experiment.json"
RUN_STATUSES = ("pending", "running", "completed", "stopped", "failed")
MAX_RECORD_BYTES = 64 * 1024 * 1024


class RecordError(ValueError):
    """A record that cannot be trusted or read; the message names the file and the fault."""


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def clean_number(value: Any) -> Any:
    """JSON has no NaN or infinity: store them as null so the record stays standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def new_run(run_index: int, batch_size: int, repeat: int, seed: int) -> dict[str, Any]:
    return {
        "run_index": run_index,
        "batch_size": batch_size,
        "repeat": repeat,
        "seed": seed,
        "status": "pending",
        "error": None,
        "initial_weights_sha256": None,
        "lr": None,
        "epochs_planned": None,
        "steps_per_epoch": None,
        "train_samples": None,
        "device": None,
        "precision": None,
        "replicas": 1,
        "history": [],
        "best": None,
        "checkpoint": None,
        "tensorboard": None,
        "epochs_run": 0,
        "seconds_per_epoch": None,
        "images_per_s": None,
        "started": None,
        "finished": None,
    }


def save(experiment_dir: Path, record: dict[str, Any]) -> None:
    """Rewrite the record atomically: a crash leaves the previous complete version."""
    record["updated"] = utc_now()
    atomic.write_json(Path(experiment_dir) / RECORD_NAME, record)


def inside(experiment_dir: Path, relative: Optional[str]) -> Optional[Path]:
    """Resolve a path from a record, refusing anything that leaves the experiment folder."""
    if relative is None:
        return None
    if not isinstance(relative, str) or not relative:
        raise RecordError(f"{experiment_dir / RECORD_NAME}: path {relative!r} is not a relative path")
    root = Path(experiment_dir).resolve()
    target = (root / relative).resolve()
    if Path(relative).is_absolute() or (target != root and root not in target.parents):
        raise RecordError(
            f"{experiment_dir / RECORD_NAME}: path {relative!r} points outside the experiment folder; refused"
        )
    return target


def load(experiment_dir: Path | str) -> dict[str, Any]:
    """Read and check a record from disk; never executes or follows anything in it.

    Raises RecordError with the file named when it is missing, malformed, from a
    newer BatchLab, or names a path outside its folder. A record whose writer died
    mid-run comes back with status ``interrupted``.
    """
    experiment_dir = Path(experiment_dir)
    path = experiment_dir / RECORD_NAME
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise RecordError(f"{path}: larger than {MAX_RECORD_BYTES // 2**20} MiB; refused")
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: no experiment record here") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: cannot be read as JSON ({exc})") from None
    _check_shape(path, record)
    for run in record["runs"]:
        for key in ("checkpoint", "tensorboard"):
            inside(experiment_dir, run.get(key))
    if record.get("status") == "running" or any(r.get("status") == "running" for r in record["runs"]):
        record["status"] = "interrupted"
    return record


def _check_shape(path: Path, record: Any) -> None:
    if not isinstance(record, dict):
        raise RecordError(f"{path}: not an experiment record (top level is not an object)")
    version = record.get("schema_version", 0)
    if not isinstance(version, int) or version < 0:
        raise RecordError(f"{path}: schema_version {version!r} is not a version number")
    if version > SCHEMA_VERSION:
        raise RecordError(f"{path}: written by a newer BatchLab (schema {version}, this one reads up to "
                          f"{SCHEMA_VERSION}); update BatchLab to open it")
    for key, kind in (("config", dict), ("dataset", dict), ("runs", list)):
        if not isinstance(record.get(key), kind):
            raise RecordError(f"{path}: '{key}' is missing or not a {kind.__name__}")
    for i, run in enumerate(record["runs"]):
        if not isinstance(run, dict):
            raise RecordError(f"{path}: runs[{i}] is not an object")
        if not isinstance(run.get("batch_size"), int) or isinstance(run.get("batch_size"), bool):
            raise RecordError(f"{path}: runs[{i}].batch_size is not a whole number")
        if run.get("status") not in RUN_STATUSES:
            raise RecordError(f"{path}: runs[{i}].status {run.get('status')!r} is not one of {RUN_STATUSES}")
        history = run.get("history", [])
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise RecordError(f"{path}: runs[{i}].history is not a list of epochs")
        run.setdefault("history", history)
        run.setdefault("repeat", 0)
