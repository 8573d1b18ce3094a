"""The window's cluster mode without the window: the chief trains in a child process and this
process relays its events, while a second real worker process joins on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine import events as ev
from engine.cli.main import build_parser
from engine.cli.run import config_from_args
from engine.config import ConfigError, ExperimentConfig
from engine.record import store as rec
from engine.scale.cluster import KILL_AFTER_S, parse_cluster, run_cluster_chief, worker_arguments, worker_command
from engine.stop import StopRequested, StopToken
from tests.helpers import free_ports, write_image_folder

ROOT = Path(__file__).resolve().parent.parent


def test_parse_cluster_names_the_bad_entry() -> None:
    assert parse_cluster("  ") is None
    assert parse_cluster("gpu-a:23456, gpu-b:23456") == ["gpu-a:23456", "gpu-b:23456"]
    with pytest.raises(ConfigError, match="at least two"):
        parse_cluster("gpu-a:23456")
    with pytest.raises(ConfigError, match="'gpu-b' is not HOST:PORT"):
        parse_cluster("gpu-a:23456 gpu-b")
    with pytest.raises(ConfigError, match="gpu-a:1 given more than once"):
        parse_cluster("gpu-a:1 gpu-a:1")


def test_worker_arguments_reproduce_the_config_exactly() -> None:
    """Every machine must train the same experiment: the command line parses back to the config."""
    cluster = ["gpu-a:23456", "gpu-b:23456"]
    config = ExperimentConfig(data_dir="/data/flowers", batch_sizes=[64, 256], epochs=7, patience=0,
                              image_size=96, val_split=0.2, lr=0.0003, seed=5, augment=False, out="/srv/ckpt",
                              precision="fp32", lr_scaling="sqrt", lr_reference_batch=64, warmup_epochs=1.5,
                              budget="steps", repeats=2, target_accuracy=0.8, name="night run",
                              devices=["GPU:0", "GPU:1"], lrs=[0.001, 0.003], tune="halving", halving_eta=2,
                              model="mobilenetv3small", weights="imagenet", freeze_backbone=True,
                              fine_tune_from="expanded_conv_6")
    for index in (0, 1):
        args = build_parser().parse_args(worker_arguments(config, cluster, index))
        assert (args.cluster, args.index) == (cluster, index)
        expected = config if index == 0 else ExperimentConfig(**{**config.to_dict(), "out": "checkpoints"})
        assert config_from_args(args) == expected
    plain = ExperimentConfig(data_dir="d", batch_sizes=[32])
    assert worker_arguments(plain, cluster, 1) == ["worker", "d", "--batch-sizes", "32", "--cluster", *cluster,
                                                   "--index", "1"]
    assert worker_command(config, cluster, 1).startswith("python main.py worker /data/flowers --batch-sizes 64 256")
    assert "--name 'night run'" in worker_command(config, cluster, 1)
    assert "--image-size" not in worker_arguments(plain, cluster, 0)  # auto: each machine resolves it alike


def start_worker(config: ExperimentConfig, cluster: list[str], index: int, folder: Path) -> subprocess.Popen:
    """Another machine of the cluster, started with the command the chief's log gives."""
    folder.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(folder)}
    with open(folder / "out.txt", "w") as out, open(folder / "err.txt", "w") as err:
        return subprocess.Popen([sys.executable, str(ROOT / "main.py"), *worker_arguments(config, cluster, index)],
                                cwd=folder, env=env, stdout=out, stderr=err)


def test_chief_in_a_child_process_relays_a_cluster_experiment(tmp_path: Path) -> None:
    data = write_image_folder(tmp_path / "data", classes=2, per_class=8)
    config = ExperimentConfig(data_dir=str(data), batch_sizes=[4], epochs=2, patience=0, image_size=32,
                              augment=False, precision="fp32", out=str(tmp_path / "out"))
    cluster = [f"127.0.0.1:{port}" for port in free_ports(2)]
    events: list[ev.Event] = []
    other = start_worker(config, cluster, 1, tmp_path / "worker1")
    try:
        folder = run_cluster_chief(config, events.append, cluster=cluster)
        assert other.wait(timeout=120) == 0, (tmp_path / "worker1" / "err.txt").read_text()[-3000:]
    finally:
        if other.poll() is None:
            other.kill()

    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "LogMessage" and "127.0.0.1" in events[0].text and "--index 1" in events[0].text
    assert kinds.count("EpochEnded") == 2 and kinds[-1] == "ExperimentFinished"
    started = next(e for e in events if isinstance(e, ev.ExperimentStarted))
    assert Path(started.experiment_dir) == folder and folder.parent == tmp_path / "out"
    finished = next(e for e in events if isinstance(e, ev.RunFinished))
    assert finished.status == "completed" and finished.epochs_run == 2

    record = rec.load(folder)
    assert record["environment"]["distribution"]["strategy"] == "multi_worker_mirrored"
    assert record["environment"]["distribution"]["workers"] == 2
    assert record["runs"][0]["history"] == [e.entry for e in events if isinstance(e, ev.EpochEnded)]
    written = [p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")]  # .cache: decoded images
    assert written == [folder.name]  # the chief alone wrote an experiment
    # Scratch removed. TensorFlow's autograph imports the modules it generates from the temporary folder, and Python
    # caches their bytecode there (unless PYTHONDONTWRITEBYTECODE is set): that cache is TensorFlow's, not a leftover.
    left = sorted(p.name for p in (tmp_path / "worker1").iterdir() if p.name != "__pycache__")
    assert left == ["err.txt", "out.txt"]


def test_bad_settings_come_back_as_one_clear_error(tmp_path: Path) -> None:
    config = ExperimentConfig(data_dir=str(tmp_path / "missing"), batch_sizes=[4], out=str(tmp_path / "out"))
    with pytest.raises(ConfigError, match="missing"):
        run_cluster_chief(config, cluster=[f"127.0.0.1:{port}" for port in free_ports(2)])
    assert not (tmp_path / "out").exists()


def test_stop_ends_a_chief_whose_peers_never_came(tmp_path: Path) -> None:
    """A chief waiting for a machine that was never started cannot see a stop between batches:
    the stop is passed on more firmly until the process ends, and nothing is left running."""
    data = write_image_folder(tmp_path / "data", classes=2, per_class=8)
    config = ExperimentConfig(data_dir=str(data), batch_sizes=[4], epochs=1, image_size=32, augment=False,
                              precision="fp32", out=str(tmp_path / "out"))
    stop = StopToken()
    threading.Timer(15, stop.set).start()  # a user pressing Stop while the chief waits
    started = time.monotonic()
    try:
        folder = run_cluster_chief(config, stop=stop, cluster=[f"127.0.0.1:{port}" for port in free_ports(2)])
    except StopRequested:
        folder = None
    assert time.monotonic() - started < 15 + KILL_AFTER_S + 30
    if folder is not None:  # the record it left behind still parses
        assert rec.load(folder)["runs"][0]["status"] in ("pending", "running", "stopped")
