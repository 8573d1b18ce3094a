"""Scan a class-per-folder data set and load it as one uint8 pixel array.

Layout: ``root/<class>/**/<image>``, classes sorted by name (as Keras'
``flow_from_directory`` does). Unusable files never stop a scan: each one is listed
in ``DatasetReport.skipped`` with a reason. Only problems that make the whole data set
unusable raise ``DatasetError``, with one line naming the path at fault.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from engine.atomic import atomic_dir, write_json
from engine.data.imagefile import MAX_PIXELS, UnusableImage, read_image
from engine.stop import StopToken

Progress = Callable[[int, int], None]
PathLike = Union[str, "os.PathLike[str]"]

CACHE_VERSION = 1
"""Bump when decoding changes, so caches written by older code are not reused."""
MEMORY_FRACTION = 0.25
"""Keep pixels in RAM only below this share of available memory; above it, use a memmap."""
MAX_WORKERS = 8


class DatasetError(Exception):
    """The data set as a whole cannot be used; the message is one line naming the path.

    ``report`` holds the full scan when the problem was found after decoding (a class
    with no usable image), so ``main.py check`` can still list every skipped file.
    """

    def __init__(self, message: str, report: Optional["DatasetReport"] = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class DatasetReport:
    """What a scan found: usable files with labels, and every skipped path with its reason."""

    root: str
    classes: list[str]
    files: list[str]
    labels: list[int]
    counts: dict[str, int]
    skipped: list[dict[str, str]]

    def to_record(self) -> dict:
        """The part stored in experiment.json: enough to see what was trained on, not every path."""
        return {
            "root": self.root,
            "classes": list(self.classes),
            "counts": dict(self.counts),
            "skipped": [dict(item) for item in self.skipped],
        }

    def summary_lines(self, max_skipped: int = 50) -> list[str]:
        """Human report; the skip list is capped so a folder full of junk stays readable."""
        lines = [
            f"Data set: {self.root}",
            f"{len(self.classes)} classes, {len(self.files)} usable images, {len(self.skipped)} skipped",
        ]
        lines += [f"  {name}: {self.counts.get(name, 0)} images" for name in self.classes]
        if self.skipped:
            lines.append("Skipped:")
            lines += [f"  {item['path']}: {item['reason']}" for item in self.skipped[:max_skipped]]
            if len(self.skipped) > max_skipped:
                lines.append(f"  ... and {len(self.skipped) - max_skipped} more")
        return lines


@dataclass
class LoadedDataset:
    """Pixels of every usable file, in ``report.files`` order."""

    report: DatasetReport
    images: np.ndarray  # uint8 [N, S, S, 3], in memory or np.memmap
    labels: np.ndarray  # int32 [N]
    on_disk: bool


@dataclass(frozen=True)
class _Candidate:
    """A regular, non-empty file found under a class folder; not yet decoded."""

    rel: str
    path: str
    label: int
    size: int
    mtime_ns: int


@dataclass
class _Walk:
    root: Path
    root_real: str
    classes: list[str]
    candidates: list[_Candidate]
    skipped: list[dict[str, str]]


def scan_dataset(
    root: PathLike, progress: Optional[Progress] = None, stop: Optional[StopToken] = None
) -> DatasetReport:
    """Find and fully decode every file (so truncated ones are caught), keeping no pixels."""
    walk = _walk(root, stop)
    return _decode_into(walk, None, None, progress, stop)


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
    walk = _walk(root, stop)
    # Fail before allocating anything when a class has nothing to decode at all.
    _check_classes(walk.root, walk.classes, _candidate_counts(walk), walk.skipped, None)
    need = len(walk.candidates) * image_size * image_size * 3
    budget = int(available_memory() * MEMORY_FRACTION) if memory_budget is None else memory_budget
    in_memory = need <= budget
    if cache_dir is not None:
        return _load_cached(walk, image_size, Path(cache_dir), in_memory, progress, stop)
    if not in_memory:
        raise DatasetError(
            f"data set {walk.root} needs {_gib(need)} at {image_size}x{image_size} pixels, more than"
            f" the memory budget ({_gib(budget)}): give a cache folder to keep it on disk"
        )
    pixels = np.empty((len(walk.candidates), image_size, image_size, 3), dtype=np.uint8)
    report = _decode_into(walk, image_size, pixels, progress, stop)
    return _loaded(report, pixels[: len(report.files)], on_disk=False)


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


# ----------------------------------------------------------------------------- walking


def _walk(root_arg: PathLike, stop: Optional[StopToken]) -> _Walk:
    """List classes and candidate files; skip what can be judged from names and stat alone."""
    root = Path(os.path.abspath(os.path.expanduser(os.fspath(root_arg))))
    if not root.exists():
        raise DatasetError(f"data folder not found: {root}")
    if not root.is_dir():
        raise DatasetError(f"data path is not a folder: {root}")
    root_real = os.path.realpath(root)
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise DatasetError(f"cannot read data folder {root}: {exc.strerror or exc}") from None
    skipped: list[dict[str, str]] = []
    visited: dict[str, str] = {root_real: "."}
    class_dirs: list[tuple[str, str]] = []
    for entry in entries:
        if entry.name.startswith("."):
            reason = _hidden_reason(entry)
            if reason != "hidden file":  # a hidden file beside the classes (a manifest, .DS_Store) is not data
                skipped.append(_skip(entry.name, reason))
            continue
        try:
            info = os.stat(entry.path)
        except OSError as exc:
            skipped.append(_skip(entry.name, _stat_reason(entry, exc)))
            continue
        if not stat.S_ISDIR(info.st_mode):
            skipped.append(_skip(entry.name, "file outside any class folder, ignored"))
            continue
        problem = _dir_problem(entry, entry.name, {root_real: "."}, visited, root_real)
        if problem:
            skipped.append(_skip(entry.name, problem))
        else:
            class_dirs.append((entry.name, entry.path))
    if not class_dirs:
        raise DatasetError(f"no class folders in {root}: put each class's images in its own sub-folder")
    if len(class_dirs) == 1:
        raise DatasetError(
            f"only one class folder ('{class_dirs[0][0]}') in {root}: a classifier needs at least two"
        )
    candidates: list[_Candidate] = []
    for label, (name, path) in enumerate(class_dirs):
        _walk_class(path, name, label, root_real, visited, candidates, skipped, stop)
    candidates.sort(key=lambda c: (c.label, c.rel.split("/")))
    skipped.sort(key=lambda item: item["path"].split("/"))
    return _Walk(root, root_real, [name for name, _ in class_dirs], candidates, skipped)


def _walk_class(
    class_path: str,
    class_rel: str,
    label: int,
    root_real: str,
    visited: dict[str, str],
    candidates: list[_Candidate],
    skipped: list[dict[str, str]],
    stop: Optional[StopToken],
) -> None:
    """Collect files under one class folder; an explicit stack, so no depth limit applies."""
    top = {root_real: ".", os.path.realpath(class_path): class_rel}
    stack: list[tuple[str, str, dict[str, str]]] = [(class_path, class_rel, top)]
    while stack:
        if stop is not None:
            stop.raise_if_set()
        path, rel, ancestors = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError as exc:
            skipped.append(_skip(rel, f"unreadable folder ({_os_reason(exc)})"))
            continue
        for entry in entries:
            child_rel = f"{rel}/{entry.name}"
            if entry.name.startswith("."):
                skipped.append(_skip(child_rel, _hidden_reason(entry)))
                continue
            try:
                info = os.stat(entry.path)
            except OSError as exc:
                skipped.append(_skip(child_rel, _stat_reason(entry, exc)))
                continue
            if stat.S_ISDIR(info.st_mode):
                problem = _dir_problem(entry, child_rel, ancestors, visited, root_real)
                if problem:
                    skipped.append(_skip(child_rel, problem))
                else:
                    real = os.path.realpath(entry.path)
                    stack.append((entry.path, child_rel, {**ancestors, real: child_rel}))
            elif not stat.S_ISREG(info.st_mode):
                skipped.append(_skip(child_rel, "not a regular file (device, pipe or socket), ignored"))
            elif info.st_size == 0:
                skipped.append(_skip(child_rel, "empty file"))
            else:
                candidates.append(_Candidate(child_rel, entry.path, label, info.st_size, info.st_mtime_ns))


def _dir_problem(
    entry: os.DirEntry, rel: str, ancestors: dict[str, str], visited: dict[str, str], root_real: str
) -> Optional[str]:
    """Why a (possibly symlinked) folder must not be walked, or None; marks it visited.

    Symlinks into the data set itself are refused even when they do not loop: their
    images would be counted twice, possibly under two different classes.
    """
    real = os.path.realpath(entry.path)
    if real in ancestors:
        return f"symlink loop (leads back to '{ancestors[real]}'), ignored"
    if entry.is_symlink() and (real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)):
        target = Path(os.path.relpath(real, root_real)).as_posix()
        return f"symlink to '{target}' inside the data set, ignored (its images would count twice)"
    if real in visited:
        return f"same folder as '{visited[real]}' (reached through a symlink), ignored"
    visited[real] = rel
    return None


def _hidden_reason(entry: os.DirEntry) -> str:
    try:
        is_dir = entry.is_dir()
    except OSError:  # a symlink whose target we may not even look at
        is_dir = False
    return "hidden folder, ignored" if is_dir else "hidden file"


def _stat_reason(entry: os.DirEntry, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "broken symlink (it loops)"
    if isinstance(exc, FileNotFoundError) and entry.is_symlink():
        return "broken symlink"
    return f"unreadable ({_os_reason(exc)})"


def _os_reason(exc: OSError) -> str:
    return "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))


def _skip(rel: str, reason: str) -> dict[str, str]:
    return {"path": rel, "reason": reason}


# ---------------------------------------------------------------------------- decoding


def _decode_into(
    walk: _Walk,
    size: Optional[int],
    dest: Optional[np.ndarray],
    progress: Optional[Progress],
    stop: Optional[StopToken],
) -> DatasetReport:
    """Decode every candidate once, in order; usable pixels go to consecutive rows of ``dest``."""
    candidates = walk.candidates
    total = len(candidates)
    step = max(1, total // 100)  # about a hundred progress calls, whatever the size
    if progress is not None:
        progress(0, total)
    usable: list[_Candidate] = []
    skipped = list(walk.skipped)
    workers = min(MAX_WORKERS, _cpu_count())
    feed = iter(candidates)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        # A bounded window keeps results in order without letting fast workers pile up pixels.
        pending: deque[tuple[_Candidate, Future]] = deque()

        def submit_next() -> None:
            candidate = next(feed, None)
            if candidate is not None:
                pending.append((candidate, pool.submit(_read, candidate.path, size, stop)))

        for _ in range(workers * 4):
            submit_next()
        try:
            done = 0
            while pending:
                candidate, future = pending.popleft()
                pixels, reason = future.result()
                submit_next()
                if stop is not None:
                    stop.raise_if_set()
                if reason is None:
                    if dest is not None:
                        dest[len(usable)] = pixels
                    usable.append(candidate)
                else:
                    skipped.append(_skip(candidate.rel, reason))
                done += 1
                if progress is not None and (done % step == 0 or done == total):
                    progress(done, total)
        finally:
            for _, future in pending:
                future.cancel()
    skipped.sort(key=lambda item: item["path"].split("/"))
    counts = {name: 0 for name in walk.classes}
    for candidate in usable:
        counts[walk.classes[candidate.label]] += 1
    report = DatasetReport(
        root=str(walk.root),
        classes=list(walk.classes),
        files=[c.rel for c in usable],
        labels=[c.label for c in usable],
        counts=counts,
        skipped=skipped,
    )
    _check_classes(walk.root, report.classes, counts, skipped, report)
    return report


def _read(path: str, size: Optional[int], stop: Optional[StopToken]) -> tuple[Optional[np.ndarray], Optional[str]]:
    """Worker body: pixels and no reason, or no pixels and the skip reason."""
    if stop is not None and stop.is_set():
        return None, "stopped"  # never reported: the consumer raises StopRequested first
    try:
        return read_image(path, size), None
    except UnusableImage as exc:
        return None, str(exc)


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def _candidate_counts(walk: _Walk) -> dict[str, int]:
    counts = {name: 0 for name in walk.classes}
    for candidate in walk.candidates:
        counts[walk.classes[candidate.label]] += 1
    return counts


def _check_classes(
    root: Path,
    classes: list[str],
    counts: dict[str, int],
    skipped: list[dict[str, str]],
    report: Optional[DatasetReport],
) -> None:
    """Raise for the first class with no usable image, saying what was skipped there."""
    empty = [name for name in classes if counts.get(name, 0) == 0]
    if not empty:
        return
    name = empty[0]
    here = [item for item in skipped if item["path"] == name or item["path"].startswith(name + "/")]
    if here:
        first = here[0]
        detail = f"{len(here)} skipped there; first: '{first['path']}': {first['reason']}"
    else:
        detail = "the folder is empty"
    more = f"; {len(empty) - 1} more classes likewise" if len(empty) > 1 else ""
    raise DatasetError(f"class '{name}' has no usable image in {root / name} ({detail}{more})", report)


# ------------------------------------------------------------------------------ cache


def _load_cached(
    walk: _Walk,
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
        return _loaded(report, np.array(pixels) if in_memory else pixels, on_disk=not in_memory)
    try:
        with atomic_dir(entry) as tmp:
            report, images = _decode_to_file(walk, size, tmp / "pixels.npy", in_memory, progress, stop)
            stored = {k: v for k, v in asdict(report).items() if k != "root"}
            write_json(tmp / "index.json", {"version": CACHE_VERSION, "key": key, "report": stored})
    except OSError as exc:
        raise DatasetError(f"cannot write data cache in {cache_dir}: {exc.strerror or exc}") from None
    _prune(cache_dir, prefix, entry)
    if images is not None:
        return _loaded(report, images, on_disk=False)
    hit = _open_cache(entry, key, size)
    if hit is None:
        raise DatasetError(f"data cache {entry} vanished or is unreadable right after writing it")
    return _loaded(report, hit[1], on_disk=True)


def _decode_to_file(
    walk: _Walk,
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
        report = _decode_into(walk, size, pixels, progress, stop)
        images = pixels[: len(report.files)]
        with open(target, "wb") as handle:
            np.save(handle, images)
            handle.flush()
            os.fsync(handle.fileno())
        return report, images
    mapped = np.lib.format.open_memmap(target, mode="w+", dtype=np.uint8, shape=shape)
    _reserve(target)
    report = _decode_into(walk, size, mapped, progress, stop)
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


def _cache_key(walk: _Walk, size: int) -> str:
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


def _loaded(report: DatasetReport, images: np.ndarray, on_disk: bool) -> LoadedDataset:
    return LoadedDataset(report, images, np.asarray(report.labels, dtype=np.int32), on_disk)


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB"
