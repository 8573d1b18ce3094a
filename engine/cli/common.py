"""The parser every command uses, argument types, Ctrl+C handling, and the errors reported in one line."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

from engine.stop import StopToken


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` states each option's default (unless its help already does, or there is none to state)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        nothing = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if "(default" in text or nothing or action.const is not None:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line with a pointer to ``--help``, not a usage dump;
    sub-command parsers are of the same class, so they behave alike."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


def program_name(argv0: str) -> str:
    """How the user started BatchLab, for printed commands: the ``main.py`` path as typed from a checkout,
    ``batchlab`` when installed, ``python -m engine.cli`` as a child process does."""
    path = Path(argv0)
    if path.name == "__main__.py" and path.parent.name in ("cli", "batchlab"):
        return "python -m engine.cli" if path.parent.name == "cli" else "python -m batchlab"
    if path.name == "batchlab":
        return "batchlab"
    return argv0 if path.name == "main.py" else "main.py"


def command(program: str, *args: str) -> str:
    """A command line the user can paste: ``python main.py run --resume '/tmp/ü out/x'``."""
    words = ["python", program] if program.endswith(".py") else shlex.split(program)
    return shlex.join([*words, *args])


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def install_interrupt(stop: "StopToken") -> None:
    """First Ctrl+C stops after the current batch and keeps the record; a second one aborts."""

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping after this batch (Ctrl+C again to abort)", file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, handler)


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the user's input is at fault: one line, no traceback."""
    from engine.config import ConfigError
    from engine.data.scan import DatasetError
    from engine.data.split import SplitError
    from engine.record.store import RecordError

    return ConfigError, DatasetError, RecordError, SplitError, FileNotFoundError, PermissionError


