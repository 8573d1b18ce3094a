"""``main.py worker``: one machine of a multi-machine experiment (MultiWorkerMirroredStrategy).

Every machine runs the same command with the same settings and data; each batch is
split over every device of every machine. The chief (``--index 0``) writes the
record and checkpoints into ``--out``; the others train into a temporary folder that
is removed when they finish, so nothing of theirs clobbers the chief's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from typing import Any

from engine import exit_codes
from engine.cli.common import install_interrupt
from engine.cli.run import add_run_arguments, config_from_args
from engine.config import ConfigError, ExperimentConfig
from engine.events import Event, LogMessage, RunFinished, send_event
from engine.scale.cluster import check_addresses


def register(subparsers: argparse._SubParsersAction) -> None:
    worker = subparsers.add_parser(
        "worker", help="train as one machine of a cluster (start one per machine, chief first in --cluster)",
        usage="%(prog)s DATA --batch-sizes N [N ...] --cluster HOST:PORT [HOST:PORT ...] --index N [options]",
        description="One machine of a multi-machine experiment: every machine runs the same settings on the same "
                    "data, each batch split over all of them. The chief (--index 0) "
                    "writes the record; the others train into a temporary folder.")
    add_run_arguments(worker)
    machines = worker.add_argument_group("cluster")
    machines.add_argument("--cluster", nargs="+", metavar="HOST:PORT",
                          help="every machine's address, the chief first; written to TF_CONFIG (default: the "
                               "TF_CONFIG environment variable)")
    machines.add_argument("--index", type=int, default=None,
                          help="this machine's place in --cluster (0: the chief)")
    worker.add_argument("--events", action="store_true", help=argparse.SUPPRESS)  # for the window: events as JSON lines
    worker.set_defaults(handler=cmd_worker)


@dataclasses.dataclass(frozen=True)
class ClusterRole:
    workers: int
    index: int
    is_chief: bool


def cluster_role(cluster: list[str] | None, index: int | None) -> ClusterRole:
    """Write TF_CONFIG from ``--cluster``/``--index`` if given, then read this machine's role from it."""
    if cluster:
        check_addresses(cluster, "--cluster")
        if index is None or not 0 <= index < len(cluster):
            raise ConfigError(f"--index: give this machine's place in --cluster, 0 to {len(cluster) - 1} (0: chief)")
        os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": cluster},
                                              "task": {"type": "worker", "index": index}})
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        raise ConfigError("TF_CONFIG: not set; give --cluster HOST:PORT ... --index N, or set TF_CONFIG")
    try:
        spec = json.loads(text)
        roles = spec["cluster"]
        kind, task_index = spec["task"]["type"], int(spec["task"]["index"])
    except (ValueError, KeyError, TypeError):
        raise ConfigError("TF_CONFIG: not JSON with 'cluster' and 'task': {'type', 'index'}") from None
    if set(roles) - {"chief", "worker"} or kind not in ("chief", "worker"):
        raise ConfigError("TF_CONFIG: only 'chief' and 'worker' tasks take part in MultiWorkerMirroredStrategy")
    workers = len(roles.get("chief", [])) + len(roles.get("worker", []))
    is_chief = kind == "chief" or (kind == "worker" and task_index == 0 and not roles.get("chief"))
    return ClusterRole(workers, task_index, is_chief)


def pin_devices(devices: list[str] | None) -> None:
    """``--devices`` on a worker: the GPUs this machine uses, set before TensorFlow loads."""
    if not devices:
        return
    gpus = [d.split(":")[1] for d in devices if d.startswith("GPU:")]
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus) if gpus else "-1"


class WorkerLog:
    """A non-chief worker's terminal: problems and finished runs only; progress belongs to the chief."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __call__(self, event: Event) -> None:
        if isinstance(event, LogMessage) and event.level != "info":
            print(f"worker {self.index}: {event.level}: {event.text}", file=sys.stderr, flush=True)
        elif isinstance(event, RunFinished):
            print(f"worker {self.index}: batch size {event.batch_size} {event.status}", flush=True)


def stop_after_failure(listener: Any, stop: Any) -> Any:
    """On a cluster a failed run ends the experiment everywhere: no worker can tell a local error
    from a lost peer, and a worker that went on alone would wait for the others forever."""

    def listen(event: Event) -> None:
        if isinstance(event, RunFinished) and event.status == "failed":
            stop.set()
        listener(event)

    return listen


def cmd_worker(args: argparse.Namespace) -> int:
    if args.resume:
        raise ConfigError("--resume: not available for a worker; start the cluster's experiment again")
    config: ExperimentConfig = config_from_args(args)
    if config.parallel:
        raise ConfigError("--parallel: not available for a worker (each batch is split over the cluster)")
    if config.ray_address is not None:
        raise ConfigError("--ray: not available for a worker (Ray schedules whole trials; a worker splits batches)")
    role = cluster_role(args.cluster, args.index)
    pin_devices(config.devices)
    config = dataclasses.replace(config, devices=None)  # the worker uses every device it was given

    from engine.cli.terminal import TerminalProgress, results_table
    from engine.record import store as rec
    from engine.stop import StopToken
    from engine.train.prepare import prepare

    stop = StopToken()
    install_interrupt(stop)
    shown = send_event if args.events else TerminalProgress() if role.is_chief else WorkerLog(role.index)
    listener = stop_after_failure(shown, stop)
    # Only the chief keeps files; the others (decoded-image cache included) use a scratch folder.
    out = config.out if role.is_chief else tempfile.mkdtemp(prefix="batchlab-worker-")
    config = dataclasses.replace(config, out=out)
    try:
        prepared = prepare(config, listener, stop)  # data errors before TensorFlow starts the cluster
        from engine.scale.distribute import MultiWorkerStrategy, Placement, check_distributable
        from engine.study.launch import run_experiment

        strategy = MultiWorkerStrategy()  # reads TF_CONFIG; waits for the other workers at the first step
        placement = Placement(strategy=strategy, workers=role.workers)
        check_distributable(config, placement, listener)
        experiment_dir = run_experiment(config, listener, stop, prepared, placement)
        record = rec.load(experiment_dir)
    finally:
        if not role.is_chief:
            shutil.rmtree(out, ignore_errors=True)
    if not role.is_chief:
        print(f"worker {role.index}: finished; the chief keeps the record and checkpoints")
    elif not args.events:  # with --events the window shows the results
        print()
        print(results_table(record))
        print(f"\nrecord: {experiment_dir / rec.RECORD_NAME}")
    statuses = {r["status"] for r in record["runs"]}
    if "failed" in statuses:
        return exit_codes.FAILED
    return exit_codes.STOPPED if stop.is_set() or "stopped" in statuses else exit_codes.OK
