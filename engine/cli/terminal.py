"""Progress bars and the results table for the command line (a listener of engine events)."""

from __future__ import annotations

import math
import shutil
import sys
import textwrap
from typing import TYPE_CHECKING, Any, Optional, TextIO

from engine.analysis.words import error_pct
from engine.events import (
    BatchProgress,
    EpochEnded,
    Event,
    ExperimentFinished,
    ExperimentStarted,
    LogMessage,
    RunFinished,
    RunPaused,
    RunStarted,
)

if TYPE_CHECKING:
    from engine.analysis.summary import Summary


def fmt_duration(seconds: Optional[float]) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def fmt_pct(value: Optional[float]) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def fmt_loss(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "-"


class TerminalProgress:
    """One live bar per run on a terminal; one line per epoch when output is a file or pipe."""

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self.stream = stream or sys.stdout
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total_runs = 0
        self.epochs = 0
        self.last_val: Optional[float] = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, ExperimentStarted):
            self.total_runs = event.total_runs
            self.line(f"Experiment {event.experiment_dir}\n  {len(event.classes)} classes, {event.train_samples} "
                      f"training / {event.val_samples} validation images; {event.device}; {event.precision}")
        elif isinstance(event, RunStarted):
            self.epochs = event.epochs
            self.last_val = None
            verb = f"continues from epoch {event.first_epoch + 1}" if event.first_epoch else "starts"
            self.line(f"Run {event.run_index + 1}/{self.total_runs} {verb}: batch size {event.batch_size}"
                      f"{f' (repeat {event.repeat + 1}, seed {event.seed})' if event.repeat else ''}, "
                      f"{event.steps_per_epoch} steps/epoch, up to {event.epochs} epochs, lr {event.lr:g}")
        elif isinstance(event, BatchProgress) and self.live:
            self.bar(event)
        elif isinstance(event, EpochEnded):
            e = event.entry
            self.last_val = e["val_accuracy"]
            mark = " *" if event.improved else ""
            self.line(f"  bs {event.batch_size:>5} epoch {e['epoch']:>3}/{self.epochs}  loss {e['loss']:.4f}  "
                      f"acc {fmt_pct(e['accuracy'])}  val_loss {e['val_loss']:.4f}  val_acc "
                      f"{fmt_pct(e['val_accuracy'])}{mark}  {e['seconds']:.1f}s  {event.images_per_s:.0f} img/s  "
                      f"ETA {fmt_duration(event.eta_s)}")
        elif isinstance(event, RunPaused):
            self.line(f"  batch size {event.batch_size} waits after rung {event.rung + 1} ({event.epochs_run} epochs)")
        elif isinstance(event, RunFinished):
            trial = event.updates.get("trial") or {}
            reason = trial.get("stop_reason")
            detail = f": {event.error}" if event.error else (f": {trial['note']}" if trial.get("note") else
                                                             f" ({reason.replace('_', ' ')})" if reason not in
                                                             (None, "completed", "stopped", "failed") else "")
            best = f", best val_acc {fmt_pct(event.best['val_accuracy'])} at epoch {event.best['epoch']}" \
                if event.best else ""
            self.line(f"  batch size {event.batch_size} {event.status}{detail}{best}")
        elif isinstance(event, LogMessage):
            self.line(f"{event.level}: {event.text}")
        elif isinstance(event, ExperimentFinished):
            self.line(f"Experiment {event.status}: {event.experiment_dir}")

    def bar(self, e: BatchProgress) -> None:
        width = shutil.get_terminal_size((100, 20)).columns
        text = (f"  bs {e.batch_size:>5} epoch {e.epoch}/{self.epochs} {{bar}} {e.step}/{e.steps_per_epoch}  "
                f"loss {fmt_loss(e.loss)} acc {fmt_pct(e.accuracy)}  {e.images_per_s:.0f} img/s  "
                f"ETA {fmt_duration(e.eta_s)}")
        room = max(10, min(30, width - len(text) + 5))
        filled = int(room * e.step / max(e.steps_per_epoch, 1))
        text = text.format(bar="[" + "#" * filled + "." * (room - filled) + "]")
        self.stream.write("\r" + text[: width - 1].ljust(width - 1))
        self.stream.flush()

    def line(self, text: str) -> None:
        if self.live:
            self.stream.write("\r" + " " * (shutil.get_terminal_size((100, 20)).columns - 1) + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()


def results_table(record: dict[str, Any]) -> str:
    """The closing table: one row per run, with its learning rate and cost to the target accuracy."""
    header = ("batch", "best val acc", "best epoch", "epochs", "s/epoch", "img/s", "lr", "to target", "status")
    rows = [header]
    for run in record["runs"]:
        best = run.get("best") or {}
        status = run["status"] + (f" ({run['error']})" if run.get("error") and run["status"] == "failed" else
                                  f" ({fate})" if (fate := trial_fate(run)) else "")
        rows.append((
            str(run["batch_size"]) + (f" r{run['repeat'] + 1}" if record["config"].get("repeats", 1) > 1 else ""),
            fmt_pct(best.get("val_accuracy")),
            str(best.get("epoch", "-")),
            str(run.get("epochs_run", 0)),
            f"{run['seconds_per_epoch']:.1f}" if run.get("seconds_per_epoch") else "-",
            f"{run['images_per_s']:.0f}" if run.get("images_per_s") else "-",
            f"{run['lr']:.3g}" if run.get("lr") else "-",
            fmt_reach(run.get("time_to_target"), record.get("target_accuracy")),
            status,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def trial_fate(run: dict[str, Any]) -> str:
    """Why a tuning trial ended short of its budget: 'halved at rung 1', 'dead', 'diverged', 'early stopped'."""
    trial = run.get("trial") or {}
    reason, rung = trial.get("stop_reason"), trial.get("stopped_at_rung")
    if reason in (None, "completed", "stopped", "failed"):
        return ""
    return reason.replace("_", " ") + (f" at rung {rung + 1}" if reason == "halved" and rung is not None else "")


def fmt_reach(reach: Optional[dict[str, Any]], target: Optional[float]) -> str:
    """``ep 4, 120 steps, 00:35`` or ``not reached`` (``-`` when there is no target to reach)."""
    if target is None:
        return "-"
    if not reach:
        return "not reached"
    return f"ep {reach['epoch']:.3g}, {reach['steps']:.0f} steps, {fmt_duration(reach['seconds'])}"


def conclusions(summary: "Summary") -> str:
    """After the table: the tuned answer per batch size, the verdict, the S(B) fit and prediction,
    the diagnoses and the advice."""
    target = fmt_pct(summary.target_accuracy) if summary.target_accuracy is not None else \
        f"none, as {summary.target_problem}" if summary.target_problem else "-"
    lines = [f"Target accuracy: {target}", _tuning_line(summary)]
    for b in summary.batches:
        lines.append(f"  batch {b.batch_size}: " + _batch_line(b, summary.target_accuracy))
    if summary.verdict:
        lines.append(f"Verdict: {summary.verdict}")
    if summary.critical:
        c = summary.critical
        lines.append(f"Critical batch size: {c['b_crit']:.3g} (S_min {c['s_min']:.0f} steps, E_min {c['e_min']:.0f} "
                     f"samples, fit error {100 * c['residual']:.0f}%{', extrapolated' if c['extrapolated'] else ''})")
    else:
        lines.append(f"Critical batch size: not fitted ({summary.critical_problem})")
    lines += _prediction_lines(summary)
    if summary.diagnoses:
        count = len(summary.diagnoses)
        lines.append(f"Diagnoses ({count} trial{'s' if count > 1 else ''} did not train):")
        lines += [f"  bs {d.batch_size} lr {d.lr:.3g} seed {d.seed}: {d.note}" if d.lr is not None
                  else f"  bs {d.batch_size} seed {d.seed}: {d.note}" for d in summary.diagnoses]
    lines.append("")
    lines += textwrap.wrap("Advice: " + summary.advice, width=100)
    return "\n".join(lines)


def _tuning_line(summary: "Summary") -> str:
    trained, full = summary.compute.get("trial_epochs", 0), summary.compute.get("full_grid_epochs", 0)
    if summary.method == "none":
        return "Learning rate: untuned (one per batch size)" + (f"; {trained} of {full} planned epochs trained"
                                                               if full else "")
    how = "successive halving" if summary.method == "halving" else "full grid"
    most = max((len(b.lrs) for b in summary.batches), default=0)
    spent = f"; {trained} epochs trained, {100 * trained / full:.0f}% of the full grid's {full}" if full else ""
    return f"Learning rate: tuned per batch size ({most} each, {how}){spent}"


def _batch_line(b: Any, target: Optional[float]) -> str:
    if b.state in ("dead", "empty"):
        return {"dead": "no trial learned (dead or diverged)", "empty": "not trained yet"}[b.state]
    lr = f"lr {b.lr:.3g}" if b.lr is not None else "lr -"
    if b.lr_band and len(b.lrs) > 1:
        low, high = b.lr_band
        lr += f" (band {low:.3g}-{high:.3g})" if low != high else " (band: this lr only)"
    spread = f" ± {100 * b.best_std:.1f}" if b.best_std is not None else ""
    noise = f", noise scale {b.noise_scale:.3g}" if b.noise_scale is not None else ""
    partial = ", stopped before every trial finished" if b.state == "incomplete" else ""
    return (f"{lr}, best val acc {fmt_pct(b.best_mean)}{spread} over {len(b.bests)} seed(s), to target "
            f"{fmt_reach(b.to_target, target)} ({b.reached}/{len(b.runs)} reached){noise}{partial}")


def _prediction_lines(summary: "Summary") -> list[str]:
    p = summary.prediction
    if p is None:
        return [f"Prediction: none ({summary.prediction_problem})"] if summary.prediction_problem else []
    check = (f"leave-one-out error {error_pct(p['loo_error'])}" if p["loo_error"] is not None
             else "no leave-one-out check")
    lines = [f"Prediction: S(B) = {p['s_min']:.0f} (1 + {p['b_noise']:.3g}/B) steps, {check}",
             "   batch  steps measured  predicted  s/step  predicted time  measured time  source"]
    for point in p["points"]:
        measured = f"{point['steps']:.0f}" if point["steps"] is not None else "-"
        lines.append(f"  {point['batch_size']:>6}  {measured:>14}  {point['predicted_steps']:>9.0f}  "
                     f"{point['seconds_per_step']:>6.3f}  {fmt_duration(point['predicted_seconds']):>14}  "
                     f"{fmt_duration(point['measured_seconds']):>13}  {point['source']}")
    best = p["recommended"]
    lines.append(f"  fastest predicted: batch size {best['batch_size']} ({fmt_duration(best['predicted_seconds'])})")
    return lines
