"""A Ray cluster of local nodes for the scenarios, started only inside a network namespace with loopback alone.

Ray binds to the machine's outward address even when told 127.0.0.1, so the scenarios run under
``unshare -n -p -f --mount-proc`` (see tests/test_ray.py): a network namespace with only ``lo``,
and a PID namespace, so that ``ray stop --force``, which kills Ray processes by name, reaches only
this cluster's processes and never another user's. Every node is a ``ray start --block`` process of
ours, so a node is killed by its own process ids.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE_BYTES = 100 * 2**20
NODE_RESOURCE = "scenario_node_{}"  # a resource naming each node, to find its Ray node id


class NotIsolated(RuntimeError):
    """Refuse to start Ray where it could reach, or be reached from, any other machine or user."""


def check_isolated() -> None:
    """Loopback only, our own PID namespace, and a private home (Ray keeps its token in ~/.ray)."""
    interfaces = sorted(name for _index, name in socket.if_nameindex())  # of this process's network namespace
    if interfaces != ["lo"] or os.getpid() != 1 or os.environ.get("HOME") == os.path.expanduser("~root"):
        raise NotIsolated(f"Ray scenarios run only in their own network and PID namespaces with a home of their "
                          f"own (interfaces {interfaces}, pid {os.getpid()}, HOME {os.environ.get('HOME')}); see "
                          "tests/test_ray.py")


class LocalCluster:
    """A head and further nodes on 127.0.0.1, one CPU each; ``stop`` ends them all."""

    def __init__(self, temp_dir: Path, port: int) -> None:
        check_isolated()
        self.temp_dir = temp_dir
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.client_port = free_port()
        self.client_address = f"ray://127.0.0.1:{self.client_port}"
        self.nodes: list[subprocess.Popen] = []
        self.killed: set[int] = set()
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        # Token authentication, as the README advises for a lab: one token (in this private home) for every process.
        self.env["RAY_AUTH_MODE"] = os.environ["RAY_AUTH_MODE"] = "token"
        subprocess.run([RAY, "get-auth-token", "--generate"], env=self.env, capture_output=True, check=True)

    def add_node(self) -> int:
        """Start one more node (the first is the head); wait until the cluster counts it; return its index."""
        index = len(self.nodes)
        common = ["--block", "--temp-dir", str(self.temp_dir), "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--num-gpus", "0",
                  "--object-store-memory", str(OBJECT_STORE_BYTES), "--disable-usage-stats",
                  "--resources", json.dumps({NODE_RESOURCE.format(index): 1})]
        role = (["--head", "--port", str(self.port), "--include-dashboard", "false", "--ray-client-server-port",
                 str(self.client_port)] if index == 0 else ["--address", self.address])
        log = open(self.temp_dir.parent / f"node{index}.log", "wb")
        self.nodes.append(subprocess.Popen([RAY, "start", *role, *common], env=self.env, stdout=log,
                                           stderr=subprocess.STDOUT))
        self.wait_for(len(self.nodes) - len(self.killed))
        return index

    def alive_nodes(self) -> list[dict]:
        import ray

        ray.init(address=self.address, logging_level="ERROR", log_to_driver=False)
        try:
            return [n for n in ray.nodes() if n["Alive"]]
        finally:
            ray.shutdown()

    def wait_for_count(self, count: int, timeout: float = 120) -> None:
        """Until exactly ``count`` nodes are alive (a killed node is marked dead)."""
        deadline = time.monotonic() + timeout
        while len(self.alive_nodes()) != count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster did not come to {count} live nodes in {timeout:.0f} s")
            time.sleep(1)

    def wait_for(self, count: int, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(node.poll() is not None for i, node in enumerate(self.nodes) if i not in self.killed):
                raise RuntimeError(f"a ray start process exited: see {self.temp_dir.parent}/node*.log")
            try:
                if len(self.alive_nodes()) >= count:
                    return
            except Exception:  # noqa: BLE001 - the head is still starting
                pass
            time.sleep(1)
        raise TimeoutError(f"the cluster did not reach {count} nodes in {timeout:.0f} s")

    def node_id(self, index: int) -> str:
        name = NODE_RESOURCE.format(index)
        return next(n["NodeID"] for n in self.alive_nodes() if name in n["Resources"])

    def kill_node(self, index: int) -> None:
        """The node's raylet and every process under its ``ray start``, SIGKILL: as if the machine died."""
        node = self.nodes[index]
        self.killed.add(index)
        for pid in [*descendants(node.pid), node.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        node.wait()

    def stop(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], env=self.env, capture_output=True, timeout=120)
        for node in self.nodes:
            if node.poll() is None:
                node.kill()
            node.wait()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc (children first listed after their parent)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
