"""Long-session memory: resident memory after each of N consecutive runs in one process.

    python -m engine.measure.memory_soak [--runs 10] [--mode runs|experiments] [--batch-size 16]
                                [--image-size 32] [--epochs 1] [--data demo|stripes]
                                [--per-class 40] [--without forget|trim ...]

``runs``: one experiment with N repeats of one batch size (the window's long
comparison); ``experiments``: N one-run experiments in a row (a user pressing Run
again and again). Prints RSS after each run (the engine has released the run's
memory by then) and the growth from run 2 to the last, the figure the reliability
contract bounds (< 10%); run 1 includes TensorFlow's one-time start-up, so it is the
baseline's warm-up, not a leak. ``--without`` turns off one of engine.train.memory's
releases, to measure what it is worth.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def rss_mib() -> float:
    """Resident set size from /proc (Linux): what the OS counts against the process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmRSS (not Linux?)")


def trend(values: list[float]) -> float:
    """Least-squares slope per step: RSS jumps by tens of MiB between readings, a leak climbs steadily."""
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    return (sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
            / sum((x - mean_x) ** 2 for x in range(n)))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--mode", choices=("runs", "experiments"), default="runs")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--data", choices=("demo", "stripes"), default="demo",
                        help="demo: the bundled shapes set; stripes: the tests' tiny coloured stripes")
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--without", nargs="*", choices=("forget", "trim"), default=[],
                        help="skip engine.train.memory.forget_traced_steps / trim_heap after each run")
    args = parser.parse_args(argv)

    from engine.config import ExperimentConfig
    from engine.data.demo import generate_demo_data
    from engine.events import RunFinished
    from engine.study.launch import run_experiment
    from engine.train import memory as isolation
    from tests.conftest import write_image_folder

    if "forget" in args.without:
        isolation.forget_traced_steps = lambda: 0  # the runner looks it up at the end of every run
    if "trim" in args.without:
        isolation.trim_heap = lambda: False
    figures: list[float] = []

    def listener(event: object) -> None:
        if isinstance(event, RunFinished):
            figures.append(rss_mib())
            print(f"run {len(figures):2d} ({event.status}): RSS {figures[-1]:7.1f} MiB", flush=True)

    with tempfile.TemporaryDirectory(prefix="batchlab-soak-") as tmp:
        if args.data == "demo":
            data = generate_demo_data(Path(tmp) / "data", per_class=args.per_class, image_size=args.image_size)
        else:
            data = write_image_folder(Path(tmp) / "data", classes=3, per_class=args.per_class, size=args.image_size)

        def config(repeats: int) -> ExperimentConfig:
            return ExperimentConfig(data_dir=str(data), batch_sizes=[args.batch_size], epochs=args.epochs,
                                    patience=0, image_size=args.image_size, out=str(Path(tmp) / "out"),
                                    precision="fp32", repeats=repeats)

        without = f", without {' and '.join(args.without)}" if args.without else ""
        print(f"before any run: RSS {rss_mib():7.1f} MiB ({args.mode}, {args.runs} runs, {args.data} data"
              f"{without})", flush=True)
        if args.mode == "runs":
            run_experiment(config(args.runs), listener)
        else:
            for _ in range(args.runs):
                run_experiment(config(1), listener)
    if len(figures) >= 3:
        growth = (figures[-1] - figures[1]) / figures[1] * 100
        print(f"growth from run 2 to run {len(figures)}: {figures[-1] - figures[1]:+.1f} MiB ({growth:+.1f}%)")
        steps = [b - a for a, b in zip(figures[1:], figures[2:])]
        print(f"per run after run 2: mean {sum(steps) / len(steps):+.2f} MiB, max {max(steps):+.2f} MiB, "
              f"trend {trend(figures[1:]):+.2f} MiB/run (least squares: one noisy reading moves it little)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
