"""The probe dialog runs a real tiny probe on its thread, plots it and saves probe.json."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import pytest  # noqa: E402

from PySide6.QtGui import QColor  # noqa: E402

from gui.palette import OKABE_ITO  # noqa: E402
from gui.probe_dialog import EMPTY_TEXT, ProbeDialog, summary  # noqa: E402
from tests.helpers import write_image_folder  # noqa: E402

PROBE_TIMEOUT_MS = 240_000  # TensorFlow start-up plus two sizes on two shared cores


@pytest.mark.slow
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
    # 18 training images: the ladder ends at the training set, not at a memory limit
    assert "Largest batch size that fits" not in dialog.status.text()
    assert "up to 16" in dialog.status.text() and dialog.plots.currentIndex() == 1
    assert any("batch size 16: " in line for line in dialog.log.toPlainText().splitlines())
    assert (tmp_path / "runs" / ".cache").is_dir()  # shares the runner's decoded images

    image = dialog.grab()
    assert not image.isNull() and image.width() > 400
    assert image.save(str(tmp_path / "probe.png"))


@pytest.mark.slow
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


def point(size: int, status: str = "ok", speed: float = 100.0, peak: float = 500.0) -> dict:
    return {"batch_size": size, "images_per_s": speed if status != "out_of_memory" else None,
            "peak_memory_mb": peak if status != "out_of_memory" else None, "status": status,
            "error": None if status == "ok" else "peak 9000 MB exceeds the 8000 MB memory budget"}


RESULT = {"device": "CPU", "precision": "bf16 mixed", "image_size": 32, "memory_budget_mb": 18_000.0}


def test_before_it_runs_the_dialog_says_what_will_appear_instead_of_empty_axes(qtbot, tmp_path: Path) -> None:
    dialog = ProbeDialog(str(tmp_path), 32, str(tmp_path / "exp"))
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.plots.currentWidget() is dialog.empty and dialog.empty.text() == EMPTY_TEXT
    assert dialog.empty.isVisible() and not dialog.speed_plot.getViewWidget().isVisible()
    dialog.on_point(point(8))
    assert dialog.plots.currentIndex() == 1 and dialog.speed_plot.getViewWidget().isVisible()
    assert dict(dialog.speed_plot.getAxis("bottom").candidates(0, 10)) == {3.0: "8"}


def test_its_colours_are_no_batch_size_colour(qtbot, tmp_path: Path) -> None:
    dialog = ProbeDialog(str(tmp_path), 32)
    qtbot.addWidget(dialog)
    dialog.on_point(point(8))
    dialog.on_point(point(16, "over_budget", peak=9000.0))
    palette = {QColor(c).name() for c in OKABE_ITO}
    used = {dialog.speed_curve.opts["pen"].color().name(), dialog.memory_curve.opts["pen"].color().name(),
            dialog.rejected_speed.opts["symbolPen"].color().name()}
    used |= {line.pen.color().name() for _plot, line in dialog.marks}
    assert used and not used & palette


def test_the_answer_says_what_ended_the_ladder() -> None:
    data = {**RESULT, "points": [point(8), point(16), point(1024, peak=581.0)], "max_fitting_batch": 1024,
            "limited_by": "data", "train_samples": 1875}
    text = summary(data, stopped=False)
    assert text.startswith("Every batch size up to 1024 fits: limited by the data, not by memory.")
    assert "1,875 images" in text and "581 MB of a 18,000 MB budget" in text
    assert "Largest batch size that fits" not in text

    memory = {**RESULT, "points": [point(8), point(16), point(32, "over_budget")], "max_fitting_batch": 16,
              "limited_by": "memory"}
    assert summary(memory, stopped=False).startswith("Largest batch size that fits: 16. Batch size 32: over budget")
    older = {**RESULT, "points": [point(8), point(16)], "max_fitting_batch": 16}  # a probe.json without limited_by
    assert summary(older, stopped=False).startswith("Every batch size tried fits, up to 16; larger ones were not")
    assert summary({**older, "points": [point(8), point(16, "out_of_memory")], "max_fitting_batch": 8},
                   stopped=False).startswith("Largest batch size that fits: 8.")
    assert "Stopped by the user" in summary(older, stopped=True)
