"""Walk a class-per-folder data set: classes, candidate files, and every skipped path with its reason.

Layout: ``root/<class>/**/<image>``, classes sorted by name (as Keras'
``flow_from_directory`` does). Unusable files never stop a scan: each one is listed
in ``DatasetReport.skipped`` with a reason. Only problems that make the whole data set
unusable raise ``DatasetError``, with one line naming the path at fault. What can be
judged from names and ``stat`` is judged here; decoding (engine.data.decode) adds the
files whose contents are unusable.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from engine.stop import StopToken

PathLike = Union[str, "os.PathLike[str]"]


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


@dataclass(frozen=True)
class Candidate:
    """A regular, non-empty file found under a class folder; not yet decoded."""

    rel: str
    path: str
    label: int
    size: int
    mtime_ns: int


@dataclass
class Walk:
    """What walking found, before any file is opened: the input of decoding and of the cache key."""

    root: Path
    root_real: str
    classes: list[str]
    candidates: list[Candidate]
    skipped: list[dict[str, str]]


def walk_dataset(root_arg: PathLike, stop: Optional[StopToken]) -> Walk:
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
                skipped.append(skip(entry.name, reason))
            continue
        try:
            info = os.stat(entry.path)
        except OSError as exc:
            skipped.append(skip(entry.name, _stat_reason(entry, exc)))
            continue
        if not stat.S_ISDIR(info.st_mode):
            skipped.append(skip(entry.name, "file outside any class folder, ignored"))
            continue
        problem = _dir_problem(entry, entry.name, {root_real: "."}, visited, root_real)
        if problem:
            skipped.append(skip(entry.name, problem))
        else:
            class_dirs.append((entry.name, entry.path))
    if not class_dirs:
        raise DatasetError(f"no class folders in {root}: put each class's images in its own sub-folder")
    if len(class_dirs) == 1:
        raise DatasetError(
            f"only one class folder ('{class_dirs[0][0]}') in {root}: a classifier needs at least two"
        )
    candidates: list[Candidate] = []
    for label, (name, path) in enumerate(class_dirs):
        _walk_class(path, name, label, root_real, visited, candidates, skipped, stop)
    candidates.sort(key=lambda c: (c.label, c.rel.split("/")))
    skipped.sort(key=lambda item: item["path"].split("/"))
    return Walk(root, root_real, [name for name, _ in class_dirs], candidates, skipped)


def _walk_class(
    class_path: str,
    class_rel: str,
    label: int,
    root_real: str,
    visited: dict[str, str],
    candidates: list[Candidate],
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
            skipped.append(skip(rel, f"unreadable folder ({_os_reason(exc)})"))
            continue
        for entry in entries:
            child_rel = f"{rel}/{entry.name}"
            if entry.name.startswith("."):
                skipped.append(skip(child_rel, _hidden_reason(entry)))
                continue
            try:
                info = os.stat(entry.path)
            except OSError as exc:
                skipped.append(skip(child_rel, _stat_reason(entry, exc)))
                continue
            if stat.S_ISDIR(info.st_mode):
                problem = _dir_problem(entry, child_rel, ancestors, visited, root_real)
                if problem:
                    skipped.append(skip(child_rel, problem))
                else:
                    real = os.path.realpath(entry.path)
                    stack.append((entry.path, child_rel, {**ancestors, real: child_rel}))
            elif not stat.S_ISREG(info.st_mode):
                skipped.append(skip(child_rel, "not a regular file (device, pipe or socket), ignored"))
            elif info.st_size == 0:
                skipped.append(skip(child_rel, "empty file"))
            else:
                candidates.append(Candidate(child_rel, entry.path, label, info.st_size, info.st_mtime_ns))


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


def skip(rel: str, reason: str) -> dict[str, str]:
    """One entry of ``DatasetReport.skipped``."""
    return {"path": rel, "reason": reason}


def candidate_counts(walk: Walk) -> dict[str, int]:
    """Files per class that may still decode: zero means the class is already lost."""
    counts = {name: 0 for name in walk.classes}
    for candidate in walk.candidates:
        counts[walk.classes[candidate.label]] += 1
    return counts


def check_classes(
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
