"""The decisions of trials on Ray that need no cluster: what a trial asks for, and how a lost attempt is undone.

Kept apart from the code that talks to Ray so they are tested as plain functions, and so that
nothing here needs Ray installed.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Optional

# Run keys a RunStarted event sets from its own fields; a restore passes them as fields, not updates.
STARTED_FIELDS = ("status", "error", "lr", "steps_per_epoch", "epochs_planned", "train_samples", "seed")
MAX_ERROR_CHARS = 300
_NODE_IN_ERROR = re.compile(r"node ID: ([0-9a-f]{16,})")


def trial_request(trial_gpus: float, trial_cpus: int, cluster_gpus: float) -> dict[str, float]:
    """What one trial segment asks Ray for: ``trial_gpus`` where the cluster has GPUs, CPUs always (a GPU trial
    still decodes and augments on the CPU)."""
    return {"num_cpus": float(trial_cpus), "num_gpus": float(trial_gpus) if cluster_gpus > 0 else 0.0}


def unfit_request(request: dict[str, float], nodes: list[dict[str, float]]) -> Optional[str]:
    """Why no node of the cluster can ever run one trial (Ray would queue it forever), or None."""
    if not nodes:
        return "the cluster has no live node"
    for key, setting, resource in (("num_cpus", "CPUs per trial", "CPU"), ("num_gpus", "GPUs per trial", "GPU")):
        wanted = request.get(key, 0.0)
        largest = max(node.get(resource, 0.0) for node in nodes)
        if wanted > largest:
            return (f"{setting.lower()}: a trial asks for {wanted:g} {resource}s but the largest node has "
                    f"{largest:g}; lower it")
    return None


def thread_environment(request: dict[str, float]) -> dict[str, str]:
    """Environment of the trial workers: TensorFlow uses the CPUs the trial asked for, no more (several trials
    share a node), grows GPU memory instead of taking it all (a fraction of a GPU is shared), logs quietly."""
    threads = str(max(1, int(request["num_cpus"])))
    return {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads, "OMP_NUM_THREADS": threads,
            "TF_FORCE_GPU_ALLOW_GROWTH": "true", "TF_CPP_MIN_LOG_LEVEL": "2"}


def one_line(error: str) -> str:
    """The first line of an error, cut to a readable length."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    first = lines[0] if lines else "unknown error"
    return first if len(first) <= MAX_ERROR_CHARS else first[:MAX_ERROR_CHARS - 3] + "..."


def retry_note(node: Optional[str], hostname: Optional[str], at: str, error: str,
               epochs_discarded: int) -> dict[str, Any]:
    """One entry of a run's ``retries``: where the attempt was lost, when, why, and what it had trained."""
    return {"node": node, "hostname": hostname, "at": at, "error": one_line(error),
            "epochs_discarded": epochs_discarded}


def node_in_error(error: str) -> Optional[str]:
    """The lost node's id, as Ray's NodeDiedError states it (a task lost before it said where it ran)."""
    match = _NODE_IN_ERROR.search(error)
    return match[1] if match else None


def should_retry(retries_done: int, max_retries: int) -> bool:
    """A segment whose node or worker was lost goes again while retries are left."""
    return retries_done < max_retries


def restore_updates(snapshot: dict[str, Any], current: dict[str, Any], note: dict[str, Any]) -> dict[str, Any]:
    """The run's keys as they were when the segment started (so the lost attempt's epochs leave the record),
    with the retry noted; keys the attempt added are cleared. Applied by a RunStarted event."""
    updates = {key: copy.deepcopy(value) for key, value in snapshot.items()
               if key not in STARTED_FIELDS and key != "retries" and current.get(key) != value}
    updates.update({key: None for key in current if key not in snapshot and key != "retries"})
    updates["retries"] = [*(current.get("retries") or []), note]
    return updates
