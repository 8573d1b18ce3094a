"""BatchLab's command line: the engine without a window, for headless lab machines.

Each sub-command imports what it needs when it runs, so ``check`` and ``--help``
answer at once without loading TensorFlow. The window is not part of the engine:
``batchlab.launcher`` opens it when no command is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from engine import exit_codes, native_logs
from engine.cli import bench, data, export, probe, report, run, worker
from engine.cli.common import Parser, program_name, user_errors


def build_parser(measure_window: Optional[Callable[..., Any]] = None, prog: str = "main.py") -> argparse.ArgumentParser:
    """``measure_window`` lets the launcher give ``bench`` a way to time the window (the engine has none);
    ``prog`` is how the user started BatchLab (``main.py``, ``batchlab``), for usage lines and printed commands."""
    parser = Parser(prog=prog, description="BatchLab: which batch size, with evidence. Without a command, opens "
                    f"the window. '{prog} COMMAND --help' lists a command's options and their defaults.")
    parser.set_defaults(program=prog)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (data, run, export, probe, report, worker):
        module.register(sub)
    bench.register(sub, measure_window)
    add_verbose_flag(parser, sub)
    return parser


def add_verbose_flag(parser: argparse.ArgumentParser, sub: argparse._SubParsersAction) -> None:
    """``--verbose`` before or after the command (``main.py --verbose run ...`` or ``main.py run ... --verbose``)."""
    text = "show TensorFlow's own log lines, hidden by default (child processes inherit the choice)"
    parser.add_argument("--verbose", action="store_true", help=text)
    for command in sub.choices.values():  # SUPPRESS: absent after the command, the value before it stands
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=text)


def main(argv: Optional[Sequence[str]] = None, measure_window: Optional[Callable[..., Any]] = None,
         prog: Optional[str] = None) -> int:
    started = prog or program_name(sys.argv[0])
    parser = build_parser(measure_window, Path(started).name if started.endswith(".py") else started)
    parser.set_defaults(program=started)  # printed commands repeat the path as typed
    args = parser.parse_args(argv)
    native_logs.setup(args.verbose)  # before any command loads TensorFlow
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
