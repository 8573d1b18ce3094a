"""Real processes: SIGKILL at chosen and random moments, then resume; two writers in one folder.

Slow (each process imports TensorFlow), so few processes: one chain of three
kills, each followed by checks, then a resume that finishes the experiment.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import keras

from engine.record import store as rec
from engine.study.resume import resume_experiment
from engine.train.models.files import file_sha256

ROOT = Path(__file__).resolve().parents[1]
WRITE_DELAY_S = 0.4
# Runs the command line with every atomic write held open for a moment after its bytes are
# written and before the rename: the window in which a kill must not damage the old file.
SLOW_WRITES = f"""
import contextlib, sys, time
from engine import atomic
from engine.cli import main as cli
plain = atomic.atomic_path

@contextlib.contextmanager
def slow(target, suffix=".tmp"):
    with plain(target, suffix) as tmp:
        yield tmp
        time.sleep({WRITE_DELAY_S})

atomic.atomic_path = slow
sys.exit(cli.main(sys.argv[1:]))
"""
SIZES = [4, 8, 16]
EPOCHS = 3


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-c", SLOW_WRITES, *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def read(exp: Path) -> tuple[Optional[dict], float]:
    """The record and its modification time, both from one open file: a writer replaces the record by
    rename, so a separate stat could date an older version's content by a newer file."""
    try:
        with open(exp / rec.RECORD_NAME, "rb") as f:
            return json.loads(f.read()), os.fstat(f.fileno()).st_mtime
    except (FileNotFoundError, json.JSONDecodeError):  # the parent must see no torn record either
        return None, 0.0


def kill_when(proc: subprocess.Popen, exp_of: Callable[[], Optional[Path]],
              moment: Callable[[Path, dict], bool], since: float) -> tuple[Path, list[dict]]:
    """Poll the record; SIGKILL the process at ``moment``. Returns the folder and the records seen."""
    seen: list[dict] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"finished before the kill point: {proc.stderr.read().decode()[-2000:]}"
        exp = exp_of()
        record, modified = read(exp) if exp else (None, 0.0)
        if record is not None and modified > since:
            seen.append(record)
            if moment(exp, record):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return exp, seen
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("kill point never reached")


def epochs(record: dict, size: int) -> int:
    return len(next(r for r in record["runs"] if r["batch_size"] == size)["history"])


def writing(exp: Path, pattern: str) -> bool:
    return any(exp.glob(pattern))


def after_random_delay(delay_s: float) -> Callable[[Path, dict], bool]:
    """A kill moment ``delay_s`` after the process first rewrote the record."""
    first: list[float] = []

    def moment(exp: Path, record: dict) -> bool:
        first.append(time.monotonic())
        return first[-1] - first[0] >= delay_s

    return moment


def kept(run: dict) -> dict:
    """A finished run as resume must keep it (time to target is recomputed as more runs finish)."""
    return {k: v for k, v in run.items() if k != "time_to_target"}


def check_after_kill(exp: Path, seen: list[dict]) -> dict:
    """The record parses, keeps every epoch any earlier version showed, and its checkpoints load."""
    record = rec.load(exp)
    assert record["status"] == "interrupted"
    for old in seen:
        for before, now in zip(old["runs"], record["runs"]):
            assert now["history"][:len(before["history"])] == before["history"]
    for run in record["runs"]:
        assert [h["epoch"] for h in run["history"]] == list(range(1, len(run["history"]) + 1))
        if run["checkpoint"]:
            keras.saving.load_model(exp / run["checkpoint"], safe_mode=True)
        if run["status"] == "completed":  # the interrupted run may have a newer best than its record says
            assert file_sha256(exp / run["checkpoint"]) == run["checkpoint_sha256"]
    return record


def test_sigkill_at_any_moment_loses_no_completed_epoch_and_resume_finishes(tiny_data, tmp_path):
    out = tmp_path / "out"
    exp_path = out / "killed"

    def folder() -> Optional[Path]:
        return exp_path if exp_path.is_dir() else None

    kills = {
        "during a record write, bs4 epoch 2 recorded": lambda exp, r: epochs(r, 4) >= 2 and writing(
            exp, ".experiment.json.*.tmp"),
        "during a checkpoint write of bs8": lambda exp, r: writing(exp, "bs8/.best.keras.*.keras"),
        "at a random moment": None,
    }
    completed: dict[int, dict] = {}
    for i, (what, moment) in enumerate(kills.items()):
        since = (exp_path / rec.RECORD_NAME).stat().st_mtime if i else 0.0
        if i == 0:
            proc = start("run", str(tiny_data), "--batch-sizes", *map(str, SIZES), "--epochs", str(EPOCHS),
                         "--patience", "0", "--image-size", "32", "--no-augment", "--precision", "fp32",
                         "--out", str(out), "--name", "killed")
        else:
            proc = start("run", "--resume", str(exp_path))
        moment = moment or after_random_delay(random.uniform(0.0, 4.0))
        exp, seen = kill_when(proc, folder, moment, since)
        assert seen, what
        if i < 2:  # killed inside the write window: its temporary file is still there
            assert list(exp.rglob(".*")), what
        record = check_after_kill(exp, seen)
        for run in record["runs"]:
            if run["status"] == "completed":
                assert completed.setdefault(run["run_index"], kept(run)) == kept(run), f"run changed: {what}"

    resume_experiment(exp_path)
    final = rec.load(exp_path)
    assert final["status"] == "completed"
    assert [len(r["history"]) for r in final["runs"]] == [EPOCHS] * len(SIZES)
    assert completed and all(kept(final["runs"][i]) == run for i, run in completed.items())
    assert len({r["initial_weights_sha256"] for r in final["runs"]}) == 1
    assert sorted(p.name for p in exp_path.rglob(".*")) == []
    for run in final["runs"]:
        assert file_sha256(exp_path / run["checkpoint"]) == run["checkpoint_sha256"]


def test_two_processes_with_the_same_name_get_separate_folders(tiny_data, tmp_path):
    out = tmp_path / "out"
    args = ["run", str(tiny_data), "--batch-sizes", "4", "--epochs", "1", "--image-size", "32", "--no-augment",
            "--precision", "fp32", "--out", str(out), "--name", "same"]
    procs = [start(*args), start(*args)]
    for proc in procs:
        assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()[-2000:]
    folders = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert folders == ["same", "same-2"]
    for name in folders:
        record = rec.load(out / name)
        assert record["id"] == name and record["status"] == "completed"
        run = record["runs"][0]
        assert file_sha256(out / name / run["checkpoint"]) == run["checkpoint_sha256"]
        keras.saving.load_model(out / name / run["checkpoint"], safe_mode=True)
