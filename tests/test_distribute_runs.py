"""Real distributed experiments in subprocesses (device setup must precede TensorFlow's start).

Two logical CPU devices stand in for two GPUs; two worker processes on 127.0.0.1 stand
in for two machines. Each subprocess trains the real seed CNN on real PNG files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import free_ports, write_image_folder

ROOT = Path(__file__).resolve().parent.parent

# Split the one CPU into two logical devices before TensorFlow initialises its devices.
TWO_CPUS = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from engine.config import ExperimentConfig
from engine.study.launch import run_experiment
data, out = sys.argv[1], sys.argv[2]
def config(**overrides):
    values = dict(data_dir=data, batch_sizes=[18], epochs=2, patience=0, image_size=32, val_split=0.25,
                  out=out, precision="fp32", augment=False)
    values.update(overrides)
    return ExperimentConfig(**values)
"""


def run_script(body: str, *args: str, timeout: float = 240) -> dict:
    """Run TWO_CPUS + body in a fresh interpreter; the body prints one JSON line last."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", TWO_CPUS + textwrap.dedent(body), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def load(path: str) -> dict:
    return json.loads((Path(path) / "experiment.json").read_text())


@pytest.fixture(scope="module")
def mirrored_and_single(tmp_path_factory):
    """The same global batch (18: every training image, one step per epoch) on 2 replicas and on 1.

    Dropout is switched off in both: each replica draws its own dropout mask, so with
    dropout the two runs would differ by design, not by error. Everything else is the
    engine's real path (same seed, same initial weights, no augmentation).
    """
    root = tmp_path_factory.mktemp("mirrored")
    data = write_image_folder(root / "data")
    paths = run_script("""
        import keras
        import engine.train.models.build as build
        from engine.train.models.seed import build_seed_cnn
        switched_off = []
        def without_dropout(*args, **kwargs):
            model = build_seed_cnn(*args, **kwargs)
            for layer in model.layers:
                if isinstance(layer, keras.layers.Dropout):
                    layer.rate = 0.0
                    switched_off.append(layer.name)
            return model
        build.build_seed_cnn = without_dropout
        two = run_experiment(config(devices=["CPU:0", "CPU:1"], name="two"))
        one = run_experiment(config(devices=["CPU:0"], name="one"))
        assert switched_off, "the seed CNN was built without the patch: dropout would differ per replica"
        print(json.dumps({"two": str(two), "one": str(one)}))
    """, str(data), str(root / "out"))
    return load(paths["two"]), load(paths["one"])


def test_mirrored_run_records_two_replicas_and_half_batches(mirrored_and_single):
    two, one = mirrored_and_single
    assert two["status"] == "completed"
    assert two["environment"]["distribution"] == {"strategy": "mirrored", "devices": ["CPU:0", "CPU:1"],
                                                  "replicas": 2, "workers": 1}
    run = two["runs"][0]
    assert run["status"] == "completed" and run["epochs_run"] == 2
    assert run["replicas"] == 2 and run["batch_size"] == 18 and run["per_replica_batch"] == 9
    assert [h["steps"] for h in run["history"]] == [1, 2]  # the global batch: one step per epoch
    assert one["runs"][0]["replicas"] == 1 and one["runs"][0]["per_replica_batch"] == 18
    assert one["environment"]["distribution"]["strategy"] == "single"


def test_two_replicas_follow_the_same_curve_as_one(mirrored_and_single):
    """Epoch 1's loss is the loss at the shared initial weights, epoch 2's after one Adam step.

    With the whole training set as the batch, the order of the shuffle cannot matter, so the
    only difference left is float32 summation order: two half-batch gradients are added by the
    all-reduce instead of in one sum. Measured over 4 epochs the curves differ by at most
    2.4e-7 relative (float32's epsilon is 1.2e-7); rel=1e-5 leaves room for other CPUs' kernels
    and still catches a real fault (a replica fed the wrong half, losses averaged wrongly).
    """
    two, one = mirrored_and_single
    assert two["runs"][0]["initial_weights_sha256"] == one["runs"][0]["initial_weights_sha256"]
    for a, b in zip(two["runs"][0]["history"], one["runs"][0]["history"], strict=True):
        for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-5), (a["epoch"], key)
    assert two["runs"][0]["history"][1]["loss"] != pytest.approx(two["runs"][0]["history"][0]["loss"], rel=1e-3)


def test_two_workers_train_one_experiment_and_only_the_chief_writes(tmp_path):
    data = write_image_folder(tmp_path / "data")
    out = tmp_path / "out"  # one folder for both, as on a shared lab file system
    cluster = [f"127.0.0.1:{port}" for port in free_ports(2)]
    workers = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)}
        env.pop("TF_CONFIG", None)
        with open(tmp_path / f"out{index}.txt", "w") as stdout, open(tmp_path / f"err{index}.txt", "w") as stderr:
            workers.append(subprocess.Popen(  # files, not pipes: a full pipe would stall one worker and both
                [sys.executable, str(ROOT / "main.py"), "worker", str(data), "--batch-sizes", "6", "--epochs", "1",
                 "--image-size", "32", "--no-augment", "--out", str(out), "--cluster", *cluster,
                 "--index", str(index)], cwd=tmp_path, env=env, stdout=stdout, stderr=stderr))
    try:
        codes = [w.wait(timeout=240) for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    outputs = [(tmp_path / f"out{i}.txt").read_text() for i in range(2)]
    for i, code in enumerate(codes):
        assert code == 0, outputs[i] + (tmp_path / f"err{i}.txt").read_text()[-3000:]
    experiments = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert len(experiments) == 1  # the chief's; the other worker's folder was temporary
    record = load(str(experiments[0]))
    assert record["status"] == "completed"
    assert record["environment"]["distribution"]["strategy"] == "multi_worker_mirrored"
    assert record["environment"]["distribution"]["workers"] == 2
    run = record["runs"][0]
    assert run["status"] == "completed" and run["replicas"] == 2 and run["per_replica_batch"] == 3
    assert (experiments[0] / run["checkpoint"]).is_file()
    # The non-chief removed its scratch folder; autograph's bytecode cache of its generated modules is TensorFlow's.
    assert [p for p in (tmp_path / "tmp1").iterdir() if p.name != "__pycache__"] == []
    assert "chief keeps the record" in outputs[1]


def test_parallel_runs_train_at_once_with_one_writer(tmp_path):
    data = write_image_folder(tmp_path / "data")
    result = run_script("""
        from engine.events import EpochEnded
        epochs = []
        exp = run_experiment(config(batch_sizes=[4, 6], epochs=1, devices=["CPU:0", "CPU:1"], parallel=True),
                             lambda e: epochs.append(e.batch_size) if isinstance(e, EpochEnded) else None)
        print(json.dumps({"exp": str(exp), "epochs": sorted(epochs)}))
    """, str(data), str(tmp_path / "out"))
    record = load(result["exp"])
    assert result["epochs"] == [4, 6]  # the children's events reached the parent's listener
    assert record["status"] == "completed"
    assert record["environment"]["distribution"]["strategy"] == "parallel"
    first, second = record["runs"]
    # Both children started from the same record: had either written it, the other's run would be lost.
    for run, device in ((first, "CPU:0"), (second, "CPU:1")):
        assert run["status"] == "completed" and len(run["history"]) == 1
        assert run["device"].startswith(device) and run["replicas"] == 1
        assert (Path(result["exp"]) / run["checkpoint"]).is_file()
    assert first["started"] <= second["finished"] and second["started"] <= first["finished"]  # overlapped
