"""Plain-data events the engine sends to a listener (the terminal or the window).

They carry only numbers, strings, lists and dicts of those, so they cross thread
boundaries (and Qt signals and processes, as JSON) without surprises. A listener is
any callable that takes one event; it is called on the training thread.

Every event that changes the record carries what it changes: ``engine.record.state.
apply_event`` folds it into a record, and the runner (which writes experiment.json)
and the window (which draws) both use that one function, so a figure means the same
thing live and after reopening.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Union


@dataclass(frozen=True)
class ExperimentStarted:
    """An experiment folder exists and its runs are about to start."""

    experiment_dir: str
    batch_sizes: list[int]
    total_runs: int
    train_samples: int
    val_samples: int
    classes: list[str]
    device: str
    precision: str
    record: dict[str, Any] = field(default_factory=dict)  # the record as written at the start; copy before folding


@dataclass(frozen=True)
class RunStarted:
    """A trial (batch size, learning rate, seed) starts from the shared initial weights, or continues
    from its saved state after a rung (``first_epoch`` > 0)."""

    run_index: int
    batch_size: int
    repeat: int
    seed: int
    epochs: int
    steps_per_epoch: int
    train_samples: int
    lr: float
    first_epoch: int = 0
    updates: dict[str, Any] = field(default_factory=dict)  # the run's record keys this start sets


@dataclass(frozen=True)
class BatchProgress:
    """Throttled progress inside an epoch (a few per second at most)."""

    run_index: int
    batch_size: int
    epoch: int  # 1-based
    step: int  # 1-based within the epoch
    steps_per_epoch: int
    loss: float
    accuracy: float
    images_per_s: float
    elapsed_s: float  # since the run started
    eta_s: float  # to the end of the run's epoch budget (an upper bound with early stopping)


@dataclass(frozen=True)
class EpochEnded:
    """An epoch finished; ``entry`` is exactly the history entry written to the record."""

    run_index: int
    batch_size: int
    entry: dict[str, Any]
    best_val_accuracy: float
    best_epoch: int
    images_per_s: float
    eta_s: float
    improved: bool  # a new best checkpoint was written
    checkpoint: dict[str, Any] = field(default_factory=dict)  # {checkpoint, checkpoint_sha256} when improved


@dataclass(frozen=True)
class RunPaused:
    """A trial reached the end of a rung; it waits (queued) while the other trials catch up, and its
    state (weights and optimizer) is saved in ``state_file`` to continue from if it is promoted."""

    run_index: int
    batch_size: int
    rung: int
    epochs_run: int
    state_file: Optional[str]


@dataclass(frozen=True)
class RunFinished:
    """A run ended: ``status`` is completed, stopped or failed (then ``error`` says why)."""

    run_index: int
    batch_size: int
    status: str
    error: Optional[str]
    best: Optional[dict[str, Any]]
    checkpoint: Optional[str]
    epochs_run: int
    updates: dict[str, Any] = field(default_factory=dict)  # e.g. finished, trial {stop_reason, ...}


@dataclass(frozen=True)
class RecordUpdated:
    """Experiment-wide facts known only once training began (the model built) or ended (the tuned
    answer, the prediction): top-level keys of the record."""

    updates: dict[str, Any]


@dataclass(frozen=True)
class ExperimentFinished:
    """All runs are done (or the experiment was stopped)."""

    experiment_dir: str
    status: str  # completed | stopped | failed


@dataclass(frozen=True)
class LogMessage:
    """Anything worth telling the user that is not a metric."""

    level: str  # info | warning | error
    text: str


Event = Union[
    ExperimentStarted, RunStarted, BatchProgress, EpochEnded, RunPaused, RunFinished, RecordUpdated,
    ExperimentFinished, LogMessage
]
Listener = Callable[[Event], None]

# Events crossing a process boundary (a parallel run's child, a cluster's chief) travel as one
# JSON line on standard output behind this prefix; any other output is left alone.
MESSAGE_PREFIX = "BATCHLAB-CHILD "
EVENT_TYPES = {cls.__name__: cls for cls in (ExperimentStarted, RunStarted, BatchProgress, EpochEnded, RunPaused,
                                             RunFinished, RecordUpdated, ExperimentFinished, LogMessage)}


def send_message(message: dict[str, Any]) -> None:
    """Write one message line for the parent process."""
    sys.stdout.write(MESSAGE_PREFIX + json.dumps(message) + "\n")
    sys.stdout.flush()


def send_event(event: Event) -> None:
    """A listener for a child process: every event goes to the parent."""
    send_message({"event": type(event).__name__, "data": asdict(event)})


def read_message(line: str) -> Optional[dict[str, Any]]:
    """The message in one output line of a child, or None for other output."""
    return json.loads(line[len(MESSAGE_PREFIX):]) if line.startswith(MESSAGE_PREFIX) else None


def event_from_message(message: dict[str, Any]) -> Event:
    return EVENT_TYPES[message["event"]](**message["data"])


def ignore(_event: Event) -> None:
    """A listener for callers that do not care about progress."""
