"""Argument types, Ctrl+C handling and the errors every command reports in one line."""

from __future__ import annotations

import argparse
import signal
import sys

from engine.stop import StopToken


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def device_name(text: str) -> str:
    """``0`` or ``gpu:0`` -> ``GPU:0``; ``cpu:0`` -> ``CPU:0`` (the form the config and TensorFlow use)."""
    name = text.strip().upper()
    return f"GPU:{name}" if name.isdigit() else name


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


