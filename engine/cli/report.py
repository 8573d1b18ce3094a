"""``main.py report``: one self-contained HTML file with the evidence behind the batch-size answer."""

from __future__ import annotations

import argparse

from engine import exit_codes


def register(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="write a self-contained HTML report of an experiment: tuned answer, "
                            "learning rate x batch size heat map, S(B) fit and predicted time to target, verdict, "
                            "advice, diagnoses and a checklist")
    report.add_argument("experiment", metavar="EXPERIMENT_DIR", help="experiment folder (holds experiment.json)")
    report.add_argument("--to", required=True, metavar="FILE.html", help="HTML file to write (replaced if it exists)")
    report.add_argument("--target-accuracy", type=fraction, metavar="FRACTION",
                        help="analyse at this validation accuracy instead of the experiment's target (e.g. 0.75, "
                        "one that more batch sizes reached); the record is not changed")
    report.set_defaults(handler=cmd_report)


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0 and at most 1 (0.75 means 75%)")
    return value


def cmd_report(args: argparse.Namespace) -> int:
    from engine.artifacts.report import write_report

    print(f"report: {write_report(args.experiment, args.to, args.target_accuracy)}")
    return exit_codes.OK
