"""File > Load settings… and Save settings…: the same TOML files as ``run --config`` (engine.config_file),
so settings move between the window, the command line and an experiment's ``config.toml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Protocol

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu

from engine.config import ConfigError
from engine.config_file import read_config, write_config
from gui.settings_panel import SettingsPanel

FILE_FILTER = "BatchLab settings (*.toml);;All files (*)"


class Host(Protocol):
    """What the main window offers: its settings and data panels, experiments folder, notices and log."""

    settings_panel: SettingsPanel
    data_panel: Any
    checkpoints: Path
    log: Any

    def show_notice(self, level: str, text: str) -> None: ...


def add_actions(window: Host, menu: QMenu) -> tuple[QAction, QAction]:
    """Add Load/Save settings to ``menu``; Load is disabled while the settings are locked (training)."""
    load = QAction("Load settings…", window, triggered=lambda: load_settings(window))
    load.setStatusTip("Fill the settings (and data folder) from a TOML file, e.g. an experiment's config.toml")
    save = QAction("Save settings…", window, triggered=lambda: save_settings(window))
    save.setStatusTip("Save the settings as a TOML file: python main.py run --config FILE repeats them")
    window.settings_panel.lock_changed.connect(lambda locked: load.setEnabled(not locked))
    menu.addSeparator()
    menu.addAction(load)
    menu.addAction(save)
    return load, save


def load_settings(window: Host, path: Optional[str] = None) -> bool:
    """Fill the form from ``path`` (asked for when None); a bad file gives a notice naming the file and key."""
    if window.settings_panel.is_locked():
        return False
    path = path or QFileDialog.getOpenFileName(window, "Load settings", str(window.checkpoints), FILE_FILTER)[0]
    if not path:
        return False
    try:
        config = read_config(path)
    except ConfigError as exc:
        window.show_notice("error", str(exc))
        return False
    window.settings_panel.set_config(config)
    if config.data_dir:
        window.data_panel.set_folder(config.data_dir)
    note = "" if Path(config.out) == window.checkpoints else \
        f"; experiments still go to {window.checkpoints} (the file says {config.out})"
    window.log.add("info", f"Settings loaded from {path}{note}")
    return True


def save_settings(window: Host, path: Optional[str] = None) -> bool:
    """Write the form to ``path`` (asked for when None); refused with the reasons while a setting is wrong."""
    problems = window.settings_panel.problems()
    if problems:
        window.show_notice("error", "The settings were not saved: " + "; ".join(problems))
        return False
    path = path or QFileDialog.getSaveFileName(window, "Save settings", "settings.toml", FILE_FILTER)[0]
    if not path:
        return False
    target = Path(path) if Path(path).suffix else Path(path).with_suffix(".toml")
    config = window.settings_panel.config(window.data_panel.folder(), str(window.checkpoints))
    try:
        write_config(config, target)
    except OSError as exc:
        window.show_notice("error", f"The settings were not saved: {exc.strerror or exc} ({target})")
        return False
    window.log.add("info", f"Settings saved to {target}")
    return True
