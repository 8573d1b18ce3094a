"""Placement decisions, cluster settings and device options: fast checks without extra devices."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from engine.cli.main import build_parser
from engine.cli.run import config_from_args
from engine.cli.worker import cluster_role
from engine.config import ConfigError, ExperimentConfig
from engine.events import LogMessage
from engine.scale.distribute import Placement, check_distributable, child_environment, place, resolve_devices


def config(**overrides) -> ExperimentConfig:
    values = dict(data_dir="data", batch_sizes=[8, 32], image_size=32)
    values.update(overrides)
    return ExperimentConfig(**values)


@pytest.mark.parametrize("devices, message", [
    ([], "give at least one"),
    (["gpu0"], "'gpu0' is not a device name"),
    (["GPU:0", "GPU:0"], "more than once"),
])
def test_bad_device_settings_name_the_setting(devices, message):
    with pytest.raises(ConfigError, match=message) as caught:
        config(devices=devices).validate()
    assert str(caught.value).startswith("devices:")


def test_command_line_device_names_become_tensorflow_names():
    args = build_parser().parse_args(["run", "data", "--batch-sizes", "8", "--devices", "0", "gpu:1", "cpu:0",
                                      "--parallel"])
    cfg = config_from_args(args)
    assert cfg.devices == ["GPU:0", "GPU:1", "CPU:0"] and cfg.parallel
    assert config_from_args(build_parser().parse_args(["run", "data", "--batch-sizes", "8"])).devices is None


def test_without_gpus_the_default_is_the_plain_single_device_path():
    placement = place(config())
    assert placement.strategy is None and placement.device is None and not placement.parallel_devices
    assert isinstance(placement.scope(), contextlib.nullcontext)  # no strategy scope, no device scope
    assert placement.replicas == 1 and placement.to_record()["strategy"] == "single"


def test_one_chosen_device_is_a_device_scope_not_a_strategy():
    placement = place(config(devices=["CPU:0"]))
    assert placement.strategy is None and placement.device == "CPU:0"
    assert placement.to_record() == {"strategy": "single", "devices": ["CPU:0"], "replicas": 1, "workers": 1}


def test_parallel_with_one_device_says_so_and_runs_in_turn():
    told = []
    placement = place(config(devices=["CPU:0"], parallel=True), told.append)
    assert not placement.parallel_devices and placement.strategy is None
    assert any("at least two devices" in e.text for e in told)


def test_a_device_that_is_not_there_is_refused_with_what_is():
    with pytest.raises(ConfigError, match=r"devices: GPU:7 is not visible here \(visible: CPU:0"):
        resolve_devices(["GPU:7"])


def test_what_cannot_run_on_several_replicas_is_refused_or_warned():
    two = Placement(strategy=None, workers=2)
    with pytest.raises(ConfigError, match="^noise scale:"):
        check_distributable(config(noise_scale=True), two, lambda e: None)
    with pytest.raises(ConfigError, match="^budget:"):
        check_distributable(config(budget="time", budget_seconds=5.0), two, lambda e: None)


def test_uneven_split_is_warned_with_the_shares():
    class TwoReplicas(Placement):
        replicas = 2

    told: list[LogMessage] = []
    check_distributable(config(batch_sizes=[8, 9]), TwoReplicas(), told.append)
    assert [e.text for e in told] == ["batch size 9 does not split evenly over 2 replicas: each gets 4 or 5 "
                                      "images per step"]


def test_children_are_pinned_to_their_device(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert child_environment("GPU:1")["CUDA_VISIBLE_DEVICES"] == "5"  # logical GPU:1 is physical 5 here
    assert child_environment("CPU:0")["CUDA_VISIBLE_DEVICES"] == "-1"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    env = child_environment("GPU:1")
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert str(Path(__file__).resolve().parent.parent) in env["PYTHONPATH"].split(":")


def test_cluster_option_writes_tf_config_and_index_zero_is_chief(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "")  # restored after the test, whatever cluster_role writes
    role = cluster_role(["10.0.0.1:2222", "10.0.0.2:2222"], 1)
    assert role.workers == 2 and role.index == 1 and not role.is_chief
    assert json.loads(os.environ["TF_CONFIG"]) == {"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
                                                   "task": {"type": "worker", "index": 1}}
    assert cluster_role(["10.0.0.1:2222", "10.0.0.2:2222"], 0).is_chief


def test_tf_config_with_a_chief_task(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    role = cluster_role(None, None)
    assert role.workers == 3 and not role.is_chief  # with a chief task, worker 0 is not the chief


@pytest.mark.parametrize("cluster, index, tf_config, message", [
    (None, None, "", "^TF_CONFIG: not set"),
    (None, None, "{not json", "^TF_CONFIG: not JSON"),
    (None, None, json.dumps({"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, "task": {"type": "ps", "index": 0}}),
     "^TF_CONFIG: only 'chief' and 'worker'"),
    (["a:1", "b:1"], 2, None, r"^--index: give this machine's place in --cluster, 0 to 1"),
    (["a:1", "no-port"], 0, None, "^--cluster: 'no-port' is not HOST:PORT"),
])
def test_bad_cluster_settings_say_which(monkeypatch, cluster, index, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", tf_config or "")
    with pytest.raises(ConfigError, match=message):
        cluster_role(cluster, index)


def test_worker_refuses_options_that_do_not_apply(tmp_path, capsys):
    from engine.cli.main import main

    assert main(["worker", str(tmp_path), "--batch-sizes", "8", "--parallel", "--cluster", "a:1", "--index", "0"]) == 2
    assert "error: --parallel:" in capsys.readouterr().err
