"""The ``probe`` sub-command: images per second and peak memory per batch size, as a table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

from engine import exit_codes
from engine.cli.common import install_interrupt, positive_int
from engine.config import MODEL_NAMES


def register(subparsers: argparse._SubParsersAction) -> None:

    probe = subparsers.add_parser("probe", help="measure images/s and peak memory at a ladder of batch sizes")
    probe.add_argument("data", help="folder with one sub-folder per class")
    probe.add_argument("--image-size", type=positive_int, default=None, metavar="N",
                       help="square side in pixels (default: the --experiment's, else the data set's recommended "
                       "size (the demo's is 32), else 150)")
    probe.add_argument("--model", default=None, metavar="NAME|FILE.keras",
                       help=f"model to train: {', '.join(MODEL_NAMES)}, or a .keras file (default: the "
                       "--experiment's, else seed)")
    probe.add_argument("--weights", default=None, metavar="none|imagenet|from-file|FILE",
                       help="its initial weights (default: the --experiment's, else none)")
    probe.add_argument("--batch-sizes", nargs="+", type=positive_int, metavar="N", default=None,
                       help="sizes to try, in any order (default: 8, 16, ... up to the training set)")
    probe.add_argument("--steps", type=positive_int, default=3, help="timed steps per size, after one warm-up")
    probe.add_argument("--memory-budget-mb", type=float, default=None, metavar="MB",
                       help="largest peak memory allowed (default on a CPU: 80%% of the memory available)")
    probe.add_argument("--precision", choices=("auto", "fp32", "mixed"), default="auto")
    probe.add_argument("--experiment", metavar="EXP_DIR", default=None,
                       help="experiment folder: save probe.json there (the advice then uses it)")
    probe.add_argument("--cache", metavar="DIR", default=None,
                       help="folder for decoded images (default: the experiment's, else none)")
    probe.add_argument("--json", metavar="FILE", default=None, help="also write the result to FILE")
    probe.set_defaults(handler=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    from engine.config import ConfigError
    from engine.measure.probe import probe, save_probe
    from engine.stop import StopToken

    experiment: Optional[Path] = None
    if args.experiment is not None:
        experiment = Path(args.experiment)
        if not experiment.is_dir():
            raise ConfigError(f"--experiment: {experiment} is not a folder")
    cache = args.cache or (experiment.parent / ".cache" if experiment is not None else None)
    image_size, model, weights = probe_settings(args, experiment)
    stop = StopToken()
    install_interrupt(stop)
    result = probe(args.data, image_size=image_size, batch_sizes=args.batch_sizes, steps=args.steps,
                   memory_budget_mb=args.memory_budget_mb, precision=args.precision, stop=stop, cache_dir=cache,
                   model=model, weights=weights,
                   listener=lambda event: print(f"… {event.text}", file=sys.stderr, flush=True))
    print(table(result))
    if experiment is not None:
        print(f"saved: {save_probe(result, experiment)}")
    if args.json:
        print(f"JSON: {save_probe(result, args.json)}")
    if stop.is_set():
        return exit_codes.STOPPED
    return exit_codes.OK if any(p["images_per_s"] is not None for p in result["points"]) else exit_codes.FAILED


def probe_settings(args: argparse.Namespace, experiment: Optional[Path]) -> tuple[int, str, str]:
    """Image size, model and weights: as given, else the experiment's (its throughput feeds that experiment's
    prediction, so it must be measured on what it trained), else what ``run`` would pick for the data."""
    from engine.config import FALLBACK_IMAGE_SIZE
    from engine.data.recommend import recommended_image_size
    from engine.record import store

    recorded = experiment is not None and (experiment / store.RECORD_NAME).is_file()
    trained = store.load(experiment)["config"] if recorded else {}
    size = args.image_size or trained.get("image_size") or recommended_image_size(args.data) or FALLBACK_IMAGE_SIZE
    return int(size), args.model or trained.get("model") or "seed", args.weights or trained.get("weights") or "none"


def table(result: dict[str, Any]) -> str:
    """One row per size, then the answer: the largest batch that fits, or what else ended the ladder."""
    from engine.measure.probe import answer

    rows = [f"{'batch':>7}  {'images/s':>9}  {'peak MB':>8}  status"]
    for p in result["points"]:
        speed = "-" if p["images_per_s"] is None else f"{p['images_per_s']:.1f}"
        peak = "-" if p["peak_memory_mb"] is None else f"{p['peak_memory_mb']:.0f}"
        status = p["status"].replace("_", " ") + (f": {p['error']}" if p["error"] else "")
        rows.append(f"{p['batch_size']:>7}  {speed:>9}  {peak:>8}  {status}")
    budget = result["memory_budget_mb"]
    limit = "no memory budget" if budget is None else f"memory budget {budget:.0f} MB"
    rows.append("")
    rows.append(f"{result['device']}, {result['precision']}, model {result.get('model', 'seed')}, "
                f"{result['image_size']} px, {limit}")
    rows.append(answer(result))
    return "\n".join(rows)
