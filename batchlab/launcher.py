"""The ``batchlab`` command and ``python main.py``: no arguments opens the window, a command runs headless."""

from __future__ import annotations

import sys
from typing import Any, Optional, Sequence


def measure_window(config: Any) -> Any:
    """Time training inside the real window (loaded only when ``bench`` asks for it)."""
    from batchlab.window_bench import measure_window as measure

    return measure(config)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        from gui.app import main as gui_main

        return gui_main()
    from engine.cli.main import main as cli_main

    return cli_main(argv, measure_window=measure_window)


def entry() -> int:
    """Console-script entry point (``batchlab``)."""
    return main(sys.argv[1:])
