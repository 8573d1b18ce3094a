"""BatchLab's command line: the engine without a window, for headless lab machines.

Each sub-command imports what it needs when it runs, so ``check`` and ``--help``
answer at once without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Callable, Optional, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 130


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def device_name(text: str) -> str:
    """``0`` or ``gpu:0`` -> ``GPU:0``; ``cpu:0`` -> ``CPU:0`` (the form the config and TensorFlow use)."""
    name = text.strip().upper()
    return f"GPU:{name}" if name.isdigit() else name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="BatchLab: which batch size, with evidence. "
                                     "Without a command, opens the window.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo-data", help="write the bundled demo data set into data/")
    demo.add_argument("--to", default="data", help="parent folder (default: data)")
    demo.add_argument("--force", action="store_true", help="regenerate even if it exists")
    demo.set_defaults(handler=cmd_demo_data)

    check = sub.add_parser("check", help="dataset report: classes, counts, files skipped and why")
    check.add_argument("data", help="folder with one sub-folder per class")
    check.set_defaults(handler=cmd_check)

    run = sub.add_parser("run", help="train once per batch size and compare")
    run.add_argument("data", nargs="?", help="folder with one sub-folder per class")
    add_run_arguments(run)
    run.set_defaults(handler=cmd_run)
    for register in extra_commands():
        register(sub)
    return parser


def add_run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("--batch-sizes", nargs="+", type=positive_int, metavar="N", help="batch sizes to compare")
    run.add_argument("--epochs", type=positive_int, default=50)
    run.add_argument("--patience", type=int, default=5, help="early-stopping patience in epochs (0: off)")
    run.add_argument("--image-size", type=positive_int, default=150, help="square side in pixels")
    run.add_argument("--val-split", type=float, default=0.25)
    run.add_argument("--lr", type=float, default=0.001, help="Adam learning rate (at the reference batch)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--no-augment", action="store_true")
    run.add_argument("--out", default="checkpoints", help="parent folder of experiment folders")
    run.add_argument("--precision", choices=("auto", "fp32", "mixed"), default="auto")
    run.add_argument("--lr-scaling", choices=("none", "linear", "sqrt"), default="none")
    run.add_argument("--lr-reference-batch", type=positive_int, default=None,
                     help="batch size the --lr belongs to (default: the smallest)")
    run.add_argument("--warmup-epochs", type=float, default=0.0)
    run.add_argument("--budget", choices=("epochs", "steps", "time"), default="epochs")
    run.add_argument("--budget-seconds", type=float, default=None, help="seconds per run for --budget time")
    run.add_argument("--repeats", type=positive_int, default=1)
    run.add_argument("--target-accuracy", type=float, default=None,
                     help="val accuracy for time-to-target (default: 95%% of the best run)")
    run.add_argument("--noise-scale", action="store_true", help="estimate the gradient noise scale (costs time)")
    run.add_argument("--name", default=None, help="experiment folder name (default: time, data and sizes)")
    run.add_argument("--devices", nargs="+", type=device_name, default=None, metavar="DEVICE",
                     help="devices to train on, e.g. 0 1 or GPU:0 GPU:1 (default: every GPU; several "
                          "split each batch between them)")
    run.add_argument("--parallel", action="store_true",
                     help="train the batch sizes at the same time, one per device, instead of splitting batches")
    run.add_argument("--resume", metavar="EXPERIMENT_DIR", default=None,
                     help="continue an interrupted experiment")


def extra_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Sub-commands that live beside their feature (export, predict, probe, bench, worker)."""
    registrars = []
    for module_name in ("engine.export_cli", "engine.probe_cli", "engine.bench_cli", "engine.worker_cli"):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        registrars.append(module.register)
    return registrars


def cmd_demo_data(args: argparse.Namespace) -> int:
    from engine.demo_data import generate_demo_data

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:  # a log file keeps every line the terminal overwrites
            print(f"\rwriting demo images {done}/{total}", end="", flush=True)

    path = generate_demo_data(args.to, progress=progress, force=args.force)
    print(f"\rdemo data set ready: {path}" + " " * 20)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from engine.dataset import DatasetError, scan_dataset

    try:
        report = scan_dataset(args.data)
    except DatasetError as exc:
        if exc.report is None:
            raise
        print("\n".join(exc.report.summary_lines()))  # every skipped file, then the fatal line
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(report.summary_lines()))
    return EXIT_OK


def config_from_args(args: argparse.Namespace) -> "ExperimentConfig":
    from engine.config import ConfigError, ExperimentConfig

    if not args.data:
        raise ConfigError("data: give the data folder (or --resume EXPERIMENT_DIR)")
    if not args.batch_sizes:
        raise ConfigError("--batch-sizes: give at least one, e.g. --batch-sizes 32 256")
    return ExperimentConfig(
        data_dir=args.data, batch_sizes=args.batch_sizes, epochs=args.epochs, patience=args.patience,
        image_size=args.image_size, val_split=args.val_split, lr=args.lr, seed=args.seed,
        augment=not args.no_augment, out=args.out, precision=args.precision, lr_scaling=args.lr_scaling,
        lr_reference_batch=args.lr_reference_batch, warmup_epochs=args.warmup_epochs, budget=args.budget,
        budget_seconds=args.budget_seconds, repeats=args.repeats, target_accuracy=args.target_accuracy,
        noise_scale=args.noise_scale, name=args.name, devices=args.devices, parallel=args.parallel,
    ).validate()


def install_interrupt(stop: "StopToken") -> None:
    """First Ctrl+C stops after the current batch and keeps the record; a second one aborts."""

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping after this batch (Ctrl+C again to abort)", file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, handler)


def cmd_run(args: argparse.Namespace) -> int:
    from engine import record as rec
    from engine.stop import StopToken
    from engine.analysis import load_probe, summarize
    from engine.terminal import TerminalProgress, conclusions, results_table

    stop = StopToken()
    progress = TerminalProgress()
    if args.resume:
        from engine.resume import resume_experiment

        install_interrupt(stop)
        experiment_dir = resume_experiment(args.resume, progress, stop)
    else:
        from engine.prepare import prepare

        config = config_from_args(args)
        install_interrupt(stop)
        prepared = prepare(config, progress, stop)  # data and split errors before TensorFlow loads
        from engine.runner import run_experiment

        experiment_dir = run_experiment(config, progress, stop, prepared)
    record = rec.load(experiment_dir)
    print()
    print(results_table(record))
    print()
    print(conclusions(summarize(record, load_probe(experiment_dir))))
    print(f"\nrecord: {experiment_dir / rec.RECORD_NAME}\nTensorBoard: tensorboard --logdir {experiment_dir}")
    statuses = {r["status"] for r in record["runs"]}
    if stop.is_set() or "stopped" in statuses:
        return EXIT_STOPPED
    return EXIT_FAILED if "failed" in statuses else EXIT_OK


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the user's input is at fault: one line, no traceback."""
    from engine.config import ConfigError
    from engine.dataset import DatasetError
    from engine.record import RecordError
    from engine.split import SplitError

    return ConfigError, DatasetError, RecordError, SplitError, FileNotFoundError, PermissionError


def main(argv: Optional[Sequence[str]] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.handler(args)
    except user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # disk full, read-only folder: say which file, keep what was written
        print(f"error: {exc.strerror or exc} ({exc.filename or 'file system'})", file=sys.stderr)
        return EXIT_FAILED
