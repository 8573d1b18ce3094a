"""Where everything sits in the main window, and how big the window opens.

Left: Setup and History as tabs, a pane that collapses (F9, or on Start in a narrow window) so
the plots get the width. Right: a notice bar, the views (Curves, Evaluation, Try the model,
Advisor) and under them the Results/Log pane, sized to its rows rather than a fixed share, and
hidden on the Advisor tab, which does not need it. Below: the progress strip. Every minimum
size is small enough for a 1024x640 screen.
"""

from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

PREFERRED = QSize(1440, 900)  # opening size where the screen has room for it
LARGE_SHARE = 0.9  # of a larger screen's available area
SIDE_WIDTH = 340
SIDE_MIN_WIDTH = 250
NARROW = 1400  # below this window width, Start collapses the setup pane (the settings are locked anyway)
RESULTS_SHARE = {"curves": 0.42, "runs": 0.30}  # largest share of the height the results pane takes
SHORT = 700  # px of height for the plots and results together: below it, the results pane takes less
SHORT_SHARE = 0.28


def build_layout(w: Any) -> None:
    """Lay out the widgets MainWindow made (attributes of ``w``) and add the splitters, tabs and panes."""
    data_box = QGroupBox("Data")
    QVBoxLayout(data_box).addWidget(w.data_panel)
    settings_box = QGroupBox("Settings")
    QVBoxLayout(settings_box).addWidget(w.settings_panel)
    setup = QWidget()
    setup_layout = QVBoxLayout(setup)
    setup_layout.addWidget(data_box)
    setup_layout.addWidget(settings_box)
    setup_layout.addStretch(1)
    scroll = QScrollArea()
    scroll.setWidget(setup)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    w.setup_scroll = scroll
    w.side_tabs = QTabWidget()
    w.side_tabs.addTab(scroll, "Setup")
    w.side_tabs.addTab(w.history, "History")
    w.side_tabs.setMinimumWidth(SIDE_MIN_WIDTH)
    hide_side = QToolButton()
    hide_side.setText("«")
    hide_side.setAutoRaise(True)
    hide_side.setToolTip("Hide this pane, to give the plots the room (F9 shows it again)")
    hide_side.clicked.connect(lambda: w.setup_action.setChecked(False))
    w.side_tabs.setCornerWidget(hide_side, Qt.Corner.TopRightCorner)

    w.views = ViewTabs()
    w.views.addTab(w.curves, "Curves")
    for page, title in ((w.evaluation_view, "Evaluation"), (w.predict_panel, "Try the model"),
                        (w.advice_panel, "Advisor")):
        w.views.addTab(_scrolling(page), title)
    w.views.setTabToolTip(1, "Confusion matrix, per-class precision/recall and mistakes of the selected run")
    w.views.setTabToolTip(2, "Drop images to classify them with the selected run's best checkpoint")
    w.views.setTabToolTip(3, "Which batch size to use and why: time to target, critical batch size, "
                             "gradient noise scale")
    export_button = QToolButton()
    export_button.setDefaultAction(w.export_action)
    w.export_button = export_button
    csv_button = QToolButton()
    csv_button.setDefaultAction(w.save_csv_action)
    buttons = QWidget()  # beside the Results/Log tabs: no row of its own under the table
    row = QHBoxLayout(buttons)
    row.setContentsMargins(0, 0, 0, 2)
    row.addWidget(export_button)
    row.addWidget(csv_button)
    results = QWidget()
    results_layout = QVBoxLayout(results)
    results_layout.setContentsMargins(0, 0, 0, 0)
    results_layout.setSpacing(2)
    results_layout.addWidget(w.table, 1)
    results_layout.addWidget(w.summary)
    w.details = QTabWidget()
    w.details.addTab(results, "Results")
    w.details.addTab(w.log, "Log")
    w.details.setCornerWidget(buttons, Qt.Corner.TopRightCorner)
    w.details.setMinimumHeight(90)
    w.right_split = QSplitter(Qt.Orientation.Vertical)
    w.right_split.addWidget(w.views)
    w.right_split.addWidget(w.details)
    w.right_split.setStretchFactor(0, 1)
    w.right_split.setStretchFactor(1, 0)
    w.right_split.setCollapsible(0, False)
    right = QWidget()
    right_layout = QVBoxLayout(right)
    right_layout.setContentsMargins(0, 0, 0, 0)
    right_layout.addWidget(w.notice_bar)
    right_layout.addWidget(w.right_split, 1)

    w.main_split = QSplitter(Qt.Orientation.Horizontal)
    w.main_split.addWidget(w.side_tabs)
    w.main_split.addWidget(right)
    w.main_split.setStretchFactor(0, 0)
    w.main_split.setStretchFactor(1, 1)
    w.main_split.setCollapsible(1, False)
    w.main_split.setSizes([SIDE_WIDTH, PREFERRED.width() - SIDE_WIDTH])
    w.main_split.splitterMoved.connect(lambda *_: w.setup_action.setChecked(w.main_split.sizes()[0] > 0))
    central = QWidget()
    layout = QVBoxLayout(central)
    layout.setContentsMargins(6, 4, 6, 0)
    layout.addWidget(w.main_split, 1)
    layout.addWidget(w.progress)
    w.setCentralWidget(central)
    w.views.currentChanged.connect(lambda _index: fit_results_pane(w))
    w.details.currentChanged.connect(lambda _index: fit_results_pane(w))


def _scrolling(page: QWidget) -> QScrollArea:
    """A tab's page that scrolls when the window is smaller than the page's minimum, instead of making
    the whole window's minimum larger than a small screen."""
    area = QScrollArea()
    area.setWidget(page)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    return area


class ViewTabs(QTabWidget):
    """Tabs whose pages may sit in scroll areas; ``currentWidget``/``setCurrentWidget`` speak of the pages."""

    def currentWidget(self) -> QWidget:  # noqa: N802 - Qt's name
        page = super().currentWidget()
        return page.widget() if isinstance(page, QScrollArea) else page

    def setCurrentWidget(self, widget: QWidget) -> None:  # noqa: N802 - Qt's name
        for index in range(self.count()):
            page = self.widget(index)
            if page is widget or (isinstance(page, QScrollArea) and page.widget() is widget):
                self.setCurrentIndex(index)
                return


def set_side_visible(w: Any, visible: bool) -> None:
    """Show or collapse the setup/history pane (the splitter remembers its width)."""
    sizes = w.main_split.sizes()
    if visible and sizes[0] == 0:
        side = min(SIDE_WIDTH, max(SIDE_MIN_WIDTH, sum(sizes) // 3))
        w.main_split.setSizes([side, max(1, sum(sizes) - side)])
    elif not visible and sizes[0] > 0:
        w.main_split.setSizes([0, sum(sizes)])
    w.side_tabs.setVisible(visible)


def fit_results_pane(w: Any, rows: Optional[int] = None) -> None:
    """The results pane as tall as its rows (or ``rows`` rows, those of a run about to start) need, up to a
    share of the height; hidden on the Advisor. Sizes are set only when they change (each change lays out
    and redraws every plot)."""
    view = w.views.currentWidget()
    needed = view is not w.advice_panel
    w.details.setVisible(needed)
    if not needed:
        return
    total = sum(w.right_split.sizes()) or w.right_split.height()
    if total <= 0:
        return
    if w.details.currentWidget() is w.log:
        height = int(0.35 * total)
    else:
        share = RESULTS_SHARE["curves" if view is w.curves else "runs"]
        share = min(share, SHORT_SHARE) if total < SHORT else share
        summary = w.summary.heightForWidth(w.details.width()) if w.summary.isVisibleTo(w) else 0
        chrome = max(w.details.tabBar().sizeHint().height(), w.export_button.sizeHint().height()) + 12
        wanted = w.table.content_height(rows) + summary + chrome
        at_least = w.table.content_height(min(3, rows if rows is not None else w.table.rowCount())) + summary + chrome
        height = min(wanted, max(int(share * total), at_least))  # a share of the height, yet three rows
    height = max(w.details.minimumHeight(), height)
    sizes = [max(1, total - height), height]
    if w.right_split.sizes() != sizes:
        w.right_split.setSizes(sizes)


def fit_to_screen(w: Any, restored: bool) -> None:
    """Open within the available screen: the remembered geometry if it still fits, else the preferred
    size, or the whole available area (maximized) on a small screen."""
    screen = w.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        w.resize(PREFERRED)
        return
    available = screen.availableGeometry()
    if restored and available.contains(w.frameGeometry()) and not w.isMaximized():
        return
    if available.width() <= PREFERRED.width() + 80 or available.height() <= PREFERRED.height() + 80:
        w.setGeometry(available)
        w.setWindowState(w.windowState() | Qt.WindowState.WindowMaximized)
        return
    frame = QRect(0, 0, max(PREFERRED.width(), int(LARGE_SHARE * available.width())),
                  max(PREFERRED.height(), int(LARGE_SHARE * available.height())))
    frame.moveCenter(available.center())
    w.setGeometry(frame)


def keep_on_screen(w: Any) -> None:
    """Once shown (the window frame's size known): move and shrink the window so its frame is on the screen."""
    screen = w.screen()
    if screen is None or w.isMaximized() or w.isFullScreen():
        return
    available = screen.availableGeometry()
    frame, inner = w.frameGeometry(), w.geometry()
    if available.contains(frame):
        return
    left, top = inner.x() - frame.x(), inner.y() - frame.y()
    right, bottom = frame.right() - inner.right(), frame.bottom() - inner.bottom()
    width = min(inner.width(), available.width() - left - right)
    height = min(inner.height(), available.height() - top - bottom)
    x = min(max(frame.x(), available.x()), available.right() + 1 - width - left - right)
    y = min(max(frame.y(), available.y()), available.bottom() + 1 - height - top - bottom)
    w.setGeometry(x + left, y + top, width, height)
