"""The learning rate x batch size heat map of the Advisor tab: one square per configuration.

Each square is an ImageItem coloured by the configuration's best validation accuracy (seeds pooled,
engine.analysis.tuning.heat_cells) on one shared colour bar. Columns are the batch sizes; the
vertical axis is the learning rate on a log scale, labelled with the rates actually tried. Learning
rates may differ between batch sizes (a scaled grid), so each column places its squares at its own
rates, each square reaching halfway to its neighbours. A square that has not trained yet is grey and
fills in when the window analyses the record again after the trial finishes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetricsF
from PySide6.QtWidgets import QGraphicsRectItem

from engine.analysis.tuning import Cell
from engine.analysis.words import lr, pct
from gui.plot_axes import LabelledAxis, style_plot

COLOUR_MAP = "viridis"
WAITING = QColor("#E6E6E6")
FAILED_MARKS = ("dead", "diverged", "failed")
MARK_WORDS = {"halved": "halved", "dead": "dead", "diverged": "diverged", "failed": "failed",
              "stopped": "stopped"}
SINGLE_HEIGHT = math.log10(3.0)  # a column with one learning rate: a square as tall as a grid step of 3
WIDTH = 0.96
SHORT_LEGEND = "Thick outline: best lr · dashed: within 2 points · hatched: dead or diverged · grey: not trained yet"
LEGEND = ("Colour: best validation accuracy at that learning rate (mean over seeds). Thick outline: each batch "
          "size's best learning rate; dashed: within 2 points of it (the band). Hatched: dead, diverged or "
          "failed trials. Grey: not trained yet.")


@dataclass
class Square:
    """What the map draws for one cell (kept so tests and tooltips can read it back)."""

    cell: Cell
    rect: QRectF
    value: Optional[float]  # percent; None while nothing has trained
    text: str
    mark: Optional[str]  # halved | dead | diverged | failed | stopped
    image: Optional[pg.ImageItem]
    label: pg.TextItem


class HeatMap(pg.PlotWidget):
    """``show_cells(cells, batch_sizes)`` draws; ``squares`` maps (batch size, lr index) to a Square."""

    def __init__(self) -> None:
        self.x_axis, self.y_axis = LabelledAxis("bottom"), LabelledAxis("left")
        super().__init__(background="w", axisItems={"bottom": self.x_axis, "left": self.y_axis})
        self.setMinimumSize(240, 170)
        self.plot_item = self.getPlotItem()
        style_plot(self.plot_item, "Best val accuracy (%)", "batch size", "learning rate")
        self.plot_item.showGrid(x=False, y=False)
        self.bar = pg.ColorBarItem(values=(0, 100), colorMap=COLOUR_MAP, interactive=False, width=12,
                                   colorMapMenu=False)
        self.bar.axis.setTextPen(pg.mkPen("#222"))
        self.plot_item.layout.addItem(self.bar, 2, 5)  # as ColorBarItem.setImageItem(insert_in=...) would
        self.plot_item.layout.setColumnFixedWidth(4, 5)
        self.squares: dict[tuple[int, int], Square] = {}
        self.plot_item.vb.sigResized.connect(self.fit_labels)
        self.plot_item.vb.sigRangeChanged.connect(self.fit_labels)

    def show_cells(self, cells: list[Cell], batch_sizes: list[int]) -> None:
        self.plot_item.clear()
        self.squares = {}
        placed = [c for c in cells if c.lr is not None and c.lr > 0 and c.batch_size in batch_sizes]
        if not placed:
            self.bar.setImageItem([])
            return
        learned = [c for c in placed if c.stop_reason not in FAILED_MARKS] or placed  # failed ones sit below
        values = [100 * c.best_val_accuracy for c in learned if c.best_val_accuracy is not None]
        low, high = (min(values), max(values)) if values else (0.0, 100.0)
        low = min(low, high - 5.0)  # a few points apart at least, so near-equal cells do not look opposite
        self.bar.setLevels((low, high))
        images = []
        for x, size in enumerate(batch_sizes):
            column = sorted((c for c in placed if c.batch_size == size), key=lambda c: c.lr)
            for cell, (bottom, top) in zip(column, _spans([math.log10(c.lr) for c in column])):
                square = self._draw(cell, QRectF(x - WIDTH / 2, bottom, WIDTH, top - bottom), (low, high),
                                    len(column))
                self.squares[(cell.batch_size, cell.lr_index)] = square
                if square.image is not None:
                    images.append(square.image)
        self.bar.setImageItem(images)
        self.bar.setLevels((low, high))
        self.x_axis.set_ticks([(x, str(size)) for x, size in enumerate(batch_sizes)])
        rates = sorted({c.lr for c in placed})
        self.y_axis.set_ticks([(math.log10(rate), lr(rate)) for rate in rates])
        tops = [s.rect.bottom() for s in self.squares.values()]
        bottoms = [s.rect.top() for s in self.squares.values()]
        self.plot_item.setRange(xRange=(-0.5, len(batch_sizes) - 0.5), yRange=(min(bottoms), max(tops)), padding=0.02)
        self.fit_labels()

    def fit_labels(self, *_: object) -> None:
        """Each square says as much as fits in it at the current size: everything, the value, or nothing
        (the tooltip always has it all)."""
        box = self.plot_item.vb
        for square in self.squares.values():
            pixels = box.mapViewToDevice(square.rect)
            if pixels is None:
                continue
            room = pixels.boundingRect()
            metrics = QFontMetricsF(square.label.textItem.font())
            lines = square.text.split("\n")
            short = [f"{square.value:.0f}"] if square.value is not None else []
            shown = ""
            for candidate in (lines, lines[:1], short):
                if not candidate:
                    continue
                width = max(metrics.horizontalAdvance(line) for line in candidate) + 2
                if width <= room.width() and metrics.lineSpacing() * len(candidate) + 2 <= room.height():
                    shown = "\n".join(candidate)
                    break
            if square.label.toPlainText() != shown:
                square.label.setText(shown)

    def _draw(self, cell: Cell, rect: QRectF, levels: tuple[float, float], rates: int) -> Square:
        value = 100 * cell.best_val_accuracy if cell.best_val_accuracy is not None else None
        mark = cell.stop_reason if cell.stop_reason in MARK_WORDS else None
        image: Optional[pg.ImageItem] = None
        if value is None:
            background = QGraphicsRectItem(rect)
            background.setBrush(QBrush(WAITING))
            background.setPen(pg.mkPen("#FFFFFF", width=1))
            background.setToolTip(_tooltip(cell))
            self.plot_item.addItem(background)
        else:
            image = pg.ImageItem(np.array([[value]], dtype=float))
            image.setRect(rect)
            image.setToolTip(_tooltip(cell))
            self.plot_item.addItem(image)
        if mark in FAILED_MARKS:
            hatch = QGraphicsRectItem(rect)
            hatch.setBrush(QBrush(QColor(255, 255, 255, 170), Qt.BrushStyle.BDiagPattern))
            hatch.setPen(pg.mkPen(None))
            self.plot_item.addItem(hatch)
        if rates > 1 and (cell.best or cell.in_band):
            outline = QGraphicsRectItem(rect.adjusted(0.02, 0.01, -0.02, -0.01))
            outline.setBrush(QBrush(Qt.BrushStyle.NoBrush))
            outline.setPen(pg.mkPen("#000", width=3) if cell.best else
                           pg.mkPen("#000", width=1.5, style=Qt.PenStyle.DashLine))
            self.plot_item.addItem(outline)
        text = cell_text(cell)
        dark = value is not None and (value - levels[0]) / max(levels[1] - levels[0], 1e-9) < 0.6
        label = pg.TextItem(text, color="#FFFFFF" if dark else "#222222", anchor=(0.5, 0.5))
        font = label.textItem.font()
        font.setPointSizeF(8.0)
        font.setBold(cell.best and rates > 1)
        label.setFont(font)
        label.setPos(rect.center().x(), rect.center().y())
        self.plot_item.addItem(label)
        return Square(cell, rect, value, text, mark, image, label)


def cell_text(cell: Cell) -> str:
    """'95.0%' over the mark: 'best', 'halved', 'dead 1/2' (the rung is in the tooltip), 'not trained yet'."""
    if cell.best_val_accuracy is None and cell.stop_reason is None:
        return "not trained yet"
    lines = [pct(cell.best_val_accuracy) if cell.best_val_accuracy is not None else "no result"]
    some = f" {cell.reason_trials}/{cell.trials}" if 0 < cell.reason_trials < cell.trials else ""
    if cell.stop_reason in FAILED_MARKS or cell.stop_reason == "stopped":
        lines.append(MARK_WORDS[cell.stop_reason] + some)
    elif cell.stop_reason == "halved":
        lines.append("halved" + some)
    elif cell.best:
        lines.append("best")
    return "\n".join(lines)


def _tooltip(cell: Cell) -> str:
    lines = [f"batch size {cell.batch_size}, learning rate {lr(cell.lr)}"]
    if cell.best_val_accuracy is not None:
        lines.append(f"best val accuracy {pct(cell.best_val_accuracy)} (mean of {cell.trials} "
                     f"seed{'s' if cell.trials != 1 else ''})")
        lines.append(f"reached the target: {cell.reached} of {cell.trials}")
    if cell.rung is not None:
        lines.append(f"highest rung reached: {cell.rung}")
    if cell.stop_reason:
        lines.append(f"ended: {cell.stop_reason.replace('_', ' ')}")
    if cell.best:
        lines.append("the best learning rate of this batch size")
    elif cell.in_band:
        lines.append("within 2 points of the best learning rate")
    return "\n".join(lines)


def _spans(logs: list[float]) -> list[tuple[float, float]]:
    """Bottom and top of each square: halfway to the neighbours (sorted ascending)."""
    spans = []
    for i, y in enumerate(logs):
        below = (y - logs[i - 1]) / 2 if i > 0 else (logs[i + 1] - y) / 2 if len(logs) > 1 else SINGLE_HEIGHT / 2
        above = (logs[i + 1] - y) / 2 if i < len(logs) - 1 else below
        spans.append((y - below, y + above))
    return spans
