"""Start an experiment: check the data, choose where it trains, create its folder and record, run it.

This is the engine's front door for the command line, the window and the benchmarks.
"""

from __future__ import annotations

import platform
import re
import socket
import time
from pathlib import Path
from typing import Any, Optional

import keras
import tensorflow as tf

from engine import __version__
from engine.config import ExperimentConfig
from engine.config_file import write_config
from engine.data.pipeline import Augmentation
from engine.data.split import split_digest
from engine.events import Listener, ignore
from engine.record import store as rec
from engine.scale import distribute
from engine.scale.distribute import ParallelTrainer
from engine.scale.ray_cluster import RayPlacement
from engine.stop import StopToken
from engine.train import plan
from engine.train.devices import describe
from engine.train.placement import Placement
from engine.train.prepare import Prepared, prepare
from engine.study.study import Study, study_plan


CONFIG_NAME = "config.toml"


def run_experiment(config: ExperimentConfig, listener: Listener = ignore,
                   stop: Optional[StopToken] = None, prepared: Optional[Prepared] = None,
                   placement: Optional[Any] = None) -> Path:
    """Train every trial (repeat, batch size, learning rate); return the experiment folder.

    ``prepared`` lets a caller check data and settings first (engine.train.prepare) and
    report user errors before TensorFlow is even loaded. ``placement``
    (engine.scale.distribute) defaults to what ``config.devices`` and ``config.parallel`` ask for.
    """
    stop = stop or StopToken()
    prepared = prepared or prepare(config, listener, stop)
    placement = placement or distribute.place(prepared.config, listener)
    experiment_dir = create_experiment_dir(Path(config.out), config)
    record = new_record(prepared, experiment_dir)
    record["environment"]["distribution"] = placement.to_record()
    rec.save(experiment_dir, record)
    write_config(prepared.config, experiment_dir / CONFIG_NAME)  # run --config repeats the experiment exactly
    make_study(placement, prepared, experiment_dir, record, listener, stop).run()
    return experiment_dir


def create_experiment_dir(out: Path, config: ExperimentConfig) -> Path:
    """A fresh folder per experiment; mkdir is atomic, so two writers never share one."""
    out.mkdir(parents=True, exist_ok=True)
    data_name = re.sub(r"[^\w.-]+", "_", Path(config.data_dir).resolve().name).strip("_")[:40] or "data"
    stem = config.name or f"{time.strftime('%Y%m%d-%H%M%S')}-{data_name}-bs{'-'.join(map(str, config.batch_sizes))}"
    for attempt in range(1000):
        candidate = out / (stem if attempt == 0 else f"{stem}-{attempt + 1}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"{out}: could not create a new experiment folder named {stem}")


def new_record(p: Prepared, experiment_dir: Path) -> dict[str, Any]:
    report = p.data.report
    trials = plan.plan_trials(p.config, int(len(p.train_idx)), p.reference_batch)
    runs = [new_trial(trial) for trial in trials]
    return {
        "schema_version": rec.SCHEMA_VERSION,
        "app": f"BatchLab {__version__}",
        "id": experiment_dir.name,
        "created": rec.utc_now(),
        "updated": rec.utc_now(),
        "status": "running",
        "config": p.config.to_dict(),
        "augmentation": Augmentation().to_dict() if p.config.augment else None,
        "dataset": {
            **report.to_record(),
            "train_count": int(len(p.train_idx)),
            "val_count": int(len(p.val_idx)),
            "split_sha256": split_digest(report.files, p.train_idx, p.val_idx),
        },
        "environment": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "platform": platform.platform(),
            "hostname": socket.gethostname(),
            "devices": [d.name for d in tf.config.list_logical_devices()],
            "device": describe(p.facts),
            "precision": p.precision.label,
            "precision_reason": p.precision.reason,
        },
        "reference_batch": p.reference_batch,
        "target_accuracy": None,
        "tuning": study_plan(plan.tuning_method(p.config), trials, p.config.halving_eta),
        "runs": runs,
    }


def new_trial(trial: dict[str, Any]) -> dict[str, Any]:
    """A queued trial: the record's run keys, with its planned rate, steps and epochs filled in."""
    run = rec.new_run(trial["run_index"], trial["batch_size"], trial["repeat"], trial["seed"])
    run.update({key: trial[key] for key in ("lr", "lr_index", "steps_per_epoch", "epochs_planned")})
    run["trial"] = {"rung": 0, "stopped_at_rung": None, "stop_reason": None, "note": None}
    return run


def make_study(placement: Placement, p: Prepared, experiment_dir: Path, record: dict[str, Any],
               listener: Listener, stop: StopToken) -> Study:
    """Parallel trials get a process per device, trials on Ray a task each (the connection ends with the study);
    every other placement trains in this process."""
    if isinstance(placement, RayPlacement):
        from engine.scale.ray_trials import RayTrainer  # imports Ray, an optional extra

        study: Study = _RayStudy(p, experiment_dir, record, listener, stop, placement)
        study.executor = RayTrainer(p, experiment_dir, record, study.emit, stop, placement)
        return study
    study = Study(p, experiment_dir, record, listener, stop, placement)
    if placement.parallel_devices:
        study.executor = ParallelTrainer(p, experiment_dir, record, study.emit, stop, placement)
    return study


class _RayStudy(Study):
    """A study whose trials run on Ray: it leaves the cluster (stops a runtime it started) when it ends."""

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.executor.close()  # type: ignore[attr-defined]
