"""Keep PySide6 6.12.0 from crashing Python 3.11 (upstream bug PYSIDE-3474).

That release's wrappers drop a reference to None (and to True/False) on ordinary Qt
calls: every ``setText``, ``processEvents`` or ``QThread.run`` costs one. Python 3.12 made
these objects immortal, so only older Pythons notice, a few thousand calls in, with
"Fatal Python error: none_dealloc". Until the project pins a fixed PySide6, give them
the effectively endless reference count that 3.12 gives them.
"""

from __future__ import annotations

import ctypes
import sys

import PySide6

AFFECTED = ("6.12.0",)
_HEADROOM = 1 << 48  # a few hundred trillion Qt calls before it could matter


def pin_singletons() -> bool:
    """Apply the workaround where it is needed; True when it was applied."""
    if sys.version_info >= (3, 12) or PySide6.__version__ not in AFFECTED:
        return False
    for obj in (None, True, False):
        # ob_refcnt is the first field of every CPython object, at the address id() returns.
        ctypes.c_ssize_t.from_address(id(obj)).value += _HEADROOM
    return True
