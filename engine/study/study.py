"""A study: every trial of an experiment, trained rung by rung, with one writer of the record.

The study owns ``experiment.json``. Every event goes through ``emit``: folded into the record
(``apply_event``), written atomically when it changed the record, and passed to the listener
(the terminal or the window). Trials train through an executor: this process (``Trainer``),
or one child process per device (``engine.scale.distribute.ParallelTrainer``). Between rungs
of successive halving the study decides which learning rates go on; without halving there is
one rung, the whole budget.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Optional, Protocol

from engine.analysis.diagnosis import explain, is_dead
from engine.analysis.finalize import finalize
from engine.analysis.summary import load_probe
from engine.events import Event, ExperimentFinished, ExperimentStarted, Listener, RecordUpdated
from engine.record import store as rec
from engine.record.state import RECORD_EVENTS, apply_event
from engine.stop import StopToken
from engine.study import halving
from engine.train.memory import freeze_startup_objects
from engine.train.placement import Placement
from engine.train.prepare import Prepared
from engine.train.runner import Trainer


class Executor(Protocol):
    halted: Optional[OSError]

    def train_all(self, segments: list[tuple[dict[str, Any], int]]) -> None:
        """Train each (trial, until epoch), in any order; stop early when the study's stop token is set."""


class Study:
    """Drives the trials of one experiment folder and keeps its record current."""

    def __init__(self, p: Prepared, experiment_dir: Path, record: dict[str, Any], listener: Listener,
                 stop: StopToken, placement: Optional[Placement] = None) -> None:
        self.p = p
        self.dir = experiment_dir
        self.record = record
        self.listener = listener
        self.stop = stop
        self.trainer = Trainer(p, experiment_dir, record, self.emit, stop, placement)
        self.executor: Executor = self.trainer  # or one that trains elsewhere (child processes, a cluster)

    def emit(self, event: Event) -> None:
        """The one path of every event: into the record, onto disk when the record changed, to the listener."""
        apply_event(self.record, event)
        if isinstance(event, RECORD_EVENTS):
            self.save_record()
        self.listener(event)

    def save_record(self) -> None:
        rec.save(self.dir, self.record)

    def run(self) -> None:
        freeze_startup_objects()  # a full garbage collection would otherwise pause everything for ~0.3 s
        cfg = self.p.config
        self.listener(ExperimentStarted(
            experiment_dir=str(self.dir), batch_sizes=list(cfg.batch_sizes), total_runs=len(self.record["runs"]),
            train_samples=int(len(self.p.train_idx)), val_samples=int(len(self.p.val_idx)),
            classes=list(self.p.data.report.classes), device=self.record["environment"]["device"],
            precision=self.p.precision.label, record=copy.deepcopy(self.record)))
        try:
            self.run_rungs()
        finally:
            self.finish()

    @property
    def halted(self) -> Optional[OSError]:
        return self.executor.halted or self.trainer.halted

    def run_rungs(self) -> None:
        rungs = self.record["tuning"]["rungs"]
        for rung in range(max(len(r) for r in rungs.values())):
            segments = []
            for run in self.record["runs"]:
                ends = rungs[str(run["batch_size"])]
                if rung < len(ends) and run["status"] == "pending" and run["epochs_run"] < ends[rung]:
                    segments.append((run, ends[rung]))
            self.executor.train_all(segments)
            if self.stop.is_set() or self.halted:
                return
            for size in self.p.config.batch_sizes:
                if rung < len(rungs[str(size)]) - 1:
                    self.decide(size, rung, rungs[str(size)][rung])

    def decide(self, batch_size: int, rung: int, epochs: int) -> None:
        """After a rung: stop dead trials (at the first rung), then keep the best 1/eta of the rest."""
        candidates = []
        for run in self.record["runs"]:
            if run["batch_size"] != batch_size:
                continue
            reason = (run.get("trial") or {}).get("stop_reason")
            if run["status"] == "pending":
                if rung == 0 and is_dead(run["history"], self.record["dataset"]):
                    self.trainer.finish(run, "completed", "dead", None, explain("dead", run, self.record))
                    continue
                candidates.append(run)
            elif reason in ("completed", "early_stopped"):
                candidates.append(run)  # ended by patience before the rung: it still competes
        decision = halving.decide(candidates, epochs, self.record["tuning"]["eta"])
        for run in candidates:
            if run["status"] == "pending" and run.get("lr_index", 0) in decision.halved:
                self.trainer.finish(run, "completed", "halved", None,
                                    f"halved at rung {rung + 1} ({epochs} epochs): its learning rate was not "
                                    f"among the best 1/{self.record['tuning']['eta']} of batch size {batch_size}")

    def finish(self) -> None:
        """The tuned answer and the prediction (engine.analysis), then the experiment's status."""
        self.emit(RecordUpdated(finalize(self.record, load_probe(self.dir))))
        statuses = {r["status"] for r in self.record["runs"]}
        if self.halted:
            status = "failed"
        elif self.stop.is_set() or "stopped" in statuses or "pending" in statuses:
            status = "stopped"
        elif statuses == {"failed"}:
            status = "failed"
        else:
            status = "completed"
        self.emit(ExperimentFinished(str(self.dir), status))


def study_plan(method: str, trials: list[dict[str, Any]], eta: int) -> dict[str, Any]:
    """The record's ``tuning`` entry as planned: the rates and the rung budgets of every batch size."""
    lrs: dict[str, list[float]] = {}
    epochs: dict[str, int] = {}
    for trial in trials:
        key = str(trial["batch_size"])
        if trial["lr"] not in lrs.setdefault(key, []):
            lrs[key].append(trial["lr"])
        epochs[key] = trial["epochs_planned"]
    rungs = {key: halving.rung_epochs(epochs[key], len(lrs[key]), eta) if method == "halving" else [epochs[key]]
             for key in lrs}
    return {"method": method, "lrs": lrs, "eta": eta if method == "halving" else None, "rungs": rungs}
