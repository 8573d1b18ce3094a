"""The export dialog, the report export and plot saving, driven as a user would, on a real tiny run."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pyqtgraph as pg  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QObject, Qt, QUrl, Slot  # noqa: E402
from PySide6.QtGui import QDesktopServices  # noqa: E402
from PySide6.QtWidgets import QFileDialog  # noqa: E402

from engine.artifacts.export import FORMATS, PREPROCESSING  # noqa: E402
from gui.export_dialog import ExportDialog, run_label, save_plot  # noqa: E402
from gui.report_export import ReportExport, default_report_path, export_report  # noqa: E402


@pytest.fixture
def experiment(qapp, trained_experiment: Path) -> Path:
    return trained_experiment


class Opened(QObject):
    """Stands in for the desktop: records the URLs QDesktopServices.openUrl would have launched."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


@pytest.fixture
def opened(qapp):
    handler = Opened()
    QDesktopServices.setUrlHandler("file", handler, "open")
    yield handler
    QDesktopServices.unsetUrlHandler("file")


@pytest.mark.slow
def test_export_dialog_exports_and_offers_the_folder(qtbot, experiment: Path, opened: Opened, monkeypatch) -> None:
    monkeypatch.chdir(experiment.parent)
    dialog = ExportDialog(Path(experiment.name))  # a relative path in, absolute paths shown
    qtbot.addWidget(dialog)
    assert dialog.experiment_dir == experiment and dialog.folder_edit.text() == str(experiment)
    assert dialog.run_combo.count() == 2  # batch sizes 4 and 8
    labels = [dialog.run_combo.itemText(i) for i in range(2)]
    dialog.run_combo.setCurrentIndex(next(i for i, text in enumerate(labels) if text.startswith("batch size 4,")))
    label = dialog.run_combo.currentText()
    accuracy = dialog.selected_run()["best"]["val_accuracy"]
    assert label.startswith("batch size 4, lr 0.001: val accuracy ") and f"{100 * accuracy:.1f}%" in label
    assert f"{accuracy:.3f}" not in label
    for i, fmt in enumerate(FORMATS):  # every format listed; only the installable ones selectable
        item = dialog.format_combo.model().item(i)
        assert item.isEnabled() == (dialog.availability[fmt] is None)
    dialog.set_format("keras")
    assert dialog.target_edit.text() == str(experiment / "exports" / "bs4-keras")
    assert Path(dialog.target_edit.text()).is_absolute()
    note = dialog.note.text()
    assert "RGB images resized to 32 × 32 pixels" in note and "0–255" in note and "NHWC" not in note
    assert PREPROCESSING in dialog.note.toolTip() and "palette(mid)" not in dialog.note.styleSheet()
    assert dialog.open_button.isHidden() and dialog.folder_url() is None

    with qtbot.waitSignal(dialog.exported, timeout=120_000) as blocker:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    assert result.verification.matched
    qtbot.waitUntil(lambda: dialog.job is None and dialog.export_button.isEnabled(), timeout=10_000)
    assert "predictions match the checkpoint" in dialog.status.text()
    assert f"Exported to {experiment / 'exports' / 'bs4-keras'}." in dialog.status.text()
    assert "writing Keras" in dialog.log.toPlainText()
    meta = json.loads((experiment / "exports" / "bs4-keras" / "batchlab_export.json").read_text())
    assert meta["classes"] == ["class_0", "class_1", "class_2"]

    assert not dialog.open_button.isHidden()
    qtbot.mouseClick(dialog.open_button, Qt.MouseButton.LeftButton)
    assert [u.toLocalFile() for u in opened.urls] == [str(experiment / "exports" / "bs4-keras")]


def test_run_label_in_percent():
    run = {"batch_size": 32, "lr": 0.0003, "repeat": 1, "best": {"val_accuracy": 0.76, "epoch": 12}}
    assert run_label(run, repeats=2) == "batch size 32, lr 0.0003, repeat 2: val accuracy 76.0% (epoch 12)"


@pytest.mark.slow
def test_export_dialog_refusal_is_shown_not_raised(qtbot, experiment: Path, tmp_path: Path) -> None:
    dialog = ExportDialog(experiment)
    qtbot.addWidget(dialog)
    (tmp_path / "own.txt").write_text("mine")
    dialog.target_edit.setText(str(tmp_path))
    dialog.start_export()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=60_000)
    assert "holds no earlier export" in dialog.status.text() and dialog.result is None
    assert dialog.open_button.isHidden()
    assert (tmp_path / "own.txt").read_text() == "mine"

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "experiment.json").write_text("{")
    assert dialog.set_experiment(broken) is False
    assert "cannot be read as JSON" in dialog.status.text()


@pytest.mark.slow
def test_report_is_written_off_the_gui_thread_and_offered(qtbot, experiment: Path, tmp_path: Path,
                                                          opened: Opened, monkeypatch) -> None:
    assert default_report_path(experiment) == experiment / f"{experiment.name}-report.html"
    target = tmp_path / "chosen"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(target), ""))
    parent = pg.QtWidgets.QWidget()
    qtbot.addWidget(parent)
    exporter = export_report(parent, experiment)
    with qtbot.waitSignal(exporter.written, timeout=120_000) as blocker:
        pass
    written = blocker.args[0]
    assert written == tmp_path / "chosen.html" and written.read_text().lstrip().lower().startswith("<!doctype html")
    qtbot.waitUntil(lambda: exporter.offer is not None and exporter.job is None, timeout=10_000)
    opener = next(b for b in exporter.offer.buttons() if b.text() == "Open in browser")
    opener.click()
    assert [u.toLocalFile() for u in opened.urls] == [str(written)]
    exporter.offer.close()

    failing = ReportExport()
    with qtbot.waitSignal(failing.failed, timeout=60_000) as blocker:
        failing.start(tmp_path / "no-experiment", tmp_path / "r.html")
    assert str(tmp_path / "r.html") in blocker.args[0]
    failing.wait()
    assert not (tmp_path / "r.html").exists()


def test_save_plot_writes_png_and_svg(qtbot, tmp_path: Path) -> None:
    widget = pg.PlotWidget()
    qtbot.addWidget(widget)
    widget.plot([1, 2, 3], [0.2, 0.5, 0.4])
    png = save_plot(widget, tmp_path / "curve.png", width=800)
    with Image.open(png) as picture:
        assert picture.format == "PNG" and picture.width == 800
    svg = save_plot(widget.getPlotItem(), tmp_path / "curve.svg")
    text = svg.read_text()
    assert "<svg" in text and ("<path" in text or "<polyline" in text)
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        save_plot(widget, tmp_path / "curve.gif")
