"""`hwperf baseline list|show|accept`: the baseline files, one measurement's saved
runs, and a JSON report's results made the baseline of their fingerprint."""

from __future__ import annotations

import argparse
import math
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_hwperf.cli._common import (
    _INPUT_ERRORS,
    _add_dir,
    _count,
    _fail,
    _fingerprint_of,
    _InputError,
    _load_report,
    _table,
)
from pytest_hwperf.records.types import FingerprintRecord
from pytest_hwperf.report.terminal import ms_text
from pytest_hwperf.store import BaselineStore, RunSummary, gate_runs, run_of_record

if TYPE_CHECKING:
    from pytest_hwperf.cli._common import _Commands


def _baseline_list(args: argparse.Namespace) -> int:
    store = BaselineStore(Path(args.dir))
    infos = store.list()
    if not infos:
        print(f"no baselines in {store.folder}")
        return 0
    rows = [("fingerprint", "measurements", "updated", "label")]
    errors = []
    for info in infos:
        if info.error is not None:
            errors.append(f"{info.digest}: error: {info.error}")
            continue
        rows.append((info.digest, str(info.measurements), info.updated or "-", info.label or "-"))
    lines = _table(rows) if len(rows) > 1 else []
    print("\n".join([*lines, *errors]))
    return 2 if errors else 0


def _spread_text(fastest_ms: Sequence[float]) -> str:
    """The run-to-run spread of a measurement's fastest calls: the sample standard
    deviation of their logarithms, as a percentage; "-" with fewer than two."""
    positive = [m for m in fastest_ms if m > 0]
    if len(positive) < 2:
        return "-"
    logs = [math.log(m) for m in positive]
    mean = math.fsum(logs) / len(logs)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    return f"{100.0 * sd:.1f}%"


def _baseline_show(args: argparse.Namespace) -> int:
    try:
        store = BaselineStore(Path(args.dir))
        try:
            baseline = store.load(args.digest)
        except ValueError as exc:
            raise _InputError(str(exc)) from None
        if baseline is None:
            raise _InputError(f"no baseline for fingerprint {args.digest} in {store.folder}")
    except _INPUT_ERRORS as exc:
        return _fail("baseline show", exc)
    label = baseline.fingerprint.label or "no label"
    lines = [f"fingerprint {args.digest} ({label})", f"file: {baseline.path}"]
    rows = [
        (
            "measurement",
            "runs",
            "latest median",
            "latest min",
            "latest run",
            "mins",
            "run-to-run sd",
        )
    ]
    for key, runs in sorted(baseline.measurements.items()):
        if not runs:
            rows.append((key, "0", "-", "-", "-", "-", "-"))
            continue
        fastest_ms = [value for _, value in gate_runs(runs)]  # the figures the gate compares
        latest = runs[-1]
        rows.append(
            (
                key,
                str(len(runs)),
                ms_text(latest.median_ms),
                "-" if latest.min_ms is None else ms_text(latest.min_ms),
                f"{latest.created} {latest.commit or '-'}",
                f"{ms_text(min(fastest_ms))} to {ms_text(max(fastest_ms))}" if fastest_ms else "-",
                _spread_text(fastest_ms),
            )
        )
    if len(rows) > 1:
        lines += _table(rows)
    else:
        lines.append("no measurements")
    print("\n".join(lines))
    return 0


def _baseline_accept(args: argparse.Namespace) -> int:
    path = Path(args.report)
    try:
        report = _load_report(path)
        if not report.measured:
            raise _InputError(f"{path} holds no measured results to accept")
        created = report.created_at
        if created is None:
            created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        run_id = f"accepted-{uuid.uuid4().hex[:12]}"
        by_fingerprint: dict[str, tuple[FingerprintRecord, dict[str, RunSummary]]] = {}
        for record in report.measured:
            fingerprint = _fingerprint_of(record, report)
            if fingerprint is None:
                raise _InputError(f"{path}: {record.key} carries no fingerprint")
            try:
                run = run_of_record(record, run_id, created, None)
            except (ValueError, TypeError) as exc:
                raise _InputError(f"{path}: {record.key}: {exc}") from None
            by_fingerprint.setdefault(fingerprint.digest, (fingerprint, {}))[1][record.key] = run
        store = BaselineStore(Path(args.dir))
        written = []
        for fingerprint, runs in by_fingerprint.values():
            try:
                written.append((store.accept(fingerprint, runs), len(runs)))
            except ValueError as exc:
                raise _InputError(
                    f"{path}: cannot accept fingerprint {fingerprint.digest!r}: {exc}"
                ) from None
    except _INPUT_ERRORS as exc:
        return _fail("baseline accept", exc)
    for target, count in written:
        print(
            f"baseline accepted: {target} ({_count(count, 'measurement')} from {path}, each"
            " now this run only)"
        )
    return 0


def _help_of(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def show(_: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show


def register(commands: _Commands) -> None:
    """Add `baseline` and its actions to the `hwperf` subcommands."""
    baseline = commands.add_parser("baseline", help="List, show or accept baselines")
    baseline.set_defaults(run=_help_of(baseline))
    actions = baseline.add_subparsers(dest="baseline_command", metavar="ACTION")
    listing = actions.add_parser("list", help="One line per baseline file")
    _add_dir(listing)
    listing.set_defaults(run=_baseline_list)
    show = actions.add_parser("show", help="Each measurement of one baseline with its runs")
    show.add_argument("digest", metavar="DIGEST", help="The fingerprint digest (its file name)")
    _add_dir(show)
    show.set_defaults(run=_baseline_show)
    accept = actions.add_parser(
        "accept",
        help="Make a JSON report's measured results the baseline of its fingerprint",
        description="Replace the baseline runs of every measured result of REPORT with that"
        " result alone; other measurements of the baseline stay as they were.",
    )
    accept.add_argument("report", metavar="REPORT", help="A JSON report written by --hwperf-json")
    _add_dir(accept)
    accept.set_defaults(run=_baseline_accept)
