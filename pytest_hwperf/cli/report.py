"""`hwperf report`: render a saved JSON report as a table, and optionally as one
self-contained HTML page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_hwperf.cli._common import _fail
from pytest_hwperf.report import ReportError, load_document, summary_lines
from pytest_hwperf.report.terminal import visible

if TYPE_CHECKING:
    from pytest_hwperf.cli._common import _Commands
    from pytest_hwperf.report import Document


def _report(args: argparse.Namespace) -> int:
    try:
        # Read whole and typed: a malformed measurement is a one-line error naming the
        # file and where in it, before anything is printed.
        document = load_document(Path(args.path))
    except ReportError as exc:
        return _fail("report", exc)
    records = document.measurements
    if not records:
        print(f"{visible(args.path)}: no measurements")
    for line in summary_lines(records) if records else []:
        print(line)
    if args.html is not None:
        return _report_html(document, Path(args.html), None if args.dir is None else Path(args.dir))
    return 0


def _report_html(document: Document, path: Path, baseline_dir: Path | None) -> int:
    """Write the HTML report of `document`, with the trends of the run history in
    `baseline_dir` (default: the folder the report records); a history that cannot be
    read is a warning, the page is written without its trends."""
    from pytest_hwperf.report.html import read_history, render_html, write_html

    skipped: list[str] = []  # history rows that did not validate
    history, history_error = read_history(document, baseline_dir, warnings=skipped)
    for warning in [*skipped, *([history_error] if history_error else [])]:
        print(f"hwperf report: warning: {visible(warning)}", file=sys.stderr)
    try:
        page = render_html(document, history=history, history_error=history_error)
    except Exception as exc:  # a value no chart foresaw: one line, not a traceback
        return _fail("report", f"cannot render the HTML report {path}: {type(exc).__name__}: {exc}")
    try:
        write_html(path, page)
    except ReportError as exc:
        return _fail("report", exc)
    print(f"hwperf report: HTML report written to {visible(path)}")
    return 0


def register(commands: _Commands) -> None:
    """Add `report` to the `hwperf` subcommands."""
    report = commands.add_parser("report", help="Render a saved JSON report as a table")
    report.add_argument("path", help="A JSON report written by --hwperf-json")
    report.add_argument(
        "--html",
        default=None,
        metavar="OUT",
        help="Also write the report as one self-contained HTML page with charts to OUT",
    )
    report.add_argument(
        "--dir",
        default=None,
        metavar="DIR",
        help="The baseline folder whose run history gives the HTML trends (default: the"
        " --hwperf-baseline-dir the report records)",
    )
    report.set_defaults(run=_report)
