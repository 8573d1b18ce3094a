"""BatchLab: `python main.py` opens the window; `python main.py COMMAND ...` runs headless."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if not argv:
        from gui.app import main as gui_main

        return gui_main()
    from engine.cli import main as cli_main

    return cli_main(argv)


def entry() -> int:
    """Console-script entry point (``batchlab``)."""
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(entry())
