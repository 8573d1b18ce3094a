"""File ▸ Export report: the experiment's self-contained HTML report, written off the GUI thread.

``export_report(window, record_dir)`` asks where to save it (offering ``<experiment>/<id>-report.html``),
writes it with engine.artifacts.report.write_report on a background thread (the plots take a few
seconds to draw), then offers to open it in the browser. ``ReportExport`` is the part without
dialogs, for code and tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from engine.artifacts.report import write_report
from engine.record import store as rec
from gui.export_dialog import BackgroundJob


class ReportExport(QObject):
    """One report being written: ``start(record_dir, path)``; ``written(Path)`` or ``failed(str)`` follow."""

    written = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.job: Optional[BackgroundJob] = None
        self.path: Optional[Path] = None
        self.offer: Optional[QMessageBox] = None

    def start(self, record_dir: Path | str, path: Path | str) -> None:
        folder, target = Path(record_dir), Path(path).expanduser().absolute()
        self.path = target
        self.job = BackgroundJob(lambda _log: write_report(folder, target), None)
        # Queued, always: these fire on the worker thread and must reach the widgets on the GUI thread.
        self.job.succeeded.connect(self._on_written, Qt.ConnectionType.QueuedConnection)
        self.job.failed.connect(lambda text: self.failed.emit(f"{target}: {text}"), Qt.ConnectionType.QueuedConnection)
        self.job.finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self.job.start()

    def url(self) -> Optional[QUrl]:
        """The report as a file URL, for the browser."""
        return QUrl.fromLocalFile(str(self.path)) if self.path is not None else None

    def open(self) -> bool:
        url = self.url()
        return url is not None and QDesktopServices.openUrl(url)

    def wait(self) -> None:
        if self.job is not None:
            self.job.wait()

    def _on_written(self, path: Path) -> None:
        self.path = Path(path).absolute()
        self.written.emit(self.path)

    def _on_finished(self) -> None:
        self.job.wait()  # finished() fires just before the thread ends
        self.job.deleteLater()
        self.job = None


def default_report_path(record_dir: Path | str) -> Path:
    """``<experiment>/<experiment id>-report.html`` (the folder's name when the record cannot be read)."""
    folder = Path(record_dir).absolute()
    try:
        name = str(rec.load(folder).get("id") or folder.name)
    except rec.RecordError:
        name = folder.name
    return folder / f"{name}-report.html"


def export_report(parent: QWidget, record_dir: Path | str) -> Optional[ReportExport]:
    """Ask for a file name, write the report in the background, then offer to open it (None if cancelled)."""
    path, _ = QFileDialog.getSaveFileName(parent, "Export report", str(default_report_path(record_dir)),
                                          "HTML report (*.html)")
    if not path:
        return None
    if Path(path).suffix.lower() not in (".html", ".htm"):
        path += ".html"
    exporter = ReportExport(parent)
    exporter.written.connect(lambda written: _offer_to_open(parent, exporter, written))
    exporter.failed.connect(lambda text: QMessageBox.warning(parent, "Export report", f"Could not write the report: "
                                                                                      f"{text}"))
    exporter.start(record_dir, path)
    return exporter


def _offer_to_open(parent: QWidget, exporter: ReportExport, path: Path) -> None:
    box = QMessageBox(QMessageBox.Icon.Information, "Export report", f"The report was written to\n{path}",
                      QMessageBox.StandardButton.Close, parent)
    opener = box.addButton("Open in browser", QMessageBox.ButtonRole.AcceptRole)
    opener.clicked.connect(exporter.open)
    box.setDefaultButton(opener)
    exporter.offer = box
    box.open()
