"""Queries on a record's runs: the best one, and the one a user asked for by batch size and repeat."""

from __future__ import annotations

from typing import Any, Optional


class NoRunError(ValueError):
    """No run matches what was asked for; the message says which runs there are."""


def best_run(runs: list[dict[str, Any]], with_checkpoint: bool = False) -> Optional[dict[str, Any]]:
    """The run with the highest best validation accuracy (the earlier run wins a tie)."""
    scored = [r for r in runs if isinstance((r.get("best") or {}).get("val_accuracy"), (int, float))
              and not isinstance(r["best"]["val_accuracy"], bool) and (r.get("checkpoint") or not with_checkpoint)]
    return max(scored, key=lambda r: r["best"]["val_accuracy"], default=None)


def choose_run(record: dict[str, Any], batch_size: Optional[int] = None,
               repeat: Optional[int] = None) -> dict[str, Any]:
    """The best run with a checkpoint, narrowed by ``batch_size`` and ``repeat`` (0-based, as in the
    record) when given; NoRunError names the batch sizes that do have one."""
    with_checkpoint = [r for r in record.get("runs", []) if r.get("checkpoint") and r.get("best")]
    if not with_checkpoint:
        raise NoRunError(f"experiment {record.get('id', '')}: no run has saved a checkpoint yet")
    runs = [r for r in with_checkpoint if batch_size is None or r["batch_size"] == batch_size]
    runs = [r for r in runs if repeat is None or r.get("repeat", 0) == repeat]
    chosen = best_run(runs, with_checkpoint=True)
    if chosen is None:
        sizes = sorted({r["batch_size"] for r in with_checkpoint})
        wanted = f"batch size {batch_size}" + (f" repeat {repeat + 1}" if repeat is not None else "")
        raise NoRunError(f"experiment {record.get('id', '')}: no checkpoint for {wanted} "
                         f"(batch sizes with one: {', '.join(map(str, sizes))})")
    return chosen
