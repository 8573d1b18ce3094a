"""The ``bench`` sub-command: measure this machine and print a table (and JSON with ``--json``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Optional

from engine import exit_codes
from engine.atomic import write_json
from engine.cli.common import positive_int


def register(subparsers: argparse._SubParsersAction, measure_window: Optional[Callable[..., Any]] = None) -> None:
    """``measure_window(config)`` times training inside the window; without one the window figures are
    reported as not measured (the engine cannot open a window; the launcher can)."""
    bench = subparsers.add_parser("bench", help="measure training speed on this machine (minutes; --quick: <3 min)")
    bench.add_argument("--quick", action="store_true", help="small images and a small demo set (CI)")
    bench.add_argument("--json", metavar="FILE", default=None, help="also write every figure to FILE")
    bench.add_argument("--data", default=None, help="image folder to train on (default: the demo set)")
    bench.add_argument("--image-size", type=positive_int, default=None)
    bench.add_argument("--batch-sizes", nargs="+", type=positive_int, metavar="N", default=None)
    bench.add_argument("--demo-per-class", type=positive_int, default=None)
    bench.add_argument("--matmul-n", type=positive_int, default=None, help="matrix side for the peak")
    bench.add_argument("--accuracy-epochs", type=int, default=None,
                       help="epochs of the fp32-vs-mixed accuracy check (0: skip)")
    bench.add_argument("--rounds", type=positive_int, default=None,
                       help="interleaved repeats of the throughput figures, medians reported (default: 3; quick: 1)")
    bench.add_argument("--model", default=None, help="model every measurement trains (default: seed)")
    bench.add_argument("--weights", default=None, help="its initial weights (default: none)")
    bench.add_argument("--no-gui", action="store_true", help="skip training inside the window")
    bench.set_defaults(handler=cmd_bench, measure_window=measure_window)


def cmd_bench(args: argparse.Namespace) -> int:
    from engine.measure.bench import run_bench, settings_for, table

    settings = settings_for(args.quick, image_size=args.image_size, batch_sizes=args.batch_sizes,
                            demo_per_class=args.demo_per_class, matmul_n=args.matmul_n,
                            accuracy_epochs=args.accuracy_epochs, data_dir=args.data, rounds=args.rounds,
                            model=args.model, weights=args.weights,
                            gui=False if args.no_gui or args.measure_window is None else None)
    result = run_bench(settings, say=lambda line: print(f"… {line}", file=sys.stderr, flush=True),
                       measure_window=args.measure_window)
    print(table(result))
    if args.json:
        write_json(args.json, result)
        print(f"\nJSON: {args.json}")
    return exit_codes.OK
