"""Scan a class-per-folder data set, or load it as one uint8 pixel array: the data set's front door.

Walking and skip reasons live in engine.data.scan, decoding in engine.data.decode, the
on-disk cache in engine.data.cache; here is only what callers use, and the choice
between pixels in memory and pixels on disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from engine.data.cache import load_cached
from engine.data.decode import LoadedDataset, Progress, decode_into, loaded
from engine.data.scan import DatasetError, DatasetReport, PathLike, candidate_counts, check_classes, walk_dataset
from engine.stop import StopToken

MEMORY_FRACTION = 0.25
"""Keep pixels in RAM only below this share of available memory; above it, use a memmap."""


def scan_dataset(
    root: PathLike, progress: Optional[Progress] = None, stop: Optional[StopToken] = None
) -> DatasetReport:
    """Find and fully decode every file (so truncated ones are caught), keeping no pixels."""
    walk = walk_dataset(root, stop)
    return decode_into(walk, None, None, progress, stop)


def load_dataset(
    root: PathLike,
    image_size: int,
    cache_dir: Optional[PathLike] = None,
    progress: Optional[Progress] = None,
    stop: Optional[StopToken] = None,
    memory_budget: Optional[int] = None,
) -> LoadedDataset:
    """Scan and decode in one pass, resizing to ``image_size`` square RGB (squash, bilinear).

    Pixels stay in memory below ``memory_budget`` bytes (default: a quarter of available
    memory), otherwise they live in a memmap under ``cache_dir``. With a ``cache_dir``,
    the result is also cached there and reused while no file changes.
    """
    walk = walk_dataset(root, stop)
    # Fail before allocating anything when a class has nothing to decode at all.
    check_classes(walk.root, walk.classes, candidate_counts(walk), walk.skipped, None)
    need = len(walk.candidates) * image_size * image_size * 3
    budget = int(available_memory() * MEMORY_FRACTION) if memory_budget is None else memory_budget
    in_memory = need <= budget
    if cache_dir is not None:
        return load_cached(walk, image_size, Path(cache_dir), in_memory, progress, stop)
    if not in_memory:
        raise DatasetError(
            f"data set {walk.root} needs {_gib(need)} at {image_size}x{image_size} pixels, more than"
            f" the memory budget ({_gib(budget)}): give a cache folder to keep it on disk"
        )
    pixels = np.empty((len(walk.candidates), image_size, image_size, 3), dtype=np.uint8)
    report = decode_into(walk, image_size, pixels, progress, stop)
    return loaded(report, pixels[: len(report.files)], on_disk=False)


def available_memory() -> int:
    """Bytes we can use without swapping: MemAvailable, else free pages, else 0 (forces disk)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return 0


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB"
