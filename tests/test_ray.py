"""Trials on a Ray cluster (issue 17).

Fast tests check the decisions without a cluster: the address and its flag, what a trial asks
for, the retry bookkeeping and the restore that removes a lost attempt's epochs, and an address
where nothing listens (one line, exit 2, a notice in the window, no experiment folder).

The slow tests start real Ray nodes, so they run inside a network namespace that has only the
loopback interface (Ray binds to the machine's outward address even when told 127.0.0.1) and a
PID namespace (``ray stop --force`` kills Ray processes by name: here it reaches only ours, and
everything in the namespace dies with it): ``unshare -n -p -f --mount-proc``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import events as ev
from engine.cli.main import build_parser
from engine.cli.run import config_from_args
from engine.config import ConfigError, ExperimentConfig, ray_address_parts, value_problem
from engine.record.state import apply_event
from engine.scale.ray_rules import (
    node_in_error,
    one_line,
    restore_updates,
    retry_note,
    should_retry,
    thread_environment,
    trial_request,
    unfit_request,
)

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "tests" / "ray_scenarios" / "study.py"


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (it was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the address, its flag and the settings that go with it -----------------------------------------

@pytest.mark.parametrize("text, parts", [
    ("10.0.0.5:6379", (False, "10.0.0.5", 6379)),
    ("head.lab:6379", (False, "head.lab", 6379)),
    ("ray://head.lab:10001", (True, "head.lab", 10001)),
    ("[::1]:6379", (False, "[::1]", 6379)),
    ("local", None), ("head.lab", None), ("head.lab:0", None), ("head.lab:65536", None), ("ray://", None),
    ("http://head:8265", None), ("data/shapes", None),
])
def test_ray_addresses_are_read_into_parts(text, parts):
    assert ray_address_parts(text) == (parts and tuple(parts))
    if parts:
        assert str(ray_address_parts(text)) == text
    assert (value_problem("ray_address", text) is None) == (parts is not None or text == "local")


def parse(*argv: str) -> ExperimentConfig:
    return config_from_args(build_parser().parse_args(["run", *argv]))


def test_ray_flag_alone_means_a_local_runtime_and_takes_an_address():
    assert parse("d", "--batch-sizes", "4").ray_address is None
    assert parse("d", "--batch-sizes", "4", "--ray").ray_address == "local"
    assert parse("d", "--ray", "--batch-sizes", "4").ray_address == "local"
    config = parse("d", "--batch-sizes", "4", "--ray", "ray://10.0.0.5:10001", "--trial-gpus", "0.5",
                   "--trial-cpus", "2", "--ray-retries", "0", "--ray-data-path", "/mnt/lab/d")
    assert (config.ray_address, config.trial_gpus, config.trial_cpus, config.ray_retries, config.ray_data_path) == \
        ("ray://10.0.0.5:10001", 0.5, 2, 0, "/mnt/lab/d")


def test_a_bare_ray_flag_before_the_data_folder_says_what_happened(capsys):
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["run", "--ray", "data/shapes", "--batch-sizes", "4"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "argument --ray: 'data/shapes' is not local, HOST:PORT" in err and "put it after the data folder" in err
    assert len(err.strip().splitlines()) == 1


def test_ray_refuses_this_machines_device_settings_and_split_gpus_above_one():
    found = {p.field: p.text for p in ExperimentConfig("d", [4], ray_address="local", parallel=True,
                                                       devices=["GPU:0"], trial_gpus=1.5).problems()}
    assert found["parallel"].startswith("not with trials on Ray") and found["devices"].startswith("not with")
    assert found["trial_gpus"] == "1.5: above 1 it must be a whole number of GPUs (only a GPU shared in fractions " \
                                  "below 1 can be split)"
    assert ExperimentConfig("d", [4], ray_address="local", trial_gpus=0.25).problems() == []
    assert ExperimentConfig("d", [4], ray_address="local", trial_gpus=2.0).problems() == []
    assert ExperimentConfig("d", [4], parallel=True).problems() == []  # without Ray, as before
    with pytest.raises(ConfigError, match="data folder on the nodes: ' ' is empty"):
        ExperimentConfig("d", [4], ray_data_path=" ").validate()


# -- what a trial asks for ----------------------------------------------------------------------------

def test_a_trial_asks_for_gpus_only_where_the_cluster_has_them():
    assert trial_request(1.0, 1, cluster_gpus=0.0) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert trial_request(0.5, 2, cluster_gpus=4.0) == {"num_cpus": 2.0, "num_gpus": 0.5}
    nodes = [{"CPU": 2.0}, {"CPU": 8.0, "GPU": 1.0}]
    assert unfit_request({"num_cpus": 8.0, "num_gpus": 1.0}, nodes) is None
    assert unfit_request({"num_cpus": 16.0, "num_gpus": 0.0}, nodes) == \
        "cpus per trial: a trial asks for 16 CPUs but the largest node has 8; lower it"
    assert unfit_request({"num_cpus": 1.0, "num_gpus": 2.0}, nodes) == \
        "gpus per trial: a trial asks for 2 GPUs but the largest node has 1; lower it"
    assert unfit_request({"num_cpus": 1.0, "num_gpus": 0.0}, []) == "the cluster has no live node"
    env = thread_environment({"num_cpus": 3.0, "num_gpus": 0.5})
    assert env["TF_NUM_INTRAOP_THREADS"] == env["OMP_NUM_THREADS"] == "3" and env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


# -- retries ------------------------------------------------------------------------------------------

def test_retry_bookkeeping():
    assert should_retry(0, 2) and should_retry(1, 2)
    assert not should_retry(2, 2) and not should_retry(0, 0)
    message = ("Task failed because the node it was running on is dead or unavailable. Node IP: 127.0.0.1, node ID: "
               "14f8fbb56bd007b18330b4a19563a426461b62c8713b46a5117877a1. This can happen if ...\n  traceback")
    assert node_in_error(message) == "14f8fbb56bd007b18330b4a19563a426461b62c8713b46a5117877a1"
    assert node_in_error("The worker died unexpectedly") is None
    note = retry_note("n1", "gpu-b", "2026-12-02T08:06:25+00:00", "NodeDiedError: " + "x" * 400 + "\nmore", 3)
    assert note == {"node": "n1", "hostname": "gpu-b", "at": "2026-12-02T08:06:25+00:00",
                    "error": one_line("NodeDiedError: " + "x" * 400), "epochs_discarded": 3}
    assert len(note["error"]) == 300 and note["error"].endswith("...")


def epoch(n: int) -> dict:
    return {"epoch": n, "loss": 1.0 / n, "accuracy": 0.5, "val_loss": 1.0 / n, "val_accuracy": 0.4 + n / 100,
            "lr": 0.001, "steps": 10 * n, "samples": 40 * n, "seconds": 1.0, "elapsed": float(n), "images_per_s": 40.0}


def test_a_restore_event_puts_the_run_back_in_the_record_and_in_the_windows_copy():
    """What a lost attempt trained leaves both copies of the record (the file's and the window's), through one
    RunStarted event each folds, and nothing is shared between them afterwards."""
    from engine.study.launch import new_trial

    run = new_trial({"run_index": 0, "batch_size": 8, "repeat": 0, "seed": 0, "lr": 0.001, "lr_index": 0,
                     "steps_per_epoch": 10, "epochs_planned": 6})
    record = {"config": {}, "runs": [run]}
    for n in (1, 2):  # rung 0 done on another node
        apply_event(record, ev.EpochEnded(0, 8, epoch(n), 0.42, 2, 40.0, 1.0, True,
                                          {"checkpoint": "bs8/best.keras", "checkpoint_sha256": "old"}))
    run.update(node="n0", hostname="gpu-a")
    window = copy.deepcopy(record)
    snapshot = copy.deepcopy(run)
    lost = [ev.RunStarted(0, 8, 0, 0, 6, 10, 40, 0.001, 2, {"node": "n1", "hostname": "gpu-b", "device": "GPU"}),
            ev.EpochEnded(0, 8, epoch(3), 0.43, 3, 40.0, 1.0, True,
                          {"checkpoint": "bs8/best.keras", "checkpoint_sha256": "new"})]
    for event in lost:
        apply_event(record, event)
        apply_event(window, event)
    note = retry_note("n1", "gpu-b", "now", "NodeDiedError: gone", 1)
    restore = ev.RunStarted(0, 8, 0, 0, 6, 10, 40, 0.001, len(snapshot["history"]),
                            restore_updates(snapshot, record["runs"][0], note))
    for copy_ in (record, window):
        apply_event(copy_, restore)
    restored = record["runs"][0]
    assert restored["history"] == snapshot["history"] and restored["epochs_run"] == 2
    assert (restored["best"], restored["checkpoint_sha256"]) == (snapshot["best"], "old")
    assert (restored["node"], restored["hostname"], restored["device"]) == ("n0", "gpu-a", None)
    assert restored["retries"] == [note] and restored["status"] == "running"
    assert window["runs"] == record["runs"]
    apply_event(record, ev.EpochEnded(0, 8, epoch(3), 0.43, 3, 40.0, 1.0, False))
    apply_event(window, ev.EpochEnded(0, 8, epoch(3), 0.43, 3, 40.0, 1.0, False))
    assert len(record["runs"][0]["history"]) == len(window["runs"][0]["history"]) == 3  # no list is shared
    second = restore_updates(snapshot, record["runs"][0], retry_note(None, None, "later", "WorkerCrashedError", 1))
    assert [r["at"] for r in second["retries"]] == ["now", "later"]  # every retry stays noted


def test_lost_workers_and_nodes_are_retried_but_training_errors_are_not():
    from engine.scale.ray_trials import is_lost

    assert is_lost(ray.exceptions.NodeDiedError("node gone"))
    assert is_lost(ray.exceptions.WorkerCrashedError())
    assert is_lost(ray.exceptions.OutOfMemoryError("killed by the memory monitor"))
    assert not is_lost(ray.exceptions.RayTaskError("train_segment", "Traceback ...", ValueError("bad data")))
    assert not is_lost(ray.exceptions.TaskCancelledError())
    assert not is_lost(None)


def test_a_client_server_that_fails_to_start_is_tried_again_but_a_refused_token_is_not(monkeypatch, tiny_data):
    """Ray Client's head starts a server process per driver, and on a busy head that can fail (seen in CI): two more
    tries, each told as a warning; the last failure names the server's own reason. A refused token fails at once."""
    from engine.scale import ray_cluster

    server_died = ConnectionAbortedError(
        "Initialization failure from server:\nTraceback (most recent call last):\n  File \"proxier.py\", line 772\n"
        "RuntimeError: Starting Ray client server failed. See ray_client_server_23002.err for detailed logs.\n")
    refused = ConnectionAbortedError("Initialization failure from server:\nUnauthenticated: invalid token\n")
    monkeypatch.setattr(ray_cluster, "CLIENT_RETRY_PAUSE_S", 0.0)

    def attempt(address: str, error: Exception) -> tuple[int, list[ev.LogMessage], str]:
        calls, said = [], []

        def failing_init(**options):
            calls.append(options["address"])
            raise error

        monkeypatch.setattr(ray, "init", failing_init)
        with pytest.raises(ConfigError) as failure:
            ray_cluster.connect(ExperimentConfig(data_dir=str(tiny_data), batch_sizes=[4], ray_address=address),
                                said.append)
        assert set(calls) == {address}
        return len(calls), said, str(failure.value)

    with socket.socket() as head:  # something listens there, so the address is reachable
        head.bind(("127.0.0.1", 0))
        head.listen()
        address = f"ray://127.0.0.1:{head.getsockname()[1]}"
        calls, said, message = attempt(address, server_died)
        assert calls == 3
        assert [(e.level, e.text.rsplit("; ", 1)[-1]) for e in said] == [("warning", "trying again (2 of 3)"),
                                                                         ("warning", "trying again (3 of 3)")]
        assert message == (f"ray cluster {address}: cannot connect (Initialization failure from server: RuntimeError: "
                           "Starting Ray client server failed. See ray_client_server_23002.err for detailed logs.)")
        calls, said, message = attempt(address, refused)
        assert calls == 1 and said == []
        assert message.startswith(f"ray cluster {address}: refused this machine")


# -- an address where nothing listens -----------------------------------------------------------------

def test_an_unreachable_cluster_is_one_line_and_exit_2_before_any_folder_exists(tmp_path, tiny_data):
    port = closed_port()
    began = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "run", str(tiny_data), "--batch-sizes", "4",
                           "--image-size", "32", "--out", str(tmp_path / "out"), "--ray", f"127.0.0.1:{port}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: ray cluster 127.0.0.1:{port}: cannot be reached (connection refused); start it there with "
        f"'ray start --head --port {port}', or check the address and the firewall")
    assert time.monotonic() - began < 120  # Ray alone retries such an address for minutes
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".cache"]  # no experiment folder


def test_the_window_offers_ray_with_its_address_and_shows_an_unreachable_one_as_a_notice(qtbot, tmp_path, tiny_data):
    from PySide6.QtCore import QSettings

    from engine.study.launch import run_experiment
    from gui import settings_store
    from gui.main_window import MainWindow

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings_store.save_data_dir(settings, str(tiny_data))
    window = MainWindow(settings, data_root=tmp_path / "data", checkpoints=tmp_path / "checkpoints",
                        run=run_experiment)
    qtbot.addWidget(window)
    window.show()
    panel = window.settings_panel
    field = panel.ray_address
    assert field.check.text() == "Run trials on a Ray cluster" and not field.text.isEnabled()
    assert not panel.trial_gpus.isEnabled()  # Ray's own settings apply only with Ray
    field.check.setChecked(True)
    assert panel.trial_gpus.isEnabled() and field.text.isEnabled()
    assert panel.config("d", "o").ray_address == "local"  # checked and empty: --ray alone
    field.text.setText("head:port")
    assert panel.problems() == ["Run trials on a Ray cluster: 'head:port' is not local, HOST:PORT of a Ray head or "
                                "ray://HOST:PORT (e.g. 10.0.0.5:6379)"]
    port = closed_port()
    field.text.setText(f"127.0.0.1:{port}")
    panel.batch_sizes.setText("4")
    panel.image_size.setValue(32)
    qtbot.waitUntil(lambda: window.start_action.isEnabled(), timeout=20_000)
    window.start_action.trigger()
    qtbot.waitUntil(lambda: window.worker is None, timeout=180_000)
    assert f"ray cluster 127.0.0.1:{port}: cannot be reached" in window.notice.text()
    assert window.notice.isVisible() and window.start_action.isEnabled()
    panel.set_config(ExperimentConfig("d", [4]))
    assert not field.check.isChecked() and panel.config("d", "o").ray_address is None


# -- a real cluster, in namespaces --------------------------------------------------------------------

def in_namespaces(*args: str, home: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run this Python with ``args`` in its own network namespace (loopback only) and PID namespace, with a home
    folder of its own (Ray writes its authentication token into ~/.ray)."""
    user = [] if os.geteuid() == 0 else ["-r"]  # unprivileged: a user namespace maps us to root inside
    command = ["unshare", *user, "-n", "-p", "-f", "--mount-proc", "--", "sh", "-c",
               'ip link set lo up && exec "$0" "$@"', sys.executable, *args]
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT), "HOME": str(home)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def namespaces_available(home: Path) -> bool:
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    probe = in_namespaces("-c", "print('ok')", home=home, timeout=60)
    return probe.returncode == 0 and probe.stdout.strip() == "ok"


@pytest.fixture(scope="module")
def faults(tmp_path_factory) -> dict:
    """A study with --ray alone, then one two-node cluster (head + node 2, one CPU each, token authentication) for
    the rest: 2 batch sizes x 2 learning rates, the same through Ray Client, a driver without the token, nodes
    reading the data folder, successive halving, Stop, and node 2 killed during a trial."""
    work = tmp_path_factory.mktemp("r")
    if not namespaces_available(work / "home"):
        pytest.skip("needs unshare and ip (util-linux, iproute2) and the right to make namespaces")
    done = in_namespaces(str(SCENARIOS), "faults", str(work), home=work / "home", timeout=2400)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_record(result: dict) -> None:
    assert all(result["histories_equal_events"]), result["histories_equal_events"]
    assert result["window_equals_record"] and result["checkpoints_match"]
    assert len(result["initial_weights"]) == 1 and result["initial_file"]  # every trial, the same saved weights
    assert result["leftovers"] == []  # no temporary file or checkpoint backup left in the folder
    assert result["distribution"]["strategy"] == "ray"


@pytest.mark.slow
def test_a_study_spreads_its_trials_over_both_nodes(faults):
    result = faults["two_nodes"]
    assert result["status"] == "completed" and result["statuses"] == ["completed"] * 4
    assert sorted(set(result["nodes"])) == result["cluster_nodes"]  # trials on both nodes
    assert all(result["hostnames"]) and result["retries"] == [[]] * 4
    assert result["epochs"] == [3] * 4 and result["tensorboard_files"] == [1] * 4
    check_record(result)


@pytest.mark.slow
def test_a_trial_whose_node_dies_is_retried_on_the_head(faults):
    result = faults["node_loss"]
    assert result["killed_during"], "no trial ran on node 2"
    assert result["status"] == "completed" and result["statuses"] == ["completed"] * 4
    assert set(result["nodes"]) == {result["head"]}
    killed = result["killed_during"][0]
    notes = result["retries"][killed]
    assert len(notes) == 1 and notes[0]["node"] == result["lost_node"] and notes[0]["hostname"]
    assert notes[0]["error"].startswith(("NodeDiedError", "WorkerCrashedError")) and notes[0]["epochs_discarded"] >= 1
    assert result["epochs"] == [6] * 4  # the lost attempt's epochs are gone; the retry trained them again
    check_record(result)


@pytest.mark.slow
def test_stop_cancels_every_trial_and_keeps_the_record_valid(faults):
    result = faults["stop"]
    assert result["status"] == "stopped"
    assert set(result["statuses"]) <= {"stopped", "pending"} and "stopped" in result["statuses"]
    assert max(result["epochs"]) < 40  # nothing trained on after Stop
    assert result["stop_to_end_s"] < 120
    check_record(result)


@pytest.mark.slow
def test_ray_alone_starts_a_runtime_here_and_stops_it_after_the_study(faults):
    result = faults["local_runtime"]
    assert result["returncode"] == 0, result["stderr_tail"]
    assert result["status"] == "completed" and len(result["nodes"]) == 2 and len(set(result["nodes"])) == 1
    assert result["distribution"]["strategy"] == "ray" and result["distribution"]["address"] == "local"
    assert "Traceback" not in result["stderr_tail"]
    assert result["ray_left"] == []  # the runtime the command started is gone with it


@pytest.mark.slow
def test_nodes_can_read_the_data_folder_themselves_and_refuse_other_data(faults):
    result = faults["shared_data"]
    right = result["right"]
    assert right["status"] == "completed" and right["distribution"]["data"].startswith("shared: ")
    check_record(right)
    assert result["wrong_statuses"] == ["failed", "failed"]
    assert all("not the data the experiment started with" in error for error in result["wrong_errors"])
    assert result["wrong_retries"] == [None, None]  # a training error is not a lost node: no retry


@pytest.mark.slow
def test_successive_halving_is_decided_between_rungs_and_the_survivor_continues_on_the_cluster(faults):
    result = faults["halving"]
    assert result["status"] == "completed" and result["rungs"] == {"4": [1, 3]}
    assert result["reasons"].count("completed") == 1  # the others are halved (or dead: a rate that learned nothing)
    assert set(result["reasons"]) - {"completed"} <= {"halved", "dead"}
    assert sorted(result["epochs"]) == [1, 1, 3]  # the survivor went on from its state saved after rung 0
    assert result["state_files"] == []  # sealed trials keep no saved state
    check_record(result)


@pytest.mark.slow
def test_a_driver_outside_the_cluster_uses_ray_client(faults):
    result = faults["client"]
    assert result["status"] == "completed" and result["distribution"]["address"].startswith("ray://")
    check_record(result)


@pytest.mark.slow
def test_a_driver_without_the_clusters_token_is_told_in_one_line(faults):
    result = faults["refused"]
    assert result["returncode"] == 2 and result["folders"] == [".cache"]
    assert result["last_line"].endswith("refused this machine: the cluster uses token authentication; set "
                                        "RAY_AUTH_MODE=token here and give this machine the head's token (its "
                                        "~/.ray/auth_token)")
