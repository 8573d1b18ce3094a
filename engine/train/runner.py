"""Train one trial (batch size, learning rate, seed) for a segment of its epochs, in this process.

A trial trains from the experiment's shared initial weights for its seed, or, after a rung of
successive halving, continues from its saved state (weights and optimizer). Everything it does
reaches the record as events through ``emit``: the study that owns the record folds them in
(``engine.record.state.apply_event``) and writes experiment.json. A trial that fails is
recorded as failed and the next one starts; only a storage failure (disk full) halts the study.
"""

from __future__ import annotations

import errno
import gc
from pathlib import Path
from typing import Any, Callable, Optional

import keras
import tensorflow as tf

from engine import atomic
from engine.analysis.diagnosis import explain, is_dead
from engine.data.pipeline import Augmentation, build_augmenter, make_dataset
from engine.events import Event, LogMessage, RecordUpdated, RunFinished, RunPaused, RunStarted
from engine.record import store as rec
from engine.stop import StopRequested, StopToken
from engine.train.callbacks import BestCheckpoint, Diverged, HistoryRecorder, PatienceStop, RunMonitor, TrainingFailed
from engine.train.bn_calibration import BatchNormCalibration, calibrates, calibration_images, calibration_record
from engine.train.lr_schedule import WarmupCallback
from engine.train.memory import forget_traced_steps, trim_heap
from engine.train.models.build import build_model
from engine.train.models.files import load_own_weights, weights_sha256
from engine.train.placement import Placement
from engine.train.prepare import Prepared

CHECKPOINT_NAME = "best.keras"
STATE_NAME = "state.keras"  # weights and optimizer between rungs; removed once the trial is final
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
FINAL_REASONS = ("completed", "early_stopped", "halved", "dead", "diverged", "failed", "stopped")


def run_folder(run: dict[str, Any], repeats: int, lrs_per_batch: int) -> str:
    """``bs32``; ``bs32-lr2`` with several learning rates; ``-r2`` added with repeats."""
    name = f"bs{run['batch_size']}"
    if lrs_per_batch > 1:
        name += f"-lr{run.get('lr_index', 0) + 1}"
    return name if repeats == 1 else f"{name}-r{run['repeat'] + 1}"


class Trainer:
    """Trains segments of trials; ``emit`` receives every event (and must apply it to ``record``)."""

    def __init__(self, p: Prepared, experiment_dir: Path, record: dict[str, Any], emit: Callable[[Event], None],
                 stop: StopToken, placement: Optional[Placement] = None) -> None:
        self.p = p
        self.dir = experiment_dir
        self.record = record
        self.emit = emit
        self.stop = stop
        self.placement = placement or Placement()  # default: one device, no strategy
        self.halted: Optional[OSError] = None  # a write failed (disk full): nothing more can be recorded
        self.tuning = (record.get("tuning") or {}).get("method", "none") != "none"

    def train_all(self, segments: list[tuple[dict[str, Any], int]]) -> None:
        """Train each (trial, until epoch) in turn, until the stop token is set or storage fails."""
        for run, until_epoch in segments:
            if self.stop.is_set() or self.halted:
                return
            self.train(run, until_epoch)

    def train(self, run: dict[str, Any], until_epoch: int) -> None:
        """Train ``run`` up to ``until_epoch`` epochs in all; any error becomes this trial's outcome."""
        run_dir = self.dir / run_folder(run, self.p.config.repeats, self._lrs_per_batch())
        outcome: tuple[str, Optional[str], Optional[str]]  # status, stop reason, error
        state_file: Optional[str] = None
        try:
            reason, state_file = self.fit(run, run_dir, until_epoch)
            if reason and is_dead(run.get("history") or [], self.record.get("dataset")):
                reason = "dead"  # patience (or the budget) ended a network that never left chance
            outcome = ("completed", reason, None) if reason else ("pending", None, None)
        except (StopRequested, KeyboardInterrupt) as exc:
            if isinstance(exc, KeyboardInterrupt):
                self.stop.set()
            outcome = ("stopped", "stopped", str(exc) or "stopped by the user")
        except Diverged as exc:
            if self.tuning:  # within a learning-rate grid, divergence is what this rate measured
                outcome = ("completed", "diverged", None)
            else:
                outcome = self.failure(run, exc, "diverged")
        except Exception as exc:  # noqa: BLE001 - one trial's failure must not end the study
            outcome = self.failure(run, exc, "failed")
        finally:
            # One full collection, after both releases: each holds the GIL, so each pauses the window.
            keras.backend.clear_session(free_memory=False)
            forget_traced_steps()
            gc.collect()
            trim_heap()  # memory is released before listeners hear the segment is over
        status, reason, error = outcome
        if status == "pending":
            self.emit(RunPaused(run["run_index"], run["batch_size"], self._rung(run), run["epochs_run"], state_file))
        else:
            self.finish(run, status, reason, error)

    def failure(self, run: dict[str, Any], exc: BaseException, reason: str) -> tuple[str, str, str]:
        """A failed trial: say why in the log; a refused write halts the study (the next would fail too)."""
        error = describe_error(exc, self.dir)
        if is_storage_error(exc):
            self.halted = exc
        self.emit(LogMessage("error", f"{trial_name(run, self.tuning)}: {error}"))
        return "failed", reason, error

    def finish(self, run: dict[str, Any], status: str, reason: str, error: Optional[str],
               note: Optional[str] = None) -> None:
        """Seal a trial: its final status, why it stopped, and no saved state left behind."""
        state = rec.inside(self.dir, run.get("state_file"))
        if state is not None and state.is_file():
            state.unlink()
        if reason in ("diverged", "dead") and note is None:
            note = explain(reason, run, self.record)
        ended_early = reason not in ("completed", "early_stopped")
        trial = {"rung": self._rung(run), "stopped_at_rung": self._rung(run) if ended_early else None,
                 "stop_reason": reason, "note": note}
        self.emit(RunFinished(run["run_index"], run["batch_size"], status, error, run.get("best"),
                              run.get("checkpoint"), run.get("epochs_run", 0),
                              {"finished": rec.utc_now(), "state_file": None, "trial": trial}))

    def fit(self, run: dict[str, Any], run_dir: Path, until_epoch: int) -> tuple[Optional[str], Optional[str]]:
        """Train inside the placement's scope: (stop reason once the trial is done, else None; the
        saved state to continue from when it is not done)."""
        # Outside the scope: it resets the graph that holds the scope. The last segment's end collected already.
        keras.backend.clear_session(free_memory=False)
        with self.placement.scope():
            return self.fit_in_scope(run, run_dir, until_epoch)

    def fit_in_scope(self, run: dict[str, Any], run_dir: Path,
                     until_epoch: int) -> tuple[Optional[str], Optional[str]]:
        cfg, p = self.p.config, self.p
        first_epoch = len(run.get("history") or [])
        seed = run["seed"]
        keras.utils.set_random_seed(seed + first_epoch)
        keras.mixed_precision.set_global_policy(p.precision.policy)
        updates: dict[str, Any] = {}
        if first_epoch == 0:
            built = build_model(cfg, len(p.data.report.classes), seed)
            for warning in built.warnings:
                self.emit(LogMessage("warning", warning))
            if self.record.get("model") is None:  # the same model for every trial: recorded once
                self.emit(RecordUpdated({"model": built.info}))
            model = built.model
            weights = self.initial_weights(model, seed)
            model.compile(optimizer=keras.optimizers.Adam(run["lr"]), loss=keras.losses.SparseCategoricalCrossentropy(),
                          metrics=["accuracy"], jit_compile=False)  # XLA measured 4x slower on CPU
            replicas = int(model.distribute_strategy.num_replicas_in_sync)  # what Keras splits each batch over
            updates = {"initial_weights_sha256": weights_sha256(model),
                       "initial_weights_file": weights.relative_to(self.dir).as_posix(),
                       "started": rec.utc_now(), "device": self.record["environment"]["device"],
                       "precision": p.precision.label, "tensorboard": run_dir.relative_to(self.dir).as_posix(),
                       "replicas": replicas, "per_replica_batch": -(-run["batch_size"] // replicas),
                       "trial": {"rung": 0, "stopped_at_rung": None, "stop_reason": None, "note": None}}
            if built.info.get("batch_norm_layers"):  # what each batch-normalization layer averages over
                updates["bn_per_replica_batch"] = updates["per_replica_batch"]
            if calibrates(model, replicas):
                updates["bn_calibration"] = calibration_record(model)
        else:
            model = keras.saving.load_model(rec.inside(self.dir, run["state_file"]), safe_mode=True)
        size, steps, epochs = run["batch_size"], run["steps_per_epoch"], run["epochs_planned"]
        until_epoch = min(until_epoch, epochs)
        # A continued trial draws a fresh, seeded data order and augmentation (a restart of the same
        # stream would repeat its first epochs' order).
        stream_seed = seed if first_epoch == 0 else (seed * 1_000_003 + first_epoch) % 2**31
        augmenter = build_augmenter(Augmentation(), stream_seed) if cfg.augment else None
        train_ds = self.placement.dataset(make_dataset(p.data.images, p.data.labels, p.train_idx, size,
                                                       shuffle_seed=stream_seed, augmenter=augmenter))
        val_ds = self.placement.dataset(make_dataset(p.data.images, p.data.labels, p.val_idx, size))
        noise = self.noise_callback(run, augmenter, stream_seed) if cfg.noise_scale else None
        writer = tf.summary.create_file_writer(str(run_dir))
        history = run.get("history") or []
        monitor = RunMonitor(run_index=run["run_index"], batch_size=size, steps_per_epoch=steps, epochs=epochs,
                             listener=self.emit, stop=self.stop,
                             time_budget_s=cfg.budget_seconds if cfg.budget == "time" else None,
                             side_seconds=(lambda: noise.last_seconds) if noise else None,
                             progress_metrics=self.placement.workers <= 1)
        best = run.get("best")
        checkpoint = BestCheckpoint(run_dir / CHECKPOINT_NAME, best["val_accuracy"] if best else None)
        recorder = HistoryRecorder(run_index=run["run_index"], batch_size=size, steps_per_epoch=steps,
                                   train_samples=int(len(p.train_idx)), previous=history[-1] if history else None,
                                   monitor=monitor, checkpoint=checkpoint,
                                   checkpoint_name=(run_dir / CHECKPOINT_NAME).relative_to(self.dir).as_posix(),
                                   writer=writer, emit=self.emit, best=best)
        callbacks: list[keras.callbacks.Callback] = [monitor, checkpoint, recorder]
        if calibrates(model, int(model.distribute_strategy.num_replicas_in_sync)):  # after the monitor: its
            # training seconds end where validation (and so this) begins
            callbacks.insert(1, BatchNormCalibration(calibration_images(p.data.images, p.data.labels, p.train_idx,
                                                                        stream_seed)))
        patience = PatienceStop(cfg.patience, history) if cfg.patience > 0 else None
        if patience:
            callbacks.append(patience)
        if cfg.warmup_epochs > 0:
            done = history[-1]["steps"] if history else 0
            callbacks.append(WarmupCallback(run["lr"], cfg.warmup_epochs, steps, initial_step=done))
        if noise:
            callbacks.insert(0, noise)  # first: it adds the noise scale to the logs the others read
        self.emit(RunStarted(run["run_index"], size, run["repeat"], seed, epochs, steps, int(len(p.train_idx)),
                             run["lr"], first_epoch, updates))
        try:
            model.fit(train_ds, validation_data=val_ds, initial_epoch=first_epoch, epochs=until_epoch, verbose=0,
                      shuffle=False, callbacks=callbacks)  # tf.data reshuffles every epoch itself
        finally:
            writer.close()
        if patience and patience.stopped:
            return "early_stopped", None
        if monitor.out_of_time or until_epoch >= epochs:
            return "completed", None
        state = run_dir / STATE_NAME
        atomic.write_with_suffix(state, model.save, ".keras")
        return None, state.relative_to(self.dir).as_posix()

    def noise_callback(self, run: dict[str, Any], augmenter: Any, seed: int) -> Optional[keras.callbacks.Callback]:
        """The noise-scale estimator on its own dataset object (drawing from fit's would change the
        order fit sees), with k as large as one pass of full batches allows, up to 8."""
        from engine.train.noise_scale import NoiseScaleCallback

        p, size = self.p, run["batch_size"]
        full_batches = len(p.train_idx) // size
        if full_batches < 2:
            self.emit(LogMessage("warning", f"batch size {size}: no noise scale, it needs at least 2 full "
                                            f"batches of training data per epoch (there are {full_batches})"))
            return None
        dataset = make_dataset(p.data.images, p.data.labels, p.train_idx, size, shuffle_seed=seed + 1,
                               augmenter=augmenter)
        return NoiseScaleCallback(self.placement.dataset(dataset), batch_size=size, k=min(8, full_batches))

    def initial_weights(self, model: keras.Model, seed: int) -> Path:
        """Save the first build's weights per seed; every later trial of that seed loads exactly those."""
        path = self.dir / "initial" / f"seed{seed}.weights.h5"
        if path.exists():
            load_own_weights(model, path)
        else:
            atomic.write_with_suffix(path, model.save_weights, ".weights.h5")
        return path

    def _lrs_per_batch(self) -> int:
        lrs = (self.record.get("tuning") or {}).get("lrs") or {}
        return max((len(v) for v in lrs.values()), default=1)

    def _rung(self, run: dict[str, Any]) -> int:
        """The rung a trial is in: the first whose end it has not passed."""
        ends = ((self.record.get("tuning") or {}).get("rungs") or {}).get(str(run["batch_size"])) or [0]
        return next((k for k, end in enumerate(ends) if run.get("epochs_run", 0) <= end), len(ends) - 1)


def trial_name(run: dict[str, Any], tuning: bool) -> str:
    """'batch size 32', with its learning rate when a batch size is tried at several."""
    return f"batch size {run['batch_size']}" + (f" at lr {run['lr']:.3g}" if tuning else "")


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
