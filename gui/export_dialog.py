"""Export dialog (any run of any experiment, any available format), plus "save plot" and "save CSV".

The export runs on a background thread; the dialog shows each step, then whether the
reloaded export predicts exactly like the checkpoint, and offers to open the folder. Formats this
installation cannot write are listed but disabled, with the reason beside them. Paths are shown
absolute, and what the exported model expects is said in plain words (the exact tensor contract is
in the note's tooltip and in the export's batchlab_export.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import pyqtgraph as pg
from pyqtgraph.exporters import ImageExporter
from PySide6.QtCore import QRectF, Qt, QThread, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.analysis.words import lr, pct
from engine.artifacts.evaluate import write_histories_csv
from engine.artifacts.export import FORMAT_LABELS, FORMATS, PREPROCESSING, ExportResult, export_run, format_availability
from engine.artifacts.predict import META_NAME
from engine.artifacts.safe_load import first_line
from engine.atomic import atomic_path
from engine.record import store as rec

OK_STYLE = "color: #0B6E3B; font-weight: bold;"
BAD_STYLE = "color: #8E1F14; font-weight: bold;"


class BackgroundJob(QThread):
    """Runs ``task(log)`` off the GUI thread; ValueError/OSError messages are meant for the user as they are."""

    message = Signal(str)
    succeeded = Signal(object)
    failed = Signal(str)

    def __init__(self, task: Callable[[Callable[[str], None]], Any], parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._task = task

    def run(self) -> None:
        try:
            result = self._task(self.message.emit)
        except (ValueError, OSError) as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - shown in the window instead of killing it
            self.failed.emit(f"{type(exc).__name__}: {first_line(exc)}")
        else:
            self.succeeded.emit(result)


def run_label(run: dict[str, Any], repeats: int) -> str:
    """'batch size 32, lr 0.001, repeat 2: val accuracy 76.0% (epoch 12)'."""
    best = run.get("best") or {}
    rate = f", lr {lr(run['lr'])}" if isinstance(run.get("lr"), (int, float)) else ""
    repeat = f", repeat {run.get('repeat', 0) + 1}" if repeats > 1 else ""
    return f"batch size {run['batch_size']}{rate}{repeat}: val accuracy {pct(best.get('val_accuracy'))} " \
           f"(epoch {best.get('epoch')})"


def expects(image_size: Optional[int]) -> str:
    """What an exported model takes and gives, in words a user of it needs."""
    size = f"{image_size} × {image_size} pixels" if image_size else "the size in its description file"
    return (f"The exported model takes RGB images resized to {size}, with the usual pixel values 0–255: do not "
            f"scale them, the model does that itself. It answers with one probability per class, in the order "
            f"listed in {META_NAME} in the export folder.")


class ExportDialog(QDialog):
    """``ExportDialog(experiment_dir=None, parent=None)``; ``exported`` fires with the ExportResult."""

    exported = Signal(object)

    def __init__(self, experiment_dir: Optional[Path | str] = None, parent: Optional[QWidget] = None,
                 batch_size: Optional[int] = None, run_index: Optional[int] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export model")
        self.setMinimumWidth(620)
        self.experiment_dir: Optional[Path] = None
        self.record: Optional[dict[str, Any]] = None
        self.result: Optional[ExportResult] = None
        self.job: Optional[BackgroundJob] = None
        self.availability = format_availability()

        self.folder_edit = QLineEdit()
        self.folder_edit.setReadOnly(True)
        self.folder_edit.setPlaceholderText("experiment folder (holds experiment.json)")
        choose = QPushButton("Choose…")
        choose.clicked.connect(self.choose_experiment)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(choose)

        self.run_combo = QComboBox()
        self.run_combo.setToolTip("Which run's best checkpoint to export")
        self.run_combo.currentIndexChanged.connect(self._suggest_target)
        self.format_combo = QComboBox()
        for fmt in FORMATS:
            reason = self.availability[fmt]
            self.format_combo.addItem(FORMAT_LABELS[fmt] + ("" if reason is None else " — unavailable"), fmt)
            item = self.format_combo.model().item(self.format_combo.count() - 1)
            if reason is not None:
                item.setEnabled(False)
                item.setToolTip(reason)
        self.format_combo.currentIndexChanged.connect(self._suggest_target)
        unavailable = [f"{FORMAT_LABELS[f]}: {r}" for f, r in self.availability.items() if r]
        self.formats_note = QLabel("All formats are available." if not unavailable
                                   else "Unavailable here — " + "; ".join(unavailable))
        self.formats_note.setWordWrap(True)

        self.target_edit = QLineEdit()
        self.target_edit.setToolTip("Folder to write; an earlier export there is replaced, nothing else is")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_target)
        target_row = QHBoxLayout()
        target_row.addWidget(self.target_edit, 1)
        target_row.addWidget(browse)

        self.note = QLabel(expects(None))
        self.note.setWordWrap(True)
        self.note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.note.setToolTip(f"Details: {PREPROCESSING} The export folder also holds {META_NAME}: class names in "
                             "order, input size and layout, preprocessing, and the run it came from.")

        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(500)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start_export)
        self.open_button = QPushButton("Open folder")
        self.open_button.setToolTip("Show the export folder in the file manager")
        self.open_button.clicked.connect(self.open_folder)
        self.open_button.hide()
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(close)

        form = QFormLayout()
        form.addRow("Experiment:", folder_row)
        form.addRow("Run:", self.run_combo)
        form.addRow("Format:", self.format_combo)
        form.addRow("", self.formats_note)
        form.addRow("Export to:", target_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        if experiment_dir is not None:
            self.set_experiment(experiment_dir, batch_size, run_index)
        self._update_button()

    # -- choosing ---------------------------------------------------------------------------------

    def set_experiment(self, folder: Path | str, batch_size: Optional[int] = None,
                       run_index: Optional[int] = None) -> bool:
        """Show the runs of ``folder`` that have a checkpoint; False (and a message) if it cannot be read.

        ``run_index`` preselects that exact run (a repeat), else the best run of ``batch_size``.
        """
        folder = Path(folder).absolute()
        try:
            record = rec.load(folder)
        except rec.RecordError as exc:
            self._show_status(str(exc), ok=False)
            return False
        self.experiment_dir, self.record = folder, record
        self.folder_edit.setText(str(folder))
        size = (record.get("config") or {}).get("image_size")
        self.note.setText(expects(size if isinstance(size, int) else None))
        repeats = int(record.get("config", {}).get("repeats", 1) or 1)
        runs = [r for r in record["runs"] if r.get("checkpoint") and r.get("best")]
        runs.sort(key=lambda r: -(r["best"].get("val_accuracy") or 0.0))
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for run in runs:
            self.run_combo.addItem(run_label(run, repeats), run)
        chosen = next((i for i, r in enumerate(runs) if r.get("run_index") == run_index),
                      next((i for i, r in enumerate(runs) if r["batch_size"] == batch_size), 0))
        self.run_combo.setCurrentIndex(chosen if runs else -1)
        self.run_combo.blockSignals(False)
        self._show_status("" if runs else "No run of this experiment has saved a checkpoint yet.", ok=bool(runs))
        self._suggest_target()
        self._update_button()
        return True

    def choose_experiment(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Experiment folder", str(self.experiment_dir or ""))
        if folder:
            self.set_experiment(folder)

    def set_format(self, fmt: str) -> None:
        self.format_combo.setCurrentIndex(self.format_combo.findData(fmt))

    def selected_run(self) -> Optional[dict[str, Any]]:
        return self.run_combo.currentData()

    def selected_format(self) -> str:
        return self.format_combo.currentData()

    def _suggest_target(self) -> None:
        run = self.selected_run()
        if self.experiment_dir is None or run is None:
            return
        repeat = f"-r{run.get('repeat', 0) + 1}" if int(self.record["config"].get("repeats", 1) or 1) > 1 else ""
        name = f"bs{run['batch_size']}{repeat}-{self.selected_format()}"
        self.target_edit.setText(str(self.experiment_dir / "exports" / name))

    def _browse_target(self) -> None:
        folder, _ = QFileDialog.getSaveFileName(self, "Export folder", self.target_edit.text())
        if folder:
            self.target_edit.setText(str(Path(folder).absolute()))

    # -- exporting --------------------------------------------------------------------------------

    def start_export(self) -> None:
        run, fmt, target = self.selected_run(), self.selected_format(), self.target_edit.text().strip()
        if self.experiment_dir is None or run is None or not target or self.job is not None:
            return
        target = str(Path(target).expanduser().absolute())
        self.target_edit.setText(target)
        self.result = None
        self.open_button.hide()
        if self.availability.get(fmt):
            self._show_status(f"{FORMAT_LABELS[fmt]} is unavailable: {self.availability[fmt]}", ok=False)
            return
        folder, size, repeat = self.experiment_dir, run["batch_size"], run.get("repeat", 0)
        self.log.clear()
        self._show_status("Exporting…", ok=True)
        self.job = BackgroundJob(lambda log: export_run(folder, fmt, target, size, repeat, log=log), self)
        # Queued, always: these fire on the worker thread and must reach the widgets on the GUI thread.
        self.job.message.connect(self._on_message, Qt.ConnectionType.QueuedConnection)
        self.job.succeeded.connect(self._on_exported, Qt.ConnectionType.QueuedConnection)
        self.job.failed.connect(self._on_failed, Qt.ConnectionType.QueuedConnection)
        self.job.finished.connect(self._on_job_finished, Qt.ConnectionType.QueuedConnection)
        self.job.start()
        self._update_button()

    def _on_message(self, text: str) -> None:
        self.log.appendPlainText(text)

    def _on_failed(self, text: str) -> None:
        self._show_status(f"Export failed: {text}", ok=False)

    def _on_exported(self, result: ExportResult) -> None:
        self.result = result
        self._show_status(f"Exported to {Path(result.target).absolute()}. {result.verification.message()}.",
                          ok=result.verification.matched)
        self.open_button.show()
        self.exported.emit(result)

    def folder_url(self) -> Optional[QUrl]:
        """The export folder as a file URL (None before a successful export)."""
        return QUrl.fromLocalFile(str(Path(self.result.target).absolute())) if self.result is not None else None

    def open_folder(self) -> bool:
        """Show the export folder in the desktop's file manager."""
        url = self.folder_url()
        return url is not None and QDesktopServices.openUrl(url)

    def _on_job_finished(self) -> None:
        self.job.wait()  # finished() fires just before the thread ends
        self.job.deleteLater()
        self.job = None
        self._update_button()

    def _show_status(self, text: str, ok: bool) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(OK_STYLE if ok else BAD_STYLE)

    def _update_button(self) -> None:
        self.export_button.setEnabled(self.job is None and self.selected_run() is not None)

    def reject(self) -> None:
        if self.job is not None:  # the export finishes in the background; never leave a thread dangling
            self.job.wait()
        super().reject()


# -- plots and data out ---------------------------------------------------------------------------


def save_plot(plot: pg.PlotItem | pg.PlotWidget, path: Path | str, width: int = 1600) -> Path:
    """Write a pyqtgraph plot as PNG (``width`` px wide) or SVG, chosen by the file's suffix.

    SVG is drawn with Qt's own QSvgGenerator: pyqtgraph 0.14's SVGExporter fails to parse
    the path syntax Qt 6.12 writes.
    """
    path = Path(path)
    item = plot.getPlotItem() if isinstance(plot, pg.PlotWidget) else plot
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise ValueError(f"{path}: save plots as .png or .svg")
    with atomic_path(path, suffix=suffix) as tmp:
        if suffix == ".png":
            exporter = ImageExporter(item)
            exporter.parameters()["width"] = width
            exporter.export(str(tmp))
        else:
            _write_svg(item, tmp)
    return path


def _write_svg(item: pg.PlotItem, target: Path) -> None:
    source = item.sceneBoundingRect()
    generator = QSvgGenerator()
    generator.setFileName(str(target))
    generator.setSize(source.size().toSize())
    generator.setViewBox(QRectF(0, 0, source.width(), source.height()))
    generator.setTitle(item.titleLabel.text or "BatchLab plot")
    painter = QPainter(generator)
    try:
        item.scene().render(painter, QRectF(0, 0, source.width(), source.height()), source)
    finally:
        painter.end()


def save_plot_dialog(parent: QWidget, plot: pg.PlotItem | pg.PlotWidget, name: str = "plot",
                     folder: Optional[Path] = None) -> Optional[Path]:
    """Ask where to save ``plot`` (offered in ``folder``) and save it; None when the user cancels."""
    default = str(Path(folder or "") / f"{name}.png")
    path, _ = QFileDialog.getSaveFileName(parent, "Save plot", default, "PNG image (*.png);;SVG drawing (*.svg)")
    if not path:
        return None
    if Path(path).suffix.lower() not in (".png", ".svg"):
        path += ".png"
    try:
        return save_plot(plot, path)
    except (OSError, ValueError) as exc:
        QMessageBox.warning(parent, "Save plot", str(exc))
        return None


def save_histories_csv_dialog(parent: QWidget, record: dict[str, Any], folder: Optional[Path] = None) -> Optional[Path]:
    """Ask where to save the histories (one row per run and epoch) and write them atomically."""
    default = str(Path(folder or "") / f"{record.get('id') or 'experiment'}-histories.csv")
    path, _ = QFileDialog.getSaveFileName(parent, "Save histories as CSV", default, "CSV (*.csv)")
    if not path:
        return None
    try:
        write_histories_csv(path, record)
    except OSError as exc:
        QMessageBox.warning(parent, "Save CSV", f"{path}: {exc.strerror or exc}")
        return None
    return Path(path)
