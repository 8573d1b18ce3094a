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
    report.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from engine.artifacts.report import write_report

    print(f"report: {write_report(args.experiment, args.to)}")
    return exit_codes.OK
