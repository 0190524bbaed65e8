"""What the controller writes at the end of an --hwperf session: the run history, the
baseline (under --hwperf-save), and the JSON, Markdown and HTML reports.

Each step reports its own failure as one line and the others still run; every file goes
through `files.atomic_write`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pytest_hwperf.files import atomic_write
from pytest_hwperf.plugin.options import Settings
from pytest_hwperf.report import ReportError, build_document, write_document
from pytest_hwperf.report.sweep import sweeps
from pytest_hwperf.report.terminal import visible
from pytest_hwperf.store import BaselineStore, StoreError

if TYPE_CHECKING:
    from pytest_hwperf.hardware.context import HardwareContext
    from pytest_hwperf.records.types import FingerprintRecord, JSONValue, MeasurementRecord
    from pytest_hwperf.report import Document
    from pytest_hwperf.store import RunSummary

__all__ = ["BASELINE_RUNS", "Written", "write_outputs"]

# Saved runs kept per measurement: their fastest calls give the baseline's centre and
# robust run-to-run spread the regression gate weighs (judge/spread.py).
BASELINE_RUNS = 20


@dataclass
class Written:
    """What was written, and what could not be (one line each)."""

    saved: str | None = None
    # Measurements left out of the saved baseline: their tests failed (on a budget, a
    # regression or on their own), and a failure must not become the reference.
    not_saved: list[str] = field(default_factory=list)
    # Measured only while the machine was busy (measure/contention.py): not saved, so that
    # a co-tenant's burst does not become the baseline.
    not_saved_busy: list[str] = field(default_factory=list)
    json: str | None = None
    markdown: str | None = None
    html: str | None = None
    store_errors: list[str] = field(default_factory=list)
    history_errors: list[str] = field(default_factory=list)
    report_errors: list[str] = field(default_factory=list)


def _median_ms(samples_ns: Sequence[int]) -> float:
    from pytest_hwperf.judge import stats

    return stats.percentile(sorted(samples_ns), 50) / 1e6


def _record_history(
    out: Written,
    measured: Sequence[MeasurementRecord],
    settings: Settings,
    context: HardwareContext,
    run: tuple[str, str, str | None],
) -> None:
    from pytest_hwperf.store import History, HistoryRow

    if not measured:
        return
    fp = context.fingerprint
    rows = [
        HistoryRow(
            key=r.key,
            test_id=r.test_id,
            name=r.name,
            device=r.device,
            n=r.stats.n,
            median_ms=_median_ms(r.samples_ns),
            mean_ms=r.stats.mean_ms,
            p95_ms=r.stats.p95_ms,
            # The test-level verdict, as the reports show it: "fail" when the
            # measurement failed its test for any reason (a regression included), else
            # "inconclusive" or "pass"; None (no budget) when it had none.
            outcome=None if r.verdict == "no budget" else r.verdict,
            samples_ns=r.samples_ns,
        )
        for r in measured
    ]
    run_id, created, commit = run
    try:
        History(settings.baseline_dir / "history.sqlite").record_run(
            run_id, created, fp.digest, fp.label, commit, rows
        )
    except (StoreError, OSError, sqlite3.Error) as exc:
        out.history_errors.append(f"run history not recorded: {exc}")


def _save_baseline(
    out: Written,
    measured: Sequence[MeasurementRecord],
    store: BaselineStore,
    run: tuple[str, str, str | None],
    failed_tests: frozenset[str],
    carry: Mapping[str, Sequence[RunSummary]] | None = None,
) -> None:
    from pytest_hwperf.store import run_of_record

    run_id, created, commit = run
    by_fingerprint: dict[str, tuple[FingerprintRecord, dict[str, RunSummary]]] = {}
    for r in measured:
        if r.fingerprint is None or not r.fingerprint.digest:
            continue
        if r.breach or r.test_id in failed_tests:
            out.not_saved.append(f"{r.test_id} {r.name!r} on {r.device}")
            continue
        if r.busy:
            out.not_saved_busy.append(f"{r.test_id} {r.name!r} on {r.device}")
            continue
        summary = run_of_record(r, run_id, created, commit)
        by_fingerprint.setdefault(r.fingerprint.digest, (r.fingerprint, {}))[1][r.key] = summary
    saved = []
    for fingerprint, runs in by_fingerprint.values():
        try:
            path = store.save(fingerprint, runs, keep=BASELINE_RUNS, carry=carry)
        except (StoreError, ValueError) as exc:
            out.store_errors.append(f"baseline not saved: {exc}")
        else:
            saved.append(f"{path} ({len(runs)} measurements)")
    out.saved = ", ".join(saved) or None


def _write_markdown(
    out: Written,
    records: Sequence[MeasurementRecord],
    settings: Settings,
    context: HardwareContext,
    advice: Sequence[dict[str, JSONValue]],
) -> None:
    from pytest_hwperf.report.markdown import markdown_summary

    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    path = settings.markdown_path
    if path is None and not step_summary:
        return
    text = markdown_summary(
        records,
        sweeps=sweeps(records),
        fingerprint=context.fingerprint.label,
        advice=advice,
    )
    if path is not None:
        try:
            atomic_write(path, text)
        except OSError as exc:
            out.report_errors.append(f"cannot write the Markdown report {path}: {exc}")
        else:
            out.markdown = str(path)
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as fh:  # appended, as GitHub asks
                fh.write(text)
        except OSError as exc:
            out.report_errors.append(f"cannot append to $GITHUB_STEP_SUMMARY: {exc}")


def _document(
    records: Sequence[MeasurementRecord],
    settings: Settings,
    context: HardwareContext,
    perf_items: int,
    advice: Sequence[dict[str, JSONValue]],
) -> Document:
    from pytest_hwperf.hardware import software_versions

    s = settings
    fp = context.fingerprint
    environment: dict[str, object] = dict(software_versions())
    environment["machine"] = context.machine.to_record()
    environment["fingerprint"] = fp.to_record()
    return build_document(
        records,
        sweeps=sweeps(records),
        environment=environment,
        settings={
            "alpha": s.alpha,
            "max_time_s": s.max_time_s,
            "warmup_s": s.warmup_s,
            "inconclusive": s.inconclusive,
            "gc": s.gc,
            "regression_pct": s.regression_pct,
            "confirm": s.confirm,
            "confirm_pause_s": s.confirm_pause_s,
            "busy_wait": s.busy_wait,
            "reference": s.reference,
            "baseline_dir": str(s.baseline_dir),
            "profile": s.profile,
            "perf_items": perf_items,
        },
        plugin_version=software_versions()["pytest_hwperf"],
        advice=advice,
    )


def _write_json(out: Written, document: Document, path: Path | None) -> None:
    if path is None:
        return
    try:
        write_document(path, document)
    except ReportError as exc:
        out.report_errors.append(str(exc))
    else:
        out.json = str(path)


def _write_html(out: Written, document: Document, path: Path | None, baseline_dir: Path) -> None:
    if path is None:
        return
    from pytest_hwperf.report.html import read_history, render_html, write_html

    # Recorded above, so the trend ends with this run; a history that cannot be read
    # leaves the trends out with a note, it does not cost the report.
    history, history_error = read_history(document, baseline_dir, warnings=out.history_errors)
    try:
        write_html(path, render_html(document, history=history, history_error=history_error))
    except ReportError as exc:
        out.report_errors.append(str(exc))
    else:
        out.html = str(path)


_T = TypeVar("_T")


def _report_step(out: Written, what: str, step: Callable[[], _T]) -> _T | None:
    """`step()`, or None with one line in `out.report_errors` naming `what` when it
    raises anything (a value no renderer foresaw, a record that cannot be written): the
    end of a session must not be a traceback, and the other reports are still written."""
    try:
        return step()
    except Exception as exc:  # anything: reported in one line
        why = " ".join(str(exc).split())
        out.report_errors.append(
            visible(f"cannot write {what}: {type(exc).__name__}" + (f": {why}" if why else ""))
        )
        return None


def write_outputs(
    records: Sequence[MeasurementRecord],
    *,
    settings: Settings,
    context: HardwareContext,
    store: BaselineStore,
    perf_items: int,
    advice: Callable[[], Sequence[dict[str, JSONValue]]],
    run: tuple[str, str, str | None],
    failed_tests: frozenset[str] = frozenset(),
    carry: Mapping[str, Sequence[RunSummary]] | None = None,
) -> Written:
    """History, then the baseline, then the reports; `run` is (id, created, commit).
    Under --hwperf-save only the measurements of tests that passed are saved."""
    out = Written()
    measured = [r for r in records if r.measured]
    _record_history(out, measured, settings, context, run)
    if settings.save:
        _save_baseline(out, measured, store, run, failed_tests, carry)
    # One document for the JSON and the HTML report. Each report is written on its own:
    # one that cannot be built, rendered or written is one error line naming it, never a
    # traceback at the end of the session, and the others are still written.
    json_path, html_path = settings.json_path, settings.html_path
    if json_path or html_path:
        wanted = [
            f"the {what} report {path}"
            for what, path in (("JSON", json_path), ("HTML", html_path))
            if path
        ]
        document = _report_step(
            out,
            " and ".join(wanted),
            lambda: _document(records, settings, context, perf_items, advice()),
        )
        if document is not None:
            _report_step(
                out, f"the JSON report {json_path}", lambda: _write_json(out, document, json_path)
            )
            _report_step(
                out,
                f"the HTML report {html_path}",
                lambda: _write_html(out, document, html_path, settings.baseline_dir),
            )
    _report_step(
        out,
        f"the Markdown report {settings.markdown_path or '$GITHUB_STEP_SUMMARY'}",
        lambda: _write_markdown(out, records, settings, context, advice()),
    )
    return out
