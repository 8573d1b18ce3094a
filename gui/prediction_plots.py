"""The Advisor's two prediction plots, drawn from Summary.prediction and Summary.critical.

Steps to target S(B): the tuned steps each batch size needed (a dot per batch size that reached
the target) and the fit S(B) = S_min (1 + B_noise/B) (McCandlish et al. 2018). Time to target
T(B) = S(B) x seconds per step: the predicted time for every batch size with a timing (its trials,
or the throughput probe's ladder), the measured times, and the fastest prediction starred.
Both use log2(batch size) on x and label the batch sizes themselves; S(B) uses log10(steps).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from engine.analysis.summary import Summary
from engine.analysis.words import duration, error_pct, two_figures
from gui.plot_axes import LabelledAxis, log_ticks, style_plot

STEPS_HELP = ("Dots: tuned steps to target of each batch size, at its best learning rate. Dashed: the fit "
              "S(B) = S_min (1 + B_noise/B) (McCandlish et al. 2018): below B_noise a larger batch saves steps almost "
              "in proportion, beyond it hardly any.")
TIMES_HELP = ("Dashed: predicted time to target T(B) = S(B) × seconds per step, for every batch size with a "
              "timing (filled: from its trials; hollow: from the throughput probe). Crosses: measured times. "
              "Star: the fastest predicted. Leave-one-out error: each measured batch size predicted by a fit to the "
              "others.")
FIT_PEN = ("#444444", 1.5)
STAR = "#E69F00"
STAR_EDGE = "#222222"
GUIDE = "#9A9A9A"


def plot_widget(title: str, x_label: str, y_label: str, log_y: bool = False) -> pg.PlotWidget:
    """A white plot whose x axis is log2(batch size), labelled with batch sizes; y log10 when asked."""
    axes = {"bottom": LabelledAxis("bottom")}
    if log_y:
        axes["left"] = LabelledAxis("left", log_ticks())
    widget = pg.PlotWidget(background="w", axisItems=axes)
    widget.setMinimumSize(240, 170)
    style_plot(widget.getPlotItem(), title, x_label, y_label)
    return widget


def batch_ticks(sizes: list[int]) -> list[tuple[float, str]]:
    return [(math.log2(size), str(size)) for size in sorted(set(sizes))]


def draw_steps(plot: pg.PlotItem, summary: Summary, colours: dict[int, QColor]) -> Optional[str]:
    """S(B): measured tuned steps and the fit. Returns the note under the plot."""
    plot.clear()
    fit = summary.critical
    measured = [b for b in summary.batches if b.to_target and b.state == "ok"]
    if fit is None or not measured:
        return None
    sizes = [b.batch_size for b in measured]
    xs = np.linspace(math.log2(min(sizes)) - 1, math.log2(max(sizes)) + 1, 80)
    curve = fit["s_min"] * (1 + fit["b_noise"] / 2 ** xs)
    plot.plot(xs, np.log10(curve), pen=pg.mkPen(FIT_PEN[0], width=FIT_PEN[1], style=Qt.PenStyle.DashLine),
              name="S(B) fit")
    plot.addItem(pg.InfiniteLine(math.log10(fit["s_min"]), angle=0, pen=pg.mkPen(GUIDE, style=Qt.PenStyle.DotLine),
                                 label=f"S_min ≈ {fit['s_min']:,.0f}",
                                 labelOpts={"position": 0.85, "color": "#555", "anchors": [(1, 1), (1, 1)]}))
    if fit["b_noise"] > 0:
        plot.addItem(pg.InfiniteLine(math.log2(fit["b_noise"]), angle=90,
                                     pen=pg.mkPen(GUIDE, style=Qt.PenStyle.DotLine),
                                     label=f"B_noise ≈ {two_figures(fit['b_noise'])}",
                                     labelOpts={"position": 0.9, "color": "#555", "anchors": [(0, 0), (0, 0)]}),
                     ignoreBounds=True)
    for b in measured:
        colour = colours.get(b.batch_size, QColor("#000"))
        plot.plot([math.log2(b.batch_size)], [math.log10(b.to_target["steps"])], pen=None, symbol="o",
                  symbolSize=11, symbolBrush=colour, symbolPen=pg.mkPen("#222"))
    plot.getAxis("bottom").set_ticks(batch_ticks(sizes + [int(round(2 ** xs[0])), int(round(2 ** xs[-1]))]))
    steps = [math.log10(b.to_target["steps"]) for b in measured] + [math.log10(fit["s_min"])]
    plot.setRange(xRange=(xs[0], xs[-1]), yRange=(min(steps) - 0.12, max(steps) + 0.12), padding=0.02)
    return (f"S(B) = {fit['s_min']:,.0f} (1 + {two_figures(fit['b_noise'])}/B), misfit {fit['residual']:.0%}: "
            f"beyond B_noise ≈ {two_figures(fit['b_noise'])} a larger batch saves few steps.")


def draw_times(plot: pg.PlotItem, summary: Summary, colours: dict[int, QColor]) -> Optional[str]:
    """T(B): predicted and measured time to target, the fastest starred. Returns the note under the plot."""
    plot.clear()
    prediction: Optional[dict[str, Any]] = summary.prediction
    if prediction is None:
        return None
    points = sorted(prediction["points"], key=lambda p: p["batch_size"])
    xs = [math.log2(p["batch_size"]) for p in points]
    ys = [math.log10(p["predicted_seconds"]) for p in points]  # log: probed sizes can be far slower
    plot.plot(xs, ys, pen=pg.mkPen(FIT_PEN[0], width=FIT_PEN[1], style=Qt.PenStyle.DashLine))
    for source, brush in (("trial", "#444444"), ("probe", "#FFFFFF")):
        chosen = [(x, y) for x, y, p in zip(xs, ys, points) if p["source"] == source]
        if chosen:
            plot.plot([x for x, _ in chosen], [y for _, y in chosen], pen=None, symbol="o", symbolSize=8,
                      symbolBrush=brush, symbolPen=pg.mkPen("#444444", width=1.5), name=f"predicted ({source} timing)")
    for p in points:
        if p["measured_seconds"] is not None:
            colour = colours.get(p["batch_size"], QColor("#C0392B"))
            plot.plot([math.log2(p["batch_size"])], [math.log10(p["measured_seconds"])], pen=None, symbol="x",
                      symbolSize=14,
                      symbolBrush=colour, symbolPen=pg.mkPen(colour, width=2.5))
    best = prediction["recommended"]
    plot.addItem(pg.InfiniteLine(math.log2(best["batch_size"]), angle=90,
                                 pen=pg.mkPen(STAR, width=1.5, style=Qt.PenStyle.DashLine)))
    plot.plot([math.log2(best["batch_size"])], [math.log10(best["predicted_seconds"])], pen=None, symbol="star",
              symbolSize=22,
              symbolBrush=STAR, symbolPen=pg.mkPen(STAR_EDGE, width=1))
    plot.getAxis("bottom").set_ticks(batch_ticks([p["batch_size"] for p in points]))
    shown = ys + [math.log10(p["measured_seconds"]) for p in points if p["measured_seconds"] is not None]
    plot.setRange(xRange=(min(xs) - 0.4, max(xs) + 0.4), yRange=(min(shown) - 0.15, max(shown) + 0.15), padding=0)
    return times_note(prediction)


def times_note(prediction: dict[str, Any]) -> str:
    """What the T(B) plot shows and how far to trust it, in words."""
    loo = prediction.get("loo_error")
    check = f"leave-one-out error {error_pct(loo)}" if loo is not None else "no leave-one-out check possible"
    probed = sorted(p["batch_size"] for p in prediction["points"] if p["source"] == "probe")
    timing = (f"timing for {', '.join(map(str, probed))} from the throughput probe" if probed else
              "run Tools ▸ Probe throughput to predict untried sizes")
    best = prediction["recommended"]
    return f"Fastest predicted: batch size {best['batch_size']} ({duration(best['predicted_seconds'])}); {check}; {timing}."
