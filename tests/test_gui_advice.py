"""The Advisor tab and the table's time-to-target text on hand-made records (no training needed)."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import math  # noqa: E402

import pyqtgraph as pg  # noqa: E402

from engine.analysis.summary import summarize  # noqa: E402
from gui.advice_panel import NO_NOISE_TEXT, AdvicePanel  # noqa: E402
from gui.results_table import format_time_to_target  # noqa: E402

S_MIN, B_CRIT = 100.0, 64.0


def trade_off_record(sizes: list[int]) -> dict:
    """Runs whose steps to target lie exactly on S = S_min (1 + B_crit / B), reached at epoch 2."""
    runs = []
    for i, size in enumerate(sizes):
        steps = S_MIN * (1 + B_CRIT / size)
        history = [{"epoch": e, "val_accuracy": 0.5 if e == 1 else 0.9, "steps": steps * e / 2,
                    "samples": steps * size * e / 2, "elapsed": 10.0 * e, "noise_scale": 40.0 + e}
                   for e in (1, 2)]
        runs.append({"run_index": i, "batch_size": size, "repeat": 0, "status": "completed", "history": history,
                     "best": {"epoch": 2, "val_accuracy": 0.9}, "lr": 0.001, "images_per_s": 100.0})
    return {"config": {"batch_sizes": sizes}, "target_accuracy": 0.8, "runs": runs}


def test_time_to_target_text():
    assert format_time_to_target({"epoch": 12, "steps": 3400, "samples": 108_800, "seconds": 65.2}) == \
        "12 ep · 3.4k steps · 1:05"
    assert format_time_to_target({"epoch": 3, "steps": 21, "samples": 84, "seconds": 3725}) == \
        "3 ep · 21 steps · 1:02:05"
    assert format_time_to_target({"epoch": 40, "steps": 2_000_000, "samples": 1, "seconds": 0.4}) == \
        "40 ep · 2M steps · 0:00"
    assert format_time_to_target(None) == "not reached"


def test_advisor_draws_the_critical_batch_fit_and_noise_marks(qtbot):
    record = trade_off_record([16, 64, 256])
    summary = summarize(record)
    assert summary.critical is not None and math.isclose(summary.critical["b_crit"], B_CRIT, rel_tol=0.01)
    panel = AdvicePanel()
    qtbot.addWidget(panel)
    panel.show_summary(summary, record)
    assert panel.advice.text() == summary.advice
    assert "Critical batch size ≈ 64" in panel.critical_plot.titleLabel.text
    items = panel.critical_plot.listDataItems()
    fit = [i for i in items if len(i.getData()[0]) == len(summary.critical["curve"])]
    dots = [i for i in items if len(i.getData()[0]) == 1]
    assert len(fit) == 1 and len(dots) == 3
    noise_marks = [i for i in panel.noise_plot.items if isinstance(i, pg.InfiniteLine)]
    assert sorted(round(10 ** m.value()) for m in noise_marks) == [16, 64, 256]
    assert len(panel.noise_plot.listDataItems()) == 3


def test_advisor_says_what_is_missing(qtbot):
    record = trade_off_record([16, 64])
    for run in record["runs"]:
        for entry in run["history"]:
            del entry["noise_scale"]
    panel = AdvicePanel()
    qtbot.addWidget(panel)
    panel.show_summary(summarize(record), record)
    assert "3 or more batch sizes" in panel.critical_note.text()
    assert panel.noise_note.text() == NO_NOISE_TEXT
    assert not panel.noise_plot.listDataItems()
    panel.clear()
    assert "once runs have finished" in panel.advice.text()
