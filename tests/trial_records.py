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
          epochs_planned: int = 10, train: int = TRAIN) -> dict[str, Any]:
    """One trial; ``steps`` are cumulative steps at each epoch end (default: ceil(train / batch) per epoch)."""
    per_epoch = math.ceil(train / batch)
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
        "train_samples": train, "history": history, "epochs_run": len(history),
        "seconds_per_epoch": per_epoch * seconds_per_step, "images_per_s": batch / seconds_per_step,
        "best": {"epoch": best + 1, "val_accuracy": accuracies[best], "val_loss": 1.2 - accuracies[best]}
        if best is not None else None,
        "checkpoint": None,
        "trial": {"rung": rung, "stopped_at_rung": stopped_at_rung, "stop_reason": stop_reason, "note": note},
    }


def experiment(runs: list[dict[str, Any]], sizes: list[int], *, method: str = "grid", eta: Optional[int] = None,
               rungs: Optional[dict[str, list[int]]] = None, epochs: int = 10, repeats: int = 1,
               target: Optional[float] = None, budget: str = "epochs", image_size: int = 32,
               model: str = "seed", train: int = TRAIN) -> dict[str, Any]:
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
        "dataset": {"root": "data/shapes", "classes": CLASSES, "counts": {c: (train + VAL) // 5 for c in CLASSES},
                    "skipped": [], "train_count": train, "val_count": VAL},
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


def showcase() -> tuple[dict[str, Any], dict[str, Any]]:
    """(record, probe): successive halving over 3 lrs (sqrt-scaled centres) at 5 batch sizes, 2 seeds, a
    20-epoch budget. The best lrs reach 95% of 95% on S(B) = 300 (1 + 80/B) steps (+-4% per seed) except
    batch 512, whose budget runs out; one dead trial, two diverged; a probe ladder up to 1024 (out of memory)."""
    train, epochs = 6400, 20
    sizes, seconds_per_step = [16, 32, 64, 128, 256, 512], {16: 0.010, 32: 0.012, 64: 0.018, 128: 0.032,
                                                             256: 0.062, 512: 0.12}
    runs: list[dict[str, Any]] = []
    for seed in (0, 1):
        for batch in sizes:
            centre = 0.001 * math.sqrt(batch / 16)
            best_index = 2 if batch == 64 else 1
            for i, lr in enumerate([centre / 3, centre, centre * 3]):
                per_epoch = math.ceil(train / batch)
                jitter = 1.0 + (0.04 if seed else -0.04) * (1 if batch % 3 else -1)
                forgiving = batch <= 32  # small batches tolerate a wider range of learning rates
                scale = on_curve(300.0, 80.0, batch) * jitter * (1.0 if i == best_index else 1.15 if forgiving else 1.7)
                best = i == best_index
                length = epochs if best else 7
                steps = [per_epoch * (e + 1) for e in range(length)]
                penalty = 0.0 if best or forgiving else 0.02
                accuracies = [round(0.95 - 0.75 * math.exp(-2.76 * s / scale) - penalty, 4) for s in steps]
                common = dict(seed=seed, steps=steps, train=train, epochs_planned=epochs,
                              seconds_per_step=seconds_per_step[batch] * (1.02 if seed else 0.98))
                index = len(runs)
                if batch == 16 and i == 0 and seed == 1:
                    runs.append(trial(index, batch, lr, i, [0.2] * 7, losses=[1.6094, 1.6091, 1.6093, 1.6094, 1.6092,
                                                                             1.6094, 1.6094],
                                      stop_reason="dead", rung=0, stopped_at_rung=0, **common))
                elif batch == 512 and i == 2:
                    runs.append(trial(index, batch, lr, i, [0.35], status="failed", stop_reason="diverged", rung=0,
                                      stopped_at_rung=0, error="loss became nan in epoch 2: training diverged",
                                      **{**common, "steps": steps[:1]}))
                else:
                    runs.append(trial(index, batch, lr, i, accuracies, rung=1 if best else 0,
                                      stopped_at_rung=None if best else 0,
                                      stop_reason="completed" if best else "halved", **common))
    record = experiment(runs, sizes, method="halving", eta=3, rungs={str(b): [7, 20] for b in sizes}, epochs=epochs,
                        repeats=2, train=train)
    record["config"].update(lr_scaling="sqrt", lr_grid=3, lr_grid_factor=3.0, tune="halving", halving_eta=3)
    ladder = {8: 700.0, 16: 1500.0, 32: 2500.0, 64: 3400.0, 128: 3800.0, 256: 4000.0, 512: 4100.0}
    probe = {"points": [{"batch_size": b, "images_per_s": v, "status": "ok"} for b, v in ladder.items()]
             + [{"batch_size": 1024, "images_per_s": None, "status": "out_of_memory"}], "max_fitting_batch": 512}
    return record, probe
