"""Real tiny experiments through the engine: record, fairness, isolation, stop, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from engine.config import ExperimentConfig
from engine.events import EpochEnded, ExperimentFinished, LogMessage, RunFinished, RunStarted
from engine.record import store as rec
from engine.stop import StopToken
from engine.study.launch import run_experiment


def config(data: Path, out: Path, **overrides) -> ExperimentConfig:
    values = dict(data_dir=str(data), batch_sizes=[4, 16], epochs=2, patience=5, image_size=32,
                  val_split=0.25, out=str(out), precision="fp32")
    values.update(overrides)
    return ExperimentConfig(**values)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One real two-batch-size experiment shared by the record tests."""
    from tests.helpers import write_image_folder

    root = tmp_path_factory.mktemp("exp")
    data = write_image_folder(root / "data")
    events = []
    exp = run_experiment(config(data, root / "out"), events.append)
    return exp, rec.load(exp), events


def test_record_has_the_documented_keys(finished):
    exp, record, _ = finished
    assert record["schema_version"] == rec.SCHEMA_VERSION
    assert record["status"] == "completed"
    assert record["dataset"]["classes"] == ["class_0", "class_1", "class_2"]
    assert record["dataset"]["counts"] == {"class_0": 8, "class_1": 8, "class_2": 8}
    assert record["dataset"]["train_count"] == 18 and record["dataset"]["val_count"] == 6
    assert record["environment"]["tensorflow"] and record["environment"]["keras"].startswith("3")
    assert record["environment"]["device"].startswith(("CPU", "GPU"))
    assert [r["batch_size"] for r in record["runs"]] == [4, 16]
    for run in record["runs"]:
        assert run["status"] == "completed" and run["error"] is None
        assert "bn_calibration" not in run  # the seed CNN has no batch normalization
        assert [h["epoch"] for h in run["history"]] == [1, 2]
        for entry in run["history"]:
            assert set(entry) >= {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "steps",
                                  "samples", "seconds", "elapsed", "tail_loss"}
            assert entry["lr"] == pytest.approx(0.001)
            assert entry["tail_loss"] is None  # 18 training images: too few for a tail of 128
        best = max(run["history"], key=lambda h: h["val_accuracy"])
        assert run["best"]["val_accuracy"] == best["val_accuracy"]
        assert (exp / run["checkpoint"]).is_file()
        assert run["checkpoint"] == f"bs{run['batch_size']}/best.keras"
        assert list((exp / run["tensorboard"]).glob("events.out.tfevents.*"))


def test_every_batch_size_starts_from_the_same_weights(finished):
    exp, record, _ = finished
    digests = {r["initial_weights_sha256"] for r in record["runs"]}
    assert len(digests) == 1 and None not in digests
    model = keras.saving.load_model(exp / record["runs"][0]["checkpoint"], safe_mode=True)
    from engine.train.models.files import weights_sha256

    assert weights_sha256(model) not in digests  # it trained, so it moved away from the start


def test_steps_and_samples_are_counted_per_batch_size(finished):
    _, record, _ = finished
    small, large = record["runs"]
    assert [h["steps"] for h in small["history"]] == [5, 10]  # ceil(18 / 4) per epoch
    assert [h["steps"] for h in large["history"]] == [2, 4]  # ceil(18 / 16)
    for run in record["runs"]:
        assert [h["samples"] for h in run["history"]] == [18, 36]


def test_events_come_in_order_and_match_the_record(finished):
    exp, record, events = finished
    kinds = [type(e).__name__ for e in events if not isinstance(e, LogMessage)]  # prepare logs the image size
    assert kinds[0] == "ExperimentStarted" and kinds[-1] == "ExperimentFinished"
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert [(e.batch_size, e.entry["epoch"]) for e in epochs] == [(4, 1), (4, 2), (16, 1), (16, 2)]
    assert epochs[-1].entry == record["runs"][1]["history"][-1]
    assert [e.status for e in events if isinstance(e, RunFinished)] == ["completed", "completed"]


def test_a_failing_run_is_recorded_and_the_next_one_completes(tiny_data, tmp_path):
    def listener(event):
        if isinstance(event, EpochEnded) and event.batch_size == 4:
            raise RuntimeError("simulated callback fault")

    exp = run_experiment(config(tiny_data, tmp_path / "out", epochs=1), listener)
    record = rec.load(exp)
    failed, ok = record["runs"]
    assert failed["status"] == "failed" and "simulated callback fault" in failed["error"]
    assert ok["status"] == "completed" and len(ok["history"]) == 1
    assert record["status"] == "completed"


def test_stop_token_stops_the_experiment_and_keeps_the_record(tiny_data, tmp_path):
    stop = StopToken()
    events = []

    def listener(event):
        events.append(event)
        if isinstance(event, EpochEnded) and event.entry["epoch"] == 1:
            stop.set()

    exp = run_experiment(config(tiny_data, tmp_path / "out", epochs=3), listener, stop)
    record = rec.load(exp)
    first, second = record["runs"]
    assert first["status"] == "stopped" and len(first["history"]) == 1
    assert second["status"] == "pending" and second["history"] == []
    assert record["status"] == "stopped"
    assert (exp / first["checkpoint"]).is_file()
    assert isinstance(events[-1], ExperimentFinished) and events[-1].status == "stopped"


def test_stop_takes_effect_within_one_batch(tiny_data):
    """The monitor raises at the next batch boundary after the token is set."""
    from engine.stop import StopRequested
    from engine.train.callbacks import RunMonitor

    stop = StopToken()
    began = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            began.append(batch)

        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                stop.set()

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    monitor = RunMonitor(run_index=0, batch_size=1, steps_per_epoch=50, epochs=1, listener=lambda e: None,
                         stop=stop)
    x, y = np.zeros((50, 4), "float32"), np.zeros(50, "int32")
    with pytest.raises(StopRequested):
        model.fit(x, y, batch_size=1, epochs=1, verbose=0, callbacks=[monitor, Probe()])
    assert began == [0, 1, 2]  # batch 3 never trained


def test_record_and_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    """A write that dies half-way leaves the previous complete file, never a torn one."""
    from engine import atomic

    target = tmp_path / "experiment.json"
    atomic.write_json(target, {"runs": [1]})

    real_write = Path.write_bytes

    def disk_fills_half_way(self, data):
        real_write(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_fills_half_way)
    with pytest.raises(OSError):
        atomic.write_json(target, {"runs": [1, 2]})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"runs": [1]}
    assert [p.name for p in tmp_path.iterdir()] == ["experiment.json"]

    def half_then_crash(path):
        Path(path).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    checkpoint = tmp_path / "best.keras"
    checkpoint.write_bytes(b"previous good checkpoint")
    with pytest.raises(OSError):
        atomic.write_with_suffix(checkpoint, half_then_crash, ".keras")
    assert checkpoint.read_bytes() == b"previous good checkpoint"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_run_started_reports_the_planned_steps(tiny_data, tmp_path):
    events = []
    run_experiment(config(tiny_data, tmp_path / "out", batch_sizes=[32], epochs=1), events.append)
    started = [e for e in events if isinstance(e, RunStarted)]
    assert [(e.batch_size, e.steps_per_epoch, e.train_samples) for e in started] == [(32, 1, 18)]


def test_noise_scale_is_recorded_per_epoch_and_kept_out_of_the_timing(tmp_path):
    """The opt-in estimate lands in every history entry; its own seconds are not training seconds."""
    from tests.helpers import write_image_folder

    data = write_image_folder(tmp_path / "data", classes=2, per_class=12)
    events = []
    exp = run_experiment(config(data, tmp_path / "out", batch_sizes=[3, 9, 16], epochs=3, noise_scale=True,
                                augment=False), events.append)
    small, large, whole = rec.load(exp)["runs"]
    assert small["status"] == large["status"] == whole["status"] == "completed"
    # 18 training images: 6 full batches of 3 (k = 6 per group), 2 of 9 (k = 2).
    for run in (small, large):
        assert all({"noise_scale", "gns_trace", "gns_grad_sq"} <= set(h) for h in run["history"])
        assert all(h["seconds"] > 0 for h in run["history"])
    assert any(h["gns_trace"] is not None for h in small["history"])
    warnings = [e.text for e in events if getattr(e, "level", "") == "warning" and "noise scale" in e.text]
    assert warnings == ["batch size 16: no noise scale, it needs at least 2 full batches of training data per "
                        "epoch (there are 1)"]
    assert all("noise_scale" not in h for h in whole["history"])


def test_best_checkpoint_holds_the_model_without_optimizer_state(finished):
    import io
    import zipfile

    import h5py

    exp, record, _ = finished
    run = record["runs"][0]
    with zipfile.ZipFile(exp / run["checkpoint"]) as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        assert "layers" in weights and "optimizer" not in weights
    model = keras.saving.load_model(exp / run["checkpoint"], compile=False, safe_mode=True)
    assert model.output_shape == (None, 3) and model.input_shape == (None, 32, 32, 3)


def test_tail_loss_is_the_mean_of_the_epochs_last_quarter_of_batches():
    """Keras logs a running mean weighted by samples; the tail is recovered from it before and after the tail."""
    from engine.train.callbacks import HistoryRecorder

    recorder = HistoryRecorder(run_index=0, batch_size=64, steps_per_epoch=10, train_samples=600, previous=None,
                               monitor=None, checkpoint=None, checkpoint_name="", writer=None, emit=None, best=None)
    losses = [3.0] * 8 + [1.0, 1.0]  # 8 batches of 64 samples at 3.0, then 64 + 24 samples at 1.0
    sizes = [64] * 9 + [24]
    recorder.on_epoch_begin(0)
    for batch in range(10):
        running = sum(loss * n for loss, n in zip(losses[:batch + 1], sizes)) / sum(sizes[:batch + 1])
        recorder.on_train_batch_end(batch, {"loss": running})
    assert running == pytest.approx(2.70666, rel=1e-4)  # the epoch's mean: the first steps weigh in
    assert recorder.tail_loss(running, 600) == pytest.approx(1.0)  # the last 2 batches (at least 128 samples)
    recorder.on_epoch_begin(1)  # a new epoch forgets the last one's running mean: no tail until it is seen
    assert recorder.tail_loss(running, 600) is None


def test_a_real_epoch_records_its_tail_loss(tmp_path):
    from tests.helpers import write_image_folder

    data = write_image_folder(tmp_path / "data", classes=3, per_class=60)  # 135 training images, 9 steps of 16
    record = rec.load(run_experiment(config(data, tmp_path / "out", batch_sizes=[16], epochs=1)))
    entry = record["runs"][0]["history"][0]
    assert isinstance(entry["tail_loss"], float) and entry["tail_loss"] > 0.0 and entry["tail_loss"] != entry["loss"]
