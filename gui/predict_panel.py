"""Drop an image (or a folder of them) to see what a trained model says it is.

The model is any source engine.artifacts.predict accepts: a ``.keras`` file, an export folder,
or an experiment folder with a batch size. Each result names the image by its folder and file,
gives its true class when the folder is one of the model's classes, shows the three likeliest
classes as bars, and warns when the image looks nothing like the experiment's validation images
(engine.artifacts.ood). Loading and predicting run off the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from engine.artifacts.evaluate import EvaluationError
from engine.artifacts.ood import Familiarity, Reference, check_files, experiment_of, reference_for
from engine.artifacts.predict import Prediction, Predictor, image_files, load_predictor, predict_files
from engine.record.store import RecordError
from gui.evaluation_view import thumbnail
from gui.export_dialog import BackgroundJob

ICON = 64
ROW_HEIGHT = ICON + 14
BARS_WIDTH = 250
RIGHT, WRONG, WARN, QUIET = QColor("#0B6E3B"), QColor("#8E1F14"), QColor("#8A4B00"), QColor("#555555")
BAR, TRUE_BAR, TRACK = QColor("#4A5A6A"), QColor("#0B6E3B"), QColor("#E4E4E4")
RESULT = Qt.ItemDataRole.UserRole + 1

Source = tuple[Path, Optional[int]]


@dataclass
class Tried:
    """One classified file as the list shows it."""

    prediction: Prediction
    folder: str  # the image's folder name
    true_class: Optional[str]  # the folder, when it is one of the model's classes
    familiarity: Optional[Familiarity]
    familiarity_words: Optional[str]

    @property
    def name(self) -> str:
        return f"{self.folder}/{self.prediction.path.name}" if self.folder else self.prediction.path.name

    @property
    def correct(self) -> Optional[bool]:
        if self.true_class is None or self.prediction.error:
            return None
        return self.prediction.class_name == self.true_class

    @property
    def unusual(self) -> bool:
        return self.familiarity is not None and self.familiarity.unusual

    def verdict(self) -> str:
        """'true class circle: right', 'folder "misc" is not a class of this model', or the error."""
        if self.prediction.error:
            return f"not classified: {self.prediction.error}"
        if self.true_class is None:
            return f"folder “{self.folder}” is not a class of this model: no true class" if self.folder else \
                "no true class"
        return f"true class {self.true_class}: {'right' if self.correct else 'wrong'}"

    def text(self) -> str:
        """Every line the row shows, as plain text (the item's display text and tooltip)."""
        lines = [self.name, self.verdict()]
        if self.prediction.top:
            lines.append("top 3: " + ", ".join(f"{name} {p:.1%}" for name, p in self.prediction.top))
        if self.familiarity_words:
            lines.append(("⚠ " if self.unusual else "") + self.familiarity_words)
        return "\n".join(lines)


class PredictPanel(QWidget):
    """``set_model(source, batch_size=None)``, then drop images or call ``predict_paths``.

    ``predicted`` fires with the list of engine.artifacts.predict.Prediction once results are shown;
    ``tried`` holds the same results with their folder, true class and familiarity.
    """

    predicted = Signal(list)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.predictor: Optional[Predictor] = None
        self.reference: Optional[Reference] = None
        self.reference_problem: Optional[str] = None
        self.results: list[Prediction] = []
        self.tried: list[Tried] = []
        self.job: Optional[BackgroundJob] = None
        self._source: Optional[Source] = None
        self._queued: list[Path] = []

        self.model_label = QLabel("No model chosen.")
        self.model_label.setWordWrap(True)
        choose_file = QPushButton("Model file…")
        choose_file.setToolTip("A .keras checkpoint or export")
        choose_file.clicked.connect(self._choose_model_file)
        choose_folder = QPushButton("Export folder…")
        choose_folder.setToolTip("A folder written by Export (holds batchlab_export.json)")
        choose_folder.clicked.connect(self._choose_model_folder)
        images = QPushButton("Images…")
        images.clicked.connect(self._choose_images)
        row = QHBoxLayout()
        row.addWidget(self.model_label, 1)
        row.addWidget(choose_file)
        row.addWidget(choose_folder)
        row.addWidget(images)
        self.hint = QLabel("Drop images or a folder here. Images are resized to the model's input size, as in "
                           "training; an image inside a class's folder is checked against that class.")
        self.hint.setWordWrap(True)
        self.hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hint.setToolTip("Distance: how far an image's brightness, contrast, edge strength and colourfulness lie "
                             "from the experiment's validation images, in robust standard deviations. An image is "
                             "flagged beyond the distance 99% of the validation images stay within.")
        self.list = QListWidget()
        self.list.setItemDelegate(ResultDelegate(self.list))
        self.list.setUniformItemSizes(True)
        self.list.setIconSize(QSize(ICON, ICON))
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.hint)
        layout.addWidget(self.list, 1)

    # -- model ------------------------------------------------------------------------------------

    def set_model(self, source: Path | str, batch_size: Optional[int] = None, label: Optional[str] = None) -> None:
        """Use ``source`` for the next predictions; it is loaded (safely) on first use.

        ``label`` names the model for the user instead of its (long) path.
        """
        if self._source != (Path(source), batch_size):  # the same model stays loaded
            self._source = (Path(source), batch_size)
            self.predictor, self.reference, self.reference_problem = None, None, None
        which = f" (batch size {batch_size})" if batch_size else ""
        self.model_label.setText(f"Model: {label or str(source) + which}")
        self.model_label.setToolTip(str(source))

    def _choose_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model", "", "Keras model (*.keras)")
        if path:
            self.set_model(path)

    def _choose_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export or experiment folder")
        if folder:
            self.set_model(folder)

    def _choose_images(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Images to classify")
        if paths:
            self.predict_paths([Path(p) for p in paths])

    # -- predicting -------------------------------------------------------------------------------

    def predict_paths(self, paths: list[Path]) -> None:
        """Classify files (folders are searched); results replace the list when ready."""
        if self._source is None:
            self.model_label.setText("Choose a model first (a .keras file, an export or an experiment folder).")
            return
        if self.job is not None:
            self._queued = list(paths)
            return
        wanted, loaded = self._source, self.predictor
        known = (self.reference, self.reference_problem) if loaded is not None else None

        def task(_log: object) -> tuple[Source, Predictor, tuple[Optional[Reference], Optional[str]], list[Tried]]:
            predictor = loaded or load_predictor(*wanted)
            reference, problem = known or familiar_images(wanted[0])
            files = [f for p in paths for f in image_files(p)]
            return wanted, predictor, (reference, problem), tried(predictor, reference, files)

        self.hint.setText("Classifying…")
        self.job = BackgroundJob(task, self)
        # Queued, always: these fire on the worker thread and must reach the widgets on the GUI thread.
        self.job.succeeded.connect(self._show_results, Qt.ConnectionType.QueuedConnection)
        self.job.failed.connect(self._on_failed, Qt.ConnectionType.QueuedConnection)
        self.job.finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self.job.start()

    def _show_results(self, outcome: tuple[Source, Predictor, tuple[Optional[Reference], Optional[str]],
                                           list[Tried]]) -> None:
        source, predictor, (reference, problem), self.tried = outcome
        if source == self._source:  # keep it loaded, unless another model was chosen meanwhile
            self.predictor, self.reference, self.reference_problem = predictor, reference, problem
        self.results = [t.prediction for t in self.tried]
        self.list.clear()
        for result in self.tried:
            item = QListWidgetItem(result.text())
            item.setData(RESULT, result)
            item.setToolTip(f"{result.prediction.path}\n{result.text()}")
            if not result.prediction.error:
                item.setIcon(thumbnail(result.prediction.path, ICON))
            self.list.addItem(item)
        self.hint.setText(summary_line(self.tried, predictor, problem))
        self.predicted.emit(self.results)

    def _on_failed(self, text: str) -> None:
        self.hint.setText(f"Cannot classify: {text}")

    def _on_finished(self) -> None:
        self.job.wait()  # finished() fires just before the thread ends
        self.job.deleteLater()
        self.job = None
        if self._queued:
            queued, self._queued = self._queued, []
            self.predict_paths(queued)

    # -- drag and drop ----------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt's name
        if _local_paths(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt's name
        paths = _local_paths(event)
        if paths:
            event.acceptProposedAction()
            self.predict_paths(paths)


def familiar_images(source: Path) -> tuple[Optional[Reference], Optional[str]]:
    """The validation images' statistics of the model's experiment, or why there are none."""
    experiment = experiment_of(source)
    if experiment is None:
        return None, ("no check against the training data: this model is not inside an experiment folder, so "
                      "there are no validation images to compare with")
    try:
        return reference_for(experiment), None
    except (EvaluationError, RecordError, ValueError) as exc:
        return None, f"no check against the training data: {exc}"


def tried(predictor: Predictor, reference: Optional[Reference], files: list[Path]) -> list[Tried]:
    """Classify ``files`` and say, for each, its folder, true class and how familiar it looks."""
    predictions = predict_files(predictor, files)
    checks = check_files(reference, files, predictor.image_size) if reference is not None else [None] * len(files)
    out = []
    for prediction, check in zip(predictions, checks):
        folder = prediction.path.parent.name
        out.append(Tried(prediction, folder, folder if folder in predictor.classes else None, check,
                         reference.words(check) if reference is not None and check is not None else None))
    return out


def summary_line(results: list[Tried], predictor: Predictor, problem: Optional[str]) -> str:
    """'5 of 5 images classified with …: 3 of 4 with a known class right; 1 looks unlike the training data.'"""
    done = [r for r in results if not r.prediction.error]
    text = f"{len(done)} of {len(results)} images classified with {predictor.source}."
    known = [r for r in done if r.correct is not None]
    if known:
        text += f" {sum(bool(r.correct) for r in known)} of {len(known)} in a class's folder are right."
    unusual = sum(r.unusual for r in done)
    if unusual:
        text += (f" {unusual} look{'s' if unusual == 1 else ''} unlike the training data: "
                 "treat what the model says about them with suspicion.")
    if problem:
        text += f" ({problem[0].upper()}{problem[1:]}.)"
    return text


class ResultDelegate(QStyledItemDelegate):
    """A result row: thumbnail, name, verdict and familiarity on the left, the top-3 bars on the right."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:  # noqa: N802
        return QSize(200, ROW_HEIGHT)  # the list gives every row its full width

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        result: Optional[Tried] = index.data(RESULT)
        if result is None:
            super().paint(painter, option, index)
            return
        painter.save()
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(option.rect, option.palette.highlight().color().lighter(170))
        rect = option.rect.adjusted(6, 5, -8, -5)
        icon = index.data(Qt.ItemDataRole.DecorationRole)
        if icon is not None and not icon.isNull():
            icon.paint(painter, QRect(rect.left(), rect.top(), ICON, ICON))
        bars = min(BARS_WIDTH, max(150, rect.width() // 3))
        left = QRect(rect.left() + ICON + 10, rect.top(), rect.width() - ICON - bars - 24, rect.height())
        line = QFontMetrics(option.font).lineSpacing()
        bold = QFont(option.font)
        bold.setBold(True)
        rows = [(result.name, bold, option.palette.text().color()),
                (result.verdict(), option.font, RIGHT if result.correct else WRONG if result.correct is False
                 else QUIET)]
        if result.familiarity_words:
            rows.append((("⚠ " if result.unusual else "") + result.familiarity_words, option.font,
                         WARN if result.unusual else QUIET))
        for i, (text, font, colour) in enumerate(rows):
            painter.setFont(font)
            painter.setPen(colour)
            elided = QFontMetrics(font).elidedText(text, Qt.TextElideMode.ElideRight, left.width())
            painter.drawText(QRect(left.left(), left.top() + i * line, left.width(), line),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, elided)
        self._bars(painter, option, QRect(rect.right() - bars, rect.top(), bars, rect.height()), result)
        painter.restore()

    @staticmethod
    def _bars(painter: QPainter, option: QStyleOptionViewItem, area: QRect, result: Tried) -> None:
        """The top 3 classes: name, a bar as long as its probability, the percentage."""
        metrics = QFontMetrics(option.font)
        line = max(metrics.height() + 4, area.height() // 3)
        names = min(90, area.width() // 3)
        numbers = metrics.horizontalAdvance("100.0%") + 6
        painter.setFont(option.font)
        for i, (name, probability) in enumerate(result.prediction.top):
            top = area.top() + i * line
            painter.setPen(option.palette.text().color())
            painter.drawText(QRect(area.left(), top, names - 4, line), Qt.AlignmentFlag.AlignRight |
                             Qt.AlignmentFlag.AlignVCenter, metrics.elidedText(name, Qt.TextElideMode.ElideRight,
                                                                                names - 4))
            track = QRect(area.left() + names, top + line // 4, area.width() - names - numbers, line // 2)
            painter.fillRect(track, TRACK)
            filled = QRect(track.left(), track.top(), max(1, round(track.width() * probability)), track.height())
            painter.fillRect(filled, TRUE_BAR if name == result.true_class else BAR)
            painter.drawText(QRect(track.right() + 4, top, numbers, line),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, f"{probability:.1%}")


def _local_paths(event: QDragEnterEvent | QDropEvent) -> list[Path]:
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
