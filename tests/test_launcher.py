"""Opening the window: one clear line where it cannot open, and the real window on a real X server (Xvfb)."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from batchlab import display
from batchlab.launcher import program_name

ROOT = Path(__file__).resolve().parent.parent
QT_XCB_PACKAGES = ["libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0", "libxcb-render-util0", "libxcb-xkb1",
                   "libxkbcommon-x11-0", "libxcb-cursor0", "libxcb-shape0", "libxcb-randr0", "libxcb-xinerama0"]
QT_XCB_SONAMES = ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-image.so.0", "libxcb-render-util.so.0",
                  "libxcb-xkb.so.1", "libxkbcommon-x11.so.0", "libxcb-cursor.so.0", "libxcb-shape.so.0",
                  "libxcb-randr.so.0", "libxcb-xinerama.so.0"]


def problem(env: dict, platform: str = "linux", missing: tuple = (), opens: bool | None = True) -> str | None:
    return display.display_problem(env, platform, list(missing), opens, "python main.py")


def test_no_display_points_to_the_headless_commands_and_a_virtual_screen() -> None:
    message = problem({})
    assert message is not None and "\n" not in message
    assert message.startswith("no display: DISPLAY and WAYLAND_DISPLAY are not set")
    for hint in ("'python main.py run FOLDER --batch-sizes 32 256'", "'python main.py --help'",
                 "'QT_QPA_PLATFORM=offscreen python main.py'", "'xvfb-run python main.py'"):
        assert hint in message
    assert problem({"QT_QPA_PLATFORM": "xcb"}) == message  # xcb chosen, still nothing to draw on


@pytest.mark.parametrize("env, platform", [
    ({"QT_QPA_PLATFORM": "offscreen"}, "linux"),  # the user's choice: Qt's business
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, "linux"),
    ({"WAYLAND_DISPLAY": "wayland-0"}, "linux"),
    ({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"}, "linux"),
    ({}, "darwin"),
    ({}, "win32"),
])
def test_platforms_other_than_xcb_are_left_to_qt(env: dict, platform: str) -> None:
    assert problem(env, platform, missing=("libxcb-icccm.so.4",), opens=False) is None


def test_missing_libraries_are_named_with_the_apt_command() -> None:
    message = problem({"DISPLAY": ":0"}, missing=("libxcb-icccm.so.4", "libxcb-keysyms.so.1"), opens=None)
    assert message == (
        "Qt's X11 platform plugin (xcb) cannot load: missing libxcb-icccm.so.4, libxcb-keysyms.so.1; install with "
        "'sudo apt-get install libxcb-icccm4 libxcb-keysyms1' (Debian/Ubuntu). 'python main.py run FOLDER "
        "--batch-sizes 32 256' trains without a window ('python main.py --help' lists every command)")
    assert "xcb-cursor" not in message  # what Qt's own message blames, whatever is missing


def test_a_display_that_does_not_open_is_named() -> None:
    message = problem({"DISPLAY": ":99", "QT_QPA_PLATFORM": "xcb"}, opens=False)
    assert message is not None and "\n" not in message
    assert message.startswith("cannot open the X display ':99' (DISPLAY=:99)")
    assert problem({"DISPLAY": ":99"}, opens=True) is None
    assert problem({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, opens=False) is not None  # XWayland: xcb


def test_debian_packages_of_the_libraries_qt_xcb_needs() -> None:
    assert [display.debian_package(name) for name in QT_XCB_SONAMES] == QT_XCB_PACKAGES
    assert display.debian_package("libX11-xcb.so.1") == "libx11-xcb1"
    assert display.debian_package("libglib-2.0.so.0") == "libglib2.0-0"


def test_ldd_report_is_read_for_the_missing_names() -> None:
    report = ("\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f)\n"
              "\tlibxcb-icccm.so.4 => not found\n"
              "\tlibxcb-util.so.1 => /lib/x86_64-linux-gnu/libxcb-util.so.1 (0x00007f)\n"
              "\tlibxcb-keysyms.so.1 => not found\n")
    assert display.libraries_not_found(report) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]


def test_program_name_is_what_the_user_typed() -> None:
    assert program_name("main.py") == "python main.py"
    assert program_name("/home/me/.venv/bin/batchlab") == "batchlab"


def launch(env_changes: dict[str, str | None], tmp_path: Path) -> subprocess.CompletedProcess:
    """``python main.py`` (the window) in a fresh process, with a throw-away HOME."""
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(name, None)
    env.update({k: v for k, v in env_changes.items() if v is not None})
    return subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_without_a_display_one_line_and_exit_2(tmp_path: Path) -> None:
    done = launch({}, tmp_path)
    assert done.returncode == 2, done.stderr  # not 134 (Qt's abort) nor -6 (SIGABRT)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no display:"), done.stderr
    assert not list(tmp_path.glob("core*"))


def free_display_number() -> int:
    """A display number no X server here uses (no lock file, no socket)."""
    for number in range(99, 400):
        if not Path(f"/tmp/.X{number}-lock").exists() and not Path(f"/tmp/.X11-unix/X{number}").exists():
            return number
    raise AssertionError("no free X display number between :99 and :399")


def test_a_display_nobody_listens_on_is_named_in_one_line(tmp_path: Path) -> None:
    number = free_display_number()
    done = launch({"DISPLAY": f":{number}"}, tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: cannot open the X display ':{number}' (DISPLAY=:{number})"), done.stderr


@pytest.fixture
def xvfb(tmp_path: Path):
    """A private Xvfb on a display number it picks itself (-displayfd); stopped afterwards."""
    if shutil.which("Xvfb") is None:
        pytest.fail("Xvfb is not installed: apt-get install xvfb (CI installs it; this test must run there)")
    read_end, write_end = os.pipe()
    log = tmp_path / "xvfb.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1366x768x24",
                                   "-nolisten", "tcp"], pass_fds=(write_end,), stdout=output, stderr=output)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 30)
        number = os.read(read_end, 64).decode().strip() if ready else ""
        assert number.isdigit(), f"Xvfb did not start: {log.read_text(errors='replace')[-2000:]}"
        yield f":{number}"
    finally:
        os.close(read_end)
        server.terminate()
        server.wait(10)


GRAB = """
import json, sys
from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from gui.app import create_window

app, window = create_window()
waited = []

def grab():
    waited.append(1)
    if not window.windowHandle().isExposed() and len(waited) < 200:
        QTimer.singleShot(100, grab)
        return
    app.processEvents()
    image = window.grab()
    image.save(sys.argv[1])
    print(json.dumps({"platform": QGuiApplication.platformName(), "exposed": window.windowHandle().isExposed(),
                      "size": [image.width(), image.height()], "screen": QGuiApplication.primaryScreen().name()}))
    app.quit()

QTimer.singleShot(500, grab)
sys.exit(app.exec())
"""


def test_the_real_window_draws_on_an_x_server(xvfb: str, tmp_path: Path) -> None:
    problem_here = display.check("python main.py", {"DISPLAY": xvfb, "QT_QPA_PLATFORM": "xcb"}, "linux")
    assert problem_here is None, problem_here  # e.g. the xcb libraries CI must install
    shot = tmp_path / "window.png"
    env = {**os.environ, "DISPLAY": xvfb, "QT_QPA_PLATFORM": "xcb", "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONPATH": str(ROOT)}
    env.pop("WAYLAND_DISPLAY", None)
    done = subprocess.run([sys.executable, "-c", GRAB, str(shot)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["platform"] == "xcb" and facts["exposed"], facts
    with Image.open(shot) as image:
        pixels = image.convert("RGB")
        assert list(pixels.size) == facts["size"] and pixels.width >= 640 and pixels.height >= 400
        colours = pixels.getcolors(maxcolors=1 << 20)
    most = max(count for count, _ in colours)
    assert len(colours) > 50, f"{len(colours)} colours: the window is blank"
    assert most < 0.9 * pixels.width * pixels.height, "one colour fills the window: nothing was drawn"
