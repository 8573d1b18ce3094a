"""``experiment.json``: the one record of an experiment that the window and other tools read.

Layout (schema version 1; keys are a contract, only ever added to):

    schema_version  int, 1
    app             "BatchLab <version>"
    id              folder name of the experiment
    created, updated ISO-8601 UTC timestamps
    status          running | completed | stopped | failed | interrupted (set on load when the
                    writing process died: status running but a run never finished)
    config          engine.config.ExperimentConfig as a dict
    augmentation    the augmentation settings used for training (null with --no-augment)
    dataset         root, classes, counts {class: n}, skipped [{path, reason}], train_count,
                    val_count, split_sha256 (of the train/val file lists)
    environment     python, tensorflow, keras, platform, hostname, devices [str], device,
                    precision, precision_reason, distribution {strategy (single | mirrored |
                    multi_worker_mirrored | parallel | ray), devices, replicas, workers; for ray:
                    address, nodes [{node, hostname, address, cpus, gpus}], trial_resources
                    {CPU, GPU}, data ("object store" | "shared: DIR")}
    reference_batch the batch size the configured lr belongs to (for lr scaling)
    target_accuracy the val accuracy time to target is measured against (updated as epochs end)
    tuning          method (none | grid | halving), lrs {"<batch>": [lr, ...]}, eta, rungs
                    {"<batch>": [epochs at the end of each rung]}; after the study: best
                    {"<batch>": {lr, lr_band, steps_to_target, samples_to_target,
                    seconds_to_target, best_val_accuracy, reached, trials}}, compute
                    {trial_epochs, full_grid_epochs}
    model           name, source, weights, sha256, parameters, flops_per_image, ...
    prediction      s_min, b_noise, points [...], loo_error, recommended (or null)
    runs            one per trial (repeat, batch size, learning rate), batch sizes in the order
                    given, learning rates ascending:
        run_index, batch_size, repeat, seed, status (pending|running|completed|stopped|failed),
        lr_index, trial {rung, stopped_at_rung, stop_reason (completed | early_stopped |
        halved | dead | diverged | failed | stopped), note}, state_file (saved state between
        rungs, else null),
        error, initial_weights_sha256, initial_weights_file, lr (base lr after scaling),
        epochs_planned, steps_per_epoch, train_samples, device, precision, replicas,
        per_replica_batch,
        history [{epoch, loss, accuracy, val_loss, val_accuracy, lr, steps, samples,
                  seconds, elapsed, images_per_s, tail_loss (mean training loss of the epoch's
                  last quarter of batches, or null); with --noise-scale also noise_scale
                  (B_simple), gns_trace (tr Sigma), gns_grad_sq (|G|^2)}],
        best {epoch, val_accuracy, val_loss} or null, checkpoint (relative path) or null,
        checkpoint_sha256, tensorboard (relative path), epochs_run, seconds_per_epoch,
        images_per_s, time_to_target {epoch, steps, samples, seconds} or null (not reached),
        restarts [notes of attempts discarded by --resume], started, finished,
        bn_per_replica_batch (models with batch normalization: the samples each BN layer averages),
        bn_calibration {samples, layers, images} (one replica, batch normalization that trains: the moving
        statistics were recomputed from that many training images before each validation),
        on a Ray cluster: node (Ray node id of the last segment), hostname, retries [{node,
        hostname, at, error, epochs_discarded}]

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
EXPERIMENT_STATUSES = ("running", "completed", "stopped", "failed", "interrupted")
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
        record = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except FileNotFoundError:
        raise RecordError(f"{path}: no experiment record here") from None
    except RecordError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RecordError(f"{path}: cannot be read as JSON ({exc})") from None
    _check_shape(path, record)
    for run in record["runs"]:
        for key in ("checkpoint", "tensorboard", "initial_weights_file", "state_file"):
            inside(experiment_dir, run.get(key))
    _fill_defaults(experiment_dir, record)
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
    if "status" in record and record["status"] not in EXPERIMENT_STATUSES:
        raise RecordError(f"{path}: status {_short(record['status'])} is not one of {EXPERIMENT_STATUSES}")
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
        for key, kinds in _RUN_TYPES.items():
            if key in run and not _is(run[key], kinds):
                raise RecordError(f"{path}: runs[{i}].{key} {_short(run[key])} has the wrong type")
        for n, entry in enumerate(history):
            for key, value in entry.items():
                if key in _HISTORY_NUMBERS and value is not None and not _is(value, (int, float)):
                    raise RecordError(f"{path}: runs[{i}].history[{n}].{key} {_short(value)} is not a number")
        best = run.get("best")
        if best is not None and not _is(best.get("val_accuracy"), (int, float)):
            raise RecordError(f"{path}: runs[{i}].best.val_accuracy is not a number")


_HISTORY_NUMBERS = ("epoch", "loss", "tail_loss", "accuracy", "val_loss", "val_accuracy", "lr", "steps", "samples", "seconds",
                    "elapsed", "images_per_s", "noise_scale", "gns_trace", "gns_grad_sq")
_RUN_TYPES: dict[str, tuple[type, ...]] = {
    "run_index": (int,), "repeat": (int,), "seed": (int,), "epochs_run": (int,), "replicas": (int,),
    "epochs_planned": (int, type(None)), "steps_per_epoch": (int, type(None)),
    "train_samples": (int, type(None)), "lr": (int, float, type(None)),
    "seconds_per_epoch": (int, float, type(None)), "images_per_s": (int, float, type(None)),
    "best": (dict, type(None)), "error": (str, type(None)), "device": (str, type(None)),
    "precision": (str, type(None)), "started": (str, type(None)), "finished": (str, type(None)),
    "lr_index": (int,), "trial": (dict, type(None)), "state_file": (str, type(None)),
}


def _is(value: Any, kinds: tuple[type, ...]) -> bool:
    """isinstance that does not count True/False as numbers (JSON has real booleans)."""
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _refuse_constant(token: str) -> Any:
    """Python's json reads NaN and Infinity; other tools do not, so such a record is refused."""
    raise ValueError(f"{token} is not standard JSON")


def _fill_defaults(experiment_dir: Path, record: dict[str, Any]) -> None:
    """Give a record from an older BatchLab every key this version reads (in memory only)."""
    record.setdefault("schema_version", 0)
    record.setdefault("app", "BatchLab (unknown version)")
    record.setdefault("id", Path(experiment_dir).name)
    for key in ("created", "updated", "augmentation", "reference_batch", "target_accuracy"):
        record.setdefault(key, None)
    record.setdefault("environment", {})
    for key, default in (("classes", []), ("counts", {}), ("skipped", [])):
        record["dataset"].setdefault(key, default)
    for i, run in enumerate(record["runs"]):
        for key, value in new_run(i, run["batch_size"], 0, 0).items():
            run.setdefault(key, value)
        run["epochs_run"] = run["epochs_run"] or len(run["history"])
    if "status" not in record:
        statuses = {r["status"] for r in record["runs"]}
        record["status"] = "completed" if statuses <= {"completed", "failed"} else "stopped"
