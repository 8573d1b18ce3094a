"""Long sessions: consecutive runs in one process leave nothing behind.

Resident-memory figures belong to engine/measure/memory_soak.py (they depend on the machine);
these tests check exact counts: threads, open files, temporary entries, and the traced
graphs whose pile-up was the measured leak (see engine.train.memory).
"""

from __future__ import annotations

import gc
import os
import platform
import tempfile
import threading
import weakref
from pathlib import Path

import pytest
import tensorflow as tf
from tensorflow.python.framework.func_graph import FuncGraph

from engine.config import ExperimentConfig
from engine.events import RunFinished
from engine.study import launch as runner
from engine.train import memory as isolation
from tests.helpers import write_image_folder


def traced_graphs() -> int:
    """Graphs of traced functions still alive: a finished run's training step must not be among them."""
    gc.collect()
    return sum(isinstance(o, FuncGraph) for o in gc.get_objects())


def custom_gradients() -> int:
    return len([n for n in isolation._registry() or {} if n.startswith(isolation.CUSTOM_GRADIENT_PREFIX)])


def resources(tmp: Path) -> dict[str, int]:
    return {"threads": threading.active_count(), "open files": len(os.listdir("/proc/self/fd")),
            "temporary entries": len(os.listdir(tmp)), "traced graphs": traced_graphs(),
            "custom gradients": custom_gradients()}


def test_runs_in_one_experiment_leave_nothing_behind(tmp_path, monkeypatch):
    """After a warm-up run, three more runs end with exactly what the warm-up ended with.

    The warm-up leaves TensorFlow's own once-only state: thread pools, and the modules
    autograph writes to the temporary folder once per converted function (removed at exit).
    """
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    data = write_image_folder(tmp_path / "data", size=32)
    out = tmp_path / "out"
    config = ExperimentConfig(data_dir=str(data), batch_sizes=[8], epochs=1, patience=0, image_size=32,
                              out=str(out), precision="fp32", repeats=4)
    snapshots: list[dict[str, int]] = []

    def listener(event: object) -> None:
        if isinstance(event, RunFinished):
            assert event.status == "completed", event.error
            snapshots.append(resources(private_tmp))

    experiment = runner.run_experiment(config, listener)

    assert len(snapshots) == 4
    warm = snapshots[0]
    assert warm["custom gradients"] == 0
    for index, later in enumerate(snapshots[1:], start=2):
        assert later == warm, f"after run {index}: {later} (after the warm-up run: {warm})"
    assert sorted(p.name for p in experiment.rglob(".*")) == []  # no atomic write left a temporary file


def test_forgetting_traced_steps_frees_their_graphs():
    """A graph-mode custom gradient pins its whole traced graph until its registry entry goes."""

    @tf.custom_gradient
    def double(x):
        return 2 * x, lambda upstream: 2 * upstream

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = double(x)
        return tape.gradient(y, x)

    isolation.forget_traced_steps()
    concrete = tf.function(step).get_concrete_function(tf.TensorSpec([None], tf.float32))
    graph = weakref.ref(concrete.graph)
    assert concrete(tf.constant([1.0, 2.0])).numpy().tolist() == [2.0, 2.0]
    del concrete
    gc.collect()
    assert graph() is not None, "the registry entry should have kept the graph alive"
    assert isolation.forget_traced_steps() == 1
    gc.collect()
    assert graph() is None
    assert custom_gradients() == 0


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="needs glibc")
def test_trim_heap_reaches_glibc():
    assert isolation.trim_heap() is True
