"""``run``: train once per batch size and compare, headless.

Every setting's flag is generated from the config's field definitions (engine.config), so its
default, limits, choices and help are the window's too. A flag the user did not type leaves no
trace in the parsed arguments, which is how flags override ``--config FILE.toml``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from engine import exit_codes
from engine.cli.common import command, install_interrupt
from engine.config import DEFAULTS, GROUPS, REQUIRED, SETTINGS, ConfigError, default_text, parse_value

if TYPE_CHECKING:
    from engine.config import ExperimentConfig

GROUP_TITLES = {"data": "data", "training": "training", "study": "study: learning rates, tuning and repeats",
                "model": "model", "advanced": "advanced", "scale": "devices and Ray"}
USAGE = ("%(prog)s DATA --batch-sizes N [N ...] [options]\n"
         "       %(prog)s --config FILE.toml [DATA] [--batch-sizes N [N ...]] [options]\n"
         "       %(prog)s --resume EXPERIMENT_DIR")


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="train once per batch size and compare", usage=USAGE,
                         description="Train the same model once per batch size (and learning rate and seed) from "
                                     "the same initial weights on the same split, then compare. Ctrl+C stops after "
                                     "the current batch and keeps the record; exit code 0 when every run completed, "
                                     "1 when one failed, 2 for bad input, 130 when stopped.")
    add_run_arguments(run)
    run.set_defaults(handler=cmd_run)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per config setting (grouped as the window groups them), plus ``--config`` and ``--resume``."""
    groups = {"required": parser.add_argument_group("what to train (required, unless --config gives it)")}
    groups.update({name: parser.add_argument_group(GROUP_TITLES[name]) for name in GROUPS})
    for name, spec in SETTINGS.items():
        group = groups["required" if name in REQUIRED else spec.group]
        common: dict[str, Any] = {"default": argparse.SUPPRESS, "help": _help(name)}
        if spec.positional:
            group.add_argument(name, metavar=spec.metavar, nargs="?", **common)
        elif spec.kind == "bool":  # the flag turns the default around: --no-augment, --parallel
            group.add_argument(spec.flag, dest=name, action="store_const", const=not DEFAULTS[name], **common)
        elif spec.kind == "list":
            group.add_argument(spec.flag, dest=name, nargs="+", action=_ListAction, metavar=spec.metavar, **common)
        else:  # a flag with a ``bare`` value may be given alone: --ray means --ray local
            optional_value = {"nargs": "?", "const": spec.bare} if spec.bare else {}
            group.add_argument(spec.flag, dest=name, type=_converter(name), choices=spec.choices or None,
                               metavar=spec.metavar or None, **optional_value, **common)
    files = parser.add_argument_group("settings file and resuming")
    files.add_argument("--config", metavar="FILE.toml", default=None,
                       help="read every setting from this TOML file (keys as in an experiment's config.toml); "
                            "flags given as well override it. checkpoints/<experiment>/config.toml repeats that "
                            "experiment")
    files.add_argument("--resume", metavar="EXPERIMENT_DIR", default=None,
                       help="continue an interrupted experiment with its recorded settings")


def _help(name: str) -> str:
    spec = SETTINGS[name]
    if name in REQUIRED:
        tail = "required, unless --config gives it"
    elif spec.kind == "bool" and DEFAULTS[name]:
        return f"{spec.help} This flag turns it off (default: on)"
    else:
        tail = f"default: {default_text(name)}"
    return f"{spec.help} ({tail})".replace("%", "%%")


def _converter(name: str) -> Callable[[str], Any]:
    """The argparse type of one setting: parsed and checked as the window checks it."""

    spec = SETTINGS[name]
    hint = f" ({spec.flag} alone takes the next word as its value: put it after the data folder)" if spec.bare else ""

    def convert(text: str) -> Any:
        try:
            return parse_value(name, text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError((exc.problem.text if exc.problem else str(exc)) + hint) from None

    return convert


class _ListAction(argparse.Action):
    """A list setting's words, joined and read by the config's one parser: '32 256', '32,256', '32, 256'."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Optional[str | Sequence[Any]], option_string: Optional[str] = None) -> None:
        words = [values] if isinstance(values, str) else list(values or [])
        try:
            setattr(namespace, self.dest, parse_value(self.dest, " ".join(words)))
        except ConfigError as exc:
            raise argparse.ArgumentError(self, exc.problem.text if exc.problem else str(exc)) from None


def config_from_args(args: argparse.Namespace) -> "ExperimentConfig":
    """The settings file (if any), overridden by the flags given; ConfigError names the flag or file and key."""
    from engine.config import ExperimentConfig
    from engine.config_file import read_settings

    given = {name: getattr(args, name) for name in SETTINGS if hasattr(args, name)}
    from_file = read_settings(args.config) if args.config else {}
    values = {**from_file, **given}
    if not values.get("data_dir"):
        raise ConfigError("data: give the data folder (or --config FILE.toml with data_dir, or --resume "
                          "EXPERIMENT_DIR)")
    if not values.get("batch_sizes"):
        raise ConfigError("--batch-sizes: give at least one, e.g. --batch-sizes 32 256")
    config = ExperimentConfig(**values)
    found = config.problems()
    if found:
        problem = found[0]
        where = f"{args.config}: {problem.field}" if problem.field in from_file and problem.field not in given \
            else SETTINGS[problem.field].flag
        raise ConfigError(f"{where}: {problem.text}")
    return config


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
    program = getattr(args, "program", "main.py")
    print()
    print(results_table(record))
    print()
    print(conclusions(summarize(record, load_probe(experiment_dir))))
    print(f"\nrecord: {experiment_dir / rec.RECORD_NAME}\n"
          f"TensorBoard: {command('tensorboard', '--logdir', str(experiment_dir))}")
    statuses = {r["status"] for r in record["runs"]}
    if stop.is_set() or "stopped" in statuses:
        print(f"stopped; to finish it: {command(program, 'run', '--resume', str(experiment_dir))}")
        return exit_codes.STOPPED
    return exit_codes.FAILED if "failed" in statuses else exit_codes.OK
