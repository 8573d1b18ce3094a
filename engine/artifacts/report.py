"""One self-contained HTML file that says which batch size, with the evidence a reviewer asks for.

Everything is inline: plots are SVG drawn by matplotlib (no pyplot, so no global backend and no
display), styles are a <style> block, and there is no script. A Content-Security-Policy forbids
every fetch, so opening the file never touches a network even if a browser would try. Every string
that comes from the record (ids, class names, paths, errors) is escaped: a record is data, never markup.

The content follows what a credible batch-size comparison reports (Shallue et al. 2019; the deep
learning tuning playbook): the learning rate tuned per batch size, the budget and what it did to the
number of updates, the seeds, time to target on named hardware, and the environment, each marked
met or missing, plus the command that repeats the experiment.
"""

from __future__ import annotations

import html
import io
import math
import os
import re
import shlex
from pathlib import Path
from typing import Any, Optional

from engine import atomic
from engine.analysis.summary import Summary, load_probe, summarize
from engine.analysis.tuning import ranking, stop_reason
from engine.analysis.words import duration, error_pct, lr, pct, two_figures
from engine.record import store

CONFIG_NAME = "config.toml"
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
REASON_WORDS = {"completed": "completed", "early_stopped": "early stopped", "halved": "halved", "dead": "dead",
                "diverged": "diverged", "failed": "failed", "stopped": "stopped by the user"}
LEFT, BEST_ROW = ' class="l"', '<tr class="best">'
SKIPPED_FIELDS = ("data_dir", "name")  # the data folder is the positional argument; a name would collide
STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d1d1f;
       max-width: 1120px; margin: 24px auto; padding: 0 20px; }
h1 { font-size: 24px; margin-bottom: 2px; } h2 { font-size: 19px; margin-top: 34px; border-bottom: 1px solid #ddd; }
.sub { color: #555; margin-top: 0; }
.answer { background: #f4f8fb; border-left: 4px solid #0072B2; padding: 10px 16px; }
.verdict { font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13.5px; }
th, td { padding: 4px 9px; border-bottom: 1px solid #e3e3e3; text-align: right; vertical-align: top;
         white-space: nowrap; }
th { background: #f6f6f6; white-space: normal; } td.l, th.l { text-align: left; white-space: normal; }
tr.best td { background: #fff6d5; font-weight: 600; }
.met { color: #007a55; font-weight: 700; white-space: nowrap; } .missing { color: #c0392b; font-weight: 700; white-space: nowrap; }
.check td { text-align: left; white-space: normal; }
.bad { color: #c0392b; } .note { color: #555; font-size: 13px; }
pre { background: #f6f6f6; padding: 10px; white-space: pre-wrap; overflow-wrap: anywhere; }
figure { margin: 10px 0; } figure svg { max-width: 100%; height: auto; } figcaption { color: #555; font-size: 13px; }
"""


def write_report(experiment_dir: Path | str, to: Path | str, target_accuracy: Optional[float] = None) -> Path:
    """Render the experiment's report into ``to`` (written atomically) and return its path.

    ``target_accuracy`` re-analyses at another target (time to target, the S(B) fit and its
    leave-one-out error follow it) without touching the record."""
    experiment_dir = Path(experiment_dir)
    record = store.load(experiment_dir)
    if target_accuracy is not None:
        record = {**record, "config": {**record.get("config", {}), "target_accuracy": target_accuracy},
                  "target_accuracy": target_accuracy}
    text = build_report(record, load_probe(experiment_dir), reproduce_command(record, experiment_dir))
    atomic.write_bytes(to, text.encode("utf-8"))
    os.chmod(to, 0o644)  # a report is for sharing: readable like a new file, not private like the temp file
    return Path(to)


def build_report(record: dict[str, Any], probe: Optional[dict[str, Any]] = None,
                 reproduce: Optional[str] = None) -> str:
    """The report as one HTML document."""
    summary = summarize(record, probe)
    title = f"BatchLab report: {record.get('id') or 'experiment'}"
    sections = [
        _header(record, summary),
        _section("Checklist: what a credible comparison reports", _checklist_html(checklist(record, summary))),
        _section("Tuned answer per batch size", _tuned_table(summary) + _compute_line(summary)),
        _section("Learning rate × batch size", _heat_map(summary)),
        _section("Steps and time to target", _prediction_html(summary)),
        _section("Learning curves at each batch size's best learning rate", _curves(summary)),
        _section("Diagnoses", _diagnoses_html(summary)),
        _section("Every trial", _trials_table(record, summary)),
        _section("Environment and how to repeat it", _environment_html(record, reproduce)),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "img-src data:\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(sections) + "\n</body></html>\n"
    )


def checklist(record: dict[str, Any], summary: Summary) -> list[tuple[str, bool, str]]:
    """(item, met, one line why) for each thing a credible batch-size comparison reports."""
    config = record.get("config") or {}
    compared = [b for b in summary.batches if b.state in ("ok", "dead", "incomplete") and b.bests]
    items = []
    if summary.method == "none":
        rates = sorted({b.lr for b in compared if b.lr is not None})
        items.append(("Learning rate tuned per batch size", False,
                      f"one learning rate per batch size ({', '.join(lr(x) for x in rates) or 'none recorded'}): "
                      "the gap may be the learning rate; run with --lr-grid 3"))
    else:
        edges = [f"{b.batch_size} ({b.lr_edge})" for b in compared if b.lr_edge and b.state == "ok"]
        fewest = min((len(b.lrs) for b in compared), default=0)
        each = f"{fewest}" if fewest == max((len(b.lrs) for b in compared), default=0) else f"{fewest} or more"
        how = "successive halving" if summary.method == "halving" else "full grid"
        if fewest < 2:
            items.append(("Learning rate tuned per batch size", False, "a batch size has only one learning rate"))
        elif edges:
            items.append(("Learning rate tuned per batch size", False,
                          f"{each} learning rates each ({how}), but the best one is at the edge of the grid for "
                          f"batch size {', '.join(edges)}: widen it so the optimum is bracketed"))
        else:
            items.append(("Learning rate tuned per batch size", True,
                          f"{each} learning rates each ({how}); every best learning rate lies inside its grid"))
    budget = config.get("budget")
    if budget == "epochs":
        u = summary.updates
        ratio = (f"; batch size {u.large} got {two_figures(u.ratio)} times fewer optimizer updates than {u.small} "
                 f"({u.large_updates:,} against {u.small_updates:,})") if u else ""
        items.append(("Budget type", True, f"equal epochs ({config.get('epochs')} per trial){ratio}"))
    elif budget == "steps":
        items.append(("Budget type", True, "equal optimizer steps: every batch size got the same number of updates"))
    elif budget == "time":
        items.append(("Budget type", True, f"equal wall-clock time ({config.get('budget_seconds')} s per trial)"))
    else:
        items.append(("Budget type", False, "the record does not say how long each trial trained"))
    seeds = min((len(b.runs) for b in compared), default=0)
    items.append(("Seeds / repeats", seeds >= 2,
                  f"{seeds} seeds per configuration; the verdict uses Welch's t-test with a 95% confidence interval"
                  if seeds >= 2 else "one seed per configuration: seed-to-seed noise is unknown; run with --repeats 3"))
    device = (record.get("environment") or {}).get("device")
    reached = [b for b in compared if b.to_target]
    if summary.target_accuracy is None:
        why = f"no target accuracy ({summary.target_problem or 'none set'})"
    elif not reached:
        why = f"no batch size reached the target of {pct(summary.target_accuracy)}"
    elif not device:
        why = "the record does not name the hardware"
    else:
        why = f"time to {pct(summary.target_accuracy)} measured on {device}"
    items.append(("Time to target on named hardware", bool(summary.target_accuracy is not None and reached and device),
                  why))
    env = record.get("environment") or {}
    have = {"Python": env.get("python"), "TensorFlow": env.get("tensorflow"), "Keras": env.get("keras"),
            "precision": env.get("precision")}
    absent = [k for k, v in have.items() if not v]
    items.append(("Environment", not absent, ", ".join(f"{k} {v}" for k, v in have.items() if v)
                  + (f"; missing: {', '.join(absent)}" if absent else "")))
    return items


def reproduce_command(record: dict[str, Any], experiment_dir: Path | str) -> str:
    """``python main.py run --config <experiment>/config.toml`` when the folder holds its settings,
    else the flags rebuilt from the record's config (a flag per setting: --field-name)."""
    config_file = Path(experiment_dir) / CONFIG_NAME
    if config_file.is_file():
        return f"python main.py run --config {shlex.quote(str(config_file))}"
    config = record.get("config") or {}
    words = ["python", "main.py", "run"] + ([str(config["data_dir"])] if config.get("data_dir") else [])
    for key, value in config.items():
        flag = "--" + key.replace("_", "-")
        if key in SKIPPED_FIELDS or value is None:
            continue
        if key == "augment":
            words += [] if value else ["--no-augment"]
        elif isinstance(value, bool):
            words += [flag] if value else []
        elif isinstance(value, (list, tuple)):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


# -- sections ---------------------------------------------------------------------------------------

def _header(record: dict[str, Any], summary: Summary) -> str:
    data = record.get("dataset") or {}
    env = record.get("environment") or {}
    status = record.get("status") or "unknown"
    facts = [f"{len(data.get('classes') or [])} classes", f"{data.get('train_count', '?')} training / "
             f"{data.get('val_count', '?')} validation images", f"{(record.get('config') or {}).get('image_size')} px",
             f"{len(record.get('runs', []))} trials", f"status {status}"]
    if env.get("device"):
        facts.append(str(env["device"]))
    target = (f"Target: {pct(summary.target_accuracy)} validation accuracy" if summary.target_accuracy is not None
              else f"No target accuracy: {summary.target_problem or 'none set'}.")
    verdict = f"<p class=\"verdict\">{_e(_capital(summary.verdict))}</p>" if summary.verdict else ""
    advice = summary.advice.replace(" " + _capital(summary.verdict), "") if summary.verdict else summary.advice
    return (f"<h1>{_e('BatchLab report: ' + str(record.get('id') or 'experiment'))}</h1>"
            f"<p class=\"sub\">{_e(str(data.get('root') or (record.get('config') or {}).get('data_dir') or ''))} · "
            f"{_e(' · '.join(facts))}</p>"
            f"<div class=\"answer\"><p>{_e(target)}</p>{verdict}<p><b>Advice.</b> {_e(advice)}</p></div>")


def _section(title: str, body: str) -> str:
    return f"<h2>{_e(title)}</h2>\n{body}"


def _checklist_html(items: list[tuple[str, bool, str]]) -> str:
    rows = "".join(f"<tr><td class=\"{'met' if met else 'missing'}\">{'✓ met' if met else '✗ missing'}</td>"
                   f"<td><b>{_e(item)}</b></td><td>{_e(why)}</td></tr>" for item, met, why in items)
    return f"<table class=\"check\">{rows}</table>"


def _tuned_table(summary: Summary) -> str:
    head = ("batch size", "best lr", "lr band (within 2 points)", "lrs tried", "best val acc", "reached",
            "steps to target", "samples to target", "time to target", "state")
    rows = []
    leader = _leader(summary)
    for b in summary.batches:
        band = "-" if not b.lr_band else lr(b.lr_band[0]) if b.lr_band[0] == b.lr_band[1] else \
            f"{lr(b.lr_band[0])} – {lr(b.lr_band[1])}"
        spread = f" ± {100 * b.best_std:.1f}" if b.best_std is not None else ""
        reach = b.to_target
        cells = [str(b.batch_size), lr(b.lr) if b.lr is not None else "-", band, str(len(b.lrs)),
                 f"{pct(b.best_mean)}{spread}", f"{b.reached}/{len(b.runs)}",
                 f"{reach['steps']:,.0f}" if reach else "not reached",
                 f"{reach['samples']:,.0f}" if reach else "not reached",
                 duration(reach["seconds"]) if reach else "not reached", _state_words(b.state, b.lr_edge)]
        rows.append(cells)
    order = [b.batch_size for b in summary.batches]
    caption = "<p class=\"note\">Highlighted: the fastest to the target at its best learning rate.</p>" \
        if leader is not None else ""
    return _table(head, rows, left=(9,), best_row=order.index(leader) if leader in order else None) + caption


def _compute_line(summary: Summary) -> str:
    trained, full = summary.compute.get("trial_epochs", 0), summary.compute.get("full_grid_epochs", 0)
    if not full:
        return ""
    if summary.method == "halving":
        text = (f"Successive halving trained {trained} epochs over all trials, {100 * trained / full:.0f}% of the "
                f"{full} a full grid would have cost.")
    else:
        text = f"{trained} of {full} planned epochs were trained over all trials."
    return f"<p class=\"note\">{_e(text)}</p>"


def _heat_map(summary: Summary) -> str:
    cells = summary.cells
    if not cells or all(c.lr is None for c in cells):
        return "<p>No trial has a learning rate yet.</p>"
    figure, axes = _figure(max(5.5, 1.25 * len(summary.batches) + 3.0), 4.2)
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    sizes = [b.batch_size for b in summary.batches]
    accuracies = [c.best_val_accuracy for c in cells if c.best_val_accuracy is not None]
    low = min(accuracies, default=0.0)
    high = max(accuracies, default=1.0)
    norm = Normalize(vmin=min(low, high - 0.05), vmax=high)
    cmap = colormaps["viridis"]
    for x, size in enumerate(sizes):
        column = sorted((c for c in cells if c.batch_size == size and c.lr is not None), key=lambda c: c.lr)
        logs = [math.log10(c.lr) for c in column]
        for i, c in enumerate(column):
            below = (logs[i] - logs[i - 1]) / 2 if i > 0 else (logs[i + 1] - logs[i]) / 2 if len(logs) > 1 else 0.25
            above = (logs[i + 1] - logs[i]) / 2 if i < len(logs) - 1 else below
            y0, y1 = 10 ** (logs[i] - below), 10 ** (logs[i] + above)
            value = c.best_val_accuracy
            colour = cmap(norm(value)) if value is not None else (0.85, 0.85, 0.85, 1.0)
            edge = {"lw": 3.0, "ec": "black", "ls": "-"} if c.best and len(column) > 1 else \
                {"lw": 1.6, "ec": "black", "ls": (0, (4, 3))} if c.in_band and len(column) > 1 else \
                {"lw": 1.2, "ec": "white", "ls": "-"}
            axes.add_patch(Rectangle((x - 0.46, y0), 0.92, y1 - y0, fc=colour, **edge))
            dark = value is not None and norm(value) < 0.6
            axes.text(x, math.sqrt(y0 * y1), _cell_text(c), ha="center", va="center", fontsize=8.5,
                      color="white" if dark else "black", fontweight="bold" if c.best else "normal")
    axes.set_yscale("log")
    _log_ticks(axes.yaxis, (1.0, 3.0))  # grids are usually 3 apart
    axes.set_xlim(-0.6, len(sizes) - 0.4)
    all_lrs = [c.lr for c in cells if c.lr is not None]
    axes.set_ylim(min(all_lrs) / 2.2, max(all_lrs) * 2.2)
    axes.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    axes.set_xlabel("batch size")
    axes.set_ylabel("learning rate")
    from matplotlib.cm import ScalarMappable

    bar = figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, pad=0.02)
    bar.set_label("best validation accuracy (mean over seeds)")
    bar.ax.yaxis.set_major_formatter(_percent_formatter())
    caption = ("Each square is one learning rate at one batch size, its seeds pooled: best validation accuracy, "
               "how many seeds reached the target, and why the trials ended. Black outline: the best learning "
               "rate (fewest steps to target); dashed: within 2 points of it (the band).")
    return _embed(figure, "heat", caption)


def _cell_text(c: Any) -> str:
    lines = [pct(c.best_val_accuracy) if c.best_val_accuracy is not None else "no result"]
    reason = c.stop_reason
    some = f" ({c.reason_trials}/{c.trials})" if c.reason_trials < c.trials else ""
    if reason in ("dead", "diverged", "failed", "stopped"):
        lines.append(REASON_WORDS[reason] + some)
    elif reason == "halved":
        lines.append((f"halved at rung {c.rung}" if c.rung is not None else "halved") + some)
    if c.trials and reason not in ("dead", "diverged", "failed"):
        lines.append(f"{c.reached}/{c.trials} reached")
    return "\n".join(lines)


def _prediction_html(summary: Summary) -> str:
    measured = [b for b in summary.batches if b.to_target and b.state == "ok"]
    p = summary.prediction
    if not measured:
        return "<p>No batch size reached the target at its best learning rate, so there is nothing to fit.</p>"
    figure, (left, right) = _figure(10.5, 4.0, columns=2)
    colours = _colours(summary)
    for b in measured:
        seeds = [run_reach["steps"] for c in summary.tuned[b.batch_size].configurations if c.lr == b.lr
                 for run_reach in c.reaches if run_reach]
        left.scatter([b.batch_size] * len(seeds), seeds, s=14, color="#999999", zorder=2)
        left.scatter([b.batch_size], [b.to_target["steps"]], s=60, color=colours[b.batch_size], zorder=3,
                     edgecolors="black", label=f"{b.batch_size}")
    left.set_xscale("log", base=2)
    left.xaxis.set_major_formatter(_plain_formatter())
    left.set_yscale("log")
    _log_ticks(left.yaxis, (1.0, 2.0, 5.0))
    shown = [b.to_target["steps"] for b in measured]
    left.set_ylim(min(shown) / 1.6, max(shown) * 1.6)
    left.set_xlabel("batch size")
    left.set_ylabel("optimizer steps to target")
    if summary.critical:
        fit = summary.critical
        xs = [min(b.batch_size for b in measured) / 2 * (2 ** (i / 20)) for i in range(0, 20 * _octaves(measured) + 41)]
        left.plot(xs, [fit["s_min"] * (1 + fit["b_noise"] / x) for x in xs], color="#444444", ls="--", zorder=1,
                  label="S(B) fit")
        left.axhline(fit["s_min"], color="#bbbbbb", lw=1, zorder=0)
        left.axvline(fit["b_noise"], color="#bbbbbb", lw=1, zorder=0)
        left.set_title(f"S(B) = {fit['s_min']:,.0f} (1 + {two_figures(fit['b_noise'])}/B): "
                       f"B_noise ≈ {two_figures(fit['b_noise'])}", fontsize=10)
    else:
        left.set_title("no S(B) fit", fontsize=10)
    left.legend(fontsize=8, title="batch size", title_fontsize=8)
    if p is not None:
        points = p["points"]
        right.plot([q["batch_size"] for q in points], [q["predicted_seconds"] for q in points], color="#444444",
                   ls="--", zorder=1)
        for q in points:
            probe = q["source"] == "probe"
            right.scatter([q["batch_size"]], [q["predicted_seconds"]], s=40, zorder=2, edgecolors="#444444",
                          color="white" if probe else "#444444")
            if q["measured_seconds"] is not None:
                right.scatter([q["batch_size"]], [q["measured_seconds"]], s=70, marker="x", color="#C0392B", zorder=3)
        best = p["recommended"]
        right.scatter([best["batch_size"]], [best["predicted_seconds"]], s=260, marker="*", color="#E69F00",
                      edgecolors="black", zorder=4)
        right.set_xscale("log", base=2)
        right.xaxis.set_major_formatter(_plain_formatter())
        right.set_ylim(bottom=0)
        right.set_xlabel("batch size")
        right.set_ylabel("time to target (s)")
        right.set_title(f"T(B) = S(B) × seconds per step; fastest predicted: {best['batch_size']}", fontsize=10)
        from matplotlib.lines import Line2D

        right.legend(handles=[
            Line2D([], [], marker="o", color="#444444", ls="--", label="predicted (trial timing)"),
            Line2D([], [], marker="o", color="#444444", mfc="white", ls="", label="predicted (probe timing)"),
            Line2D([], [], marker="x", color="#C0392B", ls="", label="measured"),
            Line2D([], [], marker="*", color="#E69F00", mec="black", ms=12, ls="", label="fastest predicted")],
            fontsize=8)
    else:
        right.axis("off")
        right.text(0.5, 0.5, f"No prediction:\n{_wrap(summary.prediction_problem or '', 48)}", ha="center",
                   va="center", fontsize=10, transform=right.transAxes)
    caption = ("Left: tuned steps to target per batch size (large dots: mean over seeds; grey: each seed) and the "
               "fit S(B) = S_min (1 + B_noise/B) (McCandlish et al. 2018). Right: predicted time to target for "
               "every batch size that fits in memory, against the measured times.")
    body = _embed(figure, "fit", caption)
    if p is None:
        return body + f"<p>No prediction: {_e(summary.prediction_problem or 'not enough data')}.</p>"
    check = (f"{error_pct(p['loo_error'])} mean absolute error when each measured batch size is left out of the "
             f"fit and predicted" if p["loo_error"] is not None else "no leave-one-out check possible")
    head = ("batch size", "measured steps", "predicted steps", "seconds / step", "predicted time", "measured time",
            "timing from")
    rows = [[str(q["batch_size"]), f"{q['steps']:,.0f}" if q["steps"] is not None else "-",
             f"{q['predicted_steps']:,.0f}", f"{q['seconds_per_step']:.4f}", duration(q["predicted_seconds"]),
             duration(q["measured_seconds"]) if q["measured_seconds"] is not None else "-", q["source"]]
            for q in p["points"]]
    best_row = [q["batch_size"] for q in p["points"]].index(p["recommended"]["batch_size"])
    return (body + f"<p>Fit misfit {100 * p['fit_residual']:.0f}% (root-mean-square of log steps); leave-one-out: "
            f"{_e(check)}.</p>" + _table(head, rows, left=(6,), best_row=best_row))


def _curves(summary: Summary) -> str:
    series = [(b, r) for b in summary.batches if b.state in ("ok", "incomplete") for r in b.runs if r.get("history")]
    if not series:
        return "<p>No trial has a history yet.</p>"
    figure, axes = _figure(8.0, 3.6)
    colours = _colours(summary)
    labelled = set()
    for b, run in series:
        history = [h for h in run["history"] if h.get("steps") and h.get("val_accuracy") is not None]
        label = f"{b.batch_size} (lr {lr(b.lr)})" if b.batch_size not in labelled else None
        labelled.add(b.batch_size)
        axes.plot([h["steps"] for h in history], [h["val_accuracy"] for h in history], color=colours[b.batch_size],
                  lw=1.6, marker="o", ms=3, label=label)
    if summary.target_accuracy is not None:
        axes.axhline(summary.target_accuracy, color="#C0392B", ls=":", lw=1.2, label="target")
    axes.set_xscale("log")
    _log_ticks(axes.xaxis, (1.0, 2.0, 5.0))
    axes.set_xlabel("optimizer steps")
    axes.set_ylabel("validation accuracy")
    axes.yaxis.set_major_formatter(_percent_formatter())
    axes.legend(fontsize=8, title="batch size", title_fontsize=8)
    return _embed(figure, "curves", "Validation accuracy against optimizer steps, one line per seed at the best "
                                    "learning rate of each batch size.")


def _diagnoses_html(summary: Summary) -> str:
    if not summary.diagnoses:
        return "<p>Every trial trained: none was dead (stuck at chance), diverged or failed.</p>"
    rows = [[str(d.batch_size), lr(d.lr) if d.lr is not None else "-", str(d.seed), d.kind, d.note]
            for d in summary.diagnoses]
    return _table(("batch size", "lr", "seed", "kind", "reason and what to try"), rows, left=(3, 4))


def _trials_table(record: dict[str, Any], summary: Summary) -> str:
    reasons = {}
    for t in summary.tuned.values():
        for c in t.configurations:
            for run, reach in zip(c.runs, c.reaches):
                reasons[run.get("run_index")] = (c, reach)
    rows = []
    order = {size: i for i, size in enumerate(b.batch_size for b in summary.batches)}
    runs = sorted(record.get("runs", []), key=lambda r: (order.get(r["batch_size"], len(order)), r.get("lr") or 0.0,
                                                         r.get("seed") or 0))
    for run in runs:
        configuration, reach = reasons.get(run.get("run_index"), (None, None))
        trial = run.get("trial") or {}
        reason = stop_reason(run, configuration.diagnoses if configuration else [])
        status = REASON_WORDS.get(reason or "", run.get("status") or "-")
        if isinstance(trial.get("rung"), int):
            status += f", rung {trial['rung']}"
        best = (run.get("best") or {}).get("val_accuracy")
        target = (f"ep {reach['epoch']}, {reach['steps']:,.0f} steps, {duration(reach['seconds'])}" if reach
                  else "not reached" if summary.target_accuracy is not None and run.get("history") else "-")
        rows.append([str(run["batch_size"]), lr(run["lr"]) if run.get("lr") is not None else "-",
                     str(run.get("seed", "-")), status, str(len(run.get("history") or [])), pct(best), target])
    return _table(("batch size", "lr", "seed", "status", "epochs", "best val acc", "time to target"), rows,
                  left=(3, 6))


def _environment_html(record: dict[str, Any], reproduce: Optional[str]) -> str:
    env = record.get("environment") or {}
    keys = ("python", "tensorflow", "keras", "platform", "device", "precision", "precision_reason")
    rows = [[k, str(env[k])] for k in keys if env.get(k)]
    command = reproduce or "(not known)"
    made = " ".join(filter(None, [f"Written by {record['app']}" if record.get("app") else "",
                                  f"on {record['created']}" if record.get("created") else ""]))
    return (_table(("", "value"), rows, left=(0, 1)) + (f"<p>{_e(made)}.</p>" if made else "")
            + f"<p>To repeat the experiment:</p><pre>{_e(command)}</pre>")


# -- helpers ----------------------------------------------------------------------------------------

def _figure(width: float, height: float, columns: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(1, columns)
    for ax in (axes if columns > 1 else [axes]):
        ax.grid(True, which="major", alpha=0.25)
        ax.tick_params(labelsize=9)
    return figure, axes


def _embed(figure: Any, prefix: str, caption: str) -> str:
    """The figure as inline SVG (text as paths: it looks the same without the font), ids made unique
    per figure so that several SVGs can live in one document."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "batchlab", "svg.fonttype": "path"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg[svg.index("<svg"):], flags=re.DOTALL)
    svg = re.sub(r'(\bid="|href="#|url\(#)([^")]+)', lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg)
    return f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def _table(head: tuple[str, ...], rows: list[list[str]], left: tuple[int, ...] = (),
           best_row: Optional[int] = None) -> str:
    def cell(tag: str, i: int, text: str) -> str:
        return f"<{tag}{LEFT if i in left else ''}>{_e(text)}</{tag}>"

    header = "".join(cell("th", i, h) for i, h in enumerate(head))
    body = "".join((BEST_ROW if r == best_row else "<tr>") + "".join(cell("td", i, c) for i, c in enumerate(row))
                   + "</tr>" for r, row in enumerate(rows))
    return f"<table><tr>{header}</tr>{body}</table>"


def _leader(summary: Summary) -> Optional[int]:
    """The batch size ranked first (fastest to the target at its best lr), if any is comparable."""
    ranked = ranking(summary.tuned)
    return ranked[0].batch_size if ranked else None


def _state_words(state: str, edge: Optional[str]) -> str:
    words = {"ok": "", "dead": "no trial learned", "failed": "every trial failed", "incomplete": "stopped early",
             "empty": "not trained"}[state]
    if edge and state == "ok":
        words = f"best lr is the {edge} tried"
    return words


def _colours(summary: Summary) -> dict[int, str]:
    return {b.batch_size: COLOURS[i % len(COLOURS)] for i, b in enumerate(summary.batches)}


def _octaves(batches: list[Any]) -> int:
    sizes = [b.batch_size for b in batches]
    return max(1, math.ceil(math.log2(max(sizes) / min(sizes))))


def _plain_formatter() -> Any:
    """0.001 and 2000 rather than 10^-3 and 2x10^3."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: f"{value:g}" if value > 0 else "")


def _log_ticks(axis: Any, subs: tuple[float, ...]) -> None:
    """Labelled ticks at ``subs`` times each power of ten, so that even a narrow range has some."""
    from matplotlib.ticker import LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(_plain_formatter())
    axis.set_minor_formatter(NullFormatter())


def _percent_formatter() -> Any:
    """Percent ticks with as many decimals as the axis range needs (20%-23% would repeat '22%' otherwise)."""
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _capital(text: Optional[str]) -> str:
    return (text or "")[:1].upper() + (text or "")[1:]


def _e(text: str) -> str:
    return html.escape(text, quote=True)
