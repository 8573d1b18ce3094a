"""Throughput probe: images per second and peak memory at a ladder of batch sizes.

Like PyTorch Lightning's BatchSizeFinder, but keeping the whole curve: every size
trains a few real steps of the chosen model (engine.train.models) on the user's own
data, through the same tf.data pipeline (augmentation on) that training uses. The
ladder climbs until a size runs out of memory or needs more than the memory budget,
and keeps every point measured before. The result says what ended it (``limited_by``):
memory, the training set (a larger batch would only repeat images), the sizes asked
for, a failure or the user.

Memory: on a GPU, TensorFlow's own peak for ``GPU:0``. On a CPU, the kernel's
high-water mark of this process's resident memory (VmHWM, reset per size through
``/proc/self/clear_refs``) above what the process held once the data was loaded;
that is exact, with no sampling thread to miss a short peak.

TensorFlow is imported only when a probe runs, so a bad folder is answered at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import re
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from engine.artifacts.safe_load import first_line
from engine.atomic import write_json
from engine.config import PRECISIONS, ConfigError, ExperimentConfig
from engine.data.dataset import available_memory, load_dataset
from engine.data.split import stratified_split
from engine.events import Listener, LogMessage, ignore
from engine.stop import StopRequested, StopToken
from engine.train.models.settings import check_model_settings

SCHEMA = 1
PROBE_NAME = "probe.json"
MAX_DEFAULT_BATCH = 4096
CPU_BUDGET_FRACTION = 0.8
"""Default CPU budget: this share of the memory available when the probe starts."""
VAL_SPLIT = 0.25
"""The default experiment's hold-out: the probe trains on the same training share."""
MIB = 1024 * 1024


# -- pure decisions -------------------------------------------------------------------------------

def default_ladder(train_samples: int, cap: int = MAX_DEFAULT_BATCH) -> list[int]:
    """Powers of two from 8 up to the training set (a larger batch is one full-batch step anyway)."""
    sizes = []
    size = 8
    while size <= min(train_samples, cap):
        sizes.append(size)
        size *= 2
    return sizes or [max(1, min(train_samples, cap))]


def is_out_of_memory(error: BaseException) -> bool:
    """TensorFlow's allocation failure, Python's, or one of them re-raised through tf.data."""
    if isinstance(error, MemoryError):
        return True
    import tensorflow as tf

    return isinstance(error, tf.errors.ResourceExhaustedError) or "OOM when allocating" in str(error)


def classify(peak_mb: Optional[float], budget_mb: Optional[float], error: Optional[BaseException]) -> str:
    """A point's status: an error decides first, then the measured peak against the budget."""
    if error is not None:
        return "out_of_memory" if is_out_of_memory(error) else "failed"
    if budget_mb is not None and peak_mb is not None and peak_mb > budget_mb:
        return "over_budget"
    return "ok"


def too_big_to_try(points: Sequence[dict[str, Any]], batch_size: int, limit_mb: float) -> Optional[str]:
    """Why ``batch_size`` must not even start on a CPU, or None.

    A CPU has no clean out-of-memory error: past the machine's memory the kernel kills
    the process (the window with it). So the last measured peak is scaled by the batch
    ratio, an overestimate since the model and optimizer do not grow with the batch,
    and a size predicted beyond ``limit_mb`` is not run.
    """
    measured = [p for p in points if p["peak_memory_mb"] is not None]
    if not measured:
        return None
    last = measured[-1]
    predicted = last["peak_memory_mb"] * batch_size / last["batch_size"]
    if predicted <= limit_mb:
        return None
    return (f"not run: about {predicted:.0f} MB predicted from batch size {last['batch_size']}, "
            f"more than the {limit_mb:.0f} MB this machine can give")


def max_fitting_batch(points: Sequence[dict[str, Any]]) -> Optional[int]:
    fitting = [p["batch_size"] for p in points if p["status"] == "ok"]
    return max(fitting) if fitting else None


def limited_by(points: Sequence[dict[str, Any]], train_samples: int, stopped: bool) -> Optional[str]:
    """What ended the ladder: "memory" (out of memory or over budget), "failed", "stopped" (the user),
    "data" (every size fit and the next doubling would pass the training set: a larger batch
    only repeats images), "sizes" (every size asked for fit; larger ones were not tried), or
    None (nothing was measured)."""
    if not points:
        return "stopped" if stopped else None
    last = points[-1]["status"]
    if last in ("out_of_memory", "over_budget"):
        return "memory"
    if last == "failed":
        return "failed"
    if stopped:
        return "stopped"
    return "data" if 2 * points[-1]["batch_size"] > train_samples else "sizes"


def answer(result: dict[str, Any]) -> str:
    """The probe's conclusion in one line, true to what ended the ladder."""
    fits, limit = result["max_fitting_batch"], result.get("limited_by")
    if fits is None:
        return "no batch size fits" if limit != "stopped" else "stopped before any batch size was measured"
    if limit == "data":
        return (f"every batch size up to {fits} fits (the training set has {result['train_samples']} images); "
                "larger batches need more data")
    if limit == "sizes":
        return f"every batch size tried fits, up to {fits}; larger ones were not tried"
    if limit == "stopped":
        return f"stopped by the user; every batch size measured fits, up to {fits}"
    if limit == "failed":
        return f"every batch size up to {fits} fits; the next one failed for another reason than memory"
    return f"largest batch that fits: {fits}"


# -- memory meters --------------------------------------------------------------------------------

class CpuMemory:
    """Peak resident memory of this process above a baseline, from the kernel's own high-water mark."""

    def __init__(self) -> None:
        _trim_heap()
        self.baseline_kb = _status_kb("VmRSS")
        self.available = _reset_high_water()

    def reset(self) -> None:
        if self.available:
            _trim_heap()
            _reset_high_water()

    def peak_mb(self) -> Optional[float]:
        if not self.available:
            return None
        return max(0.0, (_status_kb("VmHWM") - self.baseline_kb) / 1024)


class GpuMemory:
    """TensorFlow's allocator peak on the first GPU (the one a single-device run trains on)."""

    device = "GPU:0"

    def reset(self) -> None:
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats(self.device)

    def peak_mb(self) -> float:
        import tensorflow as tf

        return tf.config.experimental.get_memory_info(self.device)["peak"] / MIB


def _status_kb(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def _trim_heap() -> None:
    """Hand freed heap pages back to the system (glibc), so earlier work's leftovers, which a new
    size would reuse without growing, neither hide its memory nor count as its own."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_high_water() -> bool:
    """Linux 4.0+: writing 5 to clear_refs resets VmHWM to the current resident size."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kb("VmHWM") > 0


# -- the probe ------------------------------------------------------------------------------------

StepRunner = Callable[[Any, Any, Any], Any]
"""``run_step(model, images, labels)``: one optimizer step (default ``model.train_on_batch``)."""


def probe(data_dir: str | Path, image_size: int = 150, batch_sizes: Optional[Sequence[int]] = None,
          steps: int = 3, memory_budget_mb: Optional[float] = None, precision: str = "auto",
          listener: Listener = ignore, stop: Optional[StopToken] = None,
          cache_dir: Optional[str | Path] = None, seed: int = 0, run_step: Optional[StepRunner] = None,
          on_point: Optional[Callable[[dict[str, Any]], None]] = None, model: str = "seed",
          weights: str = "none") -> dict[str, Any]:
    """Train ``steps`` timed steps (after one warm-up step) per batch size; return the probe JSON.

    ``model`` and ``weights`` are an experiment's settings (engine.config.MODEL_NAMES or a
    .keras file; none, imagenet, from-file or a weights file). Raises ConfigError or
    DatasetError (one line) for bad settings or data. A stop request ends the ladder after
    the current step; the points measured so far are kept. ``on_point`` receives each point
    as it is measured (a window plots the curve growing).
    """
    sizes = _check(image_size, batch_sizes, steps, memory_budget_mb, precision)
    model_config = ExperimentConfig(data_dir=str(data_dir), batch_sizes=[1], image_size=image_size, seed=seed,
                                    model=model, weights=weights)
    check_model_settings(model_config)
    data = load_dataset(data_dir, image_size, cache_dir=cache_dir, stop=stop)
    train_idx, _ = stratified_split(np.asarray(data.labels), data.report.classes, VAL_SPLIT, seed)
    sizes = sizes or default_ladder(len(train_idx))
    for size in sizes:
        if size > len(train_idx):
            listener(LogMessage("warning", f"probe: batch size {size} exceeds the {len(train_idx)} training images "
                                           "(images repeat within its batches; training would take full-batch steps)"))

    import keras

    from engine.train.devices import choose_precision, describe, detect

    facts = detect()
    choice = choose_precision(precision, facts)
    on_gpu = bool(facts.gpus)
    keras.ops.convert_to_numpy(keras.ops.ones(1) + 1)  # start the runtime before the baseline is taken
    meter: CpuMemory | GpuMemory = GpuMemory() if on_gpu else CpuMemory()
    limit_mb = None if on_gpu else available_memory() / MIB
    budget = memory_budget_mb if memory_budget_mb is not None or on_gpu else CPU_BUDGET_FRACTION * limit_mb
    if isinstance(meter, CpuMemory) and not meter.available:
        listener(LogMessage("warning", "probe: this system does not report peak memory "
                                       "(/proc/self/clear_refs); the memory budget cannot be checked"))
    result: dict[str, Any] = {"schema": SCHEMA, "image_size": image_size, "device": describe(facts),
                              "precision": choice.label, "memory_budget_mb": _rounded(budget), "points": [],
                              "max_fitting_batch": None, "limited_by": None, "train_samples": int(len(train_idx)),
                              "model": model, "weights": weights}
    trainer = _Trainer(data.images, data.labels, train_idx, len(data.report.classes), model_config, steps,
                       choice.policy, run_step, stop)
    try:
        for size in sizes:
            if stop is not None and stop.is_set():
                break
            point = _point(size, trainer, meter, budget, limit_mb, result["points"], listener)
            if point is None:
                break
            result["points"].append(point)
            if on_point is not None:
                on_point(dict(point))
            if point["status"] != "ok":
                break
    finally:
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy("float32")
        gc.collect()
    if stop is not None and stop.is_set():
        listener(LogMessage("warning", "probe stopped by the user; the sizes measured so far are kept"))
    result["max_fitting_batch"] = max_fitting_batch(result["points"])
    result["limited_by"] = limited_by(result["points"], len(train_idx), stop is not None and stop.is_set())
    return result


def _point(size: int, trainer: "_Trainer", meter: CpuMemory | GpuMemory, budget: Optional[float],
           limit_mb: Optional[float], points: list[dict[str, Any]], listener: Listener) -> Optional[dict[str, Any]]:
    """Measure one size; None when the user stopped it (a half-measured size is not a point)."""
    point: dict[str, Any] = {"batch_size": size, "images_per_s": None, "peak_memory_mb": None,
                             "status": "ok", "error": None}
    reason = too_big_to_try(points, size, limit_mb) if limit_mb is not None else None
    if reason is not None:
        point.update(status="out_of_memory", error=reason)
        listener(LogMessage("warning", f"probe: batch size {size}: {reason}"))
        return point
    listener(LogMessage("info", f"probe: batch size {size}…"))
    error: Optional[BaseException] = None
    peak: Optional[float] = None
    try:
        meter.reset()
        point["images_per_s"] = _rounded(trainer.images_per_s(size))
        peak = meter.peak_mb()
    except StopRequested:
        return None
    except Exception as exc:  # noqa: BLE001 - a failing size ends the ladder, the points before stay
        error = exc
    finally:
        trainer.release()
    point["peak_memory_mb"] = _rounded(peak)
    point["status"] = classify(peak, budget, error)
    if error is not None:
        point["error"] = first_line(error)
    elif point["status"] == "over_budget":
        point["error"] = f"peak {peak:.0f} MB exceeds the {budget:.0f} MB memory budget"
    level = "info" if point["status"] == "ok" else "warning"
    listener(LogMessage(level, f"probe: batch size {size}: " + _describe(point)))
    return point


def _describe(point: dict[str, Any]) -> str:
    if point["status"] in ("out_of_memory", "failed"):
        return f"{point['status'].replace('_', ' ')} ({point['error']})"
    speed = f"{point['images_per_s']:.1f} images/s"
    if point["status"] == "over_budget":
        return f"{speed}; {point['error']}"
    peak = "n/a" if point["peak_memory_mb"] is None else f"{point['peak_memory_mb']:.0f} MB"
    return f"{speed}, peak memory {peak}"


class _Trainer:
    """Builds the model and its input pipeline for one batch size and times real steps."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, train_idx: np.ndarray, num_classes: int,
                 config: ExperimentConfig, steps: int, policy: str, run_step: Optional[StepRunner],
                 stop: Optional[StopToken]) -> None:
        self.images, self.labels, self.train_idx = images, labels, train_idx
        self.num_classes, self.config, self.steps, self.seed = num_classes, config, steps, config.seed
        self.policy, self.stop = policy, stop
        self.run_step = run_step or (lambda model, x, y: model.train_on_batch(x, y))

    def images_per_s(self, size: int) -> float:
        import keras

        from engine.data.pipeline import Augmentation, build_augmenter, make_dataset
        from engine.train.models.build import build_model

        if self.stop is not None:
            self.stop.raise_if_set()
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy(self.policy)
        model = build_model(self.config, self.num_classes, self.seed).model
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(),
                      metrics=["accuracy"], jit_compile=False)  # as the runner compiles
        # Exactly steps + 1 full batches, cycling through the training images as needed.
        indices = np.resize(self.train_idx, size * (self.steps + 1))
        batches = iter(make_dataset(self.images, self.labels, indices, size, shuffle_seed=self.seed,
                                    augmenter=build_augmenter(Augmentation(), self.seed)))
        images, labels = next(batches)
        self.run_step(model, images, labels)  # warm-up: tracing and first allocations are not timed
        started = time.perf_counter()
        for images, labels in batches:
            if self.stop is not None:
                self.stop.raise_if_set()
            self.run_step(model, images, labels)
        return size * self.steps / (time.perf_counter() - started)

    def release(self) -> None:
        import keras

        keras.backend.clear_session()
        gc.collect()


def _check(image_size: int, batch_sizes: Optional[Sequence[int]], steps: int, budget: Optional[float],
           precision: str) -> list[int]:
    """Settings errors name the setting, before any data is read; returns the ladder in ascending order."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 16 <= image_size <= 1024:
        raise ConfigError(f"image size: {image_size!r} must be a whole number between 16 and 1024")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps: {steps!r} must be a whole number of at least 1")
    if budget is not None and not budget > 0:
        raise ConfigError(f"memory budget: {budget!r} MB must be positive")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    for size in batch_sizes or ():
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"batch sizes: {size!r} is not a positive whole number")
    return sorted(set(batch_sizes or ()))


def _rounded(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(float(value), 2)


def save_probe(result: dict[str, Any], path: str | Path) -> Path:
    """Write atomically; an experiment folder gets ``<exp>/probe.json``. Returns the file written."""
    target = Path(path)
    if target.is_dir():
        target = target / PROBE_NAME
    write_json(target, result)
    return target
