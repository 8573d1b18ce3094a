"""Resuming in-process: a stopped experiment finishes; changed data or an edited record is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import pytest

from engine.config import ExperimentConfig
from engine.events import EpochEnded, LogMessage
from engine.record import store as rec
from engine.stop import StopToken
from engine.study.launch import run_experiment
from engine.study.resume import ResumeError, resume_experiment


def stopped_experiment(data: Path, out: Path) -> Path:
    """bs4 completes, bs8 is stopped after its first of two epochs, bs16 never starts."""
    stop = StopToken()

    def listener(event):
        if isinstance(event, EpochEnded) and event.batch_size == 8:
            stop.set()

    config = ExperimentConfig(data_dir=str(data), batch_sizes=[4, 8, 16], epochs=2, patience=0, image_size=32,
                              out=str(out), precision="fp32", augment=False)
    return run_experiment(config, listener, stop)


def test_a_stopped_experiment_resumes_only_after_its_data_is_back(tiny_data, tmp_path):
    exp = stopped_experiment(tiny_data, tmp_path / "out")
    before = rec.load(exp)
    assert [r["status"] for r in before["runs"]] == ["completed", "stopped", "pending"]

    extra = tiny_data / "class_0" / "img_000.png"
    shutil.copy(extra, tiny_data / "class_0" / "zz_new.png")
    with pytest.raises(ResumeError, match="the data changed since the experiment started"):
        resume_experiment(exp)
    assert rec.load(exp) == before  # refused before anything was written
    (tiny_data / "class_0" / "zz_new.png").unlink()

    events = []
    assert resume_experiment(exp, events.append) == exp
    after = rec.load(exp)
    assert after["status"] == "completed"
    kept, restarted, fresh = after["runs"]
    unchanged = [k for k in kept if k != "time_to_target"]  # recomputed as more runs finish
    assert [kept[k] for k in unchanged] == [before["runs"][0][k] for k in unchanged]
    assert restarted["restarts"] == [{"at": restarted["restarts"][0]["at"], "previous_status": "stopped",
                                      "epochs_discarded": 1}]
    assert [h["epoch"] for h in restarted["history"]] == [1, 2] and "restarts" not in fresh
    assert {r["initial_weights_sha256"] for r in after["runs"]} == {kept["initial_weights_sha256"]}
    assert len(list((exp / "bs8").glob("events.out.tfevents.*"))) == 1  # the discarded attempt's are gone
    for run in after["runs"]:
        keras.saving.load_model(exp / run["checkpoint"], safe_mode=True)

    assert resume_experiment(exp, events.append) == exp  # nothing left: says so, changes nothing
    assert rec.load(exp)["updated"] == after["updated"]
    assert any(isinstance(e, LogMessage) and "nothing to resume" in e.text for e in events)


def edited(folder: Path, change) -> Path:
    record = json.loads((folder / rec.RECORD_NAME).read_text())
    change(record)
    (folder / rec.RECORD_NAME).write_text(json.dumps(record))
    return folder


def interrupted_record(tmp_path: Path, data: Path) -> Path:
    """A record as a killed process leaves it, written by hand: no training needed to refuse it."""
    folder = tmp_path / "exp"
    folder.mkdir()
    config = ExperimentConfig(data_dir=str(data), batch_sizes=[4, 8], image_size=32, out=str(tmp_path))
    runs = [rec.new_run(0, 4, 0, 0), rec.new_run(1, 8, 0, 0)]
    runs[0]["status"] = "running"
    record = {"schema_version": 1, "status": "running", "config": config.to_dict(),
              "dataset": {"root": str(data), "split_sha256": "0" * 64}, "environment": {}, "runs": runs}
    (folder / rec.RECORD_NAME).write_text(json.dumps(record))
    return folder


@pytest.mark.parametrize("change, message", [
    (lambda r: r["runs"].append(rec.new_run(2, 4096, 0, 0)), "runs do not match the config"),
    (lambda r: r["runs"][1].update(seed=7), "runs do not match the config"),
    (lambda r: r["config"].update(batch_sizes=[4, 0]), "config: batch sizes"),
    (lambda r: r["config"].update(lr="0.1; import os"), "config"),
    (lambda r: r["config"].update(batch_sizes=5), "config is not a valid experiment configuration"),
    (lambda r: r["dataset"].pop("split_sha256"), "no split digest"),
], ids=["extra run", "seed edited", "bad batch size", "lr is text", "sizes not a list", "no digest"])
def test_an_edited_record_is_refused_before_training(tiny_data, tmp_path, change, message):
    folder = edited(interrupted_record(tmp_path, tiny_data), change)
    with pytest.raises(ResumeError, match=message) as caught:
        resume_experiment(folder)
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in folder.iterdir()) == [rec.RECORD_NAME]  # nothing trained or written
