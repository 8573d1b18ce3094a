"""Faults inside one process: training faults, a full disk, and leaks over consecutive runs.

Faults are injected at the edge (a huge learning rate, a callback that raises, a
write that fails like a full disk would); the training itself is real.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
from pathlib import Path

import keras
import pytest
import tensorflow as tf

from engine import exit_codes
from engine.config import ExperimentConfig
from engine.events import EpochEnded, LogMessage
from engine.record import store as rec
from engine.study import launch as runner
from engine.study.resume import resume_experiment
from engine.train import plan
from engine.train import runner as training
from engine.train.callbacks import RunMonitor
from engine.train.models.files import file_sha256


def config(data: Path, out: Path, **overrides) -> ExperimentConfig:
    values = dict(data_dir=str(data), batch_sizes=[4, 8], epochs=1, patience=0, image_size=32,
                  out=str(out), precision="fp32", augment=False)
    values.update(overrides)
    return ExperimentConfig(**values)


def leftovers(folder: Path) -> list[str]:
    """Temporary files of interrupted atomic writes (they start with a dot)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def test_training_faults_fail_their_run_and_the_next_runs_go_on(tiny_data, tmp_path, monkeypatch):
    """bs4 diverges (huge lr), bs6 runs out of memory, bs8's callback raises; bs16 still completes."""
    real_lr = plan.scaled_lr
    monkeypatch.setattr(plan, "scaled_lr",
                        lambda base, size, ref, how: 1e30 if size == 4 else real_lr(base, size, ref, how))

    class FaultyMonitor(RunMonitor):
        def on_train_batch_begin(self, batch, logs=None):
            if self.batch_size == 6 and batch == 1:
                raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor [6,32,32,32]")
            super().on_train_batch_begin(batch, logs)

        def on_epoch_end(self, epoch, logs=None):
            if self.batch_size == 8:
                raise RuntimeError("callback fault in epoch end")
            super().on_epoch_end(epoch, logs)

    monkeypatch.setattr(training, "RunMonitor", FaultyMonitor)
    exp = runner.run_experiment(config(tiny_data, tmp_path / "out", batch_sizes=[4, 6, 8, 16]))
    record = rec.load(exp)
    runs = {r["batch_size"]: r for r in record["runs"]}
    assert [runs[b]["status"] for b in (4, 6, 8, 16)] == ["failed", "failed", "failed", "completed"]
    assert "loss became nan in epoch 1: training diverged" in runs[4]["error"]
    assert runs[6]["error"].startswith("out of memory at this batch size")
    assert runs[8]["error"] == "RuntimeError: callback fault in epoch end"
    assert runs[16]["history"] and keras.saving.load_model(exp / runs[16]["checkpoint"], safe_mode=True)
    assert record["status"] == "completed"
    assert leftovers(exp) == []


def fail_writes(monkeypatch, should_fail) -> None:
    """A full disk: the fsync of an atomic write fails after half the bytes landed."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if should_fail(os.readlink(f"/proc/self/fd/{fd}")):
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_checkpoint_that_does_not_fit_fails_the_run_and_stops_the_experiment(tiny_data, tmp_path,
                                                                                  monkeypatch):
    """Nothing more can be saved, so later runs would train for nothing: they stay pending."""
    fail_writes(monkeypatch, lambda name: "/bs8/" in name and name.endswith(".keras"))
    events = []
    exp = runner.run_experiment(config(tiny_data, tmp_path / "out", batch_sizes=[4, 8, 16]), events.append)
    record = rec.load(exp)
    first, second, third = record["runs"]
    assert first["status"] == "completed"
    assert second["status"] == "failed" and second["error"].startswith("disk full: ")
    assert second["checkpoint"] is None and not (exp / "bs8" / "best.keras").exists()
    assert third["status"] == "pending" and record["status"] == "failed"
    assert any(isinstance(e, LogMessage) and e.level == "error" and "disk full" in e.text for e in events)
    assert leftovers(exp) == []


def test_a_full_disk_mid_run_keeps_the_last_good_record_and_checkpoint(tiny_data, tmp_path, monkeypatch):
    """Every write fails from epoch 2 on: a clear error, the record and checkpoint of epoch 1 intact."""
    disk_full = threading.Event()
    fail_writes(monkeypatch, lambda name: disk_full.is_set())

    def listener(event):
        if isinstance(event, EpochEnded) and event.entry["epoch"] == 1:
            disk_full.set()

    with pytest.raises(OSError) as caught:
        runner.run_experiment(config(tiny_data, tmp_path / "out", epochs=2), listener)
    exp = next((tmp_path / "out").glob("*-bs4-8"))
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(exp / rec.RECORD_NAME)
    monkeypatch.undo()  # space freed
    record = rec.load(exp)
    assert record["status"] == "interrupted"
    first, second = record["runs"]
    assert [h["epoch"] for h in first["history"]] == [1] and second["status"] == "pending"
    checkpoint = exp / first["checkpoint"]
    assert file_sha256(checkpoint) == first["checkpoint_sha256"]
    keras.saving.load_model(checkpoint, safe_mode=True)
    assert leftovers(exp) == []

    assert resume_experiment(exp) == exp
    record = rec.load(exp)
    assert record["status"] == "completed"
    assert [[h["epoch"] for h in r["history"]] for r in record["runs"]] == [[1, 2], [1, 2]]
    assert record["runs"][0]["restarts"][0]["epochs_discarded"] == 1


def test_the_command_line_names_the_file_a_full_disk_refused(tiny_data, tmp_path, monkeypatch, capsys):
    from engine.cli import main as cli
    from engine.cli import run as cli_run

    monkeypatch.setattr(cli_run, "install_interrupt", lambda stop: None)  # keep pytest's Ctrl+C
    fail_writes(monkeypatch, lambda name: "/full/" in name)
    code = cli.main(["run", str(tiny_data), "--batch-sizes", "4", "--epochs", "1", "--image-size", "32",
                     "--out", str(tmp_path / "out"), "--name", "full"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == exit_codes.FAILED
    assert err == [f"error: No space left on device ({tmp_path / 'out' / 'full' / rec.RECORD_NAME})"]
    assert leftovers(tmp_path / "out" / "full") == []


def resources() -> tuple[int, int, int]:
    return threading.active_count(), len(os.listdir("/proc/self/fd")), len(os.listdir(tempfile.gettempdir()))


def test_consecutive_experiments_leak_no_threads_files_or_temp_folders(tiny_data, tmp_path, monkeypatch):
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    out = tmp_path / "out"
    runner.run_experiment(config(tiny_data, out, batch_sizes=[8]))  # warm-up: TensorFlow's own pools start
    before = resources()
    for _ in range(3):
        runner.run_experiment(config(tiny_data, out, batch_sizes=[8]))
    after = resources()
    assert after[0] <= before[0], f"threads {before[0]} -> {after[0]}"
    assert after[1] <= before[1], f"open files {before[1]} -> {after[1]}"
    assert after[2] == before[2] == 0, f"temporary entries {before[2]} -> {after[2]}"
    assert len([p for p in out.iterdir() if not p.name.startswith(".")]) == 4
