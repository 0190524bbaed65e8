"""`hwperf history`: one test's measurements over past runs, from the SQLite run
history next to the baselines."""

from __future__ import annotations

import argparse
import sys
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
from pytest_hwperf.report.terminal import ms_text, visible
from pytest_hwperf.store import History, TrendRow
from pytest_hwperf.units import fmt_change

if TYPE_CHECKING:
    from pytest_hwperf.cli._common import _Commands


def _listing(history: History, path: Path) -> int:
    """`hwperf history` without a test id: every recorded test id."""
    recorded = history.recorded()
    if not recorded:
        print(f"no recorded runs in {path} (pytest --hwperf records them)")
        return 0
    table = [("test", "measurements", "runs", "last run")]
    table += [(visible(t.test_id), str(t.measurements), str(t.runs), t.last_run) for t in recorded]
    print("\n".join(_table(table)))
    return 0


def _matching(history: History, wanted: str) -> tuple[str | None, list[str]]:
    """The recorded test id that `wanted` names: itself, else the one id it is a unique
    part of; (None, candidates) when it names none or several."""
    ids = [t.test_id for t in history.recorded()]
    if wanted in ids or any(wanted.startswith(f"{i}::") for i in ids):
        return wanted, []
    found = [i for i in ids if wanted in i]
    if len(found) == 1:
        return found[0], []
    return None, found


def _history(args: argparse.Namespace) -> int:
    path = Path(args.dir) / "history.sqlite"
    try:
        history = History(path)
        if args.test_id is None:
            return _listing(history, path)
        test_id, candidates = _matching(history, args.test_id)
        if test_id is None and candidates:
            shown = "\n".join(f"  {visible(c)}" for c in candidates[:20])
            more = f"\n  ... and {len(candidates) - 20} more" if len(candidates) > 20 else ""
            print(
                f"{visible(args.test_id)!r} matches {len(candidates)} recorded tests;"
                f" give one of them:\n{shown}{more}",
                file=sys.stderr,
            )
            return 2
        rows = history.trend(
            test_id or args.test_id, fingerprint=args.fingerprint, limit=args.limit
        )
    except _INPUT_ERRORS as exc:
        return _fail("history", exc)
    for warning in history.warnings:  # rows that do not validate were skipped
        print(f"hwperf history: warning: {warning}", file=sys.stderr)
    if not rows:
        where = f" on fingerprint {args.fingerprint}" if args.fingerprint else ""
        print(
            f"no recorded runs of {visible(args.test_id)}{where} in {path}"
            " (`hwperf history` lists the recorded tests)"
        )
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
        lines += [visible(key), *(f"  {line}" for line in _table(table))]
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
    text = f"median {ms_text(first)} -> {ms_text(last)} ({fmt_change(change)}) over {count}"
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
        "test_id",
        metavar="TEST_ID",
        nargs="?",
        default=None,
        help="A pytest node id, a unique part of one (test_mlp, test_m.py::test_x), or one"
        " measurement's full key; without it, the recorded tests are listed",
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
