"""Where one run trains: one device (the default, no strategy), a tf.distribute strategy, or a
device the user picked. Choosing the placement is engine.scale's job; this is what a run needs."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ContextManager, Optional

import tensorflow as tf


@dataclass
class Placement:
    """How every run of one experiment is placed; the default is the plain single-device path."""

    strategy: Optional[tf.distribute.Strategy] = None
    device: Optional[str] = None  # one device the user picked (a tf.device scope, no strategy)
    parallel_devices: tuple[str, ...] = ()  # parallel runs: one child process per device
    workers: int = 1  # machines (MultiWorkerMirroredStrategy); the record says, the worker command decides

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync) if self.strategy is not None else 1

    def scope(self) -> ContextManager[Any]:
        """Model build, compile and fit go in here; on the default path it adds nothing."""
        if self.strategy is not None:
            return self.strategy.scope()
        if self.device is not None:
            return tf.device(f"/{self.device}")
        return contextlib.nullcontext()

    def dataset(self, ds: tf.data.Dataset) -> tf.data.Dataset:
        """Several workers shard each global batch by element (DATA): our data has no files to split."""
        if self.workers <= 1:
            return ds
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return ds.with_options(options)

    def per_replica_batch(self, global_batch: int) -> int:
        """What one replica computes per step (the larger share when the split is uneven)."""
        return -(-global_batch // self.replicas)

    def to_record(self) -> dict[str, Any]:
        """``environment.distribution`` in experiment.json."""
        if self.parallel_devices:
            kind, devices = "parallel", list(self.parallel_devices)
        elif self.strategy is not None:
            kind = "multi_worker_mirrored" if self.workers > 1 else "mirrored"
            devices = [short_device_name(d) for d in self.strategy.extended.worker_devices]
        else:
            kind, devices = "single", [self.device] if self.device else []
        return {"strategy": kind, "devices": devices, "replicas": self.replicas, "workers": self.workers}


def short_device_name(name: str) -> str:
    """``/job:worker/replica:0/task:0/device:GPU:1`` -> ``GPU:1``."""
    return ":".join(name.split("/")[-1].split(":")[-2:]).upper()
