"""The probe dialog runs a real tiny probe on its thread, plots it and saves probe.json."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "offscreen"

from gui.probe_dialog import ProbeDialog  # noqa: E402
from tests.helpers import write_image_folder  # noqa: E402

PROBE_TIMEOUT_MS = 240_000  # TensorFlow start-up plus two sizes on two shared cores


def test_probe_dialog_measures_plots_and_saves(qtbot, tmp_path: Path) -> None:
    data = write_image_folder(tmp_path / "data")
    experiment = tmp_path / "runs" / "exp"
    experiment.mkdir(parents=True)
    dialog = ProbeDialog(str(data), 32, str(experiment))
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.stop_button.isEnabled()
    dialog.budget.setValue(4096)
    with qtbot.waitSignal(dialog.probed, timeout=PROBE_TIMEOUT_MS) as probed:
        dialog.start_button.click()
        assert dialog.stop_button.isEnabled() and not dialog.start_button.isEnabled()
    result = probed.args[0]
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=10_000)

    # Default ladder for 18 training images: 8 and 16, both well inside 4 GB.
    assert [(p["batch_size"], p["status"]) for p in result["points"]] == [(8, "ok"), (16, "ok")]
    assert result["memory_budget_mb"] == 4096 and result["max_fitting_batch"] == 16
    assert json.loads((experiment / "probe.json").read_text()) == result
    assert dialog.saved_path == experiment / "probe.json"

    xs, ys = dialog.speed_curve.getData()
    assert list(xs) == [3.0, 4.0]  # log2 of the batch sizes
    assert list(ys) == [p["images_per_s"] for p in result["points"]]
    xs, ys = dialog.memory_curve.getData()
    assert list(ys) == [p["peak_memory_mb"] for p in result["points"]]
    fit_lines = [line for _plot, line in dialog.marks if line.angle == 90]
    assert [line.value() for line in fit_lines] == [math.log2(16), math.log2(16)]
    assert "Largest batch size that fits: 16." in dialog.status.text()
    assert any("batch size 16: " in line for line in dialog.log.toPlainText().splitlines())
    assert (tmp_path / "runs" / ".cache").is_dir()  # shares the runner's decoded images

    image = dialog.grab()
    assert not image.isNull() and image.width() > 400
    assert image.save(str(tmp_path / "probe.png"))


def test_stop_and_close_end_the_probe_thread(qtbot, tmp_path: Path) -> None:
    data = write_image_folder(tmp_path / "data")
    dialog = ProbeDialog(str(data), 32, batch_sizes=[2, 4, 8, 16])
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.start_button.click()
    qtbot.waitUntil(lambda: len(dialog.points) >= 1, timeout=PROBE_TIMEOUT_MS)
    dialog.stop_button.click()
    assert "Stopping" in dialog.status.text()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=PROBE_TIMEOUT_MS)
    assert dialog.result is not None and 1 <= len(dialog.result["points"]) < 4
    assert "Stopped by the user" in dialog.status.text()
    assert dialog.saved_path is None  # no experiment: nothing written
    dialog.start_button.click()  # a second probe, closed mid-way: the dialog waits for its thread
    dialog.close()
    assert dialog.worker is None or dialog.worker.isFinished()


def test_bad_folder_is_reported_in_the_dialog(qtbot, tmp_path: Path) -> None:
    dialog = ProbeDialog(str(tmp_path / "missing"), 32)
    qtbot.addWidget(dialog)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=PROBE_TIMEOUT_MS)
    assert dialog.status.text() == f"Probe failed: data folder not found: {tmp_path / 'missing'}"
    assert dialog.result is None
