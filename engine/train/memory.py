"""Give back what a finished run held, so a long session's memory stays flat.

Measured with engine/measure/memory_soak.py (10 runs in one process): clearing the Keras
session and collecting garbage still left resident memory growing about 21-26 MiB
per run (+22% to +29% from run 2 to run 10). The cause is TensorFlow's gradient registry: every
trace of a training step passes through ``tf.custom_gradient`` in graph mode (Keras'
optimizer all-reduces its gradients through the replica context, even on one device),
which registers a ``CustomGradient-<uid>`` entry that is never removed. That entry's
closure holds the traced step's whole graph (thousands of operations), so no run's
graphs were ever freed. Removing the entries left by finished runs makes memory flat
(trend about 0 MiB per run, run 2 to 10 within +-6%); trimming glibc's heap afterwards
hands freed pages back to the OS, which lowers the level by about 80 MiB but not the trend.

The cycle collector is the other thing a long session feels: importing TensorFlow and Keras
leaves some 270,000 tracked objects, and every full collection walks them all while holding
Python's lock, 150-320 ms measured, which froze the window (engine/bench_gui.py). Freezing
them once (``gc.freeze``) takes them out of every later collection.
"""

from __future__ import annotations

import ctypes
import gc
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


def freeze_startup_objects() -> bool:
    """Once per process, before the first run: hide what is alive now (mostly TensorFlow's and
    Keras' module-level objects) from the cycle collector, so its full collections take
    microseconds instead of hundreds of milliseconds. Frozen objects are still freed by
    reference counting; only cycles among them are never collected, which is why this runs
    once, when nearly everything alive is meant to live as long as the process. No collection
    first: that would itself be the ~0.2 s pause this avoids, and the garbage it would find is
    a one-off few megabytes. Returns False when it had already run."""
    if gc.get_freeze_count():
        return False
    gc.freeze()
    return True
