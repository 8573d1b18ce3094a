"""Several machines driven from one place: the command each machine runs, and a chief that
trains in a child process while this process relays its events (the window's cluster mode).

MultiWorkerMirroredStrategy sets up TensorFlow's collective runtime once per process and
cannot tear it down, so a window that outlives many experiments cannot be a worker itself.
It starts ``main.py worker ... --index 0`` instead and listens to it: the chief alone
writes the record and checkpoints, and its events reach the window as they would from a
local run. The other machines run the command this module prints for them.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

from engine import exit_codes
from engine.config import ConfigError, ExperimentConfig, command_line
from engine.events import ExperimentStarted, Listener, LogMessage, event_from_message, ignore, read_message
from engine.stop import StopRequested, StopToken

ADDRESS = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
ROOT = Path(__file__).resolve().parents[2]  # the checkout, for a child that imports the engine
SECOND_INTERRUPT_S = 10.0  # a chief still waiting for its peers ignores the first Ctrl+C
KILL_AFTER_S = 30.0


def check_addresses(addresses: Sequence[str], setting: str = "cluster") -> list[str]:
    """HOST:PORT per machine, the chief first; ConfigError names the setting and the bad entry."""
    for address in addresses:
        if not ADDRESS.match(address):
            raise ConfigError(f"{setting}: {address!r} is not HOST:PORT")
    dupes = sorted({a for a in addresses if list(addresses).count(a) > 1})
    if dupes:
        raise ConfigError(f"{setting}: {', '.join(dupes)} given more than once")
    return list(addresses)


def parse_cluster(text: str) -> Optional[list[str]]:
    """The window's cluster field: None when empty (this machine only), else at least two machines."""
    addresses = [t for t in re.split(r"[,;\s]+", text.strip()) if t]
    if not addresses:
        return None
    check_addresses(addresses)
    if len(addresses) < 2:
        raise ConfigError("cluster: give every machine's HOST:PORT, this one (the chief) first: at least two")
    return addresses


def worker_arguments(config: ExperimentConfig, cluster: Sequence[str], index: int) -> list[str]:
    """``main.py`` arguments that make machine ``index`` train exactly ``config``.

    Every machine of a cluster must run the same settings, so they come from one config
    rather than being typed again; settings left at their defaults are not repeated, and
    only the chief is told where to keep files.
    """
    omit = () if index == 0 else ("out",)
    return ["worker", *command_line(config, omit), "--cluster", *cluster, "--index", str(index)]


def worker_command(config: ExperimentConfig, cluster: Sequence[str], index: int) -> str:
    """What a user types on machine ``index`` (shown in the window and its log)."""
    return shlex.join(["python", "main.py", *worker_arguments(config, cluster, index)])


def run_cluster_chief(config: ExperimentConfig, listener: Listener = ignore, stop: Optional[StopToken] = None, *,
                      cluster: Sequence[str]) -> Path:
    """Train ``config`` on the cluster with this machine as chief; returns the experiment folder.

    Same contract as ``run_experiment``: events go to ``listener`` (on this thread), ``stop``
    ends training after the current batch, bad settings raise ConfigError.
    """
    stop = stop or StopToken()
    cluster = check_addresses(cluster)
    config = dataclasses.replace(config, data_dir=str(Path(config.data_dir).resolve()),
                                 out=str(Path(config.out).resolve()))
    others = "; ".join(f"on {cluster[i]}: {worker_command(config, cluster, i)}" for i in range(1, len(cluster)))
    listener(LogMessage("info", f"This machine is the chief of {len(cluster)} machines; training starts when the "
                                f"others have joined. Start them with the same data: {others}"))
    chief = _Chief(config, cluster)
    experiment_dir: Optional[str] = None
    try:
        for message in chief.messages(stop):
            event = event_from_message(message)
            if isinstance(event, ExperimentStarted):
                experiment_dir = event.experiment_dir
            listener(event)
    except BaseException:
        chief.process.kill()  # this side failed: the chief must not train on unwatched
        raise
    finally:
        chief.end()
    code = chief.process.returncode
    if experiment_dir is None:
        error = chief.error_line()
        if code == exit_codes.USAGE and error:
            raise ConfigError(error)
        if stop.is_set():
            raise StopRequested()
        raise RuntimeError(f"the chief process exited with code {code} before training: {chief.last_line()}")
    if code not in (exit_codes.OK, exit_codes.FAILED, exit_codes.STOPPED):
        # crashed: the record holds what was done, say why it ended
        listener(LogMessage("error", f"the chief process exited with code {code}: {chief.last_line()}"))
    return Path(experiment_dir)


class _Chief:
    """The chief's process, with a thread reading each of its outputs."""

    def __init__(self, config: ExperimentConfig, cluster: list[str]) -> None:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", *worker_arguments(config, cluster, 0), "--events"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1, env=env)
        self.inbox: "queue.Queue[Optional[dict]]" = queue.Queue()
        self.interrupts = 0
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=30)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self.stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.stderr_reader.start()

    def messages(self, stop: StopToken):
        """The chief's messages until it exits; a stop request is passed on, more firmly if ignored."""
        stop_since: Optional[float] = None
        while True:
            if stop.is_set():
                stop_since = self._pass_stop_on(stop_since)
            try:
                message = self.inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            if message is None:
                return
            yield message

    def _pass_stop_on(self, since: Optional[float]) -> float:
        """First Ctrl+C: stop after this batch, keeping the record. A chief blocked waiting for its
        peers never sees it: a second one aborts, and a kill ends it (every write is atomic)."""
        now = time.monotonic()
        waited = 0.0 if since is None else now - since
        if self.process.poll() is None:
            if waited > KILL_AFTER_S:
                self.process.kill()
            elif self.interrupts == 0 or (self.interrupts == 1 and waited > SECOND_INTERRUPT_S):
                self.interrupts += 1
                self.process.send_signal(signal.SIGINT)
        return now if since is None else since

    def end(self) -> None:
        """Wait for the process and for its last error lines."""
        self.process.wait()
        self.stderr_reader.join(timeout=5)

    def error_line(self) -> Optional[str]:
        errors = [line[len("error: "):] for line in self.stderr_tail if line.startswith("error: ")]
        return errors[-1] if errors else None

    def last_line(self) -> str:
        return self.stderr_tail[-1] if self.stderr_tail else "no output"

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            message = read_message(line)
            if message is not None:
                self.inbox.put(message)
        self.inbox.put(None)

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            if line.strip():
                self.stderr_tail.append(line.rstrip())
