"""The ``batchlab`` command and ``python main.py``: no arguments opens the window, a command runs headless."""

from __future__ import annotations

import os
import sys
from typing import Any, Optional, Sequence

from engine import exit_codes


def measure_window(config: Any) -> Any:
    """Time training inside the real window (loaded only when ``bench`` asks for it)."""
    from batchlab.window_bench import measure_window as measure

    return measure(config)


def program_name(argv0: str) -> str:
    """What the user typed to start us, for the commands our messages suggest."""
    name = os.path.basename(argv0)
    return f"python {name}" if name.endswith(".py") else name or "batchlab"


def open_window(verbose: bool = False) -> int:
    """Open the window, or say in one line why it cannot open here (exit 2) instead of Qt's abort."""
    from batchlab import display

    problem = display.check(program_name(sys.argv[0]))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return exit_codes.USAGE
    from engine import native_logs

    native_logs.setup(verbose)  # the window's engine thread imports TensorFlow later
    from gui.app import main as gui_main

    return gui_main()


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in ([], ["--verbose"]):
        return open_window(verbose=bool(argv))
    from engine.cli.main import main as cli_main

    return cli_main(argv, measure_window=measure_window)


def entry() -> int:
    """Console-script entry point (``batchlab``)."""
    return main(sys.argv[1:])
