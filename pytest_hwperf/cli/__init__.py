"""The `hwperf` console script: `report` renders a saved report, `info` shows the
machine as the plugin sees it, `compare` gives the regression gate's verdict offline,
`baseline list|show|accept` manages the baselines, `history` shows a measurement's
trend from the run history and `against REF` runs the perf tests against REF in one
session (same-run A/B).

One module per command (`info`, `compare`, `baseline`, `report`, `history`, `against`), each
adding its own arguments through `register`; `_common` holds what they share. Only
this package imports the commands, and no command imports this package.

Nothing here ends in a traceback: a file that cannot be used (StoreError, ReportError,
OSError) is one line on stderr naming it, and exit status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pytest_hwperf import __version__
from pytest_hwperf.cli import against, baseline, compare, history, info, report

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwperf", description="pytest-hwperf: hardware-aware performance testing"
    )
    parser.add_argument("--version", action="version", version=f"pytest-hwperf {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (report, info, compare, baseline, history, against):
        command.register(commands)
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
