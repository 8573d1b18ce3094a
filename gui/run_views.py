"""What the window shows about one run and about the experiment as a whole: the Evaluation and
Try-the-model tabs (the selected run, else the best), Export, saved plots and histories, the
summary under the table, the Advisor and the throughput probe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from PySide6.QtGui import QAction

from engine.analysis.summary import load_probe, summarize
from engine.record import store as rec
from engine.record.runs import best_run
from gui.export_dialog import ExportDialog, save_histories_csv_dialog, save_plot, save_plot_dialog
from gui.window_actions import export_target


def run_name(run: dict[str, Any], record: Optional[dict[str, Any]]) -> str:
    """'batch size 32' (plus the repeat when the experiment repeats runs)."""
    repeats = len({r.get("repeat", 0) for r in (record or {}).get("runs", [])})
    repeat = f", repeat {run.get('repeat', 0) + 1}" if repeats > 1 else ""
    return f"batch size {run['batch_size']}{repeat}"


class RunViewsMixin:
    """MainWindow's per-run views, exports and analysis."""

    # -- analysis: fairness summary and advice ----------------------------------------------------

    def _refresh_analysis(self) -> None:
        """Summary under the table, time-to-target target, and the Advisor tab, from the record shown."""
        if self.record is None or not self.record["runs"]:
            self.summary.show_summary(None)
            self.table.set_target(None)
            self.advice_panel.clear()
            return
        probe = load_probe(self.record_dir) if self.record_dir else None
        try:
            summary = summarize(self.record, probe)
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:  # a record from elsewhere may be odd
            self.log.add("error", f"Cannot analyse {self.record.get('id')}: {type(exc).__name__}: {exc}")
            return
        self.summary.show_summary(summary)
        self.table.set_target(summary.target_accuracy)
        self.advice_panel.show_summary(summary, self.record, probe)

    def open_probe(self) -> None:
        """The throughput probe dialog, tied to the experiment shown (its probe.json feeds the advice)."""
        from gui.probe_dialog import ProbeDialog  # loaded on use: the window starts without it

        if self.probe_dialog is not None and self.probe_dialog.isVisible():
            self.probe_dialog.raise_()
            return
        folder = self.data_panel.folder()
        form = self.settings_panel.config(folder, "")
        trained = (self.record or {}).get("config") or {}  # measured on what the experiment shown trained
        self.probe_dialog = ProbeDialog(folder, trained.get("image_size") or self.settings_panel.image_size_for(folder),
                                        str(self.record_dir) if self.record_dir else None, self,
                                        model=trained.get("model") or form.model,
                                        weights=trained.get("weights") or form.weights)
        self.probe_dialog.probed.connect(self._on_probed)
        self.probe_dialog.open()

    def _on_probed(self, _result: Any) -> None:
        self._refresh_analysis()  # a new probe.json changes what the advice can say

    # -- the selected run: export, evaluation, trying the model -----------------------------------

    def _on_run_selected(self, run: Optional[dict[str, Any]]) -> None:
        self.curves.highlight(run["run_index"] if run else None)
        self._update_actions()
        self._refresh_run_views()

    def _focus_run(self) -> Optional[dict[str, Any]]:
        """The run the per-run views show: the one selected in the table, else the best one."""
        if self.record is None:
            return None
        return self.table.selected_run() or best_run(self.record["runs"])

    def _refresh_run_views(self, _tab: int = -1) -> None:
        run = self._focus_run()
        self._refresh_predict(run)
        if self.views.currentWidget() is self.evaluation_view:  # evaluating costs seconds: only when shown
            self._refresh_evaluation(run)

    def _refresh_evaluation(self, run: Optional[dict[str, Any]]) -> None:
        if self.record_dir is None or run is None:
            self._evaluated = None
            self.evaluation_view.show_message("Select a finished run in the results table to see how its best "
                                              "checkpoint does on the validation set.")
            return
        if not run.get("checkpoint") or run.get("status") in ("pending", "running"):
            self._evaluated = None
            self.evaluation_view.show_message(f"{run_name(run, self.record)} has no finished checkpoint yet "
                                              f"({run.get('status')}); select a finished run.")
            return
        key = (str(self.record_dir), run["run_index"], run.get("status"), (run.get("best") or {}).get("epoch"))
        if key == self._evaluated:
            return
        try:  # the record on disk: the live one lacks the split digest that proves the validation set
            record = rec.load(self.record_dir)
        except rec.RecordError as exc:
            self._evaluated = None
            self.evaluation_view.show_message(str(exc))
            return
        on_disk = next((r for r in record["runs"] if r.get("run_index") == run["run_index"]), run)
        self._evaluated = key
        self.evaluation_view.show_run(self.record_dir, record, on_disk)

    def _refresh_predict(self, run: Optional[dict[str, Any]]) -> None:
        if self.record_dir is None or run is None or not run.get("checkpoint"):
            return
        try:
            checkpoint = rec.inside(self.record_dir, run["checkpoint"])
        except rec.RecordError as exc:
            self.log.add("error", str(exc))
            return
        self.predict_panel.set_model(checkpoint, label=f"best checkpoint of {run_name(run, self.record)} "
                                                       f"({self.record.get('id')})")

    def export_selected(self) -> None:
        """Open the export dialog on the selected run, else on the best (starred) one; it verifies what it wrote."""
        run = export_target(self)
        if run is None:
            return
        if self.export_dialog is not None and self.export_dialog.job is not None:
            self.export_dialog.raise_()  # an export is still being written: never start a second one over it
            return
        if self.export_dialog is not None:
            self.export_dialog.deleteLater()
        self.export_dialog = ExportDialog(self.record_dir, self, batch_size=run["batch_size"],
                                          run_index=run["run_index"])
        self.export_dialog.exported.connect(self._on_exported)
        self.export_dialog.open()

    def _on_exported(self, result: Any) -> None:
        level = "info" if result.verification.matched else "warning"
        self.log.add(level, f"Exported to {result.target}: {result.verification.message()}")

    def _save_plot_from_menu(self) -> None:
        action = self.sender()
        if isinstance(action, QAction):
            self.save_plot(action.data())

    def save_plot(self, key: str, path: Optional[Path | str] = None) -> Optional[Path]:
        """Save one plot as PNG or SVG; asks where unless ``path`` is given."""
        plot = {**self.curves.plots, "critical": self.advice_panel.critical_plot,
                "noise_scale": self.advice_panel.noise_plot}[key]
        name = f"{self.record.get('id')}-{key}" if self.record else key
        if path is None:
            saved = save_plot_dialog(self, plot, name, self.record_dir)
        else:
            saved = save_plot(plot, path)
        if saved is not None:
            self.log.add("info", f"Saved the plot to {saved}")
            self.statusBar().showMessage(f"Saved {saved}", 5000)
        return saved

    def save_histories_csv(self) -> Optional[Path]:
        if self.record is None:
            return None
        saved = save_histories_csv_dialog(self, self.record, self.record_dir)
        if saved is not None:
            self.log.add("info", f"Saved the histories to {saved}")
            self.statusBar().showMessage(f"Saved {saved}", 5000)
        return saved
