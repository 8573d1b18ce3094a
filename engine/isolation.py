"""Give back what a finished run held, so a long session's memory stays flat.

Measured with bench/memory_soak.py (10 runs in one process): clearing the Keras
session and collecting garbage still left resident memory growing about 21-26 MiB
per run (+22% to +29% from run 2 to run 10). The cause is TensorFlow's gradient registry: every
trace of a training step passes through ``tf.custom_gradient`` in graph mode (Keras'
optimizer all-reduces its gradients through the replica context, even on one device),
which registers a ``CustomGradient-<uid>`` entry that is never removed. That entry's
closure holds the traced step's whole graph (thousands of operations), so no run's
graphs were ever freed. Removing the entries left by finished runs makes memory flat
(trend about 0 MiB per run, run 2 to 10 within +-6%); trimming glibc's heap afterwards
hands freed pages back to the OS, which lowers the level by about 80 MiB but not the trend.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any, Optional

from tensorflow.python.framework import ops as tf_ops

CUSTOM_GRADIENT_PREFIX = "CustomGradient-"


def _registry() -> Optional[dict[str, Any]]:
    """TensorFlow's private gradient table; None if a TensorFlow release moves it."""
    table = getattr(getattr(tf_ops, "_gradient_registry", None), "_registry", None)
    return table if isinstance(table, dict) else None


def forget_traced_steps() -> int:
    """Drop the custom-gradient entries finished runs left in TensorFlow's gradient registry.

    Call only between runs, after ``keras.backend.clear_session()``, then collect garbage
    and ``trim_heap()``: a gradient entry is looked up only while a step that uses it is
    being traced, every traced step of a finished run is gone, and the next run registers
    its own. All entries go, not only the last run's: in a BatchLab process only training
    runs make them, and this is called at the end of a run, with no snapshot from its start.
    Returns how many entries were dropped.
    """
    table = _registry() or {}
    stale = [name for name in table if name.startswith(CUSTOM_GRADIENT_PREFIX)]
    for name in stale:
        del table[name]
    return len(stale)


def trim_heap() -> bool:
    """Return glibc's free heap pages to the OS (``malloc_trim``); False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        trim = ctypes.CDLL(None).malloc_trim  # musl has no malloc_trim: AttributeError
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True
