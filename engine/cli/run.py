"""``run``: train once per batch size and compare, headless."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from engine import exit_codes
from engine.cli.common import device_name, install_interrupt, positive_int

if TYPE_CHECKING:
    from engine.config import ExperimentConfig


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="train once per batch size and compare")
    run.add_argument("data", nargs="?", help="folder with one sub-folder per class")
    add_run_arguments(run)
    run.set_defaults(handler=cmd_run)


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


def cmd_run(args: argparse.Namespace) -> int:
    from engine.analysis.summary import load_probe, summarize
    from engine.cli.terminal import TerminalProgress, conclusions, results_table
    from engine.record import store as rec
    from engine.stop import StopToken

    stop = StopToken()
    progress = TerminalProgress()
    if args.resume:
        from engine.study.resume import resume_experiment

        install_interrupt(stop)
        experiment_dir = resume_experiment(args.resume, progress, stop)
    else:
        from engine.train.prepare import prepare

        config = config_from_args(args)
        install_interrupt(stop)
        prepared = prepare(config, progress, stop)  # data and split errors before TensorFlow loads
        from engine.study.launch import run_experiment

        experiment_dir = run_experiment(config, progress, stop, prepared)
    record = rec.load(experiment_dir)
    print()
    print(results_table(record))
    print()
    print(conclusions(summarize(record, load_probe(experiment_dir))))
    print(f"\nrecord: {experiment_dir / rec.RECORD_NAME}\nTensorBoard: tensorboard --logdir {experiment_dir}")
    statuses = {r["status"] for r in record["runs"]}
    if stop.is_set() or "stopped" in statuses:
        return exit_codes.STOPPED
    return exit_codes.FAILED if "failed" in statuses else exit_codes.OK


