"""The real window on a real X server (Xvfb, Qt's xcb platform): it fits the screen and draws.

Each test starts its own Xvfb on a free display (tests/helpers.py) and runs the window in a
fresh process, as ``python main.py`` would. ``python tests/test_gui_xcb.py SHOTS_DIR`` drives
a whole session (first launch, training, finished, History overlay) at the four screen sizes
the notes show and saves a screenshot of the X screen at each stage.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import running_xvfb

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # real training or a real X server: over 20 s each

# Runs inside the app's process: the start-up screen, the window, then a script of stages. argv: a JSON
# dict with shots (folder or ""), prefix, stages (list), batch_sizes, lr_grid, epochs, overlay (bool).
DRIVER = r"""
import json, subprocess, sys, time
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

plan = json.loads(sys.argv[1])
app = QApplication(sys.argv[:1])
app.setOrganizationName("BatchLab")
app.setApplicationName("BatchLab")
app.setStyle("Fusion")
facts = {"stages": []}

def shot(name):
    app.processEvents()
    if plan["shots"]:
        subprocess.run(["import", "-window", "root", f"{plan['shots']}/{plan['prefix']}-{name}.png"], check=True)
    facts["stages"].append(name)

from gui.startup import load_behind_screen
QTimer.singleShot(1500, lambda: shot("startup") if "startup" in plan["stages"] else None)
facts["load_error"] = load_behind_screen(app)
from gui.main_window import MainWindow
window = MainWindow(QSettings())
window.show()
steps = list(plan["stages"])
if "startup" in steps:
    steps.remove("startup")

def facts_now():
    screen = QGuiApplication.primaryScreen().availableGeometry()
    frame = window.frameGeometry()
    views = {key: [plot.getViewBox().width(), plot.getViewBox().height()] for key, plot in window.curves.plots.items()}
    return {"platform": QGuiApplication.platformName(), "screen": [screen.width(), screen.height()],
            "frame": [frame.x(), frame.y(), frame.width(), frame.height()],
            "minimum": [window.minimumSizeHint().width(), window.minimumSizeHint().height()],
            "views": views, "title": window.windowTitle(), "exposed": window.windowHandle().isExposed()}

def wait(condition, then, limit=600):
    started = time.monotonic()
    def poll():
        if condition() or time.monotonic() - started > limit:
            then()
        else:
            QTimer.singleShot(200, poll)
    poll()

def next_step():
    if not steps:
        facts["end"] = facts_now()
        print("FACTS " + json.dumps(facts), flush=True)
        window.close()
        app.quit()
        return
    step = steps.pop(0)
    if step == "first-launch":
        wait(lambda: window.windowHandle().isExposed() and window.data_panel.report is not None,
             lambda: (facts.update(first=facts_now()), shot(step), next_step()))
    elif step == "start":
        panel = window.settings_panel
        panel.batch_sizes.setText(", ".join(map(str, plan["batch_sizes"])))
        panel.epochs.setValue(plan["epochs"])
        panel.patience.setValue(0)
        panel.lr_grid.setValue(plan["lr_grid"])
        window.start_action.trigger()
        next_step()
    elif step == "first-epoch":  # the provisional per-step line before the first epoch's point
        wait(lambda: window.curves.provisional["loss"].getData()[0] is not None
             and len(window.curves.provisional["loss"].getData()[0]) >= 3,
             lambda: (shot(step), next_step()))
    elif step == "mid-training":
        runs = lambda: (window.record or {}).get("runs") or []
        wait(lambda: sum(len(r.get("history") or []) for r in runs()) >= plan["epochs"] + 1,
             lambda: (facts.update(mid=facts_now()), shot(step), next_step()))
    elif step == "finished":
        wait(lambda: window.worker is None and window.record is not None,
             lambda: QTimer.singleShot(500, lambda: (facts.update(finished=facts_now()), shot(step), next_step())))
    elif step == "hover":  # the pointer on the best trial's best point: the read-out
        from PySide6.QtCore import QPointF
        from PySide6.QtTest import QTest
        from engine.record.runs import best_run
        best = best_run(window.record["runs"])
        plot = window.curves.plots["val_accuracy"]
        x, y = window.curves.curve("val_accuracy", best["run_index"]).getData()
        scene = plot.getViewBox().mapViewToScene(QPointF(float(x[-1]), float(y[-1])))
        view = plot.scene().views()[0]
        QTest.mouseMove(view.viewport(), view.mapFromScene(scene))
        window.curves._on_mouse("val_accuracy", scene)  # as the pointer's move does, should the cursor lag
        QTimer.singleShot(600, lambda: (shot(step), next_step()))
    elif step == "overlay":
        window.setup_action.setChecked(True)
        window.side_tabs.setCurrentWidget(window.history)
        window.history.refresh()
        folders = [window.history.tree.topLevelItem(i).data(0, 256) for i in range(window.history.tree.topLevelItemCount())]
        window.history.select(folders[:2])
        window.history.overlay_button.click()
        QTimer.singleShot(800, lambda: (facts.update(overlay=facts_now(), overlaid=window.curves.overlaid()),
                                        shot(step), next_step()))

QTimer.singleShot(300, next_step)
sys.exit(app.exec())
"""


def run_window(display: str, home: Path, plan: dict, scale: str = "", timeout: int = 900) -> dict:
    """Run the driver in a fresh process on ``display``; its cwd is ``home`` (data/ and checkpoints/ there)."""
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "HOME": str(home),
           "XDG_CONFIG_HOME": str(home / "config"), "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("QT_SCALE_FACTOR", None)
    if scale:
        env["QT_SCALE_FACTOR"] = scale
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(plan)], cwd=home, env=env, capture_output=True,
                          text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("FACTS ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("FACTS "):])


def check_fits(facts: dict) -> None:
    """The window inside the available screen, its minimum too, and every plot's data area usable."""
    x, y, width, height = facts["frame"]
    screen_w, screen_h = facts["screen"]
    assert facts["platform"] == "xcb" and facts["exposed"], facts
    assert x >= 0 and y >= 0 and x + width <= screen_w and y + height <= screen_h, facts
    assert facts["minimum"][0] <= screen_w and facts["minimum"][1] <= screen_h, facts
    for key, (view_w, view_h) in facts["views"].items():
        assert view_w >= 150 and view_h >= 80, (key, facts)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh HOME (no remembered settings: a first launch) with a small demo set in data/shapes."""
    from engine.data.demo import generate_demo_data

    generate_demo_data(tmp_path / "data", per_class=8)
    return tmp_path


@pytest.mark.parametrize("size, scale", [("1024x640", ""), ("1920x1080", ""), ("2048x1280", "2")])
def test_the_window_opens_within_the_screen_and_draws(home: Path, size: str, scale: str) -> None:
    if shutil.which("import") is None:
        pytest.fail("ImageMagick's import is not installed: apt-get install imagemagick (CI installs it)")
    shots = home / "shots"
    shots.mkdir()
    with running_xvfb(size) as display:
        facts = run_window(display, home, {"shots": str(shots), "prefix": "t", "stages": ["first-launch"],
                                           "batch_sizes": [], "lr_grid": 1, "epochs": 1})
    check_fits(facts["first"])
    with Image.open(shots / "t-first-launch.png") as image:
        pixels = image.convert("RGB")
        assert f"{pixels.width}x{pixels.height}" == size
        colours = pixels.getcolors(maxcolors=1 << 20)
    assert len(colours) > 50, "the screen is blank: the window did not draw"
    assert max(count for count, _ in colours) < 0.9 * pixels.width * pixels.height


def shoot_all(shots: Path, seed_experiment: Path, data: Path, only: tuple[str, ...] = ()) -> None:
    """The notes' screenshots: each screen size (or those in ``only``), from first launch to a History overlay."""
    for size, scale in (("1024x640", ""), ("1366x768", ""), ("1920x1080", ""), ("3840x2160", "2")):
        if only and size not in only:
            continue
        home = shots.parent / f"home-{size}"
        shutil.rmtree(home, ignore_errors=True)
        (home / "data").mkdir(parents=True)
        shutil.copytree(data, home / "data" / "shapes")
        shutil.copytree(seed_experiment, home / "checkpoints" / seed_experiment.name)
        name = size + ("-scale2" if scale else "")
        with running_xvfb(size) as display:
            facts = run_window(display, home, {
                "shots": str(shots), "prefix": name, "batch_sizes": [32, 128], "lr_grid": 2, "epochs": 3,
                "stages": ["startup", "first-launch", "start", "first-epoch", "mid-training", "finished", "hover",
                           "overlay"]},
                scale=scale, timeout=1800)
        print(name, json.dumps({k: v for k, v in facts.items() if k != "stages"}))


if __name__ == "__main__":
    shoot_all(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), tuple(sys.argv[4:]))
