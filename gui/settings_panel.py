"""The experiment settings form; it turns widgets into an ``ExperimentConfig`` and says what is wrong."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.config import BUDGETS, LR_SCALINGS, PRECISIONS, ConfigError, ExperimentConfig
from engine.scale.cluster import parse_cluster

ERROR_STYLE = "color: #C0392B;"
WARNING_STYLE = "color: #B35900;"

_TIPS = {
    "batch_sizes": "Batch sizes to compare, separated by commas; each trains the same network from the same "
                   "initial weights on the same split.",
    "epochs": "Most epochs a run may train (early stopping may end it sooner).",
    "patience": "Stop a run after this many epochs without a better validation accuracy; 0 turns this off.",
    "lr": "Adam learning rate (before any scaling by batch size), e.g. 0.001 or 1e-3.",
    "image_size": "Images are resized to this many pixels square before training.",
    "val_split": "Share of each class held out for validation; the same split for every batch size.",
    "augment": "Random shear, zoom, shift and horizontal flip of training images, as in the seed notebook.",
    "seed": "Seeds the split, the initial weights and the augmentation: the same seed repeats an experiment.",
    "name": "Optional name added to the experiment folder, to find it again in the history.",
    "precision": "auto: mixed precision where the device supports it, else 32-bit floats.",
    "lr_scaling": "Scale the learning rate with the batch size relative to a reference batch size.",
    "lr_reference_batch": "The batch size whose learning rate is the one given above.",
    "warmup_epochs": "Raise the learning rate linearly from zero over this many epochs.",
    "budget": "What every run gets the same amount of: epochs, optimizer steps, or wall-clock time.",
    "budget_seconds": "Wall-clock seconds each run may train, for the time budget.",
    "repeats": "Train every batch size this many times with different seeds, to see the spread.",
    "target_accuracy": "Validation accuracy the time-to-target comparison uses; auto is 95 % of the best run.",
    "noise_scale": "Estimate the gradient noise scale (a hint of the largest useful batch size); costs extra time.",
    "devices": "Devices to train on, e.g. GPU:0 GPU:1. Empty: every visible GPU (several are used together with "
               "MirroredStrategy; the batch size stays the global batch), else the CPU.",
    "parallel": "Train the batch sizes at the same time, one run per device (needs as many devices as runs "
                "to gain anything).",
    "cluster": "Several machines: HOST:PORT of every machine, this one (the chief, which keeps the record) "
               "first. Each batch is split over all of them; the log shows the command to start on the others.",
}


def parse_batch_sizes(text: str) -> tuple[list[int], Optional[str]]:
    """Batch sizes from free text ('32, 256'); the error names the offending entry."""
    tokens = [t for t in re.split(r"[,;\s]+", text.strip()) if t]
    if not tokens:
        return [], "Batch sizes: give at least one, e.g. 32, 256"
    sizes: list[int] = []
    for token in tokens:
        if not re.fullmatch(r"\d+", token) or int(token) < 1:
            return [], f"Batch sizes: '{token}' is not a positive whole number"
        sizes.append(int(token))
    dupes = sorted({s for s in sizes if sizes.count(s) > 1})
    if dupes:
        return [], f"Batch sizes: {', '.join(map(str, dupes))} given more than once"
    return sizes, None


def parse_devices(text: str) -> tuple[Optional[list[str]], Optional[str]]:
    """Device names from free text ('GPU:0 gpu:1'); None for empty (every visible GPU)."""
    tokens = [t.upper() for t in re.split(r"[,;\s]+", text.strip()) if t]
    if not tokens:
        return None, None
    for token in tokens:
        if not re.fullmatch(r"(GPU|CPU):\d+", token):
            return None, f"Devices: '{token}' is not a device name like GPU:0 or CPU:0"
    dupes = sorted({t for t in tokens if tokens.count(t) > 1})
    if dupes:
        return None, f"Devices: {', '.join(dupes)} given more than once"
    return tokens, None


def parse_cluster_text(text: str) -> tuple[Optional[list[str]], Optional[str]]:
    """Machine addresses from free text; None for empty (this machine only)."""
    try:
        return parse_cluster(text), None
    except ConfigError as exc:
        return None, f"Cluster: {str(exc).removeprefix('cluster: ')}"


def parse_lr(text: str) -> tuple[Optional[float], Optional[str]]:
    try:
        value = float(text.strip())
    except ValueError:
        return None, f"Learning rate: '{text.strip()}' is not a number (e.g. 0.001 or 1e-3)"
    if not math.isfinite(value) or not 0 < value <= 10:
        return None, f"Learning rate: {text.strip()} must be positive and at most 10"
    return value, None


class SettingsPanel(QWidget):
    """Every ExperimentConfig setting except the data folder; ``changed`` fires on any edit."""

    changed = Signal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._train_count: Optional[int] = None
        self.name = QLineEdit()
        self.name.setPlaceholderText("optional")
        self.batch_sizes = QLineEdit()
        self.batch_sizes.setPlaceholderText("e.g. 32, 256")
        self.batch_message = QLabel()
        self.batch_message.setWordWrap(True)
        self.batch_message.hide()
        self.epochs = _spin(1, 100_000)
        self.patience = _spin(0, 100_000, special="off")
        self.lr = QLineEdit()
        self.lr_message = QLabel()
        self.lr_message.setStyleSheet(ERROR_STYLE)
        self.lr_message.setWordWrap(True)
        self.lr_message.hide()
        self.image_size = _spin(16, 1024, suffix=" px")
        self.val_split = QDoubleSpinBox()
        self.val_split.setRange(1.0, 99.0)
        self.val_split.setDecimals(1)
        self.val_split.setSingleStep(5.0)
        self.val_split.setSuffix(" %")
        self.augment = QCheckBox("Augment training images")
        self.seed = _spin(0, 2_147_483_647)

        self.precision = _combo(PRECISIONS)
        self.lr_scaling = _combo(LR_SCALINGS)
        self.lr_reference_batch = _spin(0, 1_000_000, special="smallest batch size")
        self.warmup_epochs = QDoubleSpinBox()
        self.warmup_epochs.setRange(0.0, 10_000.0)
        self.warmup_epochs.setDecimals(1)
        self.warmup_epochs.setSuffix(" epochs")
        self.budget = _combo(BUDGETS)
        self.budget_seconds = QDoubleSpinBox()
        self.budget_seconds.setRange(1.0, 10_000_000.0)
        self.budget_seconds.setDecimals(0)
        self.budget_seconds.setSuffix(" s per run")
        self.repeats = _spin(1, 100)
        self.target_accuracy = QDoubleSpinBox()
        self.target_accuracy.setRange(0.0, 100.0)
        self.target_accuracy.setDecimals(1)
        self.target_accuracy.setSuffix(" %")
        self.target_accuracy.setSpecialValueText("auto (95 % of the best)")
        self.noise_scale = QCheckBox("Estimate the gradient noise scale")
        self.devices = QLineEdit()
        self.devices.setPlaceholderText("e.g. GPU:0 GPU:1 (empty = all)")
        self.devices_message = QLabel()
        self.devices_message.setWordWrap(True)
        self.devices_message.hide()
        self.parallel = QCheckBox("One run per device, in parallel")
        self.cluster = QLineEdit()
        self.cluster.setPlaceholderText("this machine only; or HOST:PORT of each machine, this one first")
        self.cluster_message = QLabel()
        self.cluster_message.setWordWrap(True)
        self.cluster_message.hide()

        main = QFormLayout()
        _rows(main, (("Name", self.name), ("Batch sizes", self.batch_sizes), (None, self.batch_message),
                     ("Epochs", self.epochs), ("Patience", self.patience), ("Learning rate", self.lr),
                     (None, self.lr_message), ("Image size", self.image_size),
                     ("Validation split", self.val_split), (None, self.augment), ("Seed", self.seed)))
        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("Advanced")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.setAutoRaise(True)
        self.advanced = QWidget()
        advanced = QFormLayout(self.advanced)
        advanced.setContentsMargins(12, 0, 0, 0)
        _rows(advanced, (("Precision", self.precision), ("LR scaling", self.lr_scaling),
                         ("Reference batch", self.lr_reference_batch), ("Warm-up", self.warmup_epochs),
                         ("Budget", self.budget), ("Time budget", self.budget_seconds), ("Repeats", self.repeats),
                         ("Target accuracy", self.target_accuracy), (None, self.noise_scale),
                         ("Devices", self.devices), (None, self.devices_message), (None, self.parallel),
                         ("Cluster", self.cluster), (None, self.cluster_message)))
        self.advanced.hide()
        self.advanced_toggle.toggled.connect(self._toggle_advanced)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(main)
        layout.addWidget(self.advanced_toggle)
        layout.addWidget(self.advanced)

        for attr, tip in _TIPS.items():
            getattr(self, attr).setToolTip(tip)
        self.set_config(ExperimentConfig(data_dir="", batch_sizes=[32, 256]))
        for signal in (self.name.textChanged, self.batch_sizes.textChanged, self.lr.textChanged,
                       self.epochs.valueChanged, self.patience.valueChanged, self.image_size.valueChanged,
                       self.val_split.valueChanged, self.augment.toggled, self.seed.valueChanged,
                       self.precision.currentIndexChanged, self.lr_scaling.currentIndexChanged,
                       self.lr_reference_batch.valueChanged, self.warmup_epochs.valueChanged,
                       self.budget.currentIndexChanged, self.budget_seconds.valueChanged,
                       self.repeats.valueChanged, self.target_accuracy.valueChanged, self.noise_scale.toggled,
                       self.devices.textChanged, self.parallel.toggled, self.cluster.textChanged):
            signal.connect(self._on_edit)
        self._on_edit()

    # -- values -----------------------------------------------------------------------------------

    def set_config(self, config: ExperimentConfig) -> None:
        """Fill the form from a config (the remembered one, or an old experiment's).

        Settings the form does not show are kept as they are and passed on by ``config``.
        """
        self._base = config
        self.name.setText(config.name or "")
        self.batch_sizes.setText(", ".join(map(str, config.batch_sizes)))
        self.epochs.setValue(config.epochs)
        self.patience.setValue(config.patience)
        self.lr.setText(f"{config.lr:g}")
        self.image_size.setValue(config.image_size)
        self.val_split.setValue(100 * config.val_split)
        self.augment.setChecked(config.augment)
        self.seed.setValue(config.seed)
        self.precision.setCurrentIndex(max(0, self.precision.findData(config.precision)))
        self.lr_scaling.setCurrentIndex(max(0, self.lr_scaling.findData(config.lr_scaling)))
        self.lr_reference_batch.setValue(config.lr_reference_batch or 0)
        self.warmup_epochs.setValue(config.warmup_epochs)
        self.budget.setCurrentIndex(max(0, self.budget.findData(config.budget)))
        self.budget_seconds.setValue(config.budget_seconds or 600)
        self.repeats.setValue(config.repeats)
        self.target_accuracy.setValue(100 * config.target_accuracy if config.target_accuracy else 0.0)
        self.noise_scale.setChecked(config.noise_scale)
        self.devices.setText(" ".join(config.devices or []))
        self.parallel.setChecked(config.parallel)

    def config(self, data_dir: str, out: str) -> ExperimentConfig:
        """The form as a config; call only when ``problems()`` is empty."""
        sizes, _ = parse_batch_sizes(self.batch_sizes.text())
        lr, _ = parse_lr(self.lr.text())
        budget = self.budget.currentData()
        return replace(
            self._base, data_dir=data_dir, batch_sizes=sizes, epochs=self.epochs.value(),
            patience=self.patience.value(), image_size=self.image_size.value(),
            val_split=round(self.val_split.value() / 100, 4),
            lr=lr if lr is not None else 0.0, seed=self.seed.value(), augment=self.augment.isChecked(), out=out,
            precision=self.precision.currentData(), lr_scaling=self.lr_scaling.currentData(),
            lr_reference_batch=self.lr_reference_batch.value() or None,
            warmup_epochs=self.warmup_epochs.value(), budget=budget,
            budget_seconds=self.budget_seconds.value() if budget == "time" else None,
            repeats=self.repeats.value(),
            target_accuracy=self.target_accuracy.value() / 100 or None,
            noise_scale=self.noise_scale.isChecked(), name=self.name.text().strip() or None,
            devices=parse_devices(self.devices.text())[0], parallel=self.parallel.isChecked(),
        )

    def cluster_addresses(self) -> Optional[list[str]]:
        """The machines to train on (this one first), or None for this machine alone.

        Kept out of the config: it says where an experiment trains, not what it is."""
        return parse_cluster_text(self.cluster.text())[0]

    def set_cluster(self, addresses: Optional[list[str]]) -> None:
        self.cluster.setText(" ".join(addresses or []))

    def val_split_fraction(self) -> float:
        return round(self.val_split.value() / 100, 4)

    def set_train_count(self, count: Optional[int]) -> None:
        """The training-set size of the chosen folder, for the batch-size warning."""
        if count != self._train_count:
            self._train_count = count
            self._refresh_messages()

    def problems(self) -> list[str]:
        """Messages for settings that block Start."""
        found = [parse_batch_sizes(self.batch_sizes.text())[1], parse_lr(self.lr.text())[1],
                 parse_devices(self.devices.text())[1], parse_cluster_text(self.cluster.text())[1]]
        return [p for p in found if p]

    def warnings(self) -> list[str]:
        sizes, error = parse_batch_sizes(self.batch_sizes.text())
        if error or self._train_count is None:
            return []
        too_big = [s for s in sizes if s > self._train_count]
        if not too_big:
            return []
        sizes_text = ", ".join(map(str, too_big))
        subject = f"Batch sizes {sizes_text} exceed" if len(too_big) > 1 else f"Batch size {sizes_text} exceeds"
        return [f"{subject} the training set ({self._train_count} images): each epoch is then a single step "
                f"on all {self._train_count} images"]

    # -- internals --------------------------------------------------------------------------------

    def _on_edit(self) -> None:
        self._refresh_messages()
        self.changed.emit()

    def _refresh_messages(self) -> None:
        error = parse_batch_sizes(self.batch_sizes.text())[1]
        warnings = self.warnings()
        _show(self.batch_message, error or " ".join(warnings), ERROR_STYLE if error else WARNING_STYLE)
        _show(self.lr_message, parse_lr(self.lr.text())[1] or "", ERROR_STYLE)
        _show(self.devices_message, parse_devices(self.devices.text())[1] or "", ERROR_STYLE)
        cluster, cluster_error = parse_cluster_text(self.cluster.text())
        _show(self.cluster_message, cluster_error or (f"This machine is the chief of {len(cluster)}; Start shows the "
                                                      "command to run on the others." if cluster else ""),
              ERROR_STYLE if cluster_error else "")
        self.budget_seconds.setEnabled(self.budget.currentData() == "time")
        self.lr_reference_batch.setEnabled(self.lr_scaling.currentData() != "none")

    def _toggle_advanced(self, shown: bool) -> None:
        self.advanced.setVisible(shown)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)


def _spin(low: int, high: int, suffix: str = "", special: str = "") -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSuffix(suffix)
    spin.setSpecialValueText(special)
    spin.setGroupSeparatorShown(False)
    return spin


def _combo(values: tuple[str, ...]) -> QComboBox:
    combo = QComboBox()
    for value in values:
        combo.addItem(value, value)
    return combo


def _rows(form: QFormLayout, rows: tuple) -> None:
    for label, widget in rows:
        if label is None:
            form.addRow(widget)
        else:
            form.addRow(label, widget)


def _show(label: QLabel, text: str, style: str) -> None:
    label.setText(text)
    label.setStyleSheet(style)
    label.setVisible(bool(text))
