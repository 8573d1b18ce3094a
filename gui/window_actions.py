"""The main window's actions, menus and toolbar, and which of them are enabled when.

``build_actions(window)`` sets each action as an attribute of the window (``window.start_action``...);
``update_actions(window)`` recomputes what is enabled from the window's state, and is called after
anything that changes it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QToolBar

from engine.record.runs import best_run
from gui import settings_file
from gui.report_export import export_report
from gui.curves import PLOTS

ADVISOR_PLOTS = {"critical": "Steps vs samples to target", "noise_scale": "Gradient noise scale"}


def _action(window: Any, text: str, slot: Any, shortcut: str = "", tip: str = "") -> QAction:
    action = QAction(text, window, triggered=slot)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
    return action


def build_actions(window: Any) -> None:
    """Create the actions, the menu bar and the toolbar of ``window`` (a MainWindow)."""
    w = window
    w.start_action = _action(w, "Start", w.start, "Ctrl+R", "Train every batch size (Ctrl+R)")
    w.stop_action = _action(w, "Stop", w.stop, "Ctrl+.", "Stop after the current batch; finished epochs are kept")
    w.open_action = _action(w, "Open experiment…", w.open_experiment_dialog, "Ctrl+O",
                            "Show a past experiment's curves and results (Ctrl+O)")
    w.choose_data_action = _action(w, "Choose data folder…", w.data_panel.choose_folder, "Ctrl+Shift+O")
    w.reuse_action = _action(w, "Reuse its settings", w.reuse_settings, "",
                             "Fill the setup with the settings and data folder of the experiment shown")
    w.quit_action = _action(w, "Quit", w.close, "Ctrl+Q")
    w.export_action = _action(w, "Export best model…", w.export_selected, "Ctrl+E")
    w.save_csv_action = _action(w, "Save histories as CSV…", w.save_histories_csv, "",
                                "One row per run and epoch, every recorded metric")
    w.report_action = _action(w, "Export report…", lambda: export_report(w, w.record_dir), "",
                              "One self-contained HTML file: results, tuned learning rates, prediction, checklist")
    w.setup_action = QAction("Setup pane", w, checkable=True, checked=True, shortcut=QKeySequence("F9"))
    w.setup_action.setStatusTip("Show or hide the setup and history pane, to give the plots the room (F9)")
    w.setup_action.toggled.connect(w.set_setup_visible)
    w.save_plot_actions = {}
    titles = {**{key: title for key, (title, _label, _scale) in PLOTS.items()}, **ADVISOR_PLOTS}
    for key, title in titles.items():
        action = _action(w, f"{title}…", w._save_plot_from_menu, "", f"Save the {title.lower()} plot as PNG or SVG")
        action.setData(key)
        w.save_plot_actions[key] = action
    w.probe_action = _action(w, "Probe throughput…", w.open_probe, "",
                             "Train a few steps at growing batch sizes: images per second and memory, up to the "
                             "largest batch that fits")

    file_menu = w.menuBar().addMenu("&File")
    for action in (w.choose_data_action, w.open_action, w.reuse_action):
        file_menu.addAction(action)
    w.settings_actions = settings_file.add_actions(w, file_menu)  # Load / Save settings… (TOML)
    file_menu.addSeparator()
    file_menu.addAction(w.export_action)
    w.save_plot_menu = file_menu.addMenu("Save plot")
    w.save_plot_menu.addActions(list(w.save_plot_actions.values()))
    file_menu.addAction(w.save_csv_action)
    file_menu.addAction(w.report_action)
    file_menu.addSeparator()
    file_menu.addAction(w.quit_action)
    run_menu = w.menuBar().addMenu("&Run")
    for action in (w.start_action, w.stop_action, None, w.export_action):
        run_menu.addSeparator() if action is None else run_menu.addAction(action)
    view_menu = w.menuBar().addMenu("&View")
    view_menu.addAction(w.setup_action)
    view_menu.addSeparator()
    for action in (w.curves.auto_zoom_action, w.curves.log_loss_action):
        view_menu.addAction(action)
    tools_menu = w.menuBar().addMenu("&Tools")
    tools_menu.addAction(w.probe_action)

    toolbar = QToolBar("Main")
    toolbar.setObjectName("main_toolbar")
    toolbar.setMovable(False)
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    for action in (w.setup_action, None, w.start_action, w.stop_action, None, w.open_action, w.reuse_action, None,
                   w.export_action):
        toolbar.addSeparator() if action is None else toolbar.addAction(action)
    w.addToolBar(toolbar)
    start_button = toolbar.widgetForAction(w.start_action)
    start_button.setStyleSheet("QToolButton:enabled { font-weight: bold; color: #0B6E3B; }")
    start_button.setMinimumWidth(64)
    w.toolbar = toolbar


def export_target(window: Any) -> Any:
    """The run Export exports: the selected row's, else the best run (the starred one) with a checkpoint."""
    if window.record is None or window.record_dir is None or window.overlay_folders:
        return None
    selected = window.table.selected_run()
    if selected is not None:
        return selected if selected.get("checkpoint") else None
    return best_run(window.record["runs"], with_checkpoint=True)


def update_actions(window: Any) -> None:
    """Enable what can be done now; Start's tooltip, the status bar and the progress strip say why not."""
    w = window
    running = w.worker is not None
    w.settings_panel.set_locked(running)
    w.settings_panel.set_train_count(w.data_panel.train_count)
    problems = w.start_problems()
    w.start_action.setEnabled(not problems)
    w.start_action.setToolTip("Start training (Ctrl+R)" if not problems else
                              "Start is disabled:\n" + "\n".join(problems))
    w.stop_action.setEnabled(running and not w.worker.stop_token.is_set())
    w.open_action.setEnabled(not running)
    w.reuse_action.setEnabled(not running and w.record is not None and w.record_dir is not None)
    _update_export(w)
    has_history = w.record is not None and any(r.get("history") for r in w.record["runs"])
    w.save_csv_action.setEnabled(has_history and not w.overlay_folders)
    w.report_action.setEnabled(w.record_dir is not None and not running and not w.overlay_folders)
    for action in w.save_plot_actions.values():
        action.setEnabled(has_history)
    w.probe_action.setEnabled(not running and bool(w.data_panel.folder()))
    if running:
        w.statusBar().clearMessage()
    else:
        w.progress.show_ready(problems)
        if problems:
            w.statusBar().showMessage("Start is disabled: " + "; ".join(problems))
        else:
            w.statusBar().clearMessage()


def _update_export(w: Any) -> None:
    target = export_target(w)
    selected = w.table.selected_run() if w.record is not None else None
    best = best_run(w.record["runs"], with_checkpoint=True) if w.record is not None else None
    w.export_action.setEnabled(target is not None)
    if target is None:
        w.export_action.setText("Export best model…")
        w.export_action.setToolTip("No run with a saved checkpoint is shown yet" if selected is None else
                                   "The selected run has no saved checkpoint")
        return
    if target is best:
        w.export_action.setText("Export best model…")
        w.export_action.setToolTip(f"Export the best run ({_name(target)}, starred in the table) (Ctrl+E); "
                                   "select another row to export that one")
    else:
        w.export_action.setText(f"Export {_name(target)}…")
        w.export_action.setToolTip(f"Export the selected run, {_name(target)} (Ctrl+E)")


def _name(run: dict[str, Any]) -> str:
    text = f"batch {run['batch_size']}"
    if isinstance(run.get("lr"), (int, float)):
        text += f", lr {run['lr']:.3g}"
    return text + (f", repeat {run.get('repeat', 0) + 1}" if run.get("repeat") else "")
