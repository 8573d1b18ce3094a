"""The experiment settings form, generated from the config's setting definitions (engine.config).

One widget per setting, with the setting's label, tooltip, limits, special text for None and
default; list fields are read by the same parsers as the command line. ``problems()`` lists
every problem at once: what cannot be read, then ``ExperimentConfig.problems()``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.config import (
    BACKBONE_IMAGE_SIZES,
    MODEL_FILE_SUFFIX,
    MODEL_NAMES,
    OPTIONAL,
    SEED_MODELS,
    SETTINGS,
    WEIGHT_CHOICES,
    ConfigError,
    ExperimentConfig,
    Problem,
    parse_value,
)
from engine.data.recommend import resolve_image_size
from engine.scale.cluster import parse_cluster

ERROR_STYLE = "color: #C0392B;"
WARNING_STYLE = "color: #B35900;"
HIDDEN = ("data_dir", "out")  # the data panel and the window's experiments folder give these
MAIN_GROUPS = ("data", "training")
SECTIONS = (("Study", ("study",)), ("Model", ("model",)), ("Advanced", ("advanced", "scale")))
OWN_MODEL = "Your own .keras file…"
OWN_WEIGHTS = "Weights file…"
CLUSTER_TIP = ("Several machines: HOST:PORT of every machine, this one (the chief, which keeps the record) first. "
               "Each batch is split over all of them; the log shows the command to start on the others.")

# When a setting matters, given the others; it is greyed out otherwise (its value is kept).
APPLIES: dict[str, Callable[[Callable[[str], Any]], bool]] = {
    "budget_seconds": lambda v: v("budget") == "time",
    "lr_reference_batch": lambda v: v("lr_scaling") != "none",
    "lr_grid": lambda v: v("lrs") is None,
    "lr_grid_factor": lambda v: v("lrs") is None and (v("lr_grid") or 1) > 1,
    "halving_eta": lambda v: v("tune") == "halving",
    "freeze_backbone": lambda v: v("model") not in SEED_MODELS,
    "fine_tune_from": lambda v: v("model") not in SEED_MODELS,
    **{name: (lambda v: v("ray_address") is not None) for name in ("trial_gpus", "trial_cpus", "ray_retries",
                                                                  "ray_data_path")},
}


def parse_cluster_text(text: str) -> tuple[Optional[list[str]], Optional[str]]:
    """Machine addresses from free text; None for empty (this machine only)."""
    try:
        return parse_cluster(text), None
    except ConfigError as exc:
        return None, f"Cluster: {str(exc).removeprefix('cluster: ')}"


def shown(problem: Problem) -> str:
    """A problem as the window words it: the setting's label as it appears on screen."""
    return f"{SETTINGS[problem.field].label}: {problem.text}"


class FileChoice(QComboBox):
    """Fixed choices plus a last entry that opens a file dialog; a chosen file becomes an entry of its own."""

    def __init__(self, words: tuple[str, ...], file_entry: str, file_filter: str) -> None:
        super().__init__()
        self.words, self.file_filter = words, file_filter
        for word in words:
            self.addItem(word, word)
        self.addItem(file_entry, None)
        self._last = 0
        self.activated.connect(self._on_activated)

    def value(self) -> str:
        return self.currentData()

    def set_value(self, value: str) -> None:
        if value not in self.words:
            if self.count() > len(self.words) + 1:
                self.removeItem(len(self.words))
            self.insertItem(len(self.words), value, value)
            self.setItemData(len(self.words), value, Qt.ItemDataRole.ToolTipRole)
        self.setCurrentIndex(self.findData(value))
        self._last = self.currentIndex()

    def _on_activated(self, index: int) -> None:
        if self.itemData(index) is not None:
            self._last = index
            return
        path, _ = QFileDialog.getOpenFileName(self, self.itemText(index).rstrip("…"), "", self.file_filter)
        if path:
            self.set_value(path)
        else:
            self.setCurrentIndex(self._last)


class OptionalValue(QWidget):
    """A checkbox that turns a setting on and a field for its value; checked with the field empty means the
    setting's ``bare`` value, as its flag given alone does (``--ray``: a local Ray runtime)."""

    changed = Signal()

    def __init__(self, name: str) -> None:
        super().__init__()
        spec = SETTINGS[name]
        self.name, self.bare = name, spec.bare
        self.check = QCheckBox(spec.label)
        self.text = QLineEdit()
        self.text.setPlaceholderText(f"{spec.bare} (when empty), or e.g. {spec.example}")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.check)
        layout.addWidget(self.text, 1)
        self.check.toggled.connect(self._toggled)
        self.text.textChanged.connect(self.changed)
        self._toggled(False)

    def value(self) -> Optional[str]:
        """None when off; ConfigError when the typed value cannot be read."""
        if not self.check.isChecked():
            return None
        return parse_value(self.name, self.text.text()) if self.text.text().strip() else self.bare

    def set_value(self, value: Optional[str]) -> None:
        self.check.setChecked(value is not None)
        self.text.setText("" if value in (None, self.bare) else value)

    def _toggled(self, on: bool) -> None:
        self.text.setEnabled(on)
        self.changed.emit()


class _Section(QWidget):
    """A titled group that opens and closes, so the form stays short; its title counts its problems."""

    def __init__(self, title: str) -> None:
        super().__init__()
        self.title = title
        self.toggle = QToolButton()
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setAutoRaise(True)
        self.body = QWidget()
        self.form = QFormLayout(self.body)
        self.form.setContentsMargins(12, 0, 0, 0)
        self.body.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toggle)
        layout.addWidget(self.body)
        self.toggle.toggled.connect(self._toggled)

    def show_problems(self, count: int) -> None:
        self.toggle.setText(f"{self.title} ({count} to fix)" if count else self.title)
        self.toggle.setStyleSheet(ERROR_STYLE if count else "")

    def _toggled(self, shown: bool) -> None:
        self.body.setVisible(shown)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)


class SettingsPanel(QWidget):
    """Every ExperimentConfig setting except the data folder and where experiments go.

    Each setting's widget is also an attribute named after it (``panel.epochs``), its message
    label ``panel.messages[name]``. ``changed`` fires on any edit; ``lock_changed`` when
    ``set_locked`` locks or unlocks the form.
    """

    changed = Signal()
    lock_changed = Signal(bool)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._train_count: Optional[int] = None
        self._locked = False
        self._base = ExperimentConfig(data_dir="", batch_sizes=[32, 256])
        self.editors: dict[str, QWidget] = {}
        self.messages: dict[str, QLabel] = {}
        for name, spec in SETTINGS.items():
            if name not in HIDDEN:
                editor = self._editor(name)
                editor.setToolTip(spec.help)
                self.editors[name] = editor
                setattr(self, name, editor)
                self.messages[name] = _message_label()
        self.batch_message, self.lr_message = self.messages["batch_sizes"], self.messages["lr"]
        self.devices_message = self.messages["devices"]
        self.cluster = QLineEdit()
        self.cluster.setPlaceholderText("this machine only; or HOST:PORT of each machine, this one first")
        self.cluster.setToolTip(CLUSTER_TIP)
        self.cluster_message = _message_label()
        self.suggestion = QLabel()
        self.suggestion.setWordWrap(True)
        self.use_native = QPushButton()
        self.use_native.clicked.connect(self._use_native_size)

        main = QFormLayout()
        self._add_rows(main, MAIN_GROUPS)
        self.sections = {title: _Section(title) for title, _groups in SECTIONS}
        for title, groups in SECTIONS:
            self._add_rows(self.sections[title].form, groups)
        suggestion = QHBoxLayout()
        suggestion.addWidget(self.suggestion, 1)
        suggestion.addWidget(self.use_native)
        self.sections["Model"].form.addRow(suggestion)
        self.sections["Advanced"].form.addRow("Cluster", self.cluster)
        self.sections["Advanced"].form.addRow(self.cluster_message)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(main)
        for section in self.sections.values():
            layout.addWidget(section)

        self.set_config(self._base)
        for editor in self.editors.values():
            _changed_signal(editor).connect(self._on_edit)
        self.cluster.textChanged.connect(self._on_edit)
        self._on_edit()

    # -- values -----------------------------------------------------------------------------------

    def set_config(self, config: ExperimentConfig) -> None:
        """Fill the form from a config (the remembered one, a settings file, or an old experiment's)."""
        self._base = config
        for name, editor in self.editors.items():
            _write(editor, name, getattr(config, name))

    def config(self, data_dir: str, out: str) -> ExperimentConfig:
        """The form as a config; call only when ``problems()`` is empty (a field that cannot be read keeps
        its last good value)."""
        values, _found = self._read_all()
        return dataclasses.replace(self._base, **values, data_dir=data_dir, out=out)

    def problems(self) -> list[str]:
        """Every problem that blocks Start, in the order of the form."""
        return [shown(p) for p in self._problems()] + [e for e in [self._cluster_problem()] if e]

    def warnings(self) -> list[str]:
        try:
            sizes = parse_value("batch_sizes", self.batch_sizes.text())
        except ConfigError:
            return []
        too_big = [s for s in sizes if self._train_count is not None and s > self._train_count]
        if not too_big:
            return []
        sizes_text = ", ".join(map(str, too_big))
        subject = f"Batch sizes {sizes_text} exceed" if len(too_big) > 1 else f"Batch size {sizes_text} exceeds"
        return [f"{subject} the training set ({self._train_count} images): each epoch is then a single step "
                f"on all {self._train_count} images"]

    def cluster_addresses(self) -> Optional[list[str]]:
        """The machines to train on (this one first), or None for this machine alone.

        Kept out of the config: it says where an experiment trains, not what it is."""
        return parse_cluster_text(self.cluster.text())[0]

    def set_cluster(self, addresses: Optional[list[str]]) -> None:
        self.cluster.setText(" ".join(addresses or []))

    def val_split_fraction(self) -> float:
        return _read(self.val_split, "val_split")

    def image_size_for(self, data_dir: str) -> int:
        """The image size a run on ``data_dir`` would train at (auto resolved as the engine resolves it)."""
        size = _read(self.image_size, "image_size")
        return resolve_image_size(ExperimentConfig(data_dir=data_dir, batch_sizes=[1], image_size=size))

    def set_train_count(self, count: Optional[int]) -> None:
        """The training-set size of the chosen folder, for the batch-size warning."""
        if count != self._train_count:
            self._train_count = count
            self._refresh()

    def set_locked(self, locked: bool) -> None:
        """Lock every setting (while training), or unlock them."""
        if locked != self._locked:
            self._locked = locked
            self._refresh()
            self.lock_changed.emit(locked)

    def is_locked(self) -> bool:
        return self._locked

    # -- internals --------------------------------------------------------------------------------

    def _editor(self, name: str) -> QWidget:
        spec = SETTINGS[name]
        if name == "model":
            return FileChoice(MODEL_NAMES, OWN_MODEL, f"Keras models (*{MODEL_FILE_SUFFIX})")
        if name == "weights":
            return FileChoice(WEIGHT_CHOICES, OWN_WEIGHTS, "Weights (*.weights.h5 *.h5 *.keras);;All files (*)")
        if spec.kind == "bool":
            return QCheckBox(spec.label)
        if spec.bare:
            return OptionalValue(name)
        if spec.choices:
            combo = QComboBox()
            for choice in spec.choices:
                combo.addItem(choice, choice)
            return combo
        optional = name in OPTIONAL
        if spec.kind == "int":
            spin = QSpinBox()
            low = int(spec.low if spec.low is not None else 0)
            spin.setRange(low - 1 if optional else low, int(spec.high if spec.high is not None else 2**31 - 1))
            spin.setGroupSeparatorShown(False)
        elif spec.kind == "float" and spec.decimals is not None:
            spin = QDoubleSpinBox()
            scale, step = (100 if spec.percent else 1), 10.0 ** -spec.decimals
            low = (spec.low or 0.0) * scale + (step if spec.low_open else 0.0)
            high = (spec.high if spec.high is not None else 1e9) * scale - (step if spec.high_open else 0.0)
            spin.setDecimals(spec.decimals)
            spin.setRange(low - step if optional else low, high)
        else:
            edit = QLineEdit()
            edit.setPlaceholderText(spec.none_text or (f"e.g. {spec.example.split(' or ')[0]}" if spec.example
                                                       else ""))
            return edit
        spin.setSuffix(" %" if spec.percent else spec.unit)
        spin.setSpecialValueText(spec.none_text if optional else spec.low_text)
        return spin

    def _add_rows(self, form: QFormLayout, groups: tuple[str, ...]) -> None:
        for name, editor in self.editors.items():
            if SETTINGS[name].group in groups:
                if isinstance(editor, (QCheckBox, OptionalValue)):
                    form.addRow(editor)
                else:
                    form.addRow(SETTINGS[name].label, editor)
                form.addRow(self.messages[name])

    def _read_all(self) -> tuple[dict[str, Any], list[Problem]]:
        """Every readable value, and a problem for each field that cannot be read."""
        values: dict[str, Any] = {}
        found: list[Problem] = []
        for name, editor in self.editors.items():
            try:
                values[name] = _read(editor, name)
            except ConfigError as exc:
                found.append(exc.problem or Problem(name, str(exc)))
        return values, found

    def _problems(self) -> list[Problem]:
        values, found = self._read_all()
        unread = {p.field for p in found}
        config = dataclasses.replace(self._base, **values)
        found += [p for p in config.problems() if p.field not in unread and p.field not in HIDDEN]
        order = list(SETTINGS)
        return sorted(found, key=lambda p: order.index(p.field))

    def _cluster_problem(self) -> Optional[str]:
        return parse_cluster_text(self.cluster.text())[1]

    def _peek(self, name: str) -> Any:
        try:
            return _read(self.editors[name], name)
        except ConfigError:
            return None

    def _on_edit(self) -> None:
        self._refresh()
        self.changed.emit()

    def _refresh(self) -> None:
        by_field: dict[str, list[str]] = {}
        for problem in self._problems():
            by_field.setdefault(problem.field, []).append(shown(problem))
        for name, label in self.messages.items():
            _show(label, " ".join(by_field.get(name, [])), ERROR_STYLE)
        for title, groups in SECTIONS:
            self.sections[title].show_problems(sum(len(texts) for name, texts in by_field.items()
                                                   if SETTINGS[name].group in groups))
        if "batch_sizes" not in by_field:
            _show(self.batch_message, " ".join(self.warnings()), WARNING_STYLE)
        cluster, cluster_error = parse_cluster_text(self.cluster.text())
        _show(self.cluster_message, cluster_error or (f"This machine is the chief of {len(cluster)}; Start shows the "
                                                      "command to run on the others." if cluster else ""),
              ERROR_STYLE if cluster_error else "")
        for name, editor in self.editors.items():
            applies = APPLIES.get(name)
            editor.setEnabled(not self._locked and (applies is None or applies(self._peek)))
        self.cluster.setEnabled(not self._locked)
        self._refresh_suggestion()

    def _refresh_suggestion(self) -> None:
        """A backbone with an image size below its minimum, or auto: say which size it wants, and offer it."""
        model, size = self._peek("model"), self._peek("image_size")
        sizes = BACKBONE_IMAGE_SIZES.get(model)
        wanted = sizes is not None and (size is None or size < sizes.minimum)
        self.suggestion.setVisible(wanted)
        self.use_native.setVisible(wanted)
        if sizes is not None and wanted:
            now = "auto" if size is None else f"{size} px"
            self.suggestion.setText(f"{model} was made for {sizes.native} px images and needs at least "
                                    f"{sizes.minimum} px; the image size is {now}.")
            self.use_native.setText(f"Use {sizes.native} px")
            self.use_native.setEnabled(not self._locked)

    def _use_native_size(self) -> None:
        sizes = BACKBONE_IMAGE_SIZES.get(self._peek("model"))
        if sizes is not None:
            self.image_size.setValue(sizes.native)


def _read(editor: QWidget, name: str) -> Any:
    """A widget's value as the config holds it; ConfigError when typed text cannot be read."""
    spec = SETTINGS[name]
    if isinstance(editor, QCheckBox):
        return editor.isChecked()
    if isinstance(editor, OptionalValue):
        return editor.value()
    if isinstance(editor, QComboBox):
        return editor.currentData()
    if isinstance(editor, (QSpinBox, QDoubleSpinBox)):
        value = editor.value()
        if name in OPTIONAL and value == editor.minimum():
            return None
        if isinstance(editor, QDoubleSpinBox):
            return round(value / 100, (spec.decimals or 0) + 2) if spec.percent else value
        return value
    return parse_value(name, editor.text())


def _write(editor: QWidget, name: str, value: Any) -> None:
    spec = SETTINGS[name]
    if isinstance(editor, QCheckBox):
        editor.setChecked(bool(value))
    elif isinstance(editor, (FileChoice, OptionalValue)):
        editor.set_value(value)
    elif isinstance(editor, QComboBox):
        editor.setCurrentIndex(max(0, editor.findData(value)))
    elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
        editor.setValue(editor.minimum() if value is None else value * 100 if spec.percent else value)
    elif isinstance(value, (list, tuple)):
        editor.setText(", ".join(map(str, value)))
    else:
        editor.setText("" if value is None else str(value))


def _changed_signal(editor: QWidget) -> Any:
    if isinstance(editor, QCheckBox):
        return editor.toggled
    if isinstance(editor, OptionalValue):
        return editor.changed
    if isinstance(editor, QComboBox):
        return editor.currentIndexChanged
    if isinstance(editor, (QSpinBox, QDoubleSpinBox)):
        return editor.valueChanged
    return editor.textChanged


def _message_label() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.hide()
    return label


def _show(label: QLabel, text: str, style: str) -> None:
    label.setText(text)
    label.setStyleSheet(style)
    label.setVisible(bool(text))

