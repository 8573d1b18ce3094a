"""The Advisor tab: which batch size to use and why, from what the experiment measured.

It only draws what engine.analysis.summary.summarize concluded: the advice paragraph, the critical
batch-size fit (steps vs samples to the target, McCandlish et al. 2018) when one exists, and
the gradient noise scale per epoch against the batch sizes tried.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from engine.analysis.summary import Summary
from gui.curves import CountAxis, series
from gui.palette import batch_colours

EMPTY_TEXT = "Advice appears here once runs have finished: train an experiment or open a past one."
NO_NOISE_TEXT = ("The gradient noise scale was not measured. Tick “Estimate the gradient noise scale” under "
                 "Settings ▸ Advanced to see, per epoch, the batch size beyond which larger batches stop paying.")
NOTE_STYLE = "color: #555;"


class AdvicePanel(QWidget):
    """``show_summary(summary, record)`` fills it; ``clear()`` empties it."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.heading = QLabel("Advice")
        self.heading.setStyleSheet("font-weight: bold; font-size: 12pt;")
        self.advice = QLabel(EMPTY_TEXT)
        self.advice.setWordWrap(True)
        self.advice.setTextFormat(Qt.TextFormat.PlainText)
        self.advice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.advice.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.advice.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        scroll = QScrollArea()  # a long paragraph scrolls instead of squeezing the plots away
        scroll.setWidget(self.advice)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setMaximumHeight(8 * self.fontMetrics().lineSpacing())

        self.critical_plot, critical_widget = _plot("Steps vs samples to target", "optimizer steps to target",
                                                    "training samples to target")
        self.critical_plot.setLogMode(x=True, y=True)
        self.critical_note = _note()
        self.noise_plot, noise_widget = _plot("Gradient noise scale", "epoch", "B_simple (samples)",
                                              CountAxis(orientation="bottom"))
        self.noise_plot.setLogMode(x=False, y=True)
        self.noise_note = _note()
        self.critical_box = _column(critical_widget, self.critical_note)
        self.noise_box = _column(noise_widget, self.noise_note)
        plots = QHBoxLayout()
        plots.addWidget(self.critical_box, 1)
        plots.addWidget(self.noise_box, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(self.heading)
        layout.addWidget(scroll)
        layout.addLayout(plots, 1)
        self.clear()

    def clear(self) -> None:
        self.advice.setText(EMPTY_TEXT)
        self.critical_plot.clear()
        self.noise_plot.clear()
        _show(self.critical_note, "")
        _show(self.noise_note, "")

    def show_summary(self, summary: Summary, record: dict[str, Any]) -> None:
        """Draw an analysis of ``record`` (live or from disk)."""
        self.advice.setText(summary.advice or EMPTY_TEXT)
        colours = batch_colours([b.batch_size for b in summary.batches])
        self._draw_critical(summary, colours)
        self._draw_noise(record, colours)

    # -- plots ------------------------------------------------------------------------------------

    def _draw_critical(self, summary: Summary, colours: dict[int, QColor]) -> None:
        plot = self.critical_plot
        plot.clear()
        fit = summary.critical
        if fit is not None:
            curve = np.array(fit["curve"], dtype=float)
            plot.plot(curve[:, 0], curve[:, 1], pen=pg.mkPen("#444", width=1.5, style=Qt.PenStyle.DashLine))
        for batch in summary.batches:
            if not batch.to_target:
                continue
            plot.plot([batch.to_target["steps"]], [batch.to_target["samples"]], pen=None, symbol="o",
                      symbolSize=11, symbolBrush=colours[batch.batch_size], symbolPen=pg.mkPen("#222"))
            label = pg.TextItem(f"{batch.batch_size}", color="#222", anchor=(-0.3, 1.0))
            label.setPos(math.log10(batch.to_target["steps"]), math.log10(batch.to_target["samples"]))
            plot.addItem(label)
        if fit is None:
            plot.setTitle("Steps vs samples to target (no fit)", color="#222", size="10pt")
            _show(self.critical_note, f"Dots: batch sizes that reached the target. No critical batch size yet: "
                                      f"{summary.critical_problem or 'no fit'}.")
            return
        where = " (outside the batch sizes tried)" if fit["extrapolated"] else ""
        plot.setTitle(f"Critical batch size ≈ {fit['b_crit']:,.0f}{where}", color="#222", size="10pt")
        _show(self.critical_note, f"Dashed: fit (S/S_min − 1)(E/E_min − 1) = 1 with S_min ≈ {fit['s_min']:,.0f} "
                                  f"steps, E_min ≈ {fit['e_min']:,.0f} samples; misfit {fit['residual']:.0%}. "
                                  "Dots: batch sizes that reached the target.")

    def _draw_noise(self, record: dict[str, Any], colours: dict[int, QColor]) -> None:
        plot = self.noise_plot
        plot.clear()
        drawn = False
        for run in record.get("runs", []):
            x, y = series(run, "epoch", "noise_scale")
            keep = y > 0  # single estimates can be negative; a log axis cannot show them
            if keep.any():
                plot.plot(x[keep], y[keep], pen=pg.mkPen(colours.get(run["batch_size"], "#000"), width=2),
                          symbol="o", symbolSize=5, symbolBrush=colours.get(run["batch_size"], "#000"),
                          symbolPen=None)
                drawn = True
        if not drawn:
            _show(self.noise_note, NO_NOISE_TEXT)
            return
        for size, colour in colours.items():
            mark = pg.InfiniteLine(pos=math.log10(size), angle=0,
                                   pen=pg.mkPen(colour, width=1, style=Qt.PenStyle.DotLine),
                                   label=f"batch {size}", labelOpts={"position": 0.08, "color": colour,
                                                                     "anchors": [(0, 1), (0, 1)]})
            plot.addItem(mark)
        _show(self.noise_note, "Lines: B_simple per epoch, each run in its batch size's colour; dotted: the batch "
                               "sizes tried. A batch well below the noise scale wastes little; far above it, "
                               "extra samples stop paying.")


def _plot(title: str, x_label: str, y_label: str,
          bottom: Optional[pg.AxisItem] = None) -> tuple[pg.PlotItem, pg.PlotWidget]:
    widget = pg.PlotWidget(background="w", axisItems={"bottom": bottom} if bottom is not None else None)
    widget.setMinimumSize(260, 180)
    plot = widget.getPlotItem()
    plot.setTitle(title, color="#222", size="10pt")
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    plot.showGrid(x=True, y=True, alpha=0.18)
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setPen(pg.mkPen("#444"))
        axis.setTextPen(pg.mkPen("#222"))
    return plot, widget


def _note() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setStyleSheet(NOTE_STYLE)
    return label


def _column(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    layout.setStretch(0, 1)
    return box


def _show(label: QLabel, text: str) -> None:
    label.setText(text)
    label.setVisible(bool(text))
