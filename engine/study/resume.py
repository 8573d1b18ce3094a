"""Continue an experiment whose process died or was stopped, in the same folder and record.

Completed and failed runs are kept as they are. A run that was interrupted (or
stopped) part-way is restarted from the shared initial weights with its history
cleared, and the record keeps a note of the discarded attempt under ``restarts``.
Restarting rather than continuing from ``best.keras`` is deliberate: the best
checkpoint is the best epoch, not the last one, and it holds neither the data
order nor the random state of the epochs after it, so a continued run would
differ from every other run of the comparison in ways the record could not show.
Pending runs simply run.

The data must be the data the experiment started with: the train/validation
split is rebuilt and its digest compared with the record's before any training.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional

from engine.config import ConfigError, ExperimentConfig
from engine.data.split import split_digest
from engine.events import Listener, LogMessage, ignore
from engine.record import store as rec
from engine.stop import StopToken
from engine.train import plan
from engine.train.prepare import prepare

RESUMABLE = ("pending", "running", "stopped")
CHECKPOINT_NAME = "best.keras"  # engine.train.runner's; not imported so resume can refuse bad input without TF
STATE_NAME = "state.keras"
# Temporary files engine.atomic leaves beside a target when the process dies mid-write.
_LEFTOVER = re.compile(r"^\.(experiment\.json|best\.keras|state\.keras|seed\d+\.weights\.h5)\.[A-Za-z0-9_]{8}"
                       r"(\.tmp|\.keras|\.weights\.h5)$")


class ResumeError(rec.RecordError):
    """The experiment cannot be continued; the message names the file or setting at fault."""


def resume_experiment(path: Path | str, listener: Listener = ignore, stop: Optional[StopToken] = None) -> Path:
    """Finish the unfinished runs of the experiment in ``path``; return its folder.

    Raises ResumeError (a RecordError) when the record cannot be trusted, its settings
    are invalid, or the data no longer gives the recorded split.
    """
    stop = stop or StopToken()
    experiment_dir = Path(path)
    record = rec.load(experiment_dir)
    where = experiment_dir / rec.RECORD_NAME
    config = config_from_record(record, experiment_dir)
    check_runs(record, config, where)
    if not any(run["status"] in RESUMABLE for run in record["runs"]):
        listener(LogMessage("info", f"{experiment_dir}: every run already finished; nothing to resume"))
        return experiment_dir
    prepared = prepare(config, listener, stop)
    check_same_split(record, prepared, where)
    from engine.scale import distribute  # TensorFlow loads here, after the cheap checks
    from engine.study.launch import make_study
    from engine.study.study import study_plan
    from engine.train.devices import describe

    device = describe(prepared.facts)
    environment = record["environment"] if isinstance(record["environment"], dict) else {}
    record["environment"] = environment
    if environment.setdefault("device", device) != device:
        listener(LogMessage("warning", f"resuming on {device}; the experiment started on "
                                       f"{environment['device']}: compare times with care"))
    remove_leftovers(experiment_dir)
    trials = plan.plan_trials(prepared.config, int(len(prepared.train_idx)), prepared.reference_batch)
    restart_unfinished(record, experiment_dir, trials)
    if not isinstance(record.get("tuning"), dict):  # a record from before learning-rate tuning
        record["tuning"] = study_plan(plan.tuning_method(prepared.config), trials, prepared.config.halving_eta)
    placement = distribute.place(prepared.config, listener)  # as a fresh start would place the runs
    environment["distribution"] = placement.to_record()
    record["schema_version"] = rec.SCHEMA_VERSION
    record["status"] = "running"
    rec.save(experiment_dir, record)
    make_study(placement, prepared, experiment_dir, record, listener, stop).run()
    return experiment_dir


def config_from_record(record: dict[str, Any], experiment_dir: Path) -> ExperimentConfig:
    """The experiment's settings, validated as if typed anew; data cache beside the experiment."""
    where = experiment_dir / rec.RECORD_NAME
    try:
        config = ExperimentConfig.from_dict(record["config"])
        config.out = str(experiment_dir.resolve().parent)
        if not Path(config.data_dir).is_dir() and isinstance(record["dataset"].get("root"), str):
            config.data_dir = record["dataset"]["root"]  # recorded relative to another working folder
        return config.validate()
    except ConfigError as exc:
        raise ResumeError(f"{where}: config: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ResumeError(f"{where}: config is not a valid experiment configuration ({exc})") from None


def check_runs(record: dict[str, Any], config: ExperimentConfig, where: Path) -> None:
    """The trials must be exactly those the config plans, so nothing in the record picks what trains."""
    try:
        reference = plan.reference_batch(config.batch_sizes, config.lr_reference_batch)
        trials = plan.plan_trials(config, max(1, int(record["dataset"].get("train_count") or 1)), reference)
    except ValueError as exc:
        raise ResumeError(f"{where}: config: {exc}") from None
    planned = [(t["run_index"], t["batch_size"], t["repeat"], t["seed"], t["lr_index"]) for t in trials]
    found = [(r["run_index"], r["batch_size"], r["repeat"], r["seed"], r.get("lr_index", 0)) for r in record["runs"]]
    if found != planned:
        raise ResumeError(f"{where}: the runs do not match the config (batch sizes, learning rates, repeats, "
                          "seeds); the record was edited or is damaged")


def check_same_split(record: dict[str, Any], prepared: Any, where: Path) -> None:
    """Refuse to mix data: a resumed run must train and validate on the recorded files."""
    recorded = record["dataset"].get("split_sha256")
    if not isinstance(recorded, str):
        raise ResumeError(f"{where}: the record has no split digest, so the data cannot be checked; "
                          "start a new experiment instead")
    report = prepared.data.report
    if split_digest(report.files, prepared.train_idx, prepared.val_idx) != recorded:
        raise ResumeError(f"{report.root}: the data changed since the experiment started (files added, removed "
                          "or renamed); restore it or start a new experiment")


def restart_unfinished(record: dict[str, Any], experiment_dir: Path, trials: list[dict[str, Any]]) -> None:
    """Reset interrupted or stopped trials to queued, noting what was discarded and when.

    A trial paused at a rung of successive halving (queued, with its saved state on disk) is kept
    and continues from that state. The discarded attempt's checkpoint, state and TensorBoard files
    go too, so the folder shows exactly what the record says.
    """
    from engine.study.launch import new_trial

    for run, trial in zip(record["runs"], trials):
        state = rec.inside(experiment_dir, run.get("state_file"))
        paused = state is not None and state.is_file()
        if run["status"] in ("completed", "failed") or (run["status"] == "pending" and (paused or not run["history"])):
            continue
        folder = rec.inside(experiment_dir, run["tensorboard"])
        if folder is not None and folder != experiment_dir.resolve() and folder.is_dir():
            for stale in [*folder.glob("events.out.tfevents.*"), folder / CHECKPOINT_NAME, folder / STATE_NAME]:
                stale.unlink(missing_ok=True)
        previous = {"running": "interrupted", "pending": "interrupted"}.get(run["status"], run["status"])
        note = {"at": rec.utc_now(), "previous_status": previous, "epochs_discarded": len(run["history"])}
        restarts = run.get("restarts") if isinstance(run.get("restarts"), list) else []
        run.clear()
        run.update(new_trial(trial), restarts=[*restarts, note])


def remove_leftovers(experiment_dir: Path) -> None:
    """Delete temporary files a killed write left behind; the files they were meant to replace stay."""
    for folder, dirs, files in os.walk(experiment_dir, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if _LEFTOVER.match(name):
                os.unlink(os.path.join(folder, name))
