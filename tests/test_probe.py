"""Throughput probe: the out-of-memory/budget decisions, and real ladders on tiny real images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.analysis.summary import load_probe
from engine.config import ConfigError
from engine.data.scan import DatasetError
from engine.events import LogMessage
from engine.measure.probe import (
    PROBE_NAME,
    answer,
    classify,
    default_ladder,
    limited_by,
    max_fitting_batch,
    probe,
    save_probe,
    too_big_to_try,
)
from engine.stop import StopToken


def point(batch_size: int, peak: float | None, status: str = "ok") -> dict:
    return {"batch_size": batch_size, "images_per_s": 10.0, "peak_memory_mb": peak, "status": status, "error": None}


# -- pure decisions -------------------------------------------------------------------------------

def test_classify_decides_error_first_then_budget() -> None:
    import tensorflow as tf

    assert classify(100.0, 200.0, None) == "ok"
    assert classify(200.0, 200.0, None) == "ok"  # at the budget still fits
    assert classify(200.5, 200.0, None) == "over_budget"
    assert classify(10_000.0, None, None) == "ok"  # no budget (a GPU): only a real OOM ends the ladder
    assert classify(None, 200.0, None) == "ok"  # peak unknown: cannot be judged over budget
    assert classify(None, 200.0, MemoryError()) == "out_of_memory"
    assert classify(50.0, 200.0, tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")) \
        == "out_of_memory"
    assert classify(50.0, 200.0, tf.errors.UnknownError(None, None, "MemoryError: OOM when allocating x")) \
        == "out_of_memory"  # re-raised through tf.data
    assert classify(50.0, 200.0, ValueError("shape mismatch")) == "failed"


def test_default_ladder_is_powers_of_two_up_to_the_training_set() -> None:
    assert default_ladder(18) == [8, 16]
    assert default_ladder(64) == [8, 16, 32, 64]
    assert default_ladder(100_000) == [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    assert default_ladder(5) == [5]


def test_too_big_to_try_scales_the_last_peak_by_the_batch_ratio() -> None:
    points = [point(8, 100.0), point(16, 150.0)]
    assert too_big_to_try([], 1024, 10.0) is None  # nothing measured yet: nothing to predict from
    assert too_big_to_try(points, 32, 300.0) is None  # 150 * 2 = 300 fits exactly
    reason = too_big_to_try(points, 32, 299.0)
    assert reason is not None and "300 MB predicted from batch size 16" in reason
    unmeasured = [point(8, 100.0), point(16, None)]  # no peak (system without clear_refs): predict from 8
    assert too_big_to_try(unmeasured, 32, 400.0) is None
    assert "from batch size 8" in too_big_to_try(unmeasured, 32, 399.0)


def test_max_fitting_batch_counts_only_ok_points() -> None:
    assert max_fitting_batch([point(8, 1.0), point(16, 2.0), point(32, 9.0, "over_budget")]) == 16
    assert max_fitting_batch([point(8, None, "out_of_memory")]) is None


def test_limited_by_says_what_ended_the_ladder() -> None:
    fitting = [point(8, 1.0), point(16, 2.0)]
    assert limited_by(fitting, 18, stopped=False) == "data"  # 32 would pass the 18 training images
    assert limited_by(fitting, 31, stopped=False) == "data"
    assert limited_by(fitting, 32, stopped=False) == "sizes"  # 32 could have been tried
    assert limited_by(fitting + [point(32, 9.0, "over_budget")], 100, stopped=False) == "memory"
    assert limited_by([point(8, None, "out_of_memory")], 100, stopped=False) == "memory"
    assert limited_by([point(8, None, "failed")], 100, stopped=False) == "failed"
    assert limited_by(fitting, 18, stopped=True) == "stopped"
    assert limited_by([], 18, stopped=False) is None


def test_the_answer_never_calls_the_training_set_size_the_largest_batch_that_fits() -> None:
    result = {"max_fitting_batch": 1024, "limited_by": "data", "train_samples": 1500}
    assert answer(result) == ("every batch size up to 1024 fits (the training set has 1500 images); "
                              "larger batches need more data")
    assert answer({**result, "limited_by": "memory"}) == "largest batch that fits: 1024"
    assert answer({**result, "limited_by": "sizes"}) == "every batch size tried fits, up to 1024; larger ones " \
                                                         "were not tried"
    assert answer({**result, "limited_by": "failed"}) == ("every batch size up to 1024 fits; the next one failed "
                                                          "for another reason than memory")
    assert answer({**result, "max_fitting_batch": None, "limited_by": "memory"}) == "no batch size fits"


# -- real ladders ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import write_image_folder

    return write_image_folder(tmp_path_factory.mktemp("probe") / "data")


def test_ladder_stops_at_the_memory_budget(data: Path, tmp_path: Path) -> None:
    """In fp32, batch 2 needs ~60-110 MB above the loaded data, batch 256 ~250-350 MB: a 180 MB
    budget lies between. (bf16 mixed precision, picked by `auto` on some CPUs, needs less.)

    Run as a user runs it, in a fresh process: the resident-memory meter sees only new pages,
    and a test process that already trained other models has pages to reuse."""
    import subprocess
    import sys

    out = tmp_path / "probe.json"
    done = subprocess.run([sys.executable, str(Path(__file__).resolve().parent.parent / "main.py"), "probe",
                           str(data), "--image-size", "32", "--batch-sizes", "256", "2", "512", "--steps", "1",
                           "--memory-budget-mb", "180", "--precision", "fp32", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    first, second = result["points"]  # 512 never ran: the ladder ended at 256
    assert first["batch_size"] == 2 and first["status"] == "ok" and first["images_per_s"] > 0
    assert 0 < first["peak_memory_mb"] <= 180
    assert second["batch_size"] == 256 and second["status"] == "over_budget"
    assert second["peak_memory_mb"] > 180 and second["images_per_s"] > 0
    assert "180 MB memory budget" in second["error"]
    assert result["max_fitting_batch"] == 2 and result["limited_by"] == "memory"
    assert result["train_samples"] == 18 and result["model"] == "seed" and result["weights"] == "none"
    assert result["memory_budget_mb"] == 180 and result["image_size"] == 32 and result["schema"] == 1
    assert result["device"].startswith(("CPU", "GPU")) and result["precision"] == "fp32"
    assert "batch size 512 exceeds the 18 training images" in done.stderr
    assert "probe: batch size 256: " in done.stderr and "exceeds the 180 MB memory budget" in done.stderr
    assert "largest batch that fits: 2" in done.stdout


def test_ladder_stops_at_a_real_out_of_memory_error(data: Path) -> None:
    """A CPU has no safe way to run out of memory for real (RLIMIT_AS ends in std::bad_alloc and
    an abort; a real shortage wakes the OOM killer). So from batch 8 on, each step first asks
    TensorFlow's own allocator for 16 TiB: the ResourceExhaustedError is TensorFlow's, not a mock."""
    import tensorflow as tf

    sizes_run: list[int] = []

    def step(model, images, labels):
        sizes_run.append(int(images.shape[0]))
        if images.shape[0] >= 8:
            tf.zeros([2 ** 44], tf.uint8)
        return model.train_on_batch(images, labels)

    recorded: list[dict] = []
    result = probe(data, image_size=32, batch_sizes=[2, 4, 8, 16], steps=1, run_step=step, on_point=recorded.append)
    statuses = [(p["batch_size"], p["status"]) for p in result["points"]]
    assert statuses == [(2, "ok"), (4, "ok"), (8, "out_of_memory")]
    oom = result["points"][-1]
    assert "OOM when allocating tensor" in oom["error"] and "\n" not in oom["error"]
    assert oom["images_per_s"] is None and oom["peak_memory_mb"] is None
    assert result["max_fitting_batch"] == 4 and result["limited_by"] == "memory"
    assert sizes_run == [2, 2, 4, 4, 8]  # warm-up + one timed step per size; 8 failed at once, 16 never ran
    assert recorded == result["points"]


def test_stop_ends_the_ladder_and_keeps_the_measured_points(data: Path) -> None:
    stop = StopToken()
    events: list[str] = []

    def listener(event: LogMessage) -> None:
        events.append(event.text)
        if event.text == "probe: batch size 4…":
            stop.set()

    result = probe(data, image_size=32, batch_sizes=[2, 4, 8], steps=1, stop=stop, listener=listener)
    assert [p["batch_size"] for p in result["points"]] == [2]
    assert result["max_fitting_batch"] == 2 and result["limited_by"] == "stopped"
    assert "probe stopped by the user" in events[-1]


def test_bad_settings_and_data_are_one_line_errors(tmp_path: Path, data: Path) -> None:
    with pytest.raises(DatasetError, match="data folder not found"):
        probe(tmp_path / "missing", image_size=32)
    with pytest.raises(ConfigError, match="^image size: 8 must"):
        probe(data, image_size=8)
    with pytest.raises(ConfigError, match="^batch sizes: 0 is not"):
        probe(data, image_size=32, batch_sizes=[4, 0])
    with pytest.raises(ConfigError, match="^memory budget"):
        probe(data, image_size=32, memory_budget_mb=-5)
    with pytest.raises(ConfigError, match="^precision"):
        probe(data, image_size=32, precision="fp8")
    with pytest.raises(ConfigError, match="^model: 'vgg16' is not one of"):  # before the (missing) data is read
        probe(tmp_path / "missing", image_size=32, model="vgg16")
    with pytest.raises(ConfigError, match="^image size: 24 px is below the minimum of mobilenetv3small"):
        probe(data, image_size=24, model="mobilenetv3small")


def test_save_probe_into_an_experiment_or_a_file(tmp_path: Path) -> None:
    result = {"schema": 1, "image_size": 32, "device": "CPU: x", "precision": "fp32", "memory_budget_mb": 100.0,
              "points": [point(8, 50.0)], "max_fitting_batch": 8}
    experiment = tmp_path / "exp"
    experiment.mkdir()
    assert save_probe(result, experiment) == experiment / PROBE_NAME
    assert load_probe(experiment) == result  # the advice reads exactly what the probe wrote
    assert save_probe(result, tmp_path / "out.json") == tmp_path / "out.json"
    assert json.loads((tmp_path / "out.json").read_text()) == result
    assert sorted(p.name for p in experiment.iterdir()) == [PROBE_NAME]  # no temporary file left behind


def test_cli_prints_the_table_and_saves_into_the_experiment(tmp_path: Path, data: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    from engine.cli.main import main

    experiment = tmp_path / "out" / "exp"
    experiment.mkdir(parents=True)
    code = main(["probe", str(data), "--image-size", "32", "--batch-sizes", "4", "--steps", "1",
                 "--experiment", str(experiment), "--json", str(tmp_path / "p.json")])
    out = capsys.readouterr().out
    assert code == 0
    saved = json.loads((experiment / PROBE_NAME).read_text())
    assert saved == json.loads((tmp_path / "p.json").read_text())
    lines = out.splitlines()
    assert lines[0].split() == ["batch", "images/s", "peak", "MB", "status"]
    row = lines[1].split()
    assert row[0] == "4" and row[-1] == "ok"
    assert float(row[1]) == pytest.approx(saved["points"][0]["images_per_s"], abs=0.06)
    assert float(row[2]) == pytest.approx(saved["points"][0]["peak_memory_mb"], abs=0.6)
    assert saved["limited_by"] == "sizes" and "every batch size tried fits, up to 4; larger ones were not tried" in out
    assert (tmp_path / "out" / ".cache").is_dir()  # the runner's decoded-image cache, shared


def test_cli_bad_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from engine.cli.main import main

    assert main(["probe", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: data folder not found")
    assert main(["probe", str(tmp_path), "--experiment", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --experiment: {tmp_path / 'none'} is not a folder"


def test_cli_default_ladder_stops_at_the_training_set_not_at_memory(tmp_path: Path, data: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    from engine.cli.main import main

    assert main(["probe", str(data), "--image-size", "16", "--steps", "1", "--json", str(tmp_path / "p.json")]) == 0
    saved = json.loads((tmp_path / "p.json").read_text())
    assert [p["batch_size"] for p in saved["points"]] == [8, 16] and saved["max_fitting_batch"] == 16
    assert saved["limited_by"] == "data"
    out = capsys.readouterr().out
    assert "every batch size up to 16 fits (the training set has 18 images); larger batches need more data" in out
    assert "largest batch that fits" not in out


@pytest.mark.slow
def test_probe_trains_the_chosen_model(tmp_path: Path, data: Path, capsys: pytest.CaptureFixture) -> None:
    from engine.cli.main import main

    assert main(["probe", str(data), "--image-size", "32", "--batch-sizes", "4", "--steps", "1", "--model",
                 "mobilenetv3small", "--weights", "none", "--json", str(tmp_path / "p.json")]) == 0
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["model"] == "mobilenetv3small" and saved["points"][0]["status"] == "ok"
    assert saved["points"][0]["images_per_s"] > 0
    assert "model mobilenetv3small, 32 px" in capsys.readouterr().out


def test_cli_probes_what_the_experiment_trained_unless_told_otherwise(tmp_path: Path, data: Path,
                                                                     trained_experiment: Path) -> None:
    """Its throughput feeds that experiment's prediction, so by default it is measured at the experiment's
    image size and model; a flag still wins."""
    from engine.cli.main import main

    experiment = tmp_path / "exp"
    experiment.mkdir()
    record = json.loads((trained_experiment / "experiment.json").read_text())
    record["config"]["image_size"] = 16
    (experiment / "experiment.json").write_text(json.dumps(record))
    assert main(["probe", str(data), "--batch-sizes", "4", "--steps", "1", "--experiment", str(experiment)]) == 0
    saved = json.loads((experiment / PROBE_NAME).read_text())
    assert saved["image_size"] == 16 and saved["model"] == "seed"
    assert main(["probe", str(data), "--batch-sizes", "4", "--steps", "1", "--experiment", str(experiment),
                 "--image-size", "24"]) == 0
    assert json.loads((experiment / PROBE_NAME).read_text())["image_size"] == 24
