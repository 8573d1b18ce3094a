"""Connect to the Ray cluster an experiment's trials train on (``--ray``), or start a Ray runtime here.

Connecting is part of choosing the placement (engine.scale.distribute.place), before the
experiment folder exists: an address that cannot be reached is one line naming it (exit 2
on the command line, a notice in the window), and leaves nothing behind. Ray itself takes
up to 20 retries of its own connection timeout to give up on an address, so the head's port
is tried first, with a short timeout. Through Ray Client (``ray://``) the head starts one
server process per driver, and on a busy head that start can fail (measured: 3 connections in
18 with the head's two cores saturated); such a failure is tried again, twice.

The trials' workers get this checkout's ``engine`` package (Ray's ``py_modules``): every
node runs the driver's code, whatever BatchLab version it has installed. Nodes still need
the same Python packages (TensorFlow, Keras, Ray) as the driver.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from engine.config import RAY_LOCAL, ConfigError, ExperimentConfig, ray_address_parts
from engine.events import Listener, LogMessage, ignore
from engine.scale.ray_rules import one_line, thread_environment, trial_request, unfit_request
from engine.train.placement import Placement

ENGINE_DIR = Path(__file__).resolve().parents[1]
REACH_TIMEOUT_S = 5.0
CLIENT_ATTEMPTS = 3
CLIENT_RETRY_PAUSE_S = 2.0
SERVER_START_FAILED = "Initialization failure from server"  # Ray Client: the head's server for this driver died
NAMESPACE = "batchlab"
HEAD_RESOURCE = "node:__internal_head__"  # a resource Ray gives the head node only
CODE = {"py_modules": [str(ENGINE_DIR)], "excludes": ["__pycache__", "*.pyc"]}


class ClusterUnreachable(ConfigError):
    """The Ray cluster given by ``--ray`` cannot be used; the message names the address and what to try."""


@dataclass
class RayPlacement(Placement):
    """Trials train as Ray tasks on the cluster's nodes; this process only drives them and keeps the record."""

    address: str = RAY_LOCAL
    request: dict[str, float] = field(default_factory=dict)  # num_cpus, num_gpus per trial segment
    nodes: list[dict[str, Any]] = field(default_factory=list)
    data_path: Optional[str] = None  # the data folder as the nodes see it, else the object store

    def to_record(self) -> dict[str, Any]:
        """``environment.distribution``: where the trials went, and what each asked for."""
        return {"strategy": "ray", "devices": [], "replicas": 1, "workers": 1, "address": self.address,
                "nodes": self.nodes, "trial_resources": {"CPU": self.request.get("num_cpus", 0.0),
                                                         "GPU": self.request.get("num_gpus", 0.0)},
                "data": f"shared: {self.data_path}" if self.data_path else "object store"}

    def close(self) -> None:
        """Disconnect; a runtime started here stops with it."""
        import ray

        if ray.is_initialized():
            ray.shutdown()


def connect(config: ExperimentConfig, listener: Listener = ignore) -> RayPlacement:
    """Start or join the Ray cluster of ``config.ray_address``; ClusterUnreachable says why not in one line."""
    try:
        import ray
    except ImportError:
        raise ConfigError("ray cluster: Ray is not installed here; install it with: pip install -e \".[ray]\"") \
            from None
    address = config.ray_address or RAY_LOCAL
    if address != RAY_LOCAL:
        check_reachable(address)
    if ray.is_initialized():  # an earlier experiment of this process (the window)
        ray.shutdown()
    options: dict[str, Any] = {"address": "local", "include_dashboard": False} if address == RAY_LOCAL else \
        {"address": address}
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            ray.init(**options, logging_level="ERROR", log_to_driver=False, namespace=NAMESPACE, runtime_env=CODE)
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            request = trial_request(config.trial_gpus, config.trial_cpus, ray.cluster_resources().get("GPU", 0.0))
            break
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; each becomes one line naming the address
            if ray.is_initialized():
                ray.shutdown()
            if attempt == CLIENT_ATTEMPTS or not server_start_failed(exc):
                raise ClusterUnreachable(f"ray cluster {address}: {connect_failure(exc)}") from None
            listener(LogMessage("warning", f"Ray: {address} {connect_failure(exc)}; trying again "
                                           f"({attempt + 1} of {CLIENT_ATTEMPTS})"))
            time.sleep(CLIENT_RETRY_PAUSE_S)
    problem = unfit_request(request, [n.get("Resources", {}) for n in nodes])
    if problem:
        ray.shutdown()
        raise ConfigError(problem)
    gpus = f", {request['num_gpus']:g} GPU" if request["num_gpus"] else ""
    listener(LogMessage("info", f"Ray: {len(nodes)} node{'s' if len(nodes) != 1 else ''} at {address}; each trial "
                                f"asks for {request['num_cpus']:g} CPU{gpus}"))
    return RayPlacement(address=address, request=request,
                        nodes=[describe_node(n) for n in nodes], data_path=config.ray_data_path)


def task_runtime_env(request: dict[str, float]) -> dict[str, Any]:
    """The trial tasks' runtime environment: this checkout's engine and the thread limits of the request."""
    return {**CODE, "env_vars": thread_environment(request)}


def check_reachable(address: str) -> None:
    """Fail in seconds, with one line, when nothing listens at the address (Ray would retry for minutes)."""
    parts = ray_address_parts(address)
    if parts is None:
        raise ConfigError(f"ray cluster {address}: not HOST:PORT or ray://HOST:PORT")
    host = parts.host.strip("[]")
    try:
        with socket.create_connection((host, parts.port), timeout=REACH_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or ("timed out" if isinstance(exc, TimeoutError) else type(exc).__name__)
        start = "ray start --head --ray-client-server-port" if parts.client else "ray start --head --port"
        raise ClusterUnreachable(f"ray cluster {address}: cannot be reached ({reason.lower()}); start it there with "
                                 f"'{start} {parts.port}', or check the address and the firewall") from None


def connect_failure(exc: BaseException) -> str:
    """Why ``ray.init`` failed, in words."""
    if refused_token(exc):
        return ("refused this machine: the cluster uses token authentication; set RAY_AUTH_MODE=token here and give "
                "this machine the head's token (its ~/.ray/auth_token)")
    text = str(exc) or type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):  # a heading over the server's traceback: its last line says why
        text = f"{lines[0]} {lines[-1]}"
    return f"cannot connect ({one_line(text)})"


def refused_token(exc: BaseException) -> bool:
    """Ray's own message hides a refused token in the exception's cause."""
    chain, cause = [], exc
    while cause is not None and len(chain) < 5:
        chain.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    return any("Unauthenticated" in text or "auth" in text.lower() for text in chain)


def server_start_failed(exc: BaseException) -> bool:
    """Ray Client's head could not start this driver's server: worth another try, unlike a refused token."""
    return isinstance(exc, ConnectionAbortedError) and SERVER_START_FAILED in str(exc) and not refused_token(exc)


def describe_node(node: dict[str, Any]) -> dict[str, Any]:
    """A node as the record lists it."""
    resources = node.get("Resources", {})
    return {"node": node.get("NodeID"), "hostname": node.get("NodeManagerHostname"),
            "address": node.get("NodeManagerAddress"), "head": HEAD_RESOURCE in resources,
            "cpus": resources.get("CPU", 0.0), "gpus": resources.get("GPU", 0.0)}
