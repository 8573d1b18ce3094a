"""Records from elsewhere: older ones open with defaults, hostile ones are refused with the file named."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest

from engine.record import store as rec


def valid_record() -> dict[str, Any]:
    """A complete schema-1 record as the runner writes it, for two batch sizes."""
    run = rec.new_run(0, 4, 0, 0)
    run.update(status="completed", checkpoint="bs4/best.keras", tensorboard="bs4", epochs_run=1,
               initial_weights_file="initial/seed0.weights.h5",
               best={"epoch": 1, "val_accuracy": 0.5, "val_loss": 1.0},
               history=[{"epoch": 1, "loss": 1.1, "accuracy": 0.4, "val_loss": 1.0, "val_accuracy": 0.5,
                         "lr": 0.001, "steps": 5, "samples": 18, "seconds": 0.2, "elapsed": 0.2,
                         "images_per_s": 90.0}])
    return {"schema_version": rec.SCHEMA_VERSION, "app": "BatchLab 0.1.0", "id": "exp", "created": None,
            "updated": None, "status": "completed",
            "config": {"data_dir": "data", "batch_sizes": [4, 16], "image_size": 32},
            "dataset": {"root": "/data", "classes": ["a", "b"], "counts": {"a": 8, "b": 8}, "skipped": [],
                        "split_sha256": "0" * 64},
            "environment": {"device": "CPU"}, "runs": [run, rec.new_run(1, 16, 0, 0)]}


def write(folder: Path, record: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / rec.RECORD_NAME).write_text(json.dumps(record), encoding="utf-8")
    return folder


def test_a_valid_record_round_trips(tmp_path):
    record = rec.load(write(tmp_path / "exp", valid_record()))
    assert record["runs"][0]["history"][0]["val_accuracy"] == 0.5
    assert record["status"] == "completed"


def test_an_older_record_without_schema_version_opens_with_defaults(tmp_path):
    """Schema 0: no version, no environment, runs with only the keys the first app wrote."""
    old = {"config": {"data_dir": "data", "batch_sizes": [8, 32]}, "dataset": {"root": "/data"},
           "runs": [{"batch_size": 8, "status": "completed",
                     "history": [{"epoch": 1, "loss": 0.9, "val_accuracy": 0.6},
                                 {"epoch": 2, "loss": 0.7, "val_accuracy": 0.7}]},
                    {"batch_size": 32, "status": "pending"}]}
    folder = write(tmp_path / "old", old)
    record = rec.load(folder)
    assert record["schema_version"] == 0 and record["id"] == "old"
    assert record["environment"] == {} and record["dataset"]["classes"] == []
    first, second = record["runs"]
    assert set(first) >= set(rec.new_run(0, 8, 0, 0))
    assert first["epochs_run"] == 2 and first["best"] is None and first["repeat"] == 0
    assert second["run_index"] == 1 and second["history"] == []
    assert record["status"] == "stopped"  # a pending run: the experiment never finished


def test_a_dead_writer_shows_as_interrupted(tmp_path):
    record = valid_record()
    record["status"] = "running"
    record["runs"][1]["status"] = "running"
    assert rec.load(write(tmp_path / "exp", record))["status"] == "interrupted"


def mutate(change: Callable[[dict], None]) -> Callable[[], dict]:
    def build() -> dict:
        record = valid_record()
        change(record)
        return record
    return build


HOSTILE: dict[str, Callable[[], Any]] = {
    "top level is a list": lambda: [valid_record()],
    "runs is a dict": mutate(lambda r: r.update(runs={"0": {}})),
    "config is a string": mutate(lambda r: r.update(config="rm -rf /")),
    "batch size is text": mutate(lambda r: r["runs"][0].update(batch_size="4")),
    "batch size is a boolean": mutate(lambda r: r["runs"][0].update(batch_size=True)),
    "unknown run status": mutate(lambda r: r["runs"][0].update(status="exec")),
    "unknown experiment status": mutate(lambda r: r.update(status=["running"])),
    "history entry is text": mutate(lambda r: r["runs"][0].update(history=["epoch 1"])),
    "metric is text": mutate(lambda r: r["runs"][0]["history"][0].update(val_accuracy="0.9")),
    "best is a list": mutate(lambda r: r["runs"][0].update(best=[1, 0.5])),
    "best accuracy missing": mutate(lambda r: r["runs"][0].update(best={"epoch": 1})),
    "seed is a float": mutate(lambda r: r["runs"][0].update(seed=0.5)),
    "error is an object": mutate(lambda r: r["runs"][0].update(error={"code": 1})),
    "negative schema": mutate(lambda r: r.update(schema_version=-1)),
    "newer schema": mutate(lambda r: r.update(schema_version=rec.SCHEMA_VERSION + 1)),
    "checkpoint climbs out": mutate(lambda r: r["runs"][0].update(checkpoint="../../etc/passwd")),
    "absolute checkpoint": mutate(lambda r: r["runs"][0].update(checkpoint="/etc/passwd")),
    "absolute tensorboard": mutate(lambda r: r["runs"][0].update(tensorboard="/tmp")),
    "initial weights outside": mutate(lambda r: r["runs"][0].update(initial_weights_file="../x.weights.h5")),
    "checkpoint is a number": mutate(lambda r: r["runs"][0].update(checkpoint=7)),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_record_is_refused_with_the_file_named(tmp_path, case):
    folder = write(tmp_path / "exp", HOSTILE[case]())
    with pytest.raises(rec.RecordError) as caught:
        rec.load(folder)
    message = str(caught.value)
    assert message.startswith(str(folder / rec.RECORD_NAME)) and "\n" not in message


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_tokens_are_refused(tmp_path, token):
    text = json.dumps(valid_record()).replace('"val_accuracy": 0.5', f'"val_accuracy": {token}', 1)
    assert token in text
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / rec.RECORD_NAME).write_text(text)
    with pytest.raises(rec.RecordError, match="not standard JSON"):
        rec.load(folder)


def test_a_checkpoint_symlinked_outside_the_folder_is_refused(tmp_path):
    folder = write(tmp_path / "exp", valid_record())
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (folder / "bs4").symlink_to(outside)
    with pytest.raises(rec.RecordError, match="outside the experiment folder"):
        rec.load(folder)


def test_a_huge_record_is_refused_before_reading(tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    with open(folder / rec.RECORD_NAME, "wb") as handle:  # sparse: no real disk used
        handle.truncate(rec.MAX_RECORD_BYTES + 1)
    with pytest.raises(rec.RecordError, match="larger than 64 MiB"):
        rec.load(folder)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"runs": ', "\xff\xfe garbage", ""])
def test_unparsable_records_are_refused(tmp_path, text):
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / rec.RECORD_NAME).write_bytes(text.encode("latin-1"))
    with pytest.raises(rec.RecordError, match="cannot be read as JSON"):
        rec.load(folder)


def test_a_failed_record_write_names_the_record_and_keeps_the_old_one(tmp_path, monkeypatch):
    """Disk full while saving: the error names experiment.json, the previous version stays whole."""
    folder = write(tmp_path / "exp", valid_record())
    before = (folder / rec.RECORD_NAME).read_bytes()

    def disk_full(fd: int) -> None:
        os.ftruncate(fd, os.fstat(fd).st_size // 2)  # half the bytes reached the disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError) as caught:
        rec.save(folder, rec.load(folder))
    monkeypatch.undo()
    assert caught.value.errno == 28 and caught.value.filename == str(folder / rec.RECORD_NAME)
    assert (folder / rec.RECORD_NAME).read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == [rec.RECORD_NAME]
