"""Drop an image (or a folder of them) to see what a trained model says it is.

The model is any source engine.artifacts.predict accepts: a ``.keras`` file, an export folder,
or an experiment folder with a batch size. Loading and predicting run off the GUI thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.artifacts.predict import Prediction, Predictor, image_files, load_predictor, predict_files
from gui.evaluation_view import thumbnail
from gui.export_dialog import BackgroundJob


class PredictPanel(QWidget):
    """``set_model(source, batch_size=None)``, then drop images or call ``predict_paths``.

    ``predicted`` fires with the list of engine.artifacts.predict.Prediction once results are shown.
    """

    predicted = Signal(list)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.predictor: Optional[Predictor] = None
        self.results: list[Prediction] = []
        self.job: Optional[BackgroundJob] = None
        self._source: Optional[tuple[Path, Optional[int]]] = None
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
        self.hint = QLabel("Drop images or a folder here. Images are resized to the model's input size, "
                           "as in training.")
        self.hint.setStyleSheet("color: palette(mid);")
        self.list = QListWidget()
        self.list.setIconSize(QSize(48, 48))
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
            self.predictor = None
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
        wanted = self._source
        loaded = self.predictor

        def task(_log: object) -> tuple[tuple[Path, Optional[int]], Predictor, list[Prediction]]:
            predictor = loaded or load_predictor(*wanted)
            files = [f for p in paths for f in image_files(p)]
            return wanted, predictor, predict_files(predictor, files)

        self.hint.setText("Classifying…")
        self.job = BackgroundJob(task, self)
        # Queued, always: these fire on the worker thread and must reach the widgets on the GUI thread.
        self.job.succeeded.connect(self._show_results, Qt.ConnectionType.QueuedConnection)
        self.job.failed.connect(self._on_failed, Qt.ConnectionType.QueuedConnection)
        self.job.finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self.job.start()

    def _show_results(self, outcome: tuple[tuple[Path, Optional[int]], Predictor, list[Prediction]]) -> None:
        source, predictor, self.results = outcome
        if source == self._source:  # keep it loaded, unless another model was chosen meanwhile
            self.predictor = predictor
        self.list.clear()
        for result in self.results:
            if result.error:
                item = QListWidgetItem(f"{result.path.name}: not classified ({result.error})")
            else:
                item = QListWidgetItem(f"{result.class_name}  {result.confidence:.1%}   {result.path.name}")
                item.setIcon(thumbnail(result.path))
            item.setToolTip(str(result.path))
            self.list.addItem(item)
        done = sum(r.error is None for r in self.results)
        self.hint.setText(f"{done} of {len(self.results)} images classified with {predictor.source}.")
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

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _local_paths(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = _local_paths(event)
        if paths:
            event.acceptProposedAction()
            self.predict_paths(paths)


def _local_paths(event: QDragEnterEvent | QDropEvent) -> list[Path]:
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
