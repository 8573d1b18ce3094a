"""Hand-made experiment records with trials (batch size x learning rate x seed), keyed exactly as
DESIGN.md (issue 13) describes them, so the analysis can be tested on answers known in advance."""

from __future__ import annotations

import math
from typing import Any, Optional

CLASSES = ["circle", "square", "star", "triangle", "cross"]
TRAIN, VAL = 960, 320


def trial(index: int, batch: int, lr: float, lr_index: int, accuracies: list[float], *, seed: int = 0,
          steps: Optional[list[float]] = None, seconds_per_step: float = 0.01, losses: Optional[list[float]] = None,
          status: str = "completed", stop_reason: Optional[str] = "completed", rung: Optional[int] = None,
          stopped_at_rung: Optional[int] = None, note: Optional[str] = None, error: Optional[str] = None,
          epochs_planned: int = 10) -> dict[str, Any]:
    """One trial; ``steps`` are cumulative steps at each epoch end (default: ceil(TRAIN / batch) per epoch)."""
    per_epoch = math.ceil(TRAIN / batch)
    steps = steps or [per_epoch * (i + 1) for i in range(len(accuracies))]
    losses = losses or [1.0 - 0.5 * a for a in accuracies]
    history = [{"epoch": i + 1, "loss": loss, "accuracy": a, "val_loss": 1.2 - a, "val_accuracy": a, "lr": lr,
                "steps": s, "samples": s * batch, "seconds": per_epoch * seconds_per_step,
                "elapsed": s * seconds_per_step, "images_per_s": batch / seconds_per_step}
               for i, (a, s, loss) in enumerate(zip(accuracies, steps, losses))]
    best = max(range(len(accuracies)), key=accuracies.__getitem__) if accuracies else None
    return {
        "run_index": index, "batch_size": batch, "repeat": seed, "seed": seed, "status": status, "error": error,
        "lr": lr, "lr_index": lr_index, "epochs_planned": epochs_planned, "steps_per_epoch": per_epoch,
        "train_samples": TRAIN, "history": history, "epochs_run": len(history),
        "seconds_per_epoch": per_epoch * seconds_per_step, "images_per_s": batch / seconds_per_step,
        "best": {"epoch": best + 1, "val_accuracy": accuracies[best], "val_loss": 1.2 - accuracies[best]}
        if best is not None else None,
        "checkpoint": None,
        "trial": {"rung": rung, "stopped_at_rung": stopped_at_rung, "stop_reason": stop_reason, "note": note},
    }


def experiment(runs: list[dict[str, Any]], sizes: list[int], *, method: str = "grid", eta: Optional[int] = None,
               rungs: Optional[dict[str, list[int]]] = None, epochs: int = 10, repeats: int = 1,
               target: Optional[float] = None, budget: str = "epochs", image_size: int = 32,
               model: str = "seed") -> dict[str, Any]:
    """A record around ``runs``; ``tuning.lrs`` is read off the runs."""
    lrs: dict[str, list[float]] = {}
    for run in runs:
        values = lrs.setdefault(str(run["batch_size"]), [])
        if run["lr"] not in values:
            values.append(run["lr"])
    return {
        "schema_version": 1, "app": "BatchLab test", "id": "20261202-100000-shapes-test", "status": "completed",
        "config": {"data_dir": "data/shapes", "batch_sizes": sizes, "epochs": epochs, "patience": 5,
                   "image_size": image_size, "val_split": 0.25, "lr": 0.001, "seed": 0, "augment": True,
                   "out": "checkpoints", "precision": "auto", "lr_scaling": "none", "lr_reference_batch": None,
                   "warmup_epochs": 0.0, "budget": budget, "budget_seconds": None, "repeats": repeats,
                   "target_accuracy": target, "noise_scale": False, "name": None, "devices": None,
                   "parallel": False, "model": model},
        "dataset": {"root": "data/shapes", "classes": CLASSES, "counts": {c: (TRAIN + VAL) // 5 for c in CLASSES},
                    "skipped": [], "train_count": TRAIN, "val_count": VAL},
        "environment": {"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1", "platform": "Linux",
                        "device": "CPU: AMD EPYC (2 cores)", "precision": "bf16 mixed",
                        "devices": ["/device:CPU:0"]},
        "target_accuracy": target,
        "runs": runs,
        "tuning": {"method": method, "lrs": {k: sorted(v) for k, v in lrs.items()}, "eta": eta,
                   "rungs": rungs or {str(s): [epochs] for s in sizes}},
    }


def on_curve(s_min: float, b_noise: float, batch: int) -> float:
    """Steps to target on McCandlish's curve S(B) = S_min (1 + B_noise / B)."""
    return s_min * (1.0 + b_noise / batch)


def reaching(steps_to_target: float, epochs: int = 4) -> tuple[list[float], list[float]]:
    """(val accuracies, cumulative steps) that first reach 0.9 exactly at ``steps_to_target`` (epoch 2)."""
    accuracies = [0.5, 0.9, 0.92, 0.93][:epochs]
    return accuracies, [steps_to_target * (i + 1) / 2 for i in range(epochs)]
