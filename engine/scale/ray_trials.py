"""Trials on a Ray cluster: each trial segment is a Ray task; this process alone writes the record.

The study hands over a rung's segments (``train_all``) and decides successive halving between
rungs, exactly as for a local run. Every segment becomes a Ray task asking for the trial's
resources (engine.scale.ray_rules.trial_request); Ray starts it on whichever node has them
free. The task sends its events back through the study's Channel actor (engine.scale.ray_segment),
each with the files the event refers to; they are written atomically into the experiment folder
and then the event goes through the study's ``emit``, so experiment.json, the terminal and the
window see a Ray trial as they see a local one. The decoded images are put in Ray's object store
once.

Every trial starts from the same saved initial weights: the first trial of a seed goes alone;
it saves ``initial/seed<N>.weights.h5`` as a local run does and sends it back with its start,
and the other trials of that seed are sent that file.

Faults. A segment whose node or worker is lost is started again (up to ``ray_retries`` times):
the run is first put back as it was when the segment started (best checkpoint, history,
TensorBoard files), through a RunStarted event whose updates carry the restored keys and a
note in ``retries`` (node, host name, time, error), so the window folds the same change the
record gets. Stop (or Ctrl+C) sets the Channel's flag, which every running trial polls: they
stop after their batch and report it; tasks not yet started are cancelled; a trial that does
not answer within STOP_GRACE_S is cancelled and recorded as stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import secrets
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Optional

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from engine import atomic
from engine import events as ev
from engine.events import LogMessage, RunStarted
from engine.record import store as rec
from engine.scale.ray_cluster import RayPlacement, task_runtime_env
from engine.scale.ray_rules import node_in_error, one_line, restore_updates, retry_note, should_retry
from engine.scale.ray_segment import Channel, Inputs, train_segment
from engine.stop import StopToken
from engine.train.placement import Placement
from engine.train.prepare import Prepared
from engine.train.runner import Trainer, describe_error, is_storage_error, trial_name

STOP_GRACE_S = 120.0  # after Stop, how long a running trial may take to answer before it is cancelled
WAIT_S = 0.2
# A task that ended with one of these lost its worker or node, not its training: worth another node.
LOST = (ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError, ray.exceptions.LocalRayletDiedError,
        ray.exceptions.ObjectLostError, ray.exceptions.OutOfMemoryError)


def is_lost(exc: Optional[BaseException]) -> bool:
    """The task's worker or node went away (retry elsewhere), as opposed to training that raised (fail)."""
    return isinstance(exc, LOST)


@dataclasses.dataclass
class _Attempt:
    """One try at one segment of one trial."""

    run_index: int
    until_epoch: int
    snapshot: dict[str, Any]  # the run when the segment started, to put back if the attempt is lost
    retries: int  # attempts of this segment lost before this one
    task: Any = None  # its Ray task's object ref
    checkpoint: Optional[Path] = None  # the best checkpoint when the segment started
    backup: Optional[Path] = None  # a hard link to it (atomic writes replace the file, not its content)
    node: Optional[str] = None
    hostname: Optional[str] = None
    greeted: bool = False  # the task runs (it said where)
    started: bool = False  # its RunStarted was folded into the record
    ended: bool = False  # its RunPaused or RunFinished was folded in: the segment is done
    written: set[Path] = dataclasses.field(default_factory=set)  # checkpoint and TensorBoard files it wrote


class RayTrainer:
    """The study's executor on Ray (``train_all(segments)``, ``halted``), same contract as ParallelTrainer."""

    def __init__(self, p: Prepared, experiment_dir: Path, record: dict[str, Any], emit: Callable[[ev.Event], None],
                 stop: StopToken, placement: RayPlacement) -> None:
        self.p = p
        self.dir = experiment_dir
        self.record = record
        self.emit = emit
        self.stop = stop
        self.placement = placement
        self.halted: Optional[OSError] = None
        self.local = Trainer(p, experiment_dir, record, emit, stop, Placement())  # seals trials this side
        # A GPU trial gets a fresh worker process (max_calls=1): TensorFlow binds to the GPUs Ray gives the first
        # task of a process and cannot move. CPU trials reuse workers, which keeps TensorFlow loaded.
        self.task = ray.remote(num_cpus=placement.request["num_cpus"], num_gpus=placement.request["num_gpus"],
                               max_calls=1 if placement.request["num_gpus"] else 0, max_retries=0,
                               runtime_env=task_runtime_env(placement.request))(train_segment)
        # The channel lives on the head: a cluster outlives any other node, and the study must outlive a lost one.
        head = next((n["node"] for n in placement.nodes if n.get("head")), None)
        where = NodeAffinitySchedulingStrategy(head, soft=False) if head else "DEFAULT"
        self.channel = ray.remote(Channel).options(num_cpus=0, scheduling_strategy=where).remote()
        shared = placement.data_path is not None
        self.inputs = ray.put(Inputs(None if shared else p.data, p.train_idx, p.val_idx))
        self.initial: dict[int, Any] = {}  # seed -> object ref of its initial weights file
        self.seeding: dict[int, int] = {}  # seed -> run index of the trial that makes its initial weights
        self.active: dict[str, _Attempt] = {}  # attempt id -> attempt
        self.count = 0
        self.stopping_since: Optional[float] = None
        self.forced = False

    def close(self) -> None:
        self.placement.close()

    # -- the rung ------------------------------------------------------------------------------------

    def train_all(self, segments: list[tuple[dict[str, Any], int]]) -> None:
        """Start every segment Ray can place, fold their events into the record, retry lost ones; return when all
        ended (or were stopped)."""
        waiting = deque((run["run_index"], until, 0, None) for run, until in segments)
        try:
            while waiting or self.active:
                if self.stop.is_set() or self.halted:
                    self._stopping()
                    waiting.clear()
                else:
                    self._submit_ready(waiting)
                if not self.active:
                    if waiting:  # every waiting trial waits for initial weights no trial is making: a bug
                        raise RuntimeError("trials wait for initial weights that no running trial makes")
                    break
                tasks = {attempt.task: key for key, attempt in self.active.items()}
                done, _ = ray.wait(list(tasks), num_returns=len(tasks), timeout=WAIT_S)
                # Messages first: a task that returned had every message of its own delivered before.
                for key, messages in ray.get(self.channel.take.remote()).items():
                    for message in messages:
                        if key in self.active:
                            self._handle(self.active[key], message)
                for ref in done:
                    self._finished(tasks[ref], ref, waiting)
        except BaseException:
            self.stop.set()
            self._cancel_all()
            raise

    def _submit_ready(self, waiting: deque) -> None:
        """Submit each waiting segment that can start now; Ray queues those the cluster has no room for yet."""
        for _ in range(len(waiting)):
            item = waiting.popleft()
            run_index, until, retries, snapshot = item
            run = self.record["runs"][run_index]
            files = self._files_for_start(run)
            if files is None:
                waiting.append(item)  # its seed's initial weights are being made
                continue
            self._submit(run, until, retries, snapshot, files)

    def _files_for_start(self, run: dict[str, Any]) -> Optional[dict[str, Any]]:
        """The files a segment starts from (object refs by relative path), or None while it must wait."""
        if run["history"]:  # continues from its saved state
            state = rec.inside(self.dir, run["state_file"])
            return {run["state_file"]: ray.put(state.read_bytes())} if state is not None else {}
        seed = run["seed"]
        relative = f"initial/seed{seed}.weights.h5"
        path = self.dir / relative
        if path.is_file():
            if seed not in self.initial:
                self.initial[seed] = ray.put(path.read_bytes())
            return {relative: self.initial[seed]}
        if seed in self.seeding:
            return None
        self.seeding[seed] = run["run_index"]  # this trial builds the model first and saves the weights
        return {}

    def _submit(self, run: dict[str, Any], until: int, retries: int, snapshot: Optional[dict[str, Any]],
                files: dict[str, Any]) -> None:
        attempt = _Attempt(run["run_index"], until, snapshot or copy.deepcopy(run), retries)
        checkpoint = rec.inside(self.dir, run.get("checkpoint"))
        if checkpoint is not None and checkpoint.is_file():
            # Named like engine.atomic's temporary files, so resume clears it if this process dies.
            attempt.checkpoint = checkpoint
            attempt.backup = checkpoint.with_name(f".{checkpoint.name}.{secrets.token_hex(4)}.keras")
            os.link(checkpoint, attempt.backup)
        spec = {"config": self.p.config.to_dict(), "record": self.record, "run_index": run["run_index"],
                "until_epoch": until, "precision": dataclasses.asdict(self.p.precision),
                "reference_batch": self.p.reference_batch}
        self.count += 1
        key = f"{run['run_index']}-{self.count}"
        attempt.task = self.task.remote(key, spec, self.inputs, self.channel, list(files), *files.values())
        self.active[key] = attempt

    # -- messages ------------------------------------------------------------------------------------

    def _handle(self, attempt: _Attempt, message: dict[str, Any]) -> None:
        """One message of a task: its greeting, or an event with its files."""
        if "hello" in message:
            attempt.greeted = True
            attempt.node, attempt.hostname = message["hello"]["node"], message["hello"]["hostname"]
            return
        if attempt.ended:
            return  # sealed on this side already (a refused write): what it still says is not recorded
        event = ev.event_from_message(message)
        try:
            self._write(attempt, message["files"])
            if isinstance(event, ev.RunFinished):  # as Trainer.finish does: a sealed trial keeps no saved state
                state = rec.inside(self.dir, self.record["runs"][attempt.run_index].get("state_file"))
                if state is not None:
                    state.unlink(missing_ok=True)
            self.emit(event)
        except OSError as exc:
            if not is_storage_error(exc):
                raise
            self._halt(attempt, exc)
            return
        if isinstance(event, RunStarted) and event.run_index == attempt.run_index:
            attempt.started = True
            if event.updates.get("initial_weights_file"):
                self.seeding.pop(self.record["runs"][attempt.run_index]["seed"], None)
        elif isinstance(event, (ev.RunPaused, ev.RunFinished)):
            attempt.ended = True

    def _finished(self, key: str, ref: Any, waiting: deque) -> None:
        """A task returned or failed: judge how its segment ended."""
        attempt = self.active.pop(key)
        try:
            ray.get(ref)
            error: Optional[BaseException] = None
        except Exception as exc:  # noqa: BLE001 - lost, cancelled or raised: judged in _ended
            error = exc
        self._ended(attempt, error, waiting)

    def _write(self, attempt: _Attempt, files: dict[str, bytes]) -> None:
        """Files an event refers to, in place before the event is folded in; atomic, never outside the folder."""
        for relative, data in files.items():
            target = rec.inside(self.dir, relative)
            atomic.write_bytes(target, data)
            if not relative.startswith("initial/"):
                attempt.written.add(target)

    def _ended(self, attempt: _Attempt, error: Optional[BaseException], waiting: deque) -> None:
        """A task ended: done, stopped, lost (retry or fail) or failed."""
        run = self.record["runs"][attempt.run_index]
        if self.seeding.get(run["seed"]) == attempt.run_index and not attempt.started:
            del self.seeding[run["seed"]]  # it never made the weights: the next trial of the seed will
        if attempt.ended:
            self._drop_backup(attempt)
            return
        if self.stop.is_set() or self.halted:
            self._drop_backup(attempt)
            if attempt.started:
                self.local.finish(run, "stopped", "stopped", "stopped by the user")
            return
        if is_lost(error):
            retry = should_retry(attempt.retries, self.p.config.ray_retries)
            self._restore(attempt, error, retry)
            if retry:
                waiting.appendleft((attempt.run_index, attempt.until_epoch, attempt.retries + 1, attempt.snapshot))
                return
            reason = f"lost its node {attempt.retries + 1} times; last: {one_line(str(error))}"
        elif error is None:
            reason = "its Ray task ended before the segment did"
        else:
            reason = describe_error(getattr(error, "cause", None) or error, self.dir)
        self._drop_backup(attempt)
        self.emit(LogMessage("error", f"{trial_name(run, self.local.tuning)}: {reason}"))
        self.local.finish(run, "failed", "failed", reason)

    def _restore(self, attempt: _Attempt, error: BaseException, retry: bool) -> None:
        """Put the run back as it was when the segment started, files included, and note the lost attempt."""
        run, snapshot = self.record["runs"][attempt.run_index], attempt.snapshot
        for path in attempt.written:
            path.unlink(missing_ok=True)
        if attempt.backup is not None and attempt.checkpoint is not None:
            os.replace(attempt.backup, attempt.checkpoint)
            attempt.backup = None
        node = attempt.node or node_in_error(str(error))
        hostname = attempt.hostname or next((n["hostname"] for n in self.placement.nodes if n["node"] == node), None)
        note = retry_note(node, hostname, rec.utc_now(), f"{type(error).__name__}: {error}",
                          len(run["history"]) - len(snapshot["history"]))
        where = f"{hostname} (node {node[:8]})" if hostname and node else "its node"
        self.emit(LogMessage("warning", f"{trial_name(run, self.local.tuning)}: lost on {where}: {note['error']}; "
                                        + (f"retrying from epoch {len(snapshot['history']) + 1}" if retry else
                                           "no retry left")))
        self.emit(RunStarted(run["run_index"], run["batch_size"], snapshot["repeat"], snapshot["seed"],
                             snapshot["epochs_planned"], snapshot["steps_per_epoch"], snapshot["train_samples"],
                             snapshot["lr"], len(snapshot["history"]), restore_updates(snapshot, run, note)))

    def _drop_backup(self, attempt: _Attempt) -> None:
        if attempt.backup is not None:
            attempt.backup.unlink(missing_ok=True)
            attempt.backup = None

    # -- stopping ------------------------------------------------------------------------------------

    def _stopping(self) -> None:
        """Tell running trials to stop after their batch, cancel those not started; force after the grace."""
        now = time.monotonic()
        if self.stopping_since is None:
            self.stopping_since = now
            self.channel.stop.remote()
            for attempt in self.active.values():
                if not attempt.greeted:
                    ray.cancel(attempt.task)
        elif not self.forced and now - self.stopping_since > STOP_GRACE_S:
            self.emit(LogMessage("warning", f"{len(self.active)} trial(s) did not stop within {STOP_GRACE_S:.0f} s; "
                                            "cancelling them"))
            self._cancel_all()

    def _cancel_all(self) -> None:
        """End every task now (its worker is killed) and record its trial as stopped with the epochs it sent."""
        self.forced = True
        for attempt in self.active.values():
            try:
                ray.cancel(attempt.task, force=True)
            except Exception:  # noqa: BLE001 - already finished, or its node is gone
                pass
            run = self.record["runs"][attempt.run_index]
            self._drop_backup(attempt)
            if run["status"] == "running" and not attempt.ended:
                self.local.finish(run, "stopped", "stopped", "stopped by the user")
        self.active.clear()

    def _halt(self, attempt: _Attempt, exc: OSError) -> None:
        """A write the file system refused (disk full): this trial fails, every other one is stopped, and the
        study ends (as a local run's does)."""
        self.halted = exc
        run = self.record["runs"][attempt.run_index]
        error = describe_error(exc, self.dir)
        self.emit(LogMessage("error", f"{trial_name(run, self.local.tuning)}: {error}"))
        attempt.ended = True
        self._drop_backup(attempt)
        self.local.finish(run, "failed", "failed", error)
