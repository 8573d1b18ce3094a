"""The window's layout from a 1024x640 screen up: it fits, the plots keep a usable data area, the table
scrolls rather than hiding columns, the results pane takes only the room its rows need, and the setup
pane collapses. Offscreen (fast); tests/test_gui_xcb.py checks the same on a real X server."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from engine.record import store as rec  # noqa: E402
from gui import window_layout  # noqa: E402
from tests.test_gui_window import ScriptedEngine, images, make_window, ready, run_to_end, settings  # noqa: E402, F401


def grid_record(sizes: tuple[int, ...] = (32, 128), lrs: tuple[float, ...] = (0.001, 0.003)) -> dict:
    """A finished record with one trial per batch size and learning rate, three epochs each."""
    runs = []
    for size in sizes:
        for lr in lrs:
            run = rec.new_run(len(runs), size, 0, 0)
            run.update(lr=lr, status="completed", epochs_run=3, epochs_planned=3,
                       best={"epoch": 3, "val_accuracy": 0.5 + len(runs) / 20, "val_loss": 1.0},
                       history=[{"epoch": e, "loss": 1 / e, "accuracy": 0.5, "val_loss": 1 / e,
                                 "val_accuracy": 0.3 + e / 10, "steps": e, "samples": e, "elapsed": e,
                                 "seconds": 1.0} for e in (1, 2, 3)])
            runs.append(run)
    return {"id": "grid", "runs": runs, "config": {}, "status": "completed"}


def settle(window) -> None:
    for _ in range(5):
        QApplication.processEvents()


def sized(window, size: tuple[int, int]) -> None:
    """The window at ``size`` (not maximized), laid out."""
    window.setWindowState(Qt.WindowState.WindowNoState)
    settle(window)
    window.resize(*size)
    settle(window)


def view_boxes(window) -> dict[str, tuple[float, float]]:
    return {key: (plot.getViewBox().width(), plot.getViewBox().height()) for key, plot in window.curves.plots.items()}


def test_the_window_opens_within_the_screen_and_its_minimum_fits_1024x640(make_window):  # noqa: F811 - the fixture
    window = make_window()
    screen = window.screen().availableGeometry()
    if window.isMaximized():  # the platform places a maximized window; it must not be larger than the screen
        assert window.width() <= screen.width() and window.height() <= screen.height()
    else:
        assert screen.contains(window.frameGeometry())  # whatever the screen: offscreen's is 800x800
    minimum = window.minimumSizeHint()
    assert minimum.width() <= min(1024, screen.width()) and minimum.height() <= 640, minimum


@pytest.mark.parametrize("size, plot_at_least", [((1024, 640), (250, 90)), ((1366, 768), (420, 160)),
                                                 ((1920, 1080), (700, 300))])
def test_every_plot_keeps_a_usable_data_area(make_window, size, plot_at_least):  # noqa: F811 - the fixture
    window = make_window()
    window.show_record(grid_record(), None)
    sized(window, size)
    for key, (width, height) in view_boxes(window).items():
        assert width >= plot_at_least[0] and height >= plot_at_least[1], (key, width, height, size)


def test_collapsing_the_setup_pane_gives_the_plots_the_width(make_window):  # noqa: F811 - the fixture
    window = make_window()
    window.show_record(grid_record(), None)
    sized(window, (1024, 640))
    shown = view_boxes(window)["loss"][0]
    window.setup_action.setChecked(False)
    settle(window)
    assert window.main_split.sizes()[0] == 0 and not window.side_tabs.isVisible()
    assert view_boxes(window)["loss"][0] > shown + 150
    window.setup_action.setChecked(True)
    settle(window)
    assert window.side_tabs.isVisible() and window.main_split.sizes()[0] >= window_layout.SIDE_MIN_WIDTH


def test_no_column_is_hidden_without_a_scroll_bar(make_window):  # noqa: F811 - the fixture
    window = make_window()
    window.show_record(grid_record(sizes=(8, 16, 32, 64), lrs=(0.001, 0.003, 0.01)), None)
    for size in ((1024, 640), (1920, 1080)):
        sized(window, size)
        table = window.table
        columns = sum(table.columnWidth(c) for c in range(table.columnCount()) if not table.isColumnHidden(c))
        if columns > table.viewport().width():
            assert table.horizontalScrollBar().isVisible(), size
        rows = table.rowCount() * table.rowHeight(0)
        if rows > table.viewport().height():
            assert table.verticalScrollBar().isVisible(), size


def test_the_results_pane_takes_the_room_of_its_rows_and_none_on_the_advisor(make_window):  # noqa: F811 - the fixture
    window = make_window()
    window.show_record(grid_record(sizes=(32,), lrs=(0.001,)), None)
    sized(window, (1920, 1080))
    one_row = window.right_split.sizes()[1]
    assert one_row < 0.25 * sum(window.right_split.sizes())  # not 40 % of the height for one row
    window.show_record(grid_record(sizes=(8, 16, 32, 64), lrs=(0.001, 0.003)), None)
    settle(window)
    assert window.right_split.sizes()[1] > one_row
    window.views.setCurrentWidget(window.advice_panel)
    settle(window)
    assert not window.details.isVisible()
    window.views.setCurrentWidget(window.curves)
    settle(window)
    assert window.details.isVisible()


def test_start_in_a_narrow_window_collapses_the_setup_then_brings_it_back(qtbot, make_window, images):  # noqa: F811
    window = make_window(run=ScriptedEngine(epochs=2), data_dir=images)
    ready(qtbot, window)
    sized(window, (1024, 640))
    window.settings_panel.batch_sizes.setText("8")
    assert window.setup_action.isChecked()
    window.start_action.trigger()
    assert not window.setup_action.isChecked()  # the settings are locked while training: the plots get the room
    qtbot.waitUntil(lambda: window.worker is None, timeout=10_000)
    assert window.setup_action.isChecked() and window.side_tabs.isVisible()


def test_a_remembered_geometry_larger_than_the_screen_is_not_restored(make_window, settings, tmp_path: Path):  # noqa: F811
    first = make_window()
    first.setWindowState(Qt.WindowState.WindowNoState)
    first.setGeometry(0, 0, 3000, 2000)  # e.g. saved on a larger monitor
    first.close()
    second = make_window()
    screen = second.screen().availableGeometry()
    assert second.width() <= screen.width() and second.height() <= screen.height()
    assert second.isMaximized() or screen.contains(second.frameGeometry())
