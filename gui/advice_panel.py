"""The Advisor tab: which batch size to use and why, answered from the tuned evidence.

It only draws what engine.analysis.summary.summarize concluded. Left, the words: the advice
paragraph (wrapping and selectable, using the column's whole height), what new evidence changed,
the tuned learning rate per batch size with its band, the compute spent, and the trials that did
not train with the reason and what to try. Right, the evidence: the learning rate x batch size heat
map, the predicted time to target T(B), the steps-to-target fit S(B) and, when measured, the
gradient noise scale. A plot with nothing to show is hidden and a line says what would fill it.

The window calls ``show_summary`` after every finished trial (the heat map fills in) and after a
throughput probe; when the trials are unchanged but the answer moved, the probe moved it, and the
panel says how.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Optional

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.analysis.summary import Summary
from engine.analysis.words import duration, lr, pct
from gui.curves import series
from gui.heat_map import LEGEND, SHORT_LEGEND, HeatMap
from gui.palette import batch_colours
from gui.plot_axes import LabelledAxis, log_ticks, style_plot
from gui.prediction_plots import STEPS_HELP, TIMES_HELP, draw_steps, draw_times, plot_widget

EMPTY_TEXT = "Advice appears here once runs have finished: train an experiment or open a past one."
NO_NOISE_TEXT = ("Gradient noise scale: not measured. Tick “Estimate the gradient noise scale” under "
                 "Settings ▸ Advanced to see, per epoch, the batch size beyond which larger batches stop paying.")
NOISE_HELP = ("The gradient noise scale B_simple (McCandlish et al. 2018) per epoch, each run in its batch size's "
              "colour; dotted: the batch sizes tried. A batch well below the noise scale wastes little; far above "
              "it, extra samples stop paying.")
NO_CELLS_TEXT = "Learning rate × batch size: no trial has a learning rate yet."
NOTE_STYLE = "color: #444;"
CHANGED_STYLE = "background: #FFF4CE; border: 1px solid #E0C060; border-radius: 3px; padding: 6px; color: #222;"
MISSING_STYLE = "color: #444; padding: 2px 0;"
WIDE = 980  # px: from this width the words sit beside the plots, below it above them...
WIDE_WHEN_SHORT = 760  # ...and from this one when the tab is much wider than tall (stacking would hide the plots)
WORDS_SHARE = 0.37
NARROW_PLOTS_HEIGHT = 640  # px: two rows of plots with their notes, when the words sit above them
STATE_WORDS = {"ok": "", "dead": "dead: no trial learned", "failed": "every trial failed",
               "incomplete": "still training or stopped", "empty": "not trained yet"}
TUNED_HEADERS = ("Batch", "Best lr", "Band", "Accuracy", "Time")
TUNED_TIPS = ("", "The learning rate that reached the target in the fewest steps (else the most accurate)",
              "Learning rates next to the best whose accuracy was within 2 points of it: how forgiving that batch "
              "size is", "Best validation accuracy at the best learning rate (mean ± spread over seeds)",
              "Time to the target accuracy at the best learning rate")
EDGE_MARK = "*"
EDGE_NOTE = "* best at the edge of the learning rates tried: the optimum may lie beyond them."


@dataclass(frozen=True)
class Seen:
    """What the panel last showed, to tell what new evidence (the probe) changed."""

    record_id: Any
    trials: tuple  # (run index, status, epochs) per run: equal means no trial moved since
    advice: str
    recommended: Optional[int]
    predicted: tuple[int, ...]
    probed: tuple[int, ...]

    @classmethod
    def of(cls, summary: Summary, record: dict[str, Any]) -> "Seen":
        points = (summary.prediction or {}).get("points") or []
        return cls(record.get("id"), tuple((r.get("run_index"), r.get("status"), len(r.get("history") or []))
                                           for r in record.get("runs", [])),
                   summary.advice, ((summary.prediction or {}).get("recommended") or {}).get("batch_size"),
                   tuple(p["batch_size"] for p in points), tuple(p["batch_size"] for p in points
                                                                 if p.get("source") == "probe"))


class AdvicePanel(QWidget):
    """``show_summary(summary, record, probe=None)`` fills it; ``clear()`` empties it."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._seen: Optional[Seen] = None
        self.heading = QLabel("Advice")
        self.heading.setStyleSheet("font-weight: bold; font-size: 12pt;")
        self.changes = _label(CHANGED_STYLE)
        self.advice = _label("font-size: 10.5pt;")
        self.advice.setText(EMPTY_TEXT)
        self.probe_note = _label(NOTE_STYLE)
        self.tuned_title = _title("Tuned learning rate per batch size")
        self.tuned = _tuned_table()
        self.compute_note = _label(NOTE_STYLE)
        self.diagnoses_title = _title("Trials that did not train")
        self.diagnoses = _label("")

        words = QWidget()
        column = QVBoxLayout(words)
        column.setContentsMargins(4, 2, 8, 4)
        for widget in (self.heading, self.changes, self.advice, self.probe_note, self.tuned_title, self.tuned,
                       self.compute_note, self.diagnoses_title, self.diagnoses):
            column.addWidget(widget)
        column.addStretch(1)
        self.words = QScrollArea()  # the words use the column's height and scroll only when longer
        self.words.setWidget(words)
        self.words.setWidgetResizable(True)
        self.words.setFrameShape(QFrame.Shape.NoFrame)
        self.words.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.heat = HeatMap()
        self.heat_note = _note(SHORT_LEGEND, LEGEND, None)  # the squares have their own tooltips
        times = plot_widget("Time to target T(B)", "batch size", "time to target (s)", log_y=True)
        self.prediction_plot = times.getPlotItem()
        self.prediction_note = _note("", TIMES_HELP, times)
        steps = plot_widget("Steps to target S(B)", "batch size", "optimizer steps to target", log_y=True)
        self.critical_plot = steps.getPlotItem()  # the window saves it as "critical"
        self.critical_note = _note("", STEPS_HELP, steps)
        noise = pg.PlotWidget(background="w", axisItems={"left": LabelledAxis("left", log_ticks())})
        noise.setMinimumSize(240, 170)
        self.noise_plot = noise.getPlotItem()
        style_plot(self.noise_plot, "Gradient noise scale", "epoch", "B_simple (samples)")
        self.noise_note = _note("", NOISE_HELP, noise)
        self.boxes = {"heat": _box(self.heat, self.heat_note), "times": _box(times, self.prediction_note),
                      "steps": _box(steps, self.critical_note), "noise": _box(noise, self.noise_note)}
        self.missing = _label(MISSING_STYLE)
        plots = QWidget()
        outer = QVBoxLayout(plots)
        outer.setContentsMargins(0, 0, 0, 0)
        self.grid = QGridLayout()
        self.grid.setSpacing(6)
        outer.addLayout(self.grid, 1)
        outer.addWidget(self.missing)

        self.split = QSplitter(Qt.Orientation.Horizontal)
        self.split.addWidget(self.words)
        self.split.addWidget(plots)
        self.split.setStretchFactor(0, 2)
        self.split.setStretchFactor(1, 3)
        self.split.setChildrenCollapsible(False)
        self._sized_by_user = False
        self.split.splitterMoved.connect(self._on_split_moved)
        self.page = QScrollArea()  # scrolls only when narrow: the words, then the plots at a readable size
        self.page.setWidget(self.split)
        self.page.setWidgetResizable(True)
        self.page.setFrameShape(QFrame.Shape.NoFrame)
        self.page.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.page)
        self.clear()

    # -- content ----------------------------------------------------------------------------------

    def clear(self) -> None:
        self._seen = None
        self.advice.setText(EMPTY_TEXT)
        for label in (self.changes, self.probe_note, self.compute_note, self.diagnoses):
            _show(label, "")
        for widget in (self.tuned_title, self.tuned, self.diagnoses_title):
            widget.hide()
        self.heat.show_cells([], [])
        for plot in (self.prediction_plot, self.critical_plot, self.noise_plot):
            plot.clear()
        self._arrange({}, [])

    def show_summary(self, summary: Summary, record: dict[str, Any], probe: Optional[dict[str, Any]] = None) -> None:
        """Draw an analysis of ``record`` (live or from disk); ``probe`` is the probe.json it used, if any."""
        seen = Seen.of(summary, record)
        previous, self._seen = self._seen, seen
        self.advice.setText(summary.advice or EMPTY_TEXT)
        if previous is None or (previous.record_id, previous.trials) != (seen.record_id, seen.trials):
            _show(self.changes, "")  # another experiment or a new trial: the note was about what came before
        elif previous != seen:
            _show(self.changes, what_changed(previous, seen))
        _show(self.probe_note, probe_words(probe) if probe else "")
        self._fill_tuned(summary)
        self._fill_diagnoses(summary)
        sizes = [b.batch_size for b in summary.batches]
        colours = batch_colours(sizes)
        self.heat.show_cells(summary.cells, sizes)
        shown: dict[str, bool] = {"heat": bool(self.heat.squares)}
        why: list[str] = [] if shown["heat"] else [NO_CELLS_TEXT]
        times = draw_times(self.prediction_plot, summary, colours)
        shown["times"] = times is not None
        self.prediction_note.setText(times or "")
        if times is None:
            why.append(f"Predicted time to target T(B) and the steps-to-target fit S(B): "
                       f"{summary.prediction_problem or 'not available'} (at their best learning rate).")
        steps = draw_steps(self.critical_plot, summary, colours)
        shown["steps"] = steps is not None
        self.critical_note.setText(steps or f"Steps to target S(B): no fit yet: {summary.critical_problem or 'no fit'}.")
        if steps is None and times is not None:
            why.append(self.critical_note.text())
        shown["noise"] = self._draw_noise(record, colours)
        if not shown["noise"]:
            why.append(NO_NOISE_TEXT)
        self._arrange(shown, why)
        self._fit()

    def _fill_tuned(self, summary: Summary) -> None:
        batches = [b for b in summary.batches if b.state != "empty"]
        self.tuned.setRowCount(len(batches))
        best = ((summary.prediction or {}).get("recommended") or {}).get("batch_size")
        for row, b in enumerate(batches):
            band = "—" if not b.lr_band else lr(b.lr_band[0]) if b.lr_band[0] == b.lr_band[1] else \
                f"{lr(b.lr_band[0])}–{lr(b.lr_band[1])}"
            spread = f" ± {100 * b.best_std:.1f}" if b.best_std is not None else ""
            reach = duration(b.to_target["seconds"]) if b.to_target else (
                "not reached" if summary.target_accuracy is not None else "—")
            state = STATE_WORDS.get(b.state, b.state)
            edge = EDGE_MARK if b.lr_edge else ""
            values = [str(b.batch_size), (lr(b.lr) if b.lr is not None else "—") + edge, band,
                      pct(b.best_mean) + spread, reach + (f"; {state}" if state else "")]
            for column, (text, tip) in enumerate(zip(values, TUNED_TIPS)):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{text}: {tip}" if tip else text)
                if column == 1 and b.lr_edge:
                    item.setToolTip(f"{text}: the {b.lr_edge} learning rate tried; the optimum may lie beyond it")
                if b.batch_size == best:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.tuned.setItem(row, column, item)
        self.tuned.resizeRowsToContents()
        self.tuned.setFixedHeight(_table_height(self.tuned))
        self.tuned_title.setVisible(bool(batches))
        self.tuned.setVisible(bool(batches))
        edges = EDGE_NOTE if any(b.lr_edge for b in batches) else ""
        _show(self.compute_note, "\n".join(filter(None, [edges, compute_words(summary)])))

    def _fill_diagnoses(self, summary: Summary) -> None:
        lines = [f"• batch size {d.batch_size}, lr {lr(d.lr) if d.lr is not None else '—'}, seed {d.seed}: {d.note}"
                 for d in summary.diagnoses]
        _show(self.diagnoses, "\n".join(lines))
        self.diagnoses_title.setVisible(bool(lines))

    def _draw_noise(self, record: dict[str, Any], colours: dict[int, QColor]) -> bool:
        plot = self.noise_plot
        plot.clear()
        drawn = False
        for run in record.get("runs", []):
            x, y = series(run, "epoch", "noise_scale")
            keep = y > 0  # single estimates can be negative; a log axis cannot show them
            if keep.any():
                colour = colours.get(run["batch_size"], QColor("#000"))
                plot.plot(x[keep], [math.log10(v) for v in y[keep]], pen=pg.mkPen(colour, width=2), symbol="o",
                          symbolSize=5, symbolBrush=colour, symbolPen=None)
                drawn = True
        if not drawn:
            self.noise_note.setText(NO_NOISE_TEXT)
            return False
        for size, colour in colours.items():
            plot.addItem(pg.InfiniteLine(pos=math.log10(size), angle=0,
                                         pen=pg.mkPen(colour, width=1, style=Qt.PenStyle.DotLine),
                                         label=f"batch {size}", labelOpts={"position": 0.08, "color": colour,
                                                                           "anchors": [(0, 1), (0, 1)]}))
        self.noise_note.setText("Lines: B_simple per epoch, in each batch size's colour; dotted: the sizes tried.")
        return True

    # -- layout -----------------------------------------------------------------------------------

    def _arrange(self, shown: dict[str, bool], why: list[str]) -> None:
        """Visible plots in a grid (the heat map down the left when three show); the rest in words."""
        for box in self.boxes.values():
            self.grid.removeWidget(box)
            box.hide()
        visible = [key for key in ("heat", "times", "steps", "noise") if shown.get(key)]
        places = {1: [(0, 0, 1, 1)], 2: [(0, 0, 1, 1), (0, 1, 1, 1)], 3: [(0, 0, 2, 1), (0, 1, 1, 1), (1, 1, 1, 1)],
                  4: [(0, 0, 1, 1), (0, 1, 1, 1), (1, 0, 1, 1), (1, 1, 1, 1)]}.get(len(visible), [])
        for key, place in zip(visible, places):
            self.grid.addWidget(self.boxes[key], *place)
            self.boxes[key].show()
        for i in range(2):
            self.grid.setRowStretch(i, 1 if len(visible) > 2 or i == 0 else 0)
            self.grid.setColumnStretch(i, 1 if len(visible) > 1 or i == 0 else 0)
        _show(self.missing, "Not shown:\n" + "\n".join(f"• {w}" for w in why) if why else "")

    def plot_shown(self, key: str) -> bool:
        """Whether the plot ``key`` (heat, times, steps, noise) is on screen (for tests and the window)."""
        return not self.boxes[key].isHidden()

    def _on_split_moved(self) -> None:
        self._sized_by_user = True

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        QTimer.singleShot(0, self._fit)  # once the children have their new sizes

    def _fit(self) -> None:
        """Wide: the words beside the plots (their share kept once the user drags the divider). Narrow:
        the words at their full height above the plots at a readable height, the page scrolling."""
        self.tuned.setFixedHeight(_table_height(self.tuned))  # a narrow column scrolls the table sideways
        wide = self.width() >= WIDE or (self.width() >= WIDE_WHEN_SHORT and self.width() >= 1.6 * self.height())
        orientation = Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical
        if self.split.orientation() != orientation:
            self.split.setOrientation(orientation)
            self._sized_by_user = False
        policy = (Qt.ScrollBarPolicy.ScrollBarAsNeeded, Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.words.setVerticalScrollBarPolicy(policy[0] if wide else policy[1])
        self.page.setVerticalScrollBarPolicy(policy[0] if wide else Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        if wide:
            for note in (self.heat_note, self.prediction_note, self.critical_note, self.noise_note, self.missing):
                if note.width() > 20:  # wrapped lines need the height of their lines at the width they have
                    note.setMinimumHeight(note.heightForWidth(note.width()))
            plots = self.split.widget(1)
            for box in self.boxes.values():
                box.layout().invalidate()
            plots.layout().invalidate()
            needed = plots.minimumSizeHint().height()
            if needed != self.split.minimumHeight():  # the page scrolls rather than squeeze a plot under its note
                self.split.setMinimumHeight(needed)
                QTimer.singleShot(0, self._fit)  # the notes' widths settle once the new height is laid out
            if not self._sized_by_user:
                width = self.page.viewport().width()
                self.split.setSizes([int(width * WORDS_SHARE), int(width * (1 - WORDS_SHARE))])
            return
        words = self.words.widget()
        words_height = max(words.heightForWidth(self.page.viewport().width()), words.minimumSizeHint().height())
        plots_height = max(self.page.viewport().height() - words_height, NARROW_PLOTS_HEIGHT)
        self.split.setMinimumHeight(words_height + plots_height + self.split.handleWidth())
        self.split.setSizes([words_height, plots_height])


def what_changed(before: Seen, now: Seen) -> str:
    """The difference new evidence made, when the trials are the ones shown before ('' otherwise)."""
    if before.record_id != now.record_id or before.trials != now.trials or before == now:
        return ""
    lines = []
    added = sorted(set(now.probed) - set(before.probed))
    if added:
        lines.append(f"The throughput probe's timings now predict the time to target for batch size"
                     f"{'s' if len(added) > 1 else ''} {', '.join(map(str, added))} as well.")
    if now.recommended != before.recommended:
        if before.recommended is None:
            lines.append(f"Fastest predicted batch size: {now.recommended}.")
        elif now.recommended is None:
            lines.append("There is no prediction any more.")
        else:
            lines.append(f"Fastest predicted batch size: {before.recommended} → {now.recommended}.")
    elif now.recommended is not None and added:
        lines.append(f"Fastest predicted batch size: still {now.recommended}.")
    old, new = _sentences(before.advice), _sentences(now.advice)
    lines += [f"New in the advice: {s}" for s in new if s not in old]
    lines += [f"No longer in the advice: {s}" for s in old if s not in new]
    if not lines:
        return ""
    return "What the new throughput probe changed:\n" + "\n".join(lines)


def probe_words(probe: dict[str, Any]) -> str:
    """The probe the analysis used, in one line (limited by memory, by the training set, or neither)."""
    points = [p for p in probe.get("points") or [] if p.get("status") == "ok" and p.get("images_per_s")]
    if not points:
        return "Throughput probe: no batch size was measured."
    fastest = max(points, key=lambda p: p["images_per_s"])
    fits, limit = probe.get("max_fitting_batch"), probe.get("limited_by")
    if limit == "memory":
        reach = f"the largest batch size that fits in memory is {fits}"
    elif limit == "data":
        reach = f"every batch size up to {fits} fits; the training set, not memory, ended the ladder"
    else:
        reach = f"every batch size tried fits, up to {fits}"
    return (f"Throughput probe: {reach}; the most images per second at batch size {fastest['batch_size']} "
            f"({fastest['images_per_s']:,.0f}/s).")


def compute_words(summary: Summary) -> str:
    trained, full = summary.compute.get("trial_epochs", 0), summary.compute.get("full_grid_epochs", 0)
    if not full or summary.method == "none":
        return ""
    if summary.method == "halving":
        return (f"Successive halving trained {trained} epochs over all trials: {trained / full:.0%} of the {full} "
                "a full grid would have cost.")
    return f"{trained} of {full} planned epochs were trained over all trials."


def _sentences(text: str) -> list[str]:
    """The advice's sentences; a 'Missing: a; b; c.' list as one point per item, so a probe that fills
    one gap shows as that item gone, not as a new sentence."""
    points = []
    for sentence in (s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text or "")):
        if sentence.startswith("Missing: "):
            points += [f"Missing: {item.strip().rstrip('.')}." for item in sentence[9:].split(";") if item.strip()]
        elif sentence:
            points.append(sentence)
    return points


def _tuned_table() -> QTableWidget:
    table = QTableWidget(0, len(TUNED_HEADERS))
    table.setHorizontalHeaderLabels(TUNED_HEADERS)
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.setWordWrap(False)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    table.setToolTip("Bold: the fastest predicted batch size. Band: the learning rates next to the best one whose "
                     "accuracy was within 2 points of it: how forgiving that batch size is.")
    return table


def _table_height(table: QTableWidget) -> int:
    rows = sum(table.rowHeight(r) for r in range(table.rowCount()))
    columns = sum(table.columnWidth(c) for c in range(table.columnCount()))
    scroll = table.horizontalScrollBar().sizeHint().height() if columns > table.viewport().width() else 0
    return table.horizontalHeader().sizeHint().height() + rows + 2 * table.frameWidth() + scroll


def _label(style: str) -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
    label.setMinimumHeight(1)  # the height comes from heightForWidth, not from Qt's narrow-width guess
    if style:
        label.setStyleSheet(style)
    return label


def _note(text: str, details: str, plot: Optional[QWidget]) -> QLabel:
    """A short line under a plot; the full explanation on hovering it or the plot. Its height is Qt's own
    (not heightForWidth alone), so a short pane scrolls instead of drawing the line over the plot."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setStyleSheet(NOTE_STYLE)
    label.setToolTip(details)
    if plot is not None:
        plot.setToolTip(details)
    return label


def _title(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("font-weight: bold; margin-top: 6px;")
    return label


def _box(plot: QWidget, note: QLabel) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    layout.addWidget(plot, 1)
    layout.addWidget(note)
    box.hide()
    return box


def _show(label: QLabel, text: str) -> None:
    label.setText(text)
    label.setVisible(bool(text))
