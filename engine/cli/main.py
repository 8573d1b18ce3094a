"""BatchLab's command line: the engine without a window, for headless lab machines.

Each sub-command imports what it needs when it runs, so ``check`` and ``--help``
answer at once without loading TensorFlow. The window is not part of the engine:
``batchlab.launcher`` opens it when no command is given.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from engine import exit_codes
from engine.cli import bench, data, export, probe, run, worker
from engine.cli.common import Parser, program_name, user_errors


def build_parser(measure_window: Optional[Callable[..., Any]] = None, prog: str = "main.py") -> argparse.ArgumentParser:
    """``measure_window`` lets the launcher give ``bench`` a way to time the window (the engine has none);
    ``prog`` is how the user started BatchLab (``main.py``, ``batchlab``), for usage lines and printed commands."""
    parser = Parser(prog=prog, description="BatchLab: which batch size, with evidence. Without a command, opens "
                    f"the window. '{prog} COMMAND --help' lists a command's options and their defaults.")
    parser.set_defaults(program=prog)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (data, run, export, probe, worker):
        module.register(sub)
    bench.register(sub, measure_window)
    return parser


def main(argv: Optional[Sequence[str]] = None, measure_window: Optional[Callable[..., Any]] = None,
         prog: Optional[str] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = prog or program_name(sys.argv[0])
    parser = build_parser(measure_window, Path(started).name if started.endswith(".py") else started)
    parser.set_defaults(program=started)  # printed commands repeat the path as typed
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return exit_codes.USAGE
    try:
        return args.handler(args)
    except user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    except OSError as exc:  # disk full, read-only folder: say which file, keep what was written
        print(f"error: {exc.strerror or exc} ({exc.filename or 'file system'})", file=sys.stderr)
        return exit_codes.FAILED
