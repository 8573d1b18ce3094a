"""Can the window open here? One clear line instead of Qt's core-dumped abort when it cannot.

Qt aborts the process (exit 134) when no platform plugin loads, and on Linux its message
blames ``xcb-cursor0`` whatever is really missing. So before the QApplication exists the
launcher asks: is there a display at all, does Qt's X11 (xcb) plugin find every shared
library it needs, and does the X display named by ``DISPLAY`` open. The decision is
``display_problem``, a pure function of those facts; ``check`` gathers them.
"""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

XCB_PLUGIN = Path("platforms") / "libqxcb.so"  # under Qt's plugin folder
XCB_QPA_LIBRARY = "libQt6XcbQpa.so.6"  # under Qt's library folder
_NOT_FOUND = re.compile(r"^\s*(\S+) => not found", re.MULTILINE)
_PACKAGE_EXCEPTIONS = {"libglib-2.0.so.0": "libglib2.0-0", "libgthread-2.0.so.0": "libglib2.0-0",
                       "libz.so.1": "zlib1g"}


def display_problem(env: Mapping[str, str], platform: str, missing_libraries: Sequence[str],
                    display_opens: Optional[bool], program: str = "python main.py") -> Optional[str]:
    """One line saying why the window cannot open, or None when Qt should be able to open it.

    ``missing_libraries``: sonames the xcb plugin cannot find; ``display_opens``: whether the
    X display in ``DISPLAY`` accepted a connection (None: not tried). A platform the user
    chose with ``QT_QPA_PLATFORM`` other than xcb, a Wayland session, and other systems
    than Linux are left to Qt.
    """
    if not uses_xcb(env, platform):
        return None
    headless = (f"'{program} run FOLDER --batch-sizes 32 256' trains without a window "
                f"('{program} --help' lists every command)")
    display = env.get("DISPLAY", "")
    if not display:
        return (f"no display: DISPLAY and WAYLAND_DISPLAY are not set, so the window cannot open. {headless}; "
                f"or give the window a virtual screen: 'xvfb-run {program}' (Xvfb) or "
                f"'QT_QPA_PLATFORM=offscreen {program}' (draws off screen)")
    if missing_libraries:
        packages = " ".join(dict.fromkeys(debian_package(name) for name in missing_libraries))
        return (f"Qt's X11 platform plugin (xcb) cannot load: missing {', '.join(missing_libraries)}; "
                f"install with 'sudo apt-get install {packages}' (Debian/Ubuntu). {headless}")
    if display_opens is False:
        return (f"cannot open the X display '{display}' (DISPLAY={display}): no X server is listening there or "
                f"it refused access; set DISPLAY to a running X server (':0' is usually the local screen) or "
                f"start one with 'Xvfb {display} &'. {headless}")
    return None


def uses_xcb(env: Mapping[str, str], platform: str) -> bool:
    """Qt on Linux picks xcb unless told otherwise or running in a Wayland session."""
    if not platform.startswith("linux"):
        return False
    chosen = env.get("QT_QPA_PLATFORM", "")
    if chosen:  # "xcb", "xcb:option", or a fallback list "wayland;xcb" (the first one is tried first)
        return chosen.split(";")[0].split(":")[0] == "xcb"
    if not env.get("WAYLAND_DISPLAY"):
        return True
    return bool(env.get("DISPLAY")) and env.get("XDG_SESSION_TYPE") != "wayland"


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package holding a library (Policy 8.1): libxcb-icccm.so.4 -> libxcb-icccm4."""
    if soname in _PACKAGE_EXCEPTIONS:
        return _PACKAGE_EXCEPTIONS[soname]
    name, _, version = soname.partition(".so.")
    name, major = name.lower(), version.split(".")[0]
    return f"{name}-{major}" if name[-1:].isdigit() else f"{name}{major}"


def missing_xcb_libraries() -> list[str]:
    """Sonames Qt's xcb plugin (and its XcbQpa library) cannot find, as ``ldd`` reports them.

    Empty when nothing is missing or when it cannot be told (no ``ldd``, plugin not found):
    then Qt gets to try, and speaks for itself.
    """
    from PySide6.QtCore import QLibraryInfo

    files = [Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / XCB_PLUGIN,
             Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.LibrariesPath)) / XCB_QPA_LIBRARY]
    missing: dict[str, None] = {}
    for path in files:
        if not path.is_file():
            continue
        try:
            done = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return []
        missing.update(dict.fromkeys(libraries_not_found(done.stdout)))
    return list(missing)


def libraries_not_found(ldd_output: str) -> list[str]:
    """The ``name => not found`` entries of ``ldd``'s report, in order."""
    return _NOT_FOUND.findall(ldd_output)


def x_display_opens(display: str) -> bool:
    """Whether an X client can connect to ``display`` (with its authorisation), as Qt would."""
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return True  # no libxcb: missing_xcb_libraries reports that, not this check
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode(), None)
    try:
        return connection is not None and xcb.xcb_connection_has_error(connection) == 0
    finally:
        if connection is not None:
            xcb.xcb_disconnect(connection)


def check(program: str, env: Optional[Mapping[str, str]] = None, platform: str = sys.platform) -> Optional[str]:
    """Gather only the facts the decision needs (``ldd`` and a connection attempt cost a few ms)."""
    env = os.environ if env is None else env
    xcb = uses_xcb(env, platform) and bool(env.get("DISPLAY"))
    missing = missing_xcb_libraries() if xcb else []
    opens = x_display_opens(env["DISPLAY"]) if xcb and not missing else None
    return display_problem(env, platform, missing, opens, program)
