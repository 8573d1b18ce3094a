"""``demo-data`` and ``check``: the data a user trains on, before anything trains."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from engine import exit_codes


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo-data", help="write the bundled demo data set into data/shapes",
                          description="Draw the demo data set (5 classes of shapes, 500 images each) into "
                                      "TO/shapes, data/shapes by default; a complete set there is kept.")
    demo.add_argument("--to", default="data", metavar="TO",
                      help="parent folder: the set is written into TO/shapes")
    demo.add_argument("--force", action="store_true", help="draw it again even if a complete set exists")
    demo.set_defaults(handler=cmd_demo_data)

    check = sub.add_parser("check", help="dataset report: classes, counts, files skipped and why")
    check.add_argument("data", help="folder with one sub-folder per class")
    check.set_defaults(handler=cmd_check)


class DemoProgress:
    """Drawing progress: one line rewritten in place on a terminal; in a log or pipe a plain line per
    tenth, with no carriage returns or padding to clutter the file."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = bool(getattr(stream, "isatty", lambda: False)())

    def __call__(self, done: int, total: int) -> None:
        if self.live and (done % 50 == 0 or done == total):
            self.stream.write(f"\rwriting demo images {done}/{total}")
        elif not self.live and done * 10 // total != (done - 1) * 10 // total:
            self.stream.write(f"writing demo images {done}/{total}\n")
        self.stream.flush()

    def finish(self, text: str) -> None:
        self.stream.write(("\r\033[K" if self.live else "") + text + "\n")
        self.stream.flush()


def cmd_demo_data(args: argparse.Namespace) -> int:
    from engine.data.demo import generate_demo_data

    progress = DemoProgress(sys.stdout)
    path = generate_demo_data(args.to, progress=progress, force=args.force)
    progress.finish(f"demo data set ready: {path}")
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


