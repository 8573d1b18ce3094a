"""One trial segment on a Ray node: the same Trainer as a local run, in a scratch folder, its events streamed back.

The task is a Ray streaming generator. It yields a greeting first (node id and host name, so
the driver knows where the attempt runs before TensorFlow has even loaded), then one message
per event, each with the files the driver needs before it folds the event into the record:
the seed's initial weights (RunStarted of the first trial of a seed), the best checkpoint
(EpochEnded that improved it), the saved state (RunPaused) and the TensorBoard event file
(every epoch and at the end). The driver writes them atomically into the experiment folder
and alone writes experiment.json; this side keeps a copy of the record only because the
Trainer reads the run's history from it.

Training runs on a thread of the task so that the generator can yield while Keras' callbacks
emit; the driver's Stop reaches it through a flag actor that the task polls.
"""

from __future__ import annotations

import dataclasses
import queue
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

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
_DONE = object()


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What every trial of a study shares, put once in Ray's object store: the decoded images and labels
    (None when the nodes read the data folder themselves) and the split."""

    data: Optional[LoadedDataset]
    train_idx: np.ndarray
    val_idx: np.ndarray


class StopFlag:
    """Set by the driver on Stop (or Ctrl+C); every running trial polls it and stops after its batch."""

    def __init__(self) -> None:
        self.stopped = False

    def set(self) -> None:
        self.stopped = True

    def is_set(self) -> bool:
        return self.stopped


def train_segment(spec: dict[str, Any], inputs: Inputs, files: dict[str, Any], stop_flag: Any) -> Iterator[dict]:
    """Train one trial up to ``spec['until_epoch']``; yield a greeting, then each event with its files."""
    yield {"hello": {"node": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname()}}
    scratch = Path(tempfile.mkdtemp(prefix="batchlab-trial-"))
    segment: Optional[_Segment] = None
    try:
        segment = _Segment(spec, inputs, files, stop_flag, scratch)
        yield from segment.messages()
    finally:
        if segment is not None:  # cancelled, or the driver went away: end training before the folder goes
            segment.stop.set()
            segment.join()
        shutil.rmtree(scratch, ignore_errors=True)


class _Segment:
    def __init__(self, spec: dict[str, Any], inputs: Inputs, files: dict[str, Any], stop_flag: Any,
                 scratch: Path) -> None:
        self.scratch = scratch
        self.stop_flag = stop_flag
        self.stop = StopToken()
        self.outbox: "queue.Queue[Any]" = queue.Queue()
        self.thread: Optional[threading.Thread] = None
        self.error: Optional[BaseException] = None
        self.sent: dict[Path, tuple[int, int]] = {}  # TensorBoard files already sent: (size, mtime)
        self.provided = set(files)
        self.node = ray.get_runtime_context().get_node_id()
        self.hostname = socket.gethostname()
        for relative, ref in files.items():
            target = rec.inside(scratch, relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(ray.get(ref))
        # This node trains on its own devices: the driver's device and cluster settings do not apply here.
        config = dataclasses.replace(ExperimentConfig.from_dict(spec["config"]), ray_address=None, devices=None,
                                     parallel=False, out=str(scratch))
        self.record = spec["record"]
        data = inputs.data if inputs.data is not None else self._shared_data(config, inputs)
        facts = detect()
        prepared = Prepared(config, data, inputs.train_idx, inputs.val_idx, facts,
                            PrecisionChoice(**spec["precision"]), spec["reference_batch"])
        self.record["environment"]["device"] = describe(facts)
        self.run = self.record["runs"][spec["run_index"]]
        self.until_epoch = spec["until_epoch"]
        self.trainer = Trainer(prepared, scratch, self.record, self.emit, self.stop, distribute.place(config))

    def _shared_data(self, config: ExperimentConfig, inputs: Inputs) -> LoadedDataset:
        """The data folder as this node sees it, decoded here (cached on the node); refused if it is not the data
        the experiment's split was made from."""
        path = config.ray_data_path or config.data_dir
        cache = Path(tempfile.gettempdir()) / "batchlab-cache"
        data = load_dataset(path, config.image_size, cache_dir=cache, stop=self.stop)
        if split_digest(data.report.files, inputs.train_idx, inputs.val_idx) != self.record["dataset"]["split_sha256"]:
            raise DatasetError(f"{path} on {self.hostname}: not the data the experiment started with (files added, "
                               "removed or renamed); the nodes must see the same data folder")
        return data

    def messages(self) -> Iterator[dict]:
        """The events of the training thread as they come, polling the driver's stop flag on the way."""
        self.thread = threading.Thread(target=self._train, name="batchlab-trial", daemon=True)
        self.thread.start()
        polled = time.monotonic()
        while True:
            try:
                item = self.outbox.get(timeout=POLL_S)
            except queue.Empty:
                item = None
            if time.monotonic() - polled >= POLL_S:
                polled = time.monotonic()
                self._poll_stop()
            if item is _DONE:
                break
            if item is not None:
                yield item
        if self.error is not None:
            raise self.error

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()

    def _train(self) -> None:
        try:
            self.trainer.train(self.run, self.until_epoch)
        except BaseException as exc:  # noqa: BLE001 - handed to the generator, which raises it to the driver
            self.error = exc
        finally:
            self.outbox.put(_DONE)

    def _poll_stop(self) -> None:
        if self.stop.is_set():
            return
        try:
            if ray.get(self.stop_flag.is_set.remote(), timeout=10):
                self.stop.set()
        except ray.exceptions.RayError:
            pass  # the flag's node is gone; the driver still cancels this task if it must

    def emit(self, event: ev.Event) -> None:
        """The Trainer's events: node and host added to each start, folded into this copy, queued with files."""
        if isinstance(event, ev.RunStarted):
            event = dataclasses.replace(event, updates={**event.updates, "node": self.node,
                                                        "hostname": self.hostname})
        apply_event(self.record, event)
        self.outbox.put({"event": type(event).__name__, "data": dataclasses.asdict(event),
                         "files": self._files_for(event)})

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
