"""Run one experiment: the same CNN, the same initial weights and split, once per batch size.

The runner owns the experiment folder: ``experiment.json`` (rewritten atomically
after every epoch), the shared initial weights, and per run a best checkpoint
and TensorBoard scalars. A run that fails is recorded as failed and the next
one starts; only user errors found before training (bad data, bad settings)
are raised.
"""

from __future__ import annotations

import errno
import gc
import time
from pathlib import Path
from typing import Any, Optional

import keras
import tensorflow as tf

from engine import atomic
from engine.data.pipeline import Augmentation, build_augmenter, make_dataset
from engine.events import (
    EpochEnded,
    ExperimentFinished,
    ExperimentStarted,
    Listener,
    LogMessage,
    RunFinished,
    RunStarted,
)
from engine.record import store as rec
from engine.record import target
from engine.stop import StopRequested, StopToken
from engine.train import lr_schedule, plan
from engine.train.callbacks import RunMonitor, TrainingFailed
from engine.train.models.files import file_sha256, save_for_inference, weights_sha256
from engine.train.models.seed import build_seed_cnn
from engine.train.placement import Placement
from engine.train.prepare import Prepared

CHECKPOINT_NAME = "best.keras"
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class Experiment:
    """Drives the runs of one experiment folder and keeps its record current."""

    def __init__(self, p: Prepared, experiment_dir: Path, record: dict[str, Any], listener: Listener,
                 stop: StopToken, placement: Optional[Placement] = None) -> None:
        self.placement = placement or Placement()  # default: one device, no strategy
        self.p = p
        self.dir = experiment_dir
        self.record = record
        self.listener = listener
        self.stop = stop
        self.halted: Optional[OSError] = None  # a write failed (disk full): nothing more can be recorded

    def run(self) -> None:
        from engine.train.memory import freeze_startup_objects

        freeze_startup_objects()  # a full garbage collection would otherwise pause everything for ~0.3 s
        cfg = self.p.config
        self.listener(ExperimentStarted(
            experiment_dir=str(self.dir), batch_sizes=list(cfg.batch_sizes), total_runs=len(self.record["runs"]),
            train_samples=int(len(self.p.train_idx)), val_samples=int(len(self.p.val_idx)),
            classes=list(self.p.data.report.classes), device=self.record["environment"]["device"],
            precision=self.p.precision.label))
        try:
            for run in self.record["runs"]:
                if run["status"] in ("completed", "failed"):
                    continue
                if self.stop.is_set() or self.halted:
                    break
                self.train(run)
        finally:
            self.finish()

    def finish(self) -> None:
        runs = self.record["runs"]
        self.record["target_accuracy"] = self.target_accuracy()
        for run in runs:
            run["time_to_target"] = (target.time_to_target(run["history"], self.record["target_accuracy"])
                                     if self.record["target_accuracy"] is not None else None)
        statuses = {r["status"] for r in runs}
        if self.halted:
            status = "failed"
        elif self.stop.is_set() or "stopped" in statuses or "pending" in statuses:
            status = "stopped"
        elif statuses == {"failed"}:
            status = "failed"
        else:
            status = "completed"
        self.record["status"] = status
        self.save_record()
        self.listener(ExperimentFinished(str(self.dir), status))

    def target_accuracy(self) -> Optional[float]:
        if self.p.config.target_accuracy is not None:
            return self.p.config.target_accuracy
        bests = [r["best"]["val_accuracy"] for r in self.record["runs"] if r.get("best")]
        return target.default_target(bests)

    def train(self, run: dict[str, Any]) -> None:
        """One run, isolated: any error becomes this run's failed status and the next run goes on."""
        cfg = self.p.config
        run_dir = self.dir / run_folder(run["batch_size"], run["repeat"], cfg.repeats)
        run.update(status="running", error=None, started=rec.utc_now(),
                   device=self.record["environment"]["device"], precision=self.p.precision.label,
                   tensorboard=run_dir.relative_to(self.dir).as_posix())
        self.save_record()
        try:
            self.fit(run, run_dir)
            run["status"] = "completed"
        except (StopRequested, KeyboardInterrupt) as exc:
            run["status"] = "stopped"
            run["error"] = str(exc) or "stopped by the user"
            if isinstance(exc, KeyboardInterrupt):
                self.stop.set()
        except Exception as exc:  # noqa: BLE001 - one run's failure must not end the experiment
            run["status"] = "failed"
            run["error"] = describe_error(exc, self.dir)
            if is_storage_error(exc):
                self.halted = exc
            self.listener(LogMessage("error", f"batch size {run['batch_size']}: {run['error']}"))
        finally:
            run["finished"] = rec.utc_now()
            self.save_record()
            from engine.train.memory import forget_traced_steps, trim_heap  # see there: what a run leaves behind

            # One full collection, after both releases: each holds the GIL, so each pauses the window.
            keras.backend.clear_session(free_memory=False)
            forget_traced_steps()
            gc.collect()
            trim_heap()  # memory is released before listeners hear the run is over
            self.listener(RunFinished(run["run_index"], run["batch_size"], run["status"], run["error"],
                                      run["best"], run["checkpoint"], run["epochs_run"]))

    def save_record(self) -> None:
        """The one place the record is written (a parallel run's child sends it to its parent instead)."""
        rec.save(self.dir, self.record)

    def fit(self, run: dict[str, Any], run_dir: Path) -> None:
        """Train one run inside the placement's scope; on one device that scope adds nothing."""
        # Outside the scope: it resets the graph that holds the scope. The last run's end collected already.
        keras.backend.clear_session(free_memory=False)
        with self.placement.scope():
            self.fit_in_scope(run, run_dir)

    def fit_in_scope(self, run: dict[str, Any], run_dir: Path) -> None:
        cfg, p = self.p.config, self.p
        keras.utils.set_random_seed(run["seed"])
        keras.mixed_precision.set_global_policy(p.precision.policy)
        model = build_seed_cnn(cfg.image_size, len(p.data.report.classes), seed=run["seed"])
        weights = self.initial_weights(model, run["seed"])
        run["initial_weights_sha256"] = weights_sha256(model)
        run["initial_weights_file"] = weights.relative_to(self.dir).as_posix()
        size = run["batch_size"]
        lr = plan.scaled_lr(cfg.lr, size, p.reference_batch, cfg.lr_scaling)
        steps = plan.steps_per_epoch(len(p.train_idx), size)
        epochs = plan.planned_epochs(cfg.budget, cfg.epochs, size, p.reference_batch, len(p.train_idx))
        replicas = int(model.distribute_strategy.num_replicas_in_sync)  # what Keras really splits each batch over
        run.update(lr=lr, steps_per_epoch=steps, epochs_planned=epochs, train_samples=int(len(p.train_idx)),
                   replicas=replicas, per_replica_batch=-(-size // replicas))
        model.compile(optimizer=keras.optimizers.Adam(lr), loss=keras.losses.SparseCategoricalCrossentropy(),
                      metrics=["accuracy"], jit_compile=False)  # XLA measured 4x slower on CPU
        augmenter = build_augmenter(Augmentation(), run["seed"]) if cfg.augment else None
        train_ds = self.placement.dataset(make_dataset(p.data.images, p.data.labels, p.train_idx, size,
                                                       shuffle_seed=run["seed"], augmenter=augmenter))
        val_ds = self.placement.dataset(make_dataset(p.data.images, p.data.labels, p.val_idx, size))
        noise = self.noise_callback(run, augmenter) if cfg.noise_scale else None
        writer = tf.summary.create_file_writer(str(run_dir))
        monitor = RunMonitor(run_index=run["run_index"], batch_size=size, steps_per_epoch=steps, epochs=epochs,
                             listener=self.listener, stop=self.stop,
                             on_epoch=lambda epoch, logs, seconds, train_seconds: self.end_epoch(
                                 run, run_dir, model, writer, epoch, logs, seconds, train_seconds, monitor),
                             time_budget_s=cfg.budget_seconds if cfg.budget == "time" else None,
                             side_seconds=(lambda: noise.last_seconds) if noise else None)
        callbacks: list[keras.callbacks.Callback] = [monitor]
        if cfg.warmup_epochs > 0:
            callbacks.append(lr_schedule.WarmupCallback(lr, cfg.warmup_epochs, steps))
        if cfg.patience > 0:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                                           patience=cfg.patience, restore_best_weights=True))
        if noise:
            callbacks.insert(0, noise)  # first: it adds the noise scale to the logs the others read
        self.listener(RunStarted(run["run_index"], size, run["repeat"], run["seed"], epochs, steps,
                                 int(len(p.train_idx)), lr))
        self.save_record()
        try:
            model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=0, shuffle=False,
                      callbacks=callbacks)  # tf.data reshuffles every epoch itself
        finally:
            writer.close()

    def noise_callback(self, run: dict[str, Any], augmenter: Any) -> Optional[keras.callbacks.Callback]:
        """The noise-scale estimator on its own dataset object (drawing from fit's would change the
        order fit sees), with k as large as one pass of full batches allows, up to 8."""
        from engine.train.noise_scale import NoiseScaleCallback

        p, size = self.p, run["batch_size"]
        full_batches = len(p.train_idx) // size
        if full_batches < 2:
            self.listener(LogMessage("warning", f"batch size {size}: no noise scale, it needs at least 2 full "
                                                f"batches of training data per epoch (there are {full_batches})"))
            return None
        dataset = make_dataset(p.data.images, p.data.labels, p.train_idx, size, shuffle_seed=run["seed"] + 1,
                               augmenter=augmenter)
        return NoiseScaleCallback(self.placement.dataset(dataset), batch_size=size, k=min(8, full_batches))

    def initial_weights(self, model: keras.Model, seed: int) -> Path:
        """Save the first build's weights per seed; every later run loads exactly those."""
        path = self.dir / "initial" / f"seed{seed}.weights.h5"
        if path.exists():
            model.load_weights(path)
        else:
            atomic.write_with_suffix(path, model.save_weights, ".weights.h5")
        return path

    def end_epoch(self, run: dict[str, Any], run_dir: Path, model: keras.Model, writer: Any, epoch: int,
                  logs: dict[str, Any], seconds: float, train_seconds: float, monitor: RunMonitor) -> None:
        """Record the epoch, save the best checkpoint atomically, log scalars, tell the listener."""
        history = run["history"]
        prev = history[-1] if history else {"steps": 0, "samples": 0, "elapsed": 0.0}
        samples = int(len(self.p.train_idx))
        steps = run["steps_per_epoch"]
        if monitor.out_of_time:  # the last epoch was cut short by the time budget
            steps = int(model.optimizer.iterations.numpy()) - prev["steps"]
            samples = min(samples, steps * run["batch_size"])
        entry = {
            "epoch": epoch,
            "loss": rec.clean_number(float(logs.get("loss", float("nan")))),
            "accuracy": rec.clean_number(float(logs.get("accuracy", float("nan")))),
            "val_loss": rec.clean_number(float(logs.get("val_loss", float("nan")))),
            "val_accuracy": rec.clean_number(float(logs.get("val_accuracy", float("nan")))),
            "lr": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
            "steps": prev["steps"] + steps,
            "samples": prev["samples"] + samples,
            "seconds": round(seconds, 4),
            "elapsed": round(prev["elapsed"] + seconds, 4),
            "images_per_s": round(samples / train_seconds, 2) if train_seconds > 0 else None,
        }
        for key in ("noise_scale", "gns_trace", "gns_grad_sq"):
            if key in logs:
                entry[key] = rec.clean_number(float(logs[key]))
        history.append(entry)
        best = run["best"]
        improved = entry["val_accuracy"] is not None and (best is None or entry["val_accuracy"] > best["val_accuracy"])
        if improved:
            checkpoint = run_dir / CHECKPOINT_NAME
            atomic.write_with_suffix(checkpoint, lambda path: save_for_inference(model, path), ".keras")
            run["best"] = {"epoch": epoch, "val_accuracy": entry["val_accuracy"], "val_loss": entry["val_loss"]}
            run["checkpoint"] = checkpoint.relative_to(self.dir).as_posix()
            run["checkpoint_sha256"] = file_sha256(checkpoint)
        run["epochs_run"] = len(history)
        run["seconds_per_epoch"] = round(sum(h["seconds"] for h in history) / len(history), 4)
        rates = [h["images_per_s"] for h in history if h["images_per_s"]]
        run["images_per_s"] = round(sum(rates) / len(rates), 2) if rates else None
        with writer.as_default(step=epoch):
            for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "images_per_s", "noise_scale"):
                if entry.get(key) is not None:
                    tf.summary.scalar(key, entry[key])
        writer.flush()
        self.save_record()
        now = time.perf_counter()
        self.listener(EpochEnded(run["run_index"], run["batch_size"], dict(entry), run["best"]["val_accuracy"]
                                 if run["best"] else float("nan"), run["best"]["epoch"] if run["best"] else 0,
                                 entry["images_per_s"] or 0.0, monitor.eta_s(now), improved))


def run_folder(batch_size: int, repeat: int, repeats: int) -> str:
    """``bs32`` (or ``bs32-r2`` with repeats): one TensorBoard run per batch size."""
    return f"bs{batch_size}" if repeats == 1 else f"bs{batch_size}-r{repeat + 1}"


def is_storage_error(exc: BaseException) -> bool:
    """A write the file system refused: retrying the next run would fail the same way."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS


def describe_error(exc: BaseException, folder: Optional[Path] = None) -> str:
    """One readable line: out-of-memory gets advice, TensorFlow's long messages are cut."""
    if is_storage_error(exc):
        where = exc.filename or folder or "the experiment folder"
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        return f"disk full: {where}" if full else f"cannot write {where}: {exc.strerror}"
    if isinstance(exc, tf.errors.ResourceExhaustedError) or isinstance(exc, MemoryError):
        return "out of memory at this batch size (try a smaller batch size or image size)"
    if isinstance(exc, TrainingFailed):
        return str(exc)
    text = (getattr(exc, "message", None) or str(exc) or type(exc).__name__).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {first[:300]}"
