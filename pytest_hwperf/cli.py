"""The `hwperf` console script."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_hwperf import __version__
from pytest_hwperf.report import ReportError, load_document, summary_lines

__all__ = ["main"]


def _report(args: argparse.Namespace) -> int:
    try:
        document = load_document(Path(args.path))
    except ReportError as exc:
        print(f"hwperf report: error: {exc}", file=sys.stderr)
        return 2
    records = document.get("measurements", [])
    if not records:
        print(f"{args.path}: no measurements")
        return 0
    for line in summary_lines(records):
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwperf", description="pytest-hwperf: hardware-aware performance testing"
    )
    parser.add_argument("--version", action="version", version=f"pytest-hwperf {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    report = commands.add_parser("report", help="Render a saved JSON report as a table")
    report.add_argument("path", help="A JSON report written by --hwperf-json")
    report.set_defaults(run=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    code: int = args.run(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
