"""A thread-safe stop token: the window or Ctrl+C sets it, the training callback honours it."""

from __future__ import annotations

import threading


class StopRequested(Exception):
    """Raised inside training when the stop token is set, so fit() ends within one batch."""


class StopToken:
    """Set once from any thread; checked by the engine after every batch."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def raise_if_set(self) -> None:
        if self._event.is_set():
            raise StopRequested("stopped by the user")
