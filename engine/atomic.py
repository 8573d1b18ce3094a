"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


def fsync_dir(directory: Path) -> None:
    """Make a rename durable; some filesystems refuse to open directories, which is fine."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(target: Path | str, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary file path beside ``target``; on success it replaces ``target``.

    ``suffix`` serves writers that insist on an extension (Keras wants ``.keras``).
    On any error the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as exc:  # name the file the user knows, not the temporary one the write failed in
        _remove(tmp)
        raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(target: Path | str) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; on success it takes ``target``'s place.

    An existing ``target`` is moved aside first and removed only once the new one
    is in place, so at every moment one complete version exists on disk.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        old.rmdir()
        os.replace(target, old)
    os.replace(tmp, target)
    fsync_dir(target.parent)
    if old is not None:
        _remove(old)


def write_bytes(target: Path | str, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json(target: Path | str, obj: Any) -> None:
    """JSON with NaN refused: a record other tools parse must be standard JSON."""
    write_bytes(target, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode("utf-8"))


def write_with_suffix(target: Path | str, writer: Callable[[str], object], suffix: str) -> None:
    """Let ``writer`` (e.g. ``model.save``) fill a temporary file whose name ends in ``suffix``."""
    with atomic_path(target, suffix=suffix) as tmp:
        writer(str(tmp))
