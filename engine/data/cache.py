"""The on-disk data cache: decoded pixels of one folder at one size, reused while no file changes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np

from engine.atomic import atomic_dir, write_json
from engine.data.decode import LoadedDataset, Progress, decode_into, loaded
from engine.data.imagefile import MAX_PIXELS
from engine.data.scan import DatasetError, DatasetReport, Walk
from engine.stop import StopToken

CACHE_VERSION = 1
"""Bump when decoding changes, so caches written by older code are not reused."""


def load_cached(
    walk: Walk,
    size: int,
    cache_dir: Path,
    in_memory: bool,
    progress: Optional[Progress],
    stop: Optional[StopToken],
) -> LoadedDataset:
    """Reuse a cache entry written by an identical earlier load, or decode into a new one.

    An entry is a folder (pixels.npy + index.json) put in place by ``atomic_dir``, so a
    crash or a stop mid-load leaves no entry behind, never a half-written one.
    """
    key = _cache_key(walk, size)
    prefix = f"dataset-{_hash(walk.root_real)[:12]}-{size}px-"
    entry = cache_dir / f"{prefix}{key[:20]}"
    hit = _open_cache(entry, key, size)
    if hit is not None:
        if progress is not None:
            progress(len(walk.candidates), len(walk.candidates))
        stored, pixels = hit
        report = DatasetReport(root=str(walk.root), **stored)
        return loaded(report, np.array(pixels) if in_memory else pixels, on_disk=not in_memory)
    try:
        with atomic_dir(entry) as tmp:
            report, images = _decode_to_file(walk, size, tmp / "pixels.npy", in_memory, progress, stop)
            stored = {k: v for k, v in asdict(report).items() if k != "root"}
            write_json(tmp / "index.json", {"version": CACHE_VERSION, "key": key, "report": stored})
    except OSError as exc:
        raise DatasetError(f"cannot write data cache in {cache_dir}: {exc.strerror or exc}") from None
    _prune(cache_dir, prefix, entry)
    if images is not None:
        return loaded(report, images, on_disk=False)
    hit = _open_cache(entry, key, size)
    if hit is None:
        raise DatasetError(f"data cache {entry} vanished or is unreadable right after writing it")
    return loaded(report, hit[1], on_disk=True)


def _decode_to_file(
    walk: Walk,
    size: int,
    target: Path,
    in_memory: bool,
    progress: Optional[Progress],
    stop: Optional[StopToken],
) -> tuple[DatasetReport, Optional[np.ndarray]]:
    """Decode into RAM and save (fast), or straight into a memmap when RAM is too small.

    Returns the in-memory pixels, or None when they live only in ``target``.
    """
    shape = (len(walk.candidates), size, size, 3)
    if in_memory:
        pixels = np.empty(shape, dtype=np.uint8)
        report = decode_into(walk, size, pixels, progress, stop)
        images = pixels[: len(report.files)]
        with open(target, "wb") as handle:
            np.save(handle, images)
            handle.flush()
            os.fsync(handle.fileno())
        return report, images
    mapped = np.lib.format.open_memmap(target, mode="w+", dtype=np.uint8, shape=shape)
    _reserve(target)
    report = decode_into(walk, size, mapped, progress, stop)
    mapped.flush()
    del mapped  # unmap before the folder is renamed (Windows refuses otherwise)
    with open(target, "rb+") as handle:
        os.fsync(handle.fileno())
    return report, None


def _open_cache(entry: Path, key: str, size: int) -> Optional[tuple[dict, np.ndarray]]:
    """The stored report and a read-only memmap of its pixels, or None if absent or unfit."""
    try:
        index = json.loads((entry / "index.json").read_text(encoding="utf-8"))
        if index.get("version") != CACHE_VERSION or index.get("key") != key:
            return None
        stored = index["report"]
        if set(stored) != _STORED_FIELDS:
            return None
        count = len(stored["files"])
        pixels = np.load(entry / "pixels.npy", mmap_mode="r")
        if pixels.dtype != np.uint8 or pixels.shape[1:] != (size, size, 3) or pixels.shape[0] < count:
            return None
        return stored, pixels[:count]
    except (OSError, ValueError, KeyError, TypeError):
        return None


_STORED_FIELDS = {"classes", "files", "labels", "counts", "skipped"}


def _reserve(path: Path) -> None:
    """Allocate the memmap's disk blocks now: a full disk then fails here with ENOSPC,
    instead of killing the process with SIGBUS when a mapped page is first written."""
    if hasattr(os, "posix_fallocate"):
        with open(path, "rb+") as handle:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)


def _cache_key(walk: Walk, size: int) -> str:
    """Everything the result depends on: names, sizes and mtimes of files, settings, code version."""
    material = {
        "version": CACHE_VERSION,
        "image_size": size,
        "max_pixels": MAX_PIXELS,
        "classes": walk.classes,
        "files": [[c.rel, c.size, c.mtime_ns] for c in walk.candidates],
        "skipped": walk.skipped,
    }
    return _hash(json.dumps(material, sort_keys=True))


def _hash(text: str) -> str:
    # surrogateescape: file names that are not valid UTF-8 still hash, consistently.
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _prune(cache_dir: Path, prefix: str, keep: Path) -> None:
    """Drop older entries for the same folder and size: they can never match again."""
    for sibling in cache_dir.iterdir():
        if sibling.name.startswith(prefix) and sibling != keep and sibling.is_dir():
            shutil.rmtree(sibling, ignore_errors=True)
