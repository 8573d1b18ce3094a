"""`python main.py bench`: how fast this machine trains, and how close BatchLab gets to the ceiling.

Every figure is measured in one run on the current machine, from the matrix-multiply
peak down to training inside the window, so a slow step shows up as a ratio that
misses its target instead of as a vague feeling. The measurements run one after
another in this process; ratios compare like with like (same images, batch size,
precision and number of steps).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import keras
import numpy as np

from engine.config import ExperimentConfig
from engine.data.demo import DEMO_IMAGE_SIZE
from engine.train.devices import DeviceFacts, choose_precision, describe, detect
from engine.train.prepare import Prepared

Say = Callable[[str], None]


@dataclass(frozen=True)
class BenchSettings:
    """How much work each measurement does; ``quick`` trades precision of the figures for time."""

    quick: bool
    image_size: int
    batch_sizes: tuple[int, ...]
    demo_per_class: int  # demo images per class when the bench draws its own set
    engine_epochs: int  # the last epoch is timed, the earlier ones absorb tracing
    matmul_n: int
    accuracy_epochs: int  # 0: skip the mixed-vs-fp32 accuracy check
    accuracy_image_size: int
    gui: bool
    gui_pairs: int = 1  # window runs, each followed by a headless one
    rounds: int = 1  # interleaved repeats of the throughput measurements (medians are reported)
    data_dir: Optional[str] = None  # None: data/shapes, drawn into a temp folder when missing
    model: str = "seed"  # what every measurement trains (engine.config.MODEL_NAMES or a .keras file)
    weights: str = "none"


def settings_for(quick: bool, **overrides: Any) -> BenchSettings:
    """``--quick`` keeps CI under three minutes on two cores: 64 px images, a 400-image demo set."""
    if quick:
        base = BenchSettings(quick=True, image_size=64, batch_sizes=(32, 256), demo_per_class=80,
                             engine_epochs=2, matmul_n=1024, accuracy_epochs=0, accuracy_image_size=DEMO_IMAGE_SIZE,
                             gui=True)
    else:
        base = BenchSettings(quick=False, image_size=150, batch_sizes=(32, 256), demo_per_class=500,
                             engine_epochs=2, matmul_n=2048, accuracy_epochs=20, accuracy_image_size=DEMO_IMAGE_SIZE,
                             gui=True, gui_pairs=2, rounds=3)
    values = {**base.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
    values["batch_sizes"] = tuple(values["batch_sizes"])
    return BenchSettings(**values)


# -- the ceiling ----------------------------------------------------------------------------------

def matmul_gflops(dtype: str, n: int, min_seconds: float = 1.0) -> float:
    """Best-of rate of an n x n matrix product: what the math library reaches at this precision."""
    import tensorflow as tf

    a = tf.random.uniform((n, n), dtype=tf.float32)
    b = tf.random.uniform((n, n), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    product = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[0, :1], tf.float32)))
    float(product(a, b))  # trace and warm the caches
    best, spent = float("inf"), 0.0
    while spent < min_seconds or best == float("inf"):
        started = time.perf_counter()
        float(product(a, b))
        elapsed = time.perf_counter() - started
        best, spent = min(best, elapsed), spent + elapsed
    return 2.0 * n ** 3 / best / 1e9


# -- training without and with BatchLab ------------------------------------------------------------

def bare_images_per_s(images: np.ndarray, labels: np.ndarray, batch_size: int, policy: str,
                      num_classes: int, config: ExperimentConfig) -> float:
    """The configured model's ``model.fit`` on in-memory tensors: what a hand-written script reaches.

    Two epochs; the second is timed from its start to its end, as the engine's record
    times its epochs, so tracing and fit start-up are left out of both.
    """
    import tensorflow as tf

    from engine.train.models.build import build_model

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_model(config, num_classes, seed=0).model
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(),
                      metrics=["accuracy"], jit_compile=False)
        clock = EpochClock()
        model.fit(tf.constant(images, dtype=tf.float32), tf.constant(labels.astype(np.int32)),
                  batch_size=batch_size, epochs=2, verbose=0, callbacks=[clock])
        return len(images) / clock.seconds[-1]
    finally:
        keras.mixed_precision.set_global_policy("float32")


class EpochClock(keras.callbacks.Callback):
    """Wall time of each epoch; no per-batch hooks, so it adds no work to a step."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def engine_config(data_dir: str, out: str, settings: BenchSettings, batch_size: int, *,
                  precision: str = "fp32", epochs: Optional[int] = None,
                  image_size: Optional[int] = None, augment: bool = True) -> ExperimentConfig:
    return ExperimentConfig(data_dir=data_dir, batch_sizes=[batch_size], epochs=epochs or settings.engine_epochs,
                            patience=0, image_size=image_size or settings.image_size, augment=augment, out=out,
                            precision=precision, model=settings.model, weights=settings.weights).validate()


def last_epoch_rate(experiment_dir: Path) -> float:
    """Training images/s of the last epoch (the first one pays for tracing)."""
    from engine.record import store as rec

    run = rec.load(experiment_dir)["runs"][0]
    if run["status"] != "completed" or not run["history"]:
        raise RuntimeError(f"{experiment_dir}: benchmark run {run['status']}: {run.get('error')}")
    return float(run["history"][-1]["images_per_s"])


def engine_images_per_s(config: ExperimentConfig) -> float:
    """BatchLab's full path: decode cache, augmentation, callbacks, events, record writes."""
    from engine.study.launch import run_experiment

    return last_epoch_rate(run_experiment(config))


def pipeline_images_per_s(p: Prepared, batch_size: int, min_images: int) -> float:
    """The input pipeline alone (cache gather, augmentation, batching), at least ``min_images``."""
    from engine.data.pipeline import Augmentation, build_augmenter, make_dataset

    ds = make_dataset(p.data.images, p.data.labels, p.train_idx, batch_size, shuffle_seed=0,
                      augmenter=build_augmenter(Augmentation(), 0)).repeat()
    iterator = iter(ds)
    next(iterator)  # tracing
    seen, started = 0, time.perf_counter()
    while seen < min_images:
        seen += int(next(iterator)[0].shape[0])
    return seen / (time.perf_counter() - started)


def best_val_accuracy(config: ExperimentConfig) -> float:
    """The best validation accuracy within the run's epochs: what a user keeps (the best
    checkpoint), and less noisy than the last epoch of one small run."""
    from engine.record import store as rec
    from engine.study.launch import run_experiment

    run = rec.load(run_experiment(config))["runs"][0]
    if run["status"] != "completed":
        raise RuntimeError(f"accuracy run ({config.precision}) {run['status']}: {run.get('error')}")
    return max(float(entry["val_accuracy"]) for entry in run["history"])


# -- putting it together ---------------------------------------------------------------------------

TARGETS = {  # key: (comparison, threshold)
    "engine_vs_bare_fp32": (">=", 0.95),
    "pipeline_vs_engine": (">=", 3.0),
    "mixed_vs_fp32": (">=", 1.7),
    "gui_vs_headless": (">=", 0.95),
    "gui_stall_p99_ms": ("<", 50.0),
    "gui_stall_max_ms": ("<", 200.0),
    "mixed_val_acc_gap_points": ("<=", 2.0),
}


def demo_folder(settings: BenchSettings, scratch: Path, say: Say) -> str:
    """The data to train on: ``--data``, else data/shapes (full mode), else a fresh demo set."""
    from engine.data.demo import DEFAULT_PER_CLASS, demo_data_exists, generate_demo_data

    if settings.data_dir:
        return settings.data_dir
    if not settings.quick and settings.demo_per_class == DEFAULT_PER_CLASS and demo_data_exists("data"):
        return str(Path("data") / "shapes")
    say(f"drawing {settings.demo_per_class} demo images per class into a temporary folder")
    return str(generate_demo_data(scratch / "data", per_class=settings.demo_per_class))


def run_bench(settings: BenchSettings, say: Say = lambda _line: None,
              measure_window: Optional[Callable[[ExperimentConfig], Any]] = None) -> dict[str, Any]:
    """Measure everything; returns the JSON-ready result (figures plus the settings used)."""
    from engine.train.models.build import build_model
    from engine.train.prepare import prepare

    facts: DeviceFacts = detect()
    mixed = choose_precision("mixed", facts)
    mixed_dtype = "bfloat16" if "bfloat16" in mixed.policy else "float16"
    sizes = [str(b) for b in settings.batch_sizes]
    result: dict[str, Any] = {"device": describe(facts), "mixed_policy": mixed.policy,
                              "auto_precision": choose_precision("auto", facts).label,
                              "settings": {**settings.__dict__, "batch_sizes": list(settings.batch_sizes)}}
    say("matrix-multiply peak")
    result["matmul_gflops_fp32"] = matmul_gflops("float32", settings.matmul_n)
    result["matmul_gflops_mixed"] = matmul_gflops(mixed_dtype, settings.matmul_n)

    with tempfile.TemporaryDirectory(prefix="batchlab-bench-") as tmp:
        scratch = Path(tmp)
        data_dir = demo_folder(settings, scratch, say)
        out = str(scratch / "checkpoints")
        first = engine_config(data_dir, out, settings, settings.batch_sizes[0])
        p = prepare(first)
        train_images = p.data.images[np.sort(p.train_idx)]
        train_labels = np.asarray(p.data.labels)[np.sort(p.train_idx)]
        classes = len(p.data.report.classes)
        result["train_images"] = int(len(train_images))
        model_info = build_model(first, classes, seed=0).info
        flops = model_info["flops_per_image"]
        keras.backend.clear_session()
        result["model"] = model_info
        result["forward_gflop_per_image"] = flops / 1e9

        # Interleaved rounds, medians: on a shared machine one epoch can run 20-50 % slow, and
        # alternating the things compared spreads such spells over all of them.
        names = ("bare", "bare_mixed", "engine", "pipeline")
        samples: dict[str, dict[str, list[float]]] = {name: {k: [] for k in sizes} for name in names}
        for turn in range(settings.rounds):
            for size, key in zip(settings.batch_sizes, sizes):
                step = f"round {turn + 1} of {settings.rounds}, batch {size}"
                say(f"{step}: bare model.fit fp32")
                samples["bare"][key].append(
                    bare_images_per_s(train_images, train_labels, size, "float32", classes, first))
                say(f"{step}: bare model.fit {mixed.policy}")
                samples["bare_mixed"][key].append(
                    bare_images_per_s(train_images, train_labels, size, mixed.policy, classes, first))
                say(f"{step}: BatchLab engine fp32, {settings.engine_epochs} epochs")
                samples["engine"][key].append(engine_images_per_s(engine_config(data_dir, out, settings, size)))
                say(f"{step}: input pipeline alone")
                samples["pipeline"][key].append(pipeline_images_per_s(p, size, max(2 * size, len(train_images))))
        bare, bare_mixed, engine, pipeline = ({k: float(np.median(v)) for k, v in samples[name].items()}
                                              for name in names)
        result["samples_images_per_s"] = samples
        result["bare_images_per_s"] = bare
        result["bare_images_per_s_mixed"] = bare_mixed
        result["engine_images_per_s"] = engine
        result["engine_vs_bare_fp32"] = {k: engine[k] / bare[k] for k in sizes}
        result["pipeline_images_per_s"] = pipeline
        result["pipeline_vs_engine"] = {k: pipeline[k] / engine[k] for k in sizes}
        result["mixed_vs_fp32"] = {k: bare_mixed[k] / bare[k] for k in sizes}
        best = max(sizes, key=lambda k: engine[k])
        result["train_flops_vs_peak"] = {
            "fp32": 3 * flops * engine[best] / (result["matmul_gflops_fp32"] * 1e9),
            "mixed": 3 * flops * bare_mixed[best] / (result["matmul_gflops_mixed"] * 1e9),
        }

        result.update(gui_figures(settings, data_dir, out, engine[sizes[0]], say, measure_window))

        if settings.accuracy_epochs:
            say(f"best validation accuracy within {settings.accuracy_epochs} epochs: fp32, then mixed")
            accuracy = {precision: best_val_accuracy(engine_config(
                data_dir, out, settings, settings.batch_sizes[0], precision=precision,
                epochs=settings.accuracy_epochs, image_size=settings.accuracy_image_size))
                for precision in ("fp32", "mixed")}
            result["val_accuracy"] = accuracy
            result["mixed_val_acc_gap_points"] = 100 * abs(accuracy["fp32"] - accuracy["mixed"])
        else:
            result["mixed_val_acc_gap_points"] = None  # not measured in --quick
    return result


def gui_figures(settings: BenchSettings, data_dir: str, out: str, headless_rate: float, say: Say,
                measure_window: Optional[Callable[[ExperimentConfig], Any]]) -> dict[str, Any]:
    """Training inside the real main window (offscreen) at the first batch size."""
    keys = {"gui_images_per_s": None, "gui_headless_images_per_s": None, "gui_vs_headless": None,
            "gui_stall_p99_ms": None, "gui_stall_max_ms": None}
    if not settings.gui or measure_window is None:
        return keys

    config = engine_config(data_dir, out, settings, settings.batch_sizes[0])
    # Window and headless runs alternate (the headless one measured before starts the series):
    # single epochs on a shared machine differ by 10-20 % from one run to the next.
    windows, headless = [], [headless_rate]
    for turn in range(settings.gui_pairs):
        count = f"batch {settings.batch_sizes[0]}, {turn + 1} of {settings.gui_pairs}"
        say(f"{count}: training inside the window (offscreen)")
        windows.append(measure_window(config))
        say(f"{count}: the same run headless")
        headless.append(engine_images_per_s(config))
    window_rate = float(np.mean([w.images_per_s for w in windows]))
    return {"gui_images_per_s": window_rate, "gui_headless_images_per_s": float(np.mean(headless)),
            "gui_vs_headless": window_rate / float(np.mean(headless)),
            "gui_stall_p99_ms": max(w.stall_p99_ms for w in windows),
            "gui_stall_max_ms": max(w.stall_max_ms for w in windows)}


def verdict(key: str, value: Any) -> str:
    """``pass``/``miss`` per target; a dict passes only when every batch size does."""
    if key not in TARGETS or value is None:
        return ""
    op, threshold = TARGETS[key]
    values = list(value.values()) if isinstance(value, dict) else [value]
    ok = all({">=": v >= threshold, "<": v < threshold, "<=": v <= threshold}[op] for v in values)
    return f"target {op} {threshold:g}: {'pass' if ok else 'miss'}"


REPORT_KEYS = ("matmul_gflops_fp32", "matmul_gflops_mixed", "bare_images_per_s", "bare_images_per_s_mixed",
               "engine_images_per_s", "engine_vs_bare_fp32", "pipeline_images_per_s", "pipeline_vs_engine",
               "mixed_vs_fp32", "gui_images_per_s", "gui_headless_images_per_s", "gui_vs_headless",
               "gui_stall_p99_ms", "gui_stall_max_ms", "train_flops_vs_peak", "mixed_val_acc_gap_points")


def format_value(value: Any) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def table(result: dict[str, Any]) -> str:
    """Plain-text table: figure, value (per batch size where it applies), target and pass/miss."""
    rows = [(key, format_value(result[key]), verdict(key, result[key])) for key in REPORT_KEYS]
    width = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    s = result["settings"]
    head = [f"device: {result['device']}; mixed = {result['mixed_policy']}; auto picks {result['auto_precision']}",
            f"model {s.get('model', 'seed')}, {s['image_size']} px, {result['train_images']} training images, "
            f"batch sizes {', '.join(map(str, s['batch_sizes']))}, "
            f"{result['forward_gflop_per_image']:.3g} GFLOP forward/image"]
    lines = [f"{k:<{width[0]}}  {v:<{width[1]}}  {t}".rstrip() for k, v, t in rows]
    return "\n".join(head + [""] + lines)
