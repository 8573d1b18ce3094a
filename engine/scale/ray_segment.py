"""One trial segment on a Ray node: the same Trainer as a local run, in a scratch folder, its events sent back.

The task first says where it runs (node id and host name, before TensorFlow has even loaded),
then sends each event the Trainer emits to the study's Channel, an actor the driver empties
several times a second. Each event travels with the files the driver needs before it folds the
event into the record: the seed's initial weights (RunStarted of the first trial of a seed), the
best checkpoint (EpochEnded that improved it), the saved state (RunPaused) and the TensorBoard
event file (every epoch and at the end). Calls from one task reach the actor in order, and the
task waits for its last one before it returns: a task that returned has delivered everything. The driver writes the files atomically into the experiment folder and alone writes
experiment.json; this side keeps a copy of the record only because the Trainer reads the run's
history from it.

An actor rather than Ray's streaming generators: Ray Client (``ray://``) cannot stream them.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np
import ray

from engine import events as ev
from engine.config import ExperimentConfig
from engine.data.dataset import DatasetError, LoadedDataset, load_dataset
from engine.data.split import split_digest
from engine.record import store as rec
from engine.record.state import apply_event
from engine.scale import distribute
from engine.stop import StopToken
from engine.train.devices import PrecisionChoice, describe, detect
from engine.train.prepare import Prepared
from engine.train.runner import Trainer

POLL_S = 0.5  # how often a trial asks whether the driver wants it stopped
TENSORBOARD_GLOB = "events.out.tfevents.*"


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What every trial of a study shares, put once in Ray's object store: the decoded images and labels
    (None when the nodes read the data folder themselves) and the split."""

    data: Optional[LoadedDataset]
    train_idx: np.ndarray
    val_idx: np.ndarray


class Channel:
    """The study's mailbox on the cluster (a Ray actor): trials put messages, the driver takes them all at once;
    Stop is a flag here that every trial polls. Calls from one task run in the order it made them."""

    def __init__(self) -> None:
        self.boxes: dict[str, list[dict[str, Any]]] = {}
        self.stopped = False

    def put(self, attempt: str, message: dict[str, Any]) -> None:
        self.boxes.setdefault(attempt, []).append(message)

    def take(self) -> dict[str, list[dict[str, Any]]]:
        boxes, self.boxes = self.boxes, {}
        return boxes

    def stop(self) -> None:
        self.stopped = True

    def is_stopped(self) -> bool:
        return self.stopped


def train_segment(attempt: str, spec: dict[str, Any], inputs: Inputs, channel: Any, names: list[str],
                  *blobs: bytes) -> None:
    """Train one trial up to ``spec['until_epoch']`` here, sending where it runs, then each event with its files.

    The files it starts from come as ``names`` and their contents (``blobs``, object refs Ray resolves before
    the task starts). Nothing here waits on Ray while training: a task blocked in ``ray.get`` lends its CPUs
    to the next task (Ray's rule against deadlocks), and a node would then train more trials than it has CPUs.
    """
    node, hostname = ray.get_runtime_context().get_node_id(), socket.gethostname()
    channel.put.remote(attempt, {"hello": {"node": node, "hostname": hostname}})
    scratch = Path(tempfile.mkdtemp(prefix="batchlab-trial-"))
    stop = StopToken()
    done = threading.Event()
    threading.Thread(target=_watch, args=(channel, stop, done), name="batchlab-stop", daemon=True).start()
    segment: Optional[_Segment] = None
    try:
        segment = _Segment(attempt, spec, inputs, dict(zip(names, blobs)), channel, scratch, stop, node, hostname)
        segment.train()
    finally:
        done.set()
        if segment is not None and segment.last_sent is not None:
            ray.get(segment.last_sent)  # calls from one task run in order: everything it sent has arrived
        shutil.rmtree(scratch, ignore_errors=True)


def _watch(channel: Any, stop: StopToken, done: threading.Event) -> None:
    """Set ``stop`` when the driver asks (Stop, Ctrl+C); the Trainer then stops after its batch. Polls without
    blocking (see train_segment)."""
    asked = channel.is_stopped.remote()
    while not done.wait(POLL_S):
        ready, _ = ray.wait([asked], timeout=0)
        if not ready:
            continue
        try:
            if ray.get(asked):
                stop.set()
                return
        except ray.exceptions.RayError:
            pass  # the channel's node is busy or gone; the driver cancels this task if it must
        asked = channel.is_stopped.remote()


class _Segment:
    def __init__(self, attempt: str, spec: dict[str, Any], inputs: Inputs, files: dict[str, bytes], channel: Any,
                 scratch: Path, stop: StopToken, node: str, hostname: str) -> None:
        self.attempt, self.channel, self.scratch = attempt, channel, scratch
        self.node, self.hostname = node, hostname
        self.sent: dict[Path, tuple[int, int]] = {}  # TensorBoard files already sent: (size, mtime)
        self.last_sent: Any = None  # the last message's call
        self.provided = set(files)
        for relative, content in files.items():
            target = rec.inside(scratch, relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        # This node trains on its own devices: the driver's device and cluster settings do not apply here.
        config = dataclasses.replace(ExperimentConfig.from_dict(spec["config"]), ray_address=None, devices=None,
                                     parallel=False, out=str(scratch))
        self.record = spec["record"]
        data = inputs.data if inputs.data is not None else self._shared_data(config, inputs, stop)
        facts = detect()
        prepared = Prepared(config, data, inputs.train_idx, inputs.val_idx, facts,
                            PrecisionChoice(**spec["precision"]), spec["reference_batch"])
        self.record["environment"]["device"] = describe(facts)
        self.run = self.record["runs"][spec["run_index"]]
        self.until_epoch = spec["until_epoch"]
        self.trainer = Trainer(prepared, scratch, self.record, self.emit, stop, distribute.place(config))

    def train(self) -> None:
        self.trainer.train(self.run, self.until_epoch)

    def _shared_data(self, config: ExperimentConfig, inputs: Inputs, stop: StopToken) -> LoadedDataset:
        """The data folder as this node sees it, decoded here (cached on the node); refused if it is not the data
        the experiment's split was made from."""
        path = config.ray_data_path or config.data_dir
        cache = Path(tempfile.gettempdir()) / "batchlab-cache"
        data = load_dataset(path, config.image_size, cache_dir=cache, stop=stop)
        if split_digest(data.report.files, inputs.train_idx, inputs.val_idx) != self.record["dataset"]["split_sha256"]:
            raise DatasetError(f"{path} on {self.hostname}: not the data the experiment started with (files added, "
                               "removed or renamed); the nodes must see the same data folder")
        return data

    def emit(self, event: ev.Event) -> None:
        """The Trainer's events: node and host added to each start, folded into this copy, sent with their files."""
        if isinstance(event, ev.RunStarted):
            event = dataclasses.replace(event, updates={**event.updates, "node": self.node,
                                                        "hostname": self.hostname})
        apply_event(self.record, event)
        message = {"event": type(event).__name__, "data": dataclasses.asdict(event), "files": self._files_for(event)}
        self.last_sent = self.channel.put.remote(self.attempt, message)

    def _files_for(self, event: ev.Event) -> dict[str, bytes]:
        """The files the driver must have written before it folds ``event`` into the record."""
        wanted: list[str] = []
        if isinstance(event, ev.RunStarted):
            initial = event.updates.get("initial_weights_file")
            if initial and initial not in self.provided:
                wanted.append(initial)
        elif isinstance(event, ev.EpochEnded) and event.improved and event.checkpoint.get("checkpoint"):
            wanted.append(event.checkpoint["checkpoint"])
        elif isinstance(event, ev.RunPaused) and event.state_file:
            wanted.append(event.state_file)
        files = {relative: (self.scratch / relative).read_bytes() for relative in wanted}
        if isinstance(event, (ev.EpochEnded, ev.RunPaused, ev.RunFinished)):
            files.update(self._changed_tensorboard())
        return files

    def _changed_tensorboard(self) -> dict[str, bytes]:
        folder = rec.inside(self.scratch, self.run.get("tensorboard") or ".")
        changed = {}
        for path in sorted(folder.glob(TENSORBOARD_GLOB)) if folder.is_dir() else []:
            stat = path.stat()
            if self.sent.get(path) != (stat.st_size, stat.st_mtime_ns):
                self.sent[path] = (stat.st_size, stat.st_mtime_ns)
                changed[path.relative_to(self.scratch).as_posix()] = path.read_bytes()
        return changed
