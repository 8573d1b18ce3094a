"""``demo-data`` and ``check``: the data a user trains on, before anything trains."""

from __future__ import annotations

import argparse
import sys

from engine import exit_codes


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo-data", help="write the bundled demo data set into data/shapes")
    demo.add_argument("--to", default="data", help="parent folder (default: data)")
    demo.add_argument("--force", action="store_true", help="regenerate even if it exists")
    demo.set_defaults(handler=cmd_demo_data)

    check = sub.add_parser("check", help="dataset report: classes, counts, files skipped and why")
    check.add_argument("data", help="folder with one sub-folder per class")
    check.set_defaults(handler=cmd_check)


def cmd_demo_data(args: argparse.Namespace) -> int:
    from engine.data.demo import generate_demo_data

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:  # a log file keeps every line the terminal overwrites
            print(f"\rwriting demo images {done}/{total}", end="", flush=True)

    path = generate_demo_data(args.to, progress=progress, force=args.force)
    print(f"\rdemo data set ready: {path}" + " " * 20)
    return exit_codes.OK


def cmd_check(args: argparse.Namespace) -> int:
    from engine.data.dataset import scan_dataset
    from engine.data.scan import DatasetError

    try:
        report = scan_dataset(args.data)
    except DatasetError as exc:
        if exc.report is None:
            raise
        print("\n".join(exc.report.summary_lines()))  # every skipped file, then the fatal line
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    print("\n".join(report.summary_lines()))
    return exit_codes.OK


