"""Decode a walked data set's files, in order, into one uint8 pixel array (threads, bounded look-ahead)."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from engine.data.imagefile import UnusableImage, read_image
from engine.data.scan import Candidate, DatasetReport, Walk, check_classes, skip
from engine.stop import StopToken

Progress = Callable[[int, int], None]

MAX_WORKERS = 8


@dataclass
class LoadedDataset:
    """Pixels of every usable file, in ``report.files`` order."""

    report: DatasetReport
    images: np.ndarray  # uint8 [N, S, S, 3], in memory or np.memmap
    labels: np.ndarray  # int32 [N]
    on_disk: bool


def decode_into(
    walk: Walk,
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
    usable: list[Candidate] = []
    skipped = list(walk.skipped)
    workers = min(MAX_WORKERS, _cpu_count())
    feed = iter(candidates)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        # A bounded window keeps results in order without letting fast workers pile up pixels.
        pending: deque[tuple[Candidate, Future]] = deque()

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
                    skipped.append(skip(candidate.rel, reason))
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
    check_classes(walk.root, report.classes, counts, skipped, report)
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


def loaded(report: DatasetReport, images: np.ndarray, on_disk: bool) -> LoadedDataset:
    """The result of a load, with the report's labels as the int32 array training takes."""
    return LoadedDataset(report, images, np.asarray(report.labels, dtype=np.int32), on_disk)
