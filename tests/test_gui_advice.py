"""The Advisor tab on hand-made records (tests/trial_records.py): heat map, prediction plots, hidden
plots with their reasons, what a probe changed, and the layout at two widths. No training needed."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import copy  # noqa: E402
import math  # noqa: E402

import pyqtgraph as pg  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from engine.analysis.summary import summarize  # noqa: E402
from engine.analysis.words import error_pct, lr, pct  # noqa: E402
from gui.advice_panel import NO_NOISE_TEXT, WIDE, AdvicePanel  # noqa: E402
from gui.results_table import format_time_to_target  # noqa: E402
from tests.trial_records import showcase  # noqa: E402

S_MIN, B_CRIT = 100.0, 64.0


def trade_off_record(sizes: list[int], noise: bool = True) -> dict:
    """Runs whose steps to target lie exactly on S = S_min (1 + B_crit / B), reached at epoch 2."""
    runs = []
    for i, size in enumerate(sizes):
        steps = S_MIN * (1 + B_CRIT / size)
        history = [{"epoch": e, "val_accuracy": 0.5 if e == 1 else 0.9, "steps": steps * e / 2,
                    "samples": steps * size * e / 2, "elapsed": 10.0 * e, **({"noise_scale": 40.0 + e} if noise else {})}
                   for e in (1, 2)]
        runs.append({"run_index": i, "batch_size": size, "repeat": 0, "status": "completed", "history": history,
                     "best": {"epoch": 2, "val_accuracy": 0.9}, "lr": 0.001, "images_per_s": 100.0})
    return {"id": "trade-off", "config": {"batch_sizes": sizes}, "target_accuracy": 0.8, "runs": runs}


def pending(record: dict, chosen) -> dict:
    """A copy of ``record`` in which the trials ``chosen(run)`` picks have not trained yet."""
    record = copy.deepcopy(record)
    for run in record["runs"]:
        if chosen(run):
            run.update(status="pending", history=[], best=None, epochs_run=0,
                       trial={"rung": None, "stopped_at_rung": None, "stop_reason": None, "note": None})
    return record


@pytest.fixture
def panel(qtbot):
    widget = AdvicePanel()
    qtbot.addWidget(widget)
    widget.resize(1300, 640)
    widget.show()
    return widget


def test_time_to_target_text():
    assert format_time_to_target({"epoch": 12, "steps": 3400, "samples": 108_800, "seconds": 65.2}) == \
        "12 ep · 3.4k steps · 1:05"
    assert format_time_to_target(None) == "not reached"


def test_heat_map_cells_match_the_summary(panel):
    record, probe = showcase()
    summary = summarize(record, probe)
    panel.show_summary(summary, record, probe)
    squares = panel.heat.squares
    assert len(squares) == len(summary.cells) == 18
    for cell in summary.cells:
        square = squares[(cell.batch_size, cell.lr_index)]
        assert square.value == pytest.approx(100 * cell.best_val_accuracy)
        assert square.image.image[0, 0] == pytest.approx(100 * cell.best_val_accuracy)
        assert square.text.splitlines()[0] == pct(cell.best_val_accuracy)
        expected = cell.stop_reason if cell.stop_reason in ("halved", "dead", "diverged", "failed") else None
        assert square.mark == expected
        if expected:
            assert expected in square.text
        if cell.best:
            assert "best" in square.text
        assert lr(cell.lr) in square.image.toolTip() and f"batch size {cell.batch_size}" in square.image.toolTip()
    edge = next(row for row in range(panel.tuned.rowCount()) if panel.tuned.item(row, 0).text() == "64")
    assert panel.tuned.item(edge, 1).text() == "0.006*" and "* best at the edge" in panel.compute_note.text()
    assert panel.tuned.item(edge, 2).text() == "0.006" and panel.tuned.item(0, 2).text() == "0.001–0.003"
    marks = {s.mark for s in squares.values()}
    assert {"halved", "dead", "diverged"} <= marks
    # one colour bar for every square, its range that of the trials that learned
    assert len(panel.heat.bar.img_list) == 18
    learned = [100 * c.best_val_accuracy for c in summary.cells if c.stop_reason not in ("dead", "diverged")]
    assert panel.heat.bar.levels() == pytest.approx((min(learned), max(learned)))
    # columns labelled with the batch sizes, rows with the rates tried (log10 positions)
    columns = dict(panel.heat.x_axis.candidates(-1, 10))
    assert [columns[i] for i in range(6)] == ["16", "32", "64", "128", "256", "512"]
    rows = dict(panel.heat.y_axis.candidates(-9, 9))
    assert {rows[math.log10(c.lr)] for c in summary.cells} == {lr(c.lr) for c in summary.cells}


def test_heat_map_fills_in_as_trials_finish(panel):
    full, probe = showcase()
    live = pending(full, lambda r: r["batch_size"] == 512 or (r["batch_size"] == 256 and r["lr_index"] == 2))
    panel.show_summary(summarize(live, probe), live, probe)
    waiting = [s for s in panel.heat.squares.values() if s.value is None]
    assert sorted((s.cell.batch_size, s.cell.lr_index) for s in waiting) == [(256, 2), (512, 0), (512, 1), (512, 2)]
    assert all(s.image is None and s.text == "not trained yet" for s in waiting)
    assert len(panel.heat.bar.img_list) == 14

    one_more = pending(full, lambda r: r["batch_size"] == 512)  # the 256 trial finished
    panel.show_summary(summarize(one_more, probe), one_more, probe)
    square = panel.heat.squares[(256, 2)]
    assert square.image is not None and square.value == pytest.approx(
        100 * next(c.best_val_accuracy for c in summarize(one_more).cells if (c.batch_size, c.lr_index) == (256, 2)))
    assert len(panel.heat.bar.img_list) == 15


def test_prediction_plots_show_measured_predicted_and_the_recommendation(panel):
    record, probe = showcase()
    summary = summarize(record, probe)
    panel.show_summary(summary, record, probe)
    prediction = summary.prediction
    assert panel.plot_shown("times") and panel.plot_shown("steps") and panel.plot_shown("heat")
    items = panel.prediction_plot.listDataItems()

    def points(symbol):
        return {(round(float(x), 6), round(float(y), 6)) for item in items if item.opts["symbol"] == symbol
                for x, y in zip(*item.getData())}

    measured = {(round(math.log2(p["batch_size"]), 6), round(math.log10(p["measured_seconds"]), 6))
                for p in prediction["points"] if p["measured_seconds"] is not None}
    assert points("x") == measured and len(measured) == 5
    predicted = {(round(math.log2(p["batch_size"]), 6), round(math.log10(p["predicted_seconds"]), 6))
                 for p in prediction["points"]}
    assert points("o") == predicted
    hollow = [i for i in items if i.opts["symbol"] == "o" and i.opts["symbolBrush"] == "#FFFFFF"]
    assert [list(i.getData()[0]) for i in hollow] == [[3.0]]  # batch size 8 timed by the probe only
    best = prediction["recommended"]
    assert points("star") == {(round(math.log2(best["batch_size"]), 6), round(math.log10(best["predicted_seconds"]), 6))}
    assert f"leave-one-out error {error_pct(prediction['loo_error'])}" in panel.prediction_note.text()
    assert f"batch size {best['batch_size']}" in panel.prediction_note.text()
    ticks = dict(panel.prediction_plot.getAxis("bottom").candidates(0, 20))
    assert ticks[3.0] == "8" and ticks[9.0] == "512"

    fit = summary.critical
    steps = panel.critical_plot.listDataItems()
    dots = {(round(float(item.getData()[0][0]), 6), round(float(item.getData()[1][0]), 6))
            for item in steps if item.opts["symbol"] == "o"}
    assert dots == {(round(math.log2(b.batch_size), 6), round(math.log10(b.to_target["steps"]), 6))
                    for b in summary.batches if b.to_target and b.state == "ok"}
    curve = next(item for item in steps if item.opts["symbol"] is None)
    x, y = curve.getData()
    assert y[10] == pytest.approx(math.log10(fit["s_min"] * (1 + fit["b_noise"] / 2 ** x[10])))
    assert "B_noise" in panel.critical_note.text()


def test_plots_with_nothing_to_show_are_hidden_and_say_why(panel):
    record = trade_off_record([16, 64], noise=False)
    panel.show_summary(summarize(record), record)
    assert panel.plot_shown("heat")
    assert not panel.plot_shown("times") and not panel.plot_shown("steps") and not panel.plot_shown("noise")
    missing = panel.missing.text()
    assert not panel.missing.isHidden() and "3 or more batch sizes" in missing and NO_NOISE_TEXT in missing
    assert "3 or more batch sizes" in panel.critical_note.text()
    assert not panel.noise_plot.listDataItems()

    measured = trade_off_record([16, 64, 256])  # a fit, and the noise scale measured: every plot shows
    summary = summarize(measured)
    assert summary.critical is not None and math.isclose(summary.critical["b_noise"], B_CRIT, rel_tol=0.01)
    panel.show_summary(summary, measured)
    assert all(panel.plot_shown(key) for key in ("heat", "times", "steps", "noise"))
    assert panel.missing.isHidden()
    marks = [i for i in panel.noise_plot.items if isinstance(i, pg.InfiniteLine)]
    assert sorted(round(10 ** m.value()) for m in marks) == [16, 64, 256]
    assert len(panel.noise_plot.listDataItems()) == 3

    panel.clear()
    assert "once runs have finished" in panel.advice.text()
    assert not any(panel.plot_shown(key) for key in ("heat", "times", "steps", "noise"))


def test_the_probe_changes_what_the_advisor_says(panel):
    record, probe = showcase()
    before = summarize(record)
    panel.show_summary(before, record)
    assert panel.changes.isHidden() and panel.probe_note.isHidden()
    assert "run Tools ▸ Probe throughput to predict untried sizes" in panel.prediction_note.text()

    after = summarize(record, {**probe, "limited_by": "memory"})
    assert after.advice != before.advice
    panel.show_summary(after, record, {**probe, "limited_by": "memory"})
    text = panel.changes.text()
    assert not panel.changes.isHidden()
    assert "batch size 8 as well" in text and "No longer in the advice: Missing: run the throughput probe." in text
    assert panel.advice.text() == after.advice
    assert "largest batch size that fits in memory is 512" in panel.probe_note.text()
    assert "timing for 8 from the throughput probe" in panel.prediction_note.text()

    panel.show_summary(after, record, probe)  # the same analysis again: the note stays
    assert "batch size 8 as well" in panel.changes.text()
    trained = pending(record, lambda r: r["run_index"] == 0)  # the trials moved: the note was about before
    panel.show_summary(summarize(trained, probe), trained, probe)
    assert panel.changes.isHidden()


def test_probe_that_stopped_at_the_training_set_is_not_called_a_memory_limit(panel):
    record, probe = showcase()
    data_limited = {**probe, "limited_by": "data", "max_fitting_batch": 1024}
    panel.show_summary(summarize(record, data_limited), record, data_limited)
    assert "every batch size up to 1024 fits; the training set, not memory, ended the ladder" in \
        panel.probe_note.text()
    assert "largest batch size that fits" not in panel.probe_note.text()


def test_words_beside_the_plots_when_wide_above_them_when_narrow(panel, qtbot):
    record, probe = showcase()
    panel.show_summary(summarize(record, probe), record, probe)
    qtbot.waitUntil(lambda: panel.split.orientation() == Qt.Orientation.Horizontal)
    assert panel.words.width() < panel.width() / 2 and panel.advice.wordWrap()
    assert panel.advice.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    panel.resize(WIDE - 200, 560)
    qtbot.waitUntil(lambda: panel.split.orientation() == Qt.Orientation.Vertical)
    # the words take their whole height (no box of their own to scroll) and the page scrolls to the plots
    assert panel.words.verticalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    words = panel.words.widget()
    qtbot.waitUntil(lambda: panel.words.height() >= words.heightForWidth(panel.words.width()) >= 200)
    assert panel.split.minimumHeight() > panel.page.viewport().height()
    assert panel.heat.height() >= 200


def test_a_filled_gap_reads_as_that_item_gone_not_as_a_new_sentence():
    from gui.advice_panel import Seen, what_changed

    before = Seen("x", (), "Use 16. Missing: repeats (--repeats 3); run the throughput probe.", 16, (16, 32, 64), ())
    after = Seen("x", (), "Use 16. Missing: repeats (--repeats 3).", 8, (8, 16, 32, 64), (8,))
    text = what_changed(before, after)
    assert text.splitlines() == [
        "What the new throughput probe changed:",
        "The throughput probe's timings now predict the time to target for batch size 8 as well.",
        "Fastest predicted batch size: 16 → 8.",
        "No longer in the advice: Missing: run the throughput probe."]
    assert what_changed(before, before) == "" and what_changed(before, Seen("y", *list(after.__dict__.values())[1:])) == ""
