"""`hwperf history`: one test's measurements over past runs, from the SQLite run
history next to the baselines."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_hwperf.cli._common import (
    _INPUT_ERRORS,
    _add_dir,
    _count,
    _fail,
    _positive_int_arg,
    _table,
)
from pytest_hwperf.report.terminal import ms_text
from pytest_hwperf.store import History, TrendRow

if TYPE_CHECKING:
    from pytest_hwperf.cli._common import _Commands


def _history(args: argparse.Namespace) -> int:
    path = Path(args.dir) / "history.sqlite"
    try:
        rows = History(path).trend(args.test_id, fingerprint=args.fingerprint, limit=args.limit)
    except _INPUT_ERRORS as exc:
        return _fail("history", exc)
    if not rows:
        where = f" on fingerprint {args.fingerprint}" if args.fingerprint else ""
        print(f"no recorded runs of {args.test_id}{where} in {path}")
        return 0
    keys = list(dict.fromkeys(row.key for row in rows))
    lines: list[str] = []
    for key in keys:
        runs = [row for row in rows if row.key == key]
        table = [("created", "commit", "fingerprint", "n", "median", "p95", "outcome")]
        table += [
            (
                row.created,
                row.commit or "-",
                row.fingerprint,
                "-" if row.n is None else str(row.n),
                ms_text(row.median_ms),
                ms_text(row.p95_ms),
                row.outcome or "no budget",
            )
            for row in runs
        ]
        lines += [key, *(f"  {line}" for line in _table(table))]
        lines.append(f"  trend: {_trend_text(runs)}")
    print("\n".join(lines))
    return 0


def _trend_text(runs: Sequence[TrendRow]) -> str:
    medians = [row.median_ms for row in runs if row.median_ms]
    count = _count(len(runs), "run")
    if len(medians) < 2:
        return f"{count}, too few medians for a trend"
    first, last = medians[0], medians[-1]
    change = 100.0 * (last / first - 1.0)
    text = f"median {ms_text(first)} -> {ms_text(last)} ({change:+.1f}%) over {count}"
    fingerprints = {row.fingerprint for row in runs}
    if len(fingerprints) > 1:
        text += f", across {len(fingerprints)} fingerprints (--fingerprint picks one)"
    return text


def register(commands: _Commands) -> None:
    """Add `history` to the `hwperf` subcommands."""
    history = commands.add_parser(
        "history", help="A test's measurements over past runs, from the SQLite history"
    )
    history.add_argument(
        "test_id", metavar="TEST_ID", help="A pytest node id, or one measurement's full key"
    )
    _add_dir(history)
    history.add_argument(
        "--fingerprint", default=None, metavar="DIGEST", help="Only runs on this fingerprint"
    )
    history.add_argument(
        "--limit",
        type=_positive_int_arg,
        default=50,
        metavar="N",
        help="The last N recorded values (default 50)",
    )
    history.set_defaults(run=_history)
