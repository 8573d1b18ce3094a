"""Studies on a local Ray cluster, run by tests/test_ray.py inside network and PID namespaces.

    python tests/ray_scenarios/study.py faults WORKDIR   # --ray alone; then two nodes: a study, one through
                                                         # Ray Client, a driver without the token, one reading the
                                                         # data folder itself, successive halving, Stop, and node 2
                                                         # killed mid-trial
    python tests/ray_scenarios/study.py speed WORKDIR    # the same 4-trial study on one node, then on two

Run with HOME set to a private folder: Ray keeps its authentication token in ~/.ray. Prints one
JSON line of results last. The listener keeps what a window keeps: a copy of the record
from ExperimentStarted with every later event folded in by apply_event, and every epoch event.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine import events as ev  # noqa: E402
from engine.config import ExperimentConfig  # noqa: E402
from engine.record import store as rec  # noqa: E402
from engine.record.state import apply_event  # noqa: E402
from engine.stop import StopToken  # noqa: E402
from engine.study.launch import run_experiment  # noqa: E402
from tests.helpers import write_image_folder  # noqa: E402
from tests.ray_scenarios.cluster import LocalCluster, check_isolated, free_port  # noqa: E402


class Watcher:
    """The window's view of a study: its own copy of the record, folded from the events."""

    def __init__(self, then: Optional[Callable[[ev.Event], None]] = None) -> None:
        self.record: Optional[dict[str, Any]] = None
        self.epochs: dict[int, list[dict[str, Any]]] = {}
        self.then = then

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.ExperimentStarted):
            self.record = copy.deepcopy(event.record)
        elif self.record is not None and not isinstance(event, ev.BatchProgress):
            apply_event(self.record, event)
        if isinstance(event, ev.RunStarted):  # a start, a continuation or a retry: the epochs before it stand
            self.epochs[event.run_index] = self.epochs.get(event.run_index, [])[:event.first_epoch]
        elif isinstance(event, ev.EpochEnded):
            self.epochs.setdefault(event.run_index, []).append(dict(event.entry))
        if self.then is not None:
            self.then(event)


def config(data: Path, out: Path, address: str, **overrides: Any) -> ExperimentConfig:
    """2 batch sizes x 2 learning rates: four trials of the seed CNN at 32 px."""
    values: dict[str, Any] = dict(data_dir=str(data), batch_sizes=[4, 8], lrs=[0.001, 0.003], epochs=3, patience=0,
                                  image_size=32, precision="fp32", augment=False, out=str(out), ray_address=address)
    values.update(overrides)
    return ExperimentConfig(**values)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def facts(experiment: Path, watcher: Watcher) -> dict[str, Any]:
    """What the tests check of a finished study: the record on disk against the window's copy and the files."""
    record = rec.load(experiment)  # refuses an invalid record
    runs = record["runs"]
    checkpoints_match = all(sha256(experiment / r["checkpoint"]) == r["checkpoint_sha256"]
                            for r in runs if r.get("checkpoint"))
    return {
        "status": record["status"],
        "statuses": [r["status"] for r in runs],
        "nodes": [r.get("node") for r in runs],
        "hostnames": [r.get("hostname") for r in runs],
        "retries": [r.get("retries") or [] for r in runs],
        "epochs": [len(r["history"]) for r in runs],
        "histories_equal_events": [r["history"] == watcher.epochs.get(r["run_index"], []) for r in runs],
        "window_equals_record": watcher.record is not None and watcher.record["runs"] == runs,
        "checkpoints_match": checkpoints_match,
        "initial_weights": sorted({r["initial_weights_sha256"] for r in runs if r["initial_weights_sha256"]}),
        "initial_file": (experiment / "initial" / "seed0.weights.h5").is_file(),
        "tensorboard_files": [len(list((experiment / r["tensorboard"]).glob("events.out.tfevents.*")))
                              if r.get("tensorboard") else 0 for r in runs],
        "leftovers": sorted(p.name for p in experiment.rglob(".*") if p.is_file()),
        "distribution": record["environment"]["distribution"],
    }


def two_nodes(cluster: LocalCluster, data: Path, out: Path) -> dict[str, Any]:
    watcher = Watcher()
    experiment = run_experiment(config(data, out, cluster.address, name="two-nodes"), watcher)
    return {**facts(experiment, watcher), "cluster_nodes": sorted([cluster.node_id(0), cluster.node_id(1)])}


def client(cluster: LocalCluster, data: Path, out: Path) -> dict[str, Any]:
    """A driver outside the cluster: Ray Client at ray://HEAD:PORT."""
    watcher = Watcher()
    experiment = run_experiment(config(data, out, cluster.client_address, name="client", batch_sizes=[4], epochs=2),
                                watcher)
    return facts(experiment, watcher)


def refused(cluster: LocalCluster, data: Path, out: Path) -> dict[str, Any]:
    """A driver without the cluster's token: one line, exit 2, no experiment folder."""
    env = {key: value for key, value in os.environ.items() if key != "RAY_AUTH_MODE"}
    began = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "run", str(data), "--batch-sizes", "4",
                           "--image-size", "32", "--out", str(out / "refused"), "--ray", cluster.address],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return {"returncode": done.returncode, "last_line": (done.stderr.strip().splitlines() or [""])[-1],
            "seconds": round(time.monotonic() - began, 1),
            "folders": sorted(p.name for p in (out / "refused").iterdir()) if (out / "refused").is_dir() else []}


def halving(cluster: LocalCluster, data: Path, out: Path) -> dict[str, Any]:
    """Successive halving on the cluster: 3 learning rates, the best goes on from its saved state after rung 0."""
    watcher = Watcher()
    experiment = run_experiment(config(data, out, cluster.address, name="halving", batch_sizes=[4],
                                       lrs=[0.001, 0.003, 0.01], tune="halving", halving_eta=3, epochs=3), watcher)
    record = rec.load(experiment)
    return {**facts(experiment, watcher), "reasons": [r["trial"]["stop_reason"] for r in record["runs"]],
            "rungs": record["tuning"]["rungs"], "state_files": sorted(p.name for p in experiment.rglob("state.keras"))}


def stop(cluster: LocalCluster, data: Path, out: Path) -> dict[str, Any]:
    """Stop as the window's Stop does, once two trials have each finished an epoch."""
    token = StopToken()
    seen: set[int] = set()
    pressed: list[float] = []

    def press_stop(event: ev.Event) -> None:
        if isinstance(event, ev.EpochEnded) and not pressed:
            seen.add(event.run_index)
            if len(seen) >= 2:
                token.set()
                pressed.append(time.monotonic())

    watcher = Watcher(press_stop)
    experiment = run_experiment(config(data, out, cluster.address, name="stop", epochs=40), watcher, token)
    return {**facts(experiment, watcher), "stop_to_end_s": round(time.monotonic() - pressed[0], 1)}


def node_loss(cluster: LocalCluster, data: Path, out: Path) -> dict[str, Any]:
    """Kill node 2 (raylet and all) once a trial on it has finished an epoch: that trial goes again on the head."""
    lost = cluster.node_id(1)
    on_lost: set[int] = set()
    killed: list[int] = []

    def kill_during_trial(event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted) and event.updates.get("node") == lost:
            on_lost.add(event.run_index)
        elif isinstance(event, ev.EpochEnded) and event.run_index in on_lost and not killed:
            killed.append(event.run_index)
            cluster.kill_node(1)

    watcher = Watcher(kill_during_trial)
    experiment = run_experiment(config(data, out, cluster.address, name="node-loss", epochs=6), watcher)
    return {**facts(experiment, watcher), "killed_during": killed, "lost_node": lost, "head": cluster.node_id(0)}


def shared_data(cluster: LocalCluster, data: Path, other: Path, out: Path) -> dict[str, Any]:
    """Nodes that read the data folder themselves: the right folder trains; another folder fails every trial,
    with the reason, and is not retried."""
    right, wrong = Watcher(), Watcher()
    shared = dict(batch_sizes=[4], epochs=1)
    good = run_experiment(config(data, out, cluster.address, name="shared", ray_data_path=str(data), **shared), right)
    bad = run_experiment(config(data, out, cluster.address, name="shared-wrong", ray_data_path=str(other), **shared),
                         wrong)
    failed = rec.load(bad)
    return {"right": facts(good, right), "wrong_statuses": [r["status"] for r in failed["runs"]],
            "wrong_errors": [r["error"] for r in failed["runs"]], "wrong_retries": [r.get("retries") for r in
                                                                                    failed["runs"]]}


def local_runtime(work: Path, data: Path) -> dict[str, Any]:
    """``main.py run ... --ray``: a Ray runtime of this machine, started and stopped by the command."""
    out = work / "cli"
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "run", str(data), "--batch-sizes", "4", "8",
                           "--epochs", "2", "--image-size", "32", "--precision", "fp32", "--no-augment", "--out",
                           str(out), "--name", "local", "--ray"], cwd=ROOT, capture_output=True, text=True,
                          timeout=1200)
    record = rec.load(out / "local") if (out / "local").is_dir() else {"status": None, "runs": [],
                                                                         "environment": {}}
    return {"returncode": done.returncode, "stderr_tail": done.stderr[-2000:], "stdout_tail": done.stdout[-3000:],
            "status": record["status"], "nodes": [r.get("node") for r in record["runs"]],
            "distribution": record["environment"].get("distribution"), "ray_left": ray_processes_after(60.0)}


def ray_processes_after(grace: float) -> list[str]:
    """Ray's processes still running once ``grace`` seconds have passed: a worker of a stopped runtime exits when
    it notices its raylet is gone, which takes a moment on a busy machine."""
    deadline = time.monotonic() + grace
    while (left := ray_processes()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def ray_processes() -> list[str]:
    """Ray's own processes alive in this PID namespace. This scenario is the namespace's first process, so the
    orphans of a stopped runtime become its children: reap those that exited (a zombie is not running)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    names = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and (name in ("raylet", "gcs_server", "plasma_store") or name.startswith("ray::")):
            names.append(name)
    return names


def speed(cluster: LocalCluster, data: Path, out: Path) -> dict[str, Any]:
    """Wall time of the same 4-trial study on the head alone and with a second node, alternated (1, 2, 1, 2 nodes:
    node 2 is added, killed, added again) so that a machine getting busier or quieter affects both alike."""
    rounds = []
    for nodes in (1, 2, 1, 2):
        alive = len(cluster.alive_nodes())
        if nodes > alive:
            cluster.add_node()
        elif nodes < alive:
            cluster.kill_node(len(cluster.nodes) - 1)
            cluster.wait_for_count(nodes)
        began = time.monotonic()
        experiment = run_experiment(config(data, out, cluster.address, name=f"speed-{len(rounds)}", epochs=6),
                                    Watcher())
        record = rec.load(experiment)
        assert record["status"] == "completed", record["status"]
        rounds.append({"nodes": nodes, "seconds": round(time.monotonic() - began, 1),
                       "nodes_used": len({r["node"] for r in record["runs"]}),
                       "train_seconds": round(sum(r["history"][-1]["elapsed"] for r in record["runs"]), 1)})
    one = [r["seconds"] for r in rounds if r["nodes"] == 1]
    two = [r["seconds"] for r in rounds if r["nodes"] == 2]
    return {"rounds": rounds, "ratio": round(sum(one) / sum(two), 2)}


def main() -> int:
    scenario, work = sys.argv[1], Path(sys.argv[2])
    check_isolated()
    # Ray's socket paths must stay under 108 characters: a short temporary folder if the work folder is deep.
    temp = work / "ray" if len(str(work)) < 40 else Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))
    temp.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    small = write_image_folder(work / "small", per_class=16)
    if scenario == "faults":
        results["local_runtime"] = local_runtime(work, small)  # before any cluster exists here
    cluster = LocalCluster(temp, free_port())
    try:
        cluster.add_node()
        if scenario == "speed":
            data = write_image_folder(work / "data", per_class=150)
            results["speed"] = speed(cluster, data, work / "out")
        else:
            cluster.add_node()
            results["two_nodes"] = two_nodes(cluster, small, work / "out")
            results["client"] = client(cluster, small, work / "out")
            results["refused"] = refused(cluster, small, work / "out")
            data = write_image_folder(work / "data", per_class=60)
            results["shared_data"] = shared_data(cluster, small, data, work / "out")
            results["halving"] = halving(cluster, small, work / "out")
            results["stop"] = stop(cluster, data, work / "out")
            results["node_loss"] = node_loss(cluster, data, work / "out")
    finally:
        cluster.stop()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
