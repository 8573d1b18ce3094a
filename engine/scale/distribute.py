"""Where an experiment trains: one device, several GPUs, several machines, or one run per device.

* One device (the default when at most one GPU is visible): no strategy, no scope, the
  runner's path exactly as it was.
* Several devices of one machine: ``tf.distribute.MirroredStrategy``. The batch size the
  user picked stays the global batch; each step splits it across the replicas.
* Several machines: ``tf.distribute.MultiWorkerMirroredStrategy`` from ``TF_CONFIG``
  (see engine.cli.worker). Every worker runs the same experiment; only the chief's
  folder is kept, the others train into a temporary folder that is removed.
* Parallel trials: trials train at the same time, one child process per device (pinned
  with ``CUDA_VISIBLE_DEVICES``) and per segment. The children send their events as JSON
  lines; this process alone folds them into ``experiment.json``.

Under a strategy Keras draws one batch before training to build its metrics, so the
seeded shuffle starts one permutation later than on one device; every batch size of
an experiment shares the placement, so the comparison stays fair.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Optional

import tensorflow as tf

from engine import events as ev
from engine.config import ConfigError, ExperimentConfig
from engine.events import Listener, LogMessage, RunFinished, ignore
from engine.record import store as rec
from engine.stop import StopToken
from engine.train.devices import PrecisionChoice, describe
from engine.train.placement import Placement, short_device_name
from engine.train.prepare import Prepared, prepare
from engine.record.state import apply_event
from engine.train.runner import Trainer

# native_logs first: the child stays quiet (or verbose) as its parent, before TensorFlow loads.
CHILD_COMMAND = ("import sys; from engine import native_logs; native_logs.setup(); "
                 "from engine.scale.distribute import child_main; sys.exit(child_main())")


class MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy with the ``reduce`` Keras 3 (3.15) expects of it.

    Keras' fit calls it in two ways the multi-worker strategy refuses: with an (images,
    labels) tuple, to learn the input shapes ("Attempt to convert a value (PerReplica...")
    and with ``axis=0`` on every scalar metric ("Invalid reduction dimension 0 for input
    with 0 dimensions"). Here a nest is reduced value by value, and a scalar is reduced
    across replicas only, which is what a scalar's mean over axis 0 means.
    """

    def reduce(self, reduce_op: Any, value: Any, axis: Any) -> Any:
        if isinstance(value, (tuple, list, dict)):
            return tf.nest.map_structure(lambda v: self.reduce(reduce_op, v, axis), value)
        if axis is not None and self.experimental_local_results(value)[0].shape.rank == 0:
            axis = None
        return super().reduce(reduce_op, value, axis)


def place(config: ExperimentConfig, listener: Listener = ignore) -> Placement:
    """Choose the placement from ``config.devices`` and ``config.parallel``, or join the Ray cluster of
    ``config.ray_address``; ConfigError names the setting."""
    if config.ray_address is not None:
        from engine.scale.ray_cluster import connect  # Ray is an optional extra

        return connect(config, listener)
    chosen = config.devices is not None
    devices = resolve_devices(config.devices)
    if config.parallel:
        if len(devices) >= 2:
            return Placement(parallel_devices=tuple(devices))
        listener(LogMessage("info", "parallel runs need at least two devices: the runs go one after another"))
    if len(devices) == 1:
        return Placement(device=devices[0] if chosen else None)  # one GPU, not chosen: the plain path
    if not devices:
        return Placement()
    placement = Placement(strategy=tf.distribute.MirroredStrategy([f"/{d}" for d in devices]))
    check_distributable(config, placement, listener)
    return placement


def check_distributable(config: ExperimentConfig, placement: Placement, listener: Listener) -> None:
    """Refuse what cannot run on several replicas; warn where batches split unevenly."""
    if config.noise_scale:
        raise ConfigError("noise scale: not available when training on several devices (pick one device)")
    if placement.workers > 1 and config.budget == "time":
        raise ConfigError("budget: 'time' cannot be used with several workers (each would stop at another step)")
    for size in config.batch_sizes:
        if size % placement.replicas:
            listener(LogMessage("warning", f"batch size {size} does not split evenly over {placement.replicas} "
                                           f"replicas: each gets {size // placement.replicas} or "
                                           f"{placement.per_replica_batch(size)} images per step"))


def resolve_devices(requested: Optional[list[str]]) -> list[str]:
    """Validated device names (``GPU:0``): the requested ones, or every visible GPU when none are."""
    visible = [short_device_name(d.name) for d in tf.config.list_logical_devices()]
    if requested is None:
        return [name for name in visible if name.startswith("GPU:")]
    for name in requested:
        if name not in visible:
            raise ConfigError(f"devices: {name} is not visible here (visible: {', '.join(visible)})")
    return list(requested)


def child_environment(device: str) -> dict[str, str]:
    """Pin a child process to one device before it loads TensorFlow."""
    env = dict(os.environ)
    kind, index = device.split(":")
    if kind == "GPU":
        visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        env["CUDA_VISIBLE_DEVICES"] = visible[int(index)] if int(index) < len(visible) else index
    else:
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


class _Child:
    """One child process training one run, with threads that read its output."""

    def __init__(self, run_index: int, device: str, spec: dict[str, Any], inbox: "queue.Queue[tuple]") -> None:
        self.run_index = run_index
        self.device = device
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self.process = subprocess.Popen([sys.executable, "-c", CHILD_COMMAND], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                        env=child_environment(device))
        self.send(json.dumps(spec))
        threading.Thread(target=self._read_stdout, args=(inbox,), daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def send(self, line: str) -> None:
        with contextlib.suppress(OSError):  # the child may have exited already
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()

    def _read_stdout(self, inbox: "queue.Queue[tuple]") -> None:
        for line in self.process.stdout:
            message = ev.read_message(line)
            if message is not None:
                inbox.put((self, message))
        inbox.put((self, None))

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            if line.strip():
                self.stderr_tail.append(line.rstrip())


class ParallelTrainer:
    """Trials start as soon as a device is free, each segment in its own process; this process
    alone folds their events into the record (through ``emit``, the study's)."""

    def __init__(self, p: Prepared, experiment_dir: Path, record: dict[str, Any], emit: Callable[[ev.Event], None],
                 stop: StopToken, placement: Placement) -> None:
        self.p = p
        self.dir = experiment_dir
        self.record = record
        self.emit = emit
        self.stop = stop
        self.free = list(placement.parallel_devices)
        self.children: list[_Child] = []
        self.inbox: "queue.Queue[tuple]" = queue.Queue()
        self.stop_sent = False
        self.halted: Optional[OSError] = None

    def train_all(self, segments: list[tuple[dict[str, Any], int]]) -> None:
        """Start each segment on the next free device (waiting for one), then wait for them all."""
        try:
            for run, until_epoch in segments:
                while not self.free and not self.stop.is_set():
                    self.pump()
                if self.stop.is_set():
                    break
                self.start(run, until_epoch, self.free.pop(0))
            while self.children:
                self.pump()
        except BaseException:
            self.stop.set()
            for child in self.children:
                child.send("stop")
                child.process.wait()
            raise

    def start(self, run: dict[str, Any], until_epoch: int, device: str) -> None:
        spec = {"config": self.p.config.to_dict(), "experiment_dir": str(self.dir), "record": self.record,
                "run_index": run["run_index"], "until_epoch": until_epoch, "device": device,
                "precision": dataclasses.asdict(self.p.precision)}
        self.children.append(_Child(run["run_index"], device, spec, self.inbox))

    def pump(self) -> None:
        """Handle one message from a child (or pass the stop request on); never blocks for long."""
        if self.stop.is_set() and not self.stop_sent:
            self.stop_sent = True
            for child in self.children:
                child.send("stop")
        try:
            child, message = self.inbox.get(timeout=0.2)
        except queue.Empty:
            return
        if message is None:
            self.child_exited(child)
        else:
            self.emit(ev.event_from_message(message))

    def child_exited(self, child: _Child) -> None:
        code = child.process.wait()
        self.children.remove(child)
        self.free.append(child.device)
        run = self.record["runs"][child.run_index]
        if run["status"] == "running":  # it died before reporting the end of its segment
            last = child.stderr_tail[-1] if child.stderr_tail else "no output"
            error = f"the process training on {child.device} exited with code {code}: {last[:300]}"
            self.emit(LogMessage("error", f"batch size {run['batch_size']}: {error}"))
            self.emit(RunFinished(run["run_index"], run["batch_size"], "failed", error, run["best"], run["checkpoint"],
                                  run["epochs_run"], {"finished": rec.utc_now(), "trial": {
                                      "stopped_at_rung": (run.get("trial") or {}).get("rung", 0),
                                      "stop_reason": "failed", "note": None}}))


def _watch_parent(stop: StopToken) -> None:
    """A ``stop`` line, or the parent going away (end of input), stops the trial after this batch."""
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    stop.set()


def child_main() -> int:
    """Entry of a parallel child process: one trial segment, given as one JSON line on standard input.

    The child keeps its own copy of the record current (the trainer reads its history) and
    sends every event to the parent, which alone writes experiment.json.
    """
    spec = json.loads(sys.stdin.readline())
    stop = StopToken()
    threading.Thread(target=_watch_parent, args=(stop,), daemon=True).start()

    def interrupt(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, interrupt)
    config = ExperimentConfig.from_dict(spec["config"])
    prepared = dataclasses.replace(prepare(config, ignore, stop), precision=PrecisionChoice(**spec["precision"]))
    record = spec["record"]
    record["environment"]["device"] = f"{spec['device']} ({describe(prepared.facts)})"

    def emit(event: ev.Event) -> None:
        apply_event(record, event)
        ev.send_event(event)

    trainer = Trainer(prepared, Path(spec["experiment_dir"]), record, emit, stop, Placement())
    trainer.train(record["runs"][spec["run_index"]], spec["until_epoch"])
    return 0
