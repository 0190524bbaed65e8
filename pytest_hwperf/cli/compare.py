"""`hwperf compare`: the regression gate's verdict on a JSON report against a
baseline file or another report, offline, as the plugin would give it."""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_hwperf.cli._common import (
    _INPUT_ERRORS,
    _alpha_arg,
    _fail,
    _fingerprint_of,
    _gate_ms,
    _InputError,
    _load_report,
    _number,
    _percent_arg,
    _table,
)
from pytest_hwperf.files import UnreadableFile, read_regular
from pytest_hwperf.records.codec import to_json
from pytest_hwperf.records.types import ComparisonRecord, JSONValue
from pytest_hwperf.report.json_report import MAX_REPORT_BYTES
from pytest_hwperf.report.terminal import ms_text, visible
from pytest_hwperf.settings import DEFAULTS
from pytest_hwperf.store import BaselineStore, StoreError
from pytest_hwperf.units import fmt_change, fmt_ms

if TYPE_CHECKING:
    from pytest_hwperf.cli._common import _Commands
    from pytest_hwperf.judge.gate import SavedRun

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_REGRESSION_PCT",
    "CompareBase",
    "CompareEntry",
    "CompareNew",
    "CompareResult",
    "CompareSummary",
    "compare_files",
    "result_json",
]

DEFAULT_REGRESSION_PCT = DEFAULTS.regression_pct
DEFAULT_ALPHA = DEFAULTS.alpha


# -- the result ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CompareBase:
    """BASE as the result names it: a "baseline file" or a "report", and the
    fingerprint it holds (None when unknown)."""

    path: str
    kind: str
    fingerprint: str | None
    label: str | None


@dataclass(frozen=True)
class CompareNew:
    """NEW: the JSON report judged."""

    path: str


@dataclass(frozen=True)
class CompareSummary:
    """How many measured results of NEW came to each outcome."""

    measurements: int
    regression: int
    improvement: int
    unchanged: int
    no_baseline: int
    not_compared: int
    not_significant: int = 0


@dataclass(frozen=True)
class CompareEntry:
    """One measured result of NEW against BASE. `outcome` is the gate's (or "not
    compared" when there is no figure to compare); `verdict` is what the table shows;
    `plugin_outcome` is what the plugin recorded when it ran (None when nothing);
    `comparison` is the gate's record, None when not compared."""

    test_id: str
    name: str
    device: str
    key: str
    fingerprint: str | None
    base_fingerprint: str | None
    plugin_outcome: str | None
    outcome: str
    verdict: str
    comparison: ComparisonRecord | None


@dataclass(frozen=True)
class CompareResult:
    """The regression verdict of every measured result of NEW against BASE."""

    base: CompareBase
    new: CompareNew
    summary: CompareSummary
    comparisons: tuple[CompareEntry, ...]


_RESULT_TYPES = (CompareResult, CompareBase, CompareNew, CompareSummary, CompareEntry)


def result_json(result: CompareResult) -> JSONValue:
    """`--json`'s document: the result as JSON values, every field written (null
    included)."""
    return to_json(result)


# -- BASE ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Saved:
    """What BASE gives one measurement key: the fingerprint it was saved on and the
    saved runs the gate compares (each with its fastest call)."""

    digest: str | None
    runs: tuple[SavedRun, ...] = ()
    hashed: Mapping[str, object] | None = None  # a baseline file's fingerprint facts


@dataclass(frozen=True)
class _Base:
    """BASE, read: its kind, its fingerprint and, per measurement key, its saved runs."""

    path: Path
    kind: str  # "baseline file" or "report"
    digest: str | None
    label: str | None
    entries: Mapping[str, _Saved] = field(default_factory=dict)
    hashed: Mapping[str, object] | None = None

    def lookup(self, key: str) -> _Saved:
        return self.entries.get(key, _Saved(self.digest, (), self.hashed))


def _base_from_baseline(path: Path, document: object, data: bytes) -> _Base:
    """A baseline file, read through the store (its checks and messages)."""
    from pytest_hwperf.store.matching import gate_inputs, with_versions

    if path.parent.name == "baselines":
        try:
            baseline = BaselineStore(path.parent.parent).load(path.stem)
        except ValueError:  # the file name is no digest
            raise _InputError(
                f"baseline file {path} is not named after a fingerprint digest"
                " (<digest>.json under baselines/)"
            ) from None
    else:
        # A baseline copied elsewhere under another name: the store only loads
        # <root>/baselines/<digest>.json, so it reads a copy named as it expects.
        fingerprint = document.get("fingerprint") if isinstance(document, dict) else None
        claimed = fingerprint.get("digest") if isinstance(fingerprint, dict) else None
        if not isinstance(claimed, str):
            raise _InputError(
                f"baseline file {path} has no fingerprint digest; restore it from git"
            )
        with tempfile.TemporaryDirectory() as tmp:
            store = BaselineStore(Path(tmp))
            try:
                copy = store.path_for(claimed)
            except ValueError as exc:
                raise _InputError(
                    f"baseline file {path} has a malformed fingerprint ({exc})"
                ) from None
            copy.parent.mkdir(parents=True)
            copy.write_bytes(data)
            try:
                baseline = store.load(claimed)
            except StoreError as exc:
                raise StoreError(str(exc).replace(str(copy), str(path))) from None
    if baseline is None:
        raise _InputError(f"cannot read {path}: it is gone")
    digest = baseline.fingerprint.digest
    hashed = baseline.fingerprint.hashed
    entries: dict[str, _Saved] = {}
    for key, runs in baseline.measurements.items():
        # As the plugin compares them (runs saved without versions get the old
        # fingerprint's).
        entries[key] = _Saved(
            digest,
            tuple(gate_inputs([with_versions(run, hashed) for run in runs])),
            hashed,
        )
    return _Base(path, "baseline file", digest, baseline.fingerprint.label, entries, hashed)


def _base_from_report(path: Path) -> _Base:
    """A JSON report as a baseline: each measurement's one run, its fastest call."""
    from pytest_hwperf.judge.gate import SavedRun
    from pytest_hwperf.judge.tail import SavedTail

    report = _load_report(path)
    entries: dict[str, _Saved] = {}
    for record in report.measured:
        fastest_ms = _gate_ms(record)
        fingerprint = _fingerprint_of(record, report)
        run = SavedRun(
            fastest_ms,
            _number(record.reference_ms),
            record.reference_kind,
            {} if fingerprint is None else fingerprint.versions,
            record.round_mins,
            SavedTail(
                record.stats.p95_ms if record.timing.block_size == 1 else None,
                tuple(r.p95_ms for r in record.quiet_rounds if r.p95_ms),
                len(record.rounds),
            ),
        )
        entries[record.key] = _Saved(
            None if fingerprint is None else fingerprint.digest,
            (run,) if fastest_ms > 0 else (),
        )
    own = report.fingerprint
    return _Base(
        path,
        "report",
        None if own is None else own.digest,
        None if own is None else own.label,
        entries,
    )


def _load_base(path: Path) -> _Base:
    """BASE: a baseline file (store format) or a JSON report, told apart by content.
    Only a regular file under the report size cap is read (a FIFO would block,
    `/dev/zero` would never end)."""
    try:
        data = read_regular(path, limit=MAX_REPORT_BYTES)
    except UnreadableFile as exc:
        raise _InputError(str(exc)) from None
    except OSError as exc:
        raise _InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    document: object = None
    try:
        document = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise _InputError(f"{path} is not a pytest-hwperf file (nested too deep)") from None
    except (UnicodeDecodeError, ValueError):
        pass  # unparseable: the loaders below say what is wrong, in their words
    if isinstance(document, dict) and isinstance(document.get("measurements"), list):
        return _base_from_report(path)
    if path.parent.name == "baselines" or (
        isinstance(document, dict) and isinstance(document.get("measurements"), dict)
    ):
        return _base_from_baseline(path, document, data)
    _load_report(path)  # raises, naming what is wrong
    raise _InputError(f"{path} is neither a JSON report nor a baseline file")  # pragma: no cover


def _threshold(recorded: float | None, session: float | None, given: float | None) -> float:
    """The threshold the plugin used, by the gate's own rule (`threshold_for`): a test's
    `regression=` marker argument (recorded as a threshold other than the session's)
    wins; else the session's, replaced by --regression when given."""
    from pytest_hwperf.judge.gate import threshold_for

    marker = (
        recorded if recorded is not None and session is not None and recorded != session else None
    )
    if given is not None:
        session_pct = given
    elif session is not None:
        session_pct = session
    else:
        session_pct = DEFAULT_REGRESSION_PCT if recorded is None else recorded
    return threshold_for(marker, session_pct)


def _alpha(
    recorded: float | None, session: float | None, given: float | None, family: int
) -> float:
    """The per-comparison level the plugin used (carried by the record) unless --alpha
    is given; then it replaces the session's level with the same Bonferroni family."""
    from pytest_hwperf.judge.regression import bonferroni_alpha

    if recorded is not None and recorded <= 0.5:
        if given is None:
            return recorded
        if session is not None:
            return min(0.5, given * recorded / session)
    return bonferroni_alpha(DEFAULT_ALPHA if given is None else given, family)


def _ratio_pct(value: object) -> str:
    return fmt_change(value) if isinstance(value, float) else "-"


def compare_files(
    base_path: Path,
    new_path: Path,
    *,
    regression_pct: float | None = None,
    alpha: float | None = None,
) -> CompareResult:
    """The regression verdict of every measured result of NEW against BASE, as the
    plugin gives it: one entry per measurement (`result_json` is its `--json` form).

    When an input cannot be used it raises StoreError, ReportError, OSError or
    ValueError, with a one-line message naming the file; BASE is never written to.
    """
    from pytest_hwperf.judge.gate import compare_with_runs
    from pytest_hwperf.judge.regression import NO_BASELINE, REGRESSION
    from pytest_hwperf.judge.verdict import every_round_tail, tails_of
    from pytest_hwperf.store.matching import migrates_to

    base = _load_base(base_path)
    report = _load_report(new_path)
    measured = report.measured
    per_test: dict[str, int] = {}
    for record in measured:
        per_test[record.test_id] = per_test.get(record.test_id, 0) + 1
    comparisons: list[CompareEntry] = []
    for record in measured:
        key = record.key
        fingerprint = _fingerprint_of(record, report)
        digest = None if fingerprint is None else fingerprint.digest
        saved = base.lookup(key)
        recorded = record.comparison
        family = (
            report.perf_items * per_test[record.test_id]
            if report.perf_items is not None
            else len(measured)
        )
        threshold = _threshold(
            None if recorded is None else _number(recorded.threshold_pct),
            report.regression_pct,
            regression_pct,
        )
        level = _alpha(
            None if recorded is None else _number(recorded.alpha), report.alpha, alpha, family
        )
        entry = CompareEntry(
            test_id=record.test_id,
            name=record.name,
            device=record.device,
            key=key,
            fingerprint=digest,
            base_fingerprint=saved.digest,
            plugin_outcome=None if recorded is None else recorded.outcome,
            outcome="not compared",
            verdict="not compared (min 0 ns)",
            comparison=None,
        )
        fastest_ms = _gate_ms(record)
        if fastest_ms <= 0:
            comparisons.append(entry)
            continue
        # The same fingerprint, or a baseline file saved under an older fingerprint
        # version on this hardware (store/matching.py: the plugin migrates it too).
        same = digest is not None and (
            digest == saved.digest
            or (
                fingerprint is not None
                and saved.hashed is not None
                and migrates_to(fingerprint.hashed, saved.hashed)
            )
        )
        try:
            found = compare_with_runs(
                fastest_ms,
                saved.runs if same else [],
                key=key,
                threshold_pct=threshold,
                alpha=level,
                rounds=len(record.rounds),
                reference_ms=_number(record.reference_ms),
                reference_kind=record.reference_kind,
                fingerprint=digest,
                versions=None if fingerprint is None else fingerprint.versions,
                current_rounds=record.round_mins,
                current_p95_ms=tails_of(record),
                every_round_p95_ms=every_round_tail(record),
            )
        except ValueError as exc:
            raise _InputError(f"{base.path}: cannot compare {key}: {exc}") from None
        verdict = found.outcome
        if not same:
            verdict = f"{NO_BASELINE} (other fingerprint)"
            found = dataclasses.replace(
                found,
                reason=f"min {fmt_ms(fastest_ms)}: no baseline: {base.path} holds fingerprint"
                f" {saved.digest or 'unknown'},"
                f" this was measured on {digest or 'an unknown fingerprint'}",
            )
        comparisons.append(
            dataclasses.replace(entry, outcome=found.outcome, verdict=verdict, comparison=found)
        )
    outcomes = [entry.outcome for entry in comparisons]
    return CompareResult(
        base=CompareBase(str(base.path), base.kind, base.digest, base.label),
        new=CompareNew(str(new_path)),
        summary=CompareSummary(
            measurements=len(comparisons),
            regression=outcomes.count(REGRESSION),
            improvement=outcomes.count("improvement"),
            unchanged=outcomes.count("unchanged"),
            not_significant=outcomes.count("not significant"),
            no_baseline=outcomes.count(NO_BASELINE),
            not_compared=outcomes.count("not compared"),
        ),
        comparisons=tuple(comparisons),
    )


def _compare_lines(result: CompareResult) -> list[str]:
    """The table and the lines `hwperf compare` prints; every string from the files
    through `visible` (no control character reaches the terminal)."""
    base = result.base
    where = f"fingerprint {base.fingerprint or 'unknown'}"
    if base.label:
        where += f": {base.label}"
    lines = [
        visible(f"base: {base.path} ({base.kind}, {where})"),
        visible(f"new:  {result.new.path}"),
    ]
    entries = result.comparisons
    if not entries:
        return [*lines, "no measured results in the new report"]
    rows = [("test", "name", "device", "baseline", "current", "change", "verdict")]
    for entry in entries:
        comparison = entry.comparison
        verdict = entry.verdict
        rows.append(
            (
                visible(entry.test_id),
                visible(entry.name),
                visible(entry.device),
                ms_text(None if comparison is None else comparison.baseline_ms),
                ms_text(None if comparison is None else comparison.current_ms),
                _ratio_pct(None if comparison is None else comparison.change_pct),
                "REGRESSION" if verdict == "regression" else visible(verdict),
            )
        )
    lines += _table(rows)
    for entry in entries:
        if entry.outcome == "regression" and entry.comparison is not None:
            lines.append(
                visible(
                    f"regression: {entry.test_id} {entry.name!r} on {entry.device}:"
                    f" {entry.comparison.reason}"
                )
            )
    for entry in entries:
        plugin = entry.plugin_outcome
        if plugin is not None and plugin != entry.outcome:
            lines.append(
                visible(
                    f"note: {entry.key}: the plugin recorded {plugin!r}, here it is"
                    f" {entry.outcome!r} (another baseline than the plugin had when it ran,"
                    " another fingerprint, or --regression/--alpha)"
                )
            )
    s = result.summary
    lines.append(
        f"{s.measurements} measured: {s.regression} regressed, {s.improvement} improved,"
        f" {s.unchanged} unchanged,"
        + (f" {s.not_significant} not significant," if s.not_significant else "")
        + f" {s.no_baseline} without a baseline"
        + (f", {s.not_compared} not compared" if s.not_compared else "")
    )
    return lines


def _compare(args: argparse.Namespace) -> int:
    try:
        result = compare_files(
            Path(args.base), Path(args.new), regression_pct=args.regression, alpha=args.alpha
        )
    except _INPUT_ERRORS as exc:
        return _fail("compare", exc)
    if args.json:
        print(json.dumps(result_json(result), indent=1, allow_nan=False))
    else:
        print("\n".join(_compare_lines(result)))
    return 1 if result.summary.regression else 0


def register(commands: _Commands) -> None:
    """Add `compare` to the `hwperf` subcommands."""
    compare = commands.add_parser(
        "compare",
        help="The regression verdict of a JSON report against a baseline, offline",
        description="Compare every measured result of NEW (a JSON report written by"
        " --hwperf-json) with BASE, as the plugin does: exit 1 on a regression, 0 otherwise,"
        " 2 when a file cannot be used.",
    )
    compare.add_argument(
        "base",
        metavar="BASE",
        help="A baseline file (.hwperf/baselines/<digest>.json) or another JSON report"
        " (each measurement's baseline is then that report's one run)",
    )
    compare.add_argument("new", metavar="NEW", help="A JSON report written by --hwperf-json")
    compare.add_argument(
        "--regression",
        type=_percent_arg,
        default=None,
        metavar="PCT",
        help="Tolerated slowdown in percent, replacing the session's (default: the threshold"
        f" the plugin recorded, else {DEFAULT_REGRESSION_PCT:g}); a test's own regression="
        " marker argument still wins",
    )
    compare.add_argument(
        "--alpha",
        type=_alpha_arg,
        default=None,
        metavar="A",
        help="Session false-alarm level, split over the comparisons as the plugin does"
        f" (default: the level the plugin recorded, else {DEFAULT_ALPHA:g})",
    )
    compare.add_argument("--json", action="store_true", help="Print the comparisons as JSON")
    compare.set_defaults(run=_compare)
