"""The session under --hwperf: verdicts into reports, records gathered, reports written.

Registered only when --hwperf is on. Verdicts become test outcomes in a
`pytest_runtest_makereport` wrapper, so a breach fails its own test (JUnit XML counts
it, the exit code is 1) rather than the session. Records travel on the report (as the
`hwperf` attribute, which pytest-xdist serialises with the report) and as compact
figures in `user_properties` (which JUnit XML shows); the controller alone gathers them
and writes files.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_hwperf.budgets import Outcome
from pytest_hwperf.context import HardwareContext
from pytest_hwperf.hardware import software_versions
from pytest_hwperf.markers import TestSpec
from pytest_hwperf.options import Settings
from pytest_hwperf.report import ReportError, build_document, summary_lines, write_document
from pytest_hwperf.report.sweep import sweep_lines, sweeps
from pytest_hwperf.state import (
    CONTEXT_KEY,
    DEVICE_KEY,
    MEASUREMENTS_KEY,
    MODELS_KEY,
    PLACEMENT_KEY,
    SPEC_KEY,
    WORKER_CONFIG_KEY,
)

if TYPE_CHECKING:
    from pytest_hwperf.measure.result import Measurement

__all__ = ["REPORT_ATTR", "HwperfSession"]

REPORT_ATTR = "hwperf"


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _breaches(record: dict[str, Any], settings: Settings) -> list[str]:
    """The one-line reasons this measurement fails its test, if any."""
    reasons = []
    where = f"{record['name']!r} on {record['device']}"
    for budget in record["budgets"]:
        outcome = budget["outcome"]
        if outcome == Outcome.FAIL.value:
            reasons.append(f"hwperf: {where}: {budget['reason']}")
        elif outcome == Outcome.INCONCLUSIVE.value and settings.inconclusive == "fail":
            reasons.append(
                f"hwperf: {where}: inconclusive within {settings.max_time_s:g} s"
                f" (--hwperf-inconclusive=fail): {budget['reason']}"
            )
    if record.get("oversubscription") and settings.oversubscription == "fail":
        reasons.append(f"hwperf: {where}: oversubscribed: {record['oversubscription']}")
    return reasons


def _section(records: list[dict[str, Any]]) -> str:
    lines = summary_lines(records)
    for record in records:
        for budget in record["budgets"]:
            lines.append(f"{record['name']}: {budget['outcome']}: {budget['reason']}")
        timing = record["timing"]
        lines.append(
            f"{record['name']}: {timing['clock']}, sync {timing['sync']}, warm-up"
            f" {timing['warmup_calls']} calls, gc {timing['gc']}, stopped: {timing['stop_reason']}"
        )
        lines.extend(f"{record['name']}: note: {note}" for note in record["notes"])
    return "\n".join(lines)


class HwperfSession:
    """All state of an --hwperf session."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.records: list[dict[str, Any]] = []
        self.report_errors: list[str] = []
        self.json_written: str | None = None

    @property
    def context(self) -> HardwareContext:
        return self.config.stash[CONTEXT_KEY]

    def pytest_report_header(self) -> list[str]:
        s = self.settings
        machine = self.context.machine
        cpu, gpus = machine.cpu, machine.gpus
        fp = self.context.fingerprint
        gpu_text = (
            ", ".join(f"cuda:{g.cuda_index} {g.name}" for g in gpus.visible)
            if gpus.visible
            else f"no GPU ({gpus.reason or 'none found'})"
        )
        return [
            f"hwperf: measuring (alpha {s.alpha:g}, up to {s.max_time_s:g} s per measurement,"
            f" warm-up {s.warmup_s:g} s, inconclusive -> {s.inconclusive}, gc {s.gc})",
            f"hwperf: {cpu.usable_cores} usable cores ({cpu.usable_source}),"
            f" {machine.memory.effective_bytes / (1 << 30):.1f} GiB RAM, {gpu_text}",
            f"hwperf: fingerprint {fp.digest} ({fp.label})",
        ]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.when != "call":
            return report
        measurements = item.stash.get(MEASUREMENTS_KEY, [])
        spec = item.stash.get(SPEC_KEY, TestSpec())
        if not measurements and spec.budgets and "benchmark" in getattr(item, "funcargs", {}):
            measurements = self._from_benchmark(item, spec)
        records = []
        models = item.stash.get(MODELS_KEY, [])
        placement = self._placement()
        for m in measurements:
            record = m.to_record()
            record["test_id"] = item.nodeid
            record["placement"] = placement
            config_in_force = item.stash.get(WORKER_CONFIG_KEY, None)
            record["worker_config"] = (
                None if config_in_force is None else config_in_force.to_record()
            )
            if record.get("model") is None and len(models) == 1:
                # The test prepared one model; its measurements are of that model.
                record["model"] = dict(models[0])
            records.append(record)
        reasons = [line for r in records for line in _breaches(r, self.settings)]
        # PERF (the status letter) marks a test that passed and failed only its budgets;
        # a test that failed on its own keeps its failure, with the figures attached.
        perf_breach = bool(reasons) and report.passed
        uses_benchmark = "benchmark" in getattr(item, "funcargs", {})
        if spec.budgets and not measurements and uses_benchmark:
            # pytest-benchmark switched itself off (--benchmark-disable, or under xdist):
            # the test ran once as a plain test, with nothing to judge.
            report.sections.append(
                ("hwperf", "budget not judged: pytest-benchmark took no rounds (disabled)")
            )
        elif spec.budgets and not measurements and report.passed:
            budgets = ", ".join(b.describe() for b in spec.budgets)
            reasons.append(
                f"hwperf: the test declares a budget ({budgets}) but took no measurement:"
                " call the hwperf fixture on the code to measure"
            )
        for record in records:
            record["breach"] = bool(_breaches(record, self.settings))
            prefix = f"hwperf[{record['name']}]"
            stats = record["stats"]
            figures: list[tuple[str, object]] = [
                (f"{prefix}.device", record["device"]),
                (f"{prefix}.n", stats["n"]),
                (f"{prefix}.mean_ms", round(stats["mean_ms"], 6)),
                (
                    f"{prefix}.p95_ms",
                    None if stats["p95_ms"] is None else round(stats["p95_ms"], 6),
                ),
                (f"{prefix}.outcome", record["outcome"] or "no budget"),
            ]
            # The call report carries them for hooks and xdist; JUnit XML reads the
            # teardown report, which copies item.user_properties.
            report.user_properties.extend(figures)
            item.user_properties.extend(figures)
        setattr(report, REPORT_ATTR, {"records": records, "breach": perf_breach})
        if records:
            report.sections.append(("hwperf", _section(records)))
        if reasons and report.passed:
            report.outcome = "failed"
            extra = (
                f" (and {len(reasons) - 1} more, see the hwperf section)"
                if len(reasons) > 1
                else ""
            )
            report.longrepr = reasons[0] + extra
        return report

    def _placement(self) -> dict[str, object]:
        """Where this test ran: the process, its CPUs and, under xdist, the worker's share."""
        share = self.config.stash.get(PLACEMENT_KEY, None)
        record: dict[str, object] = {
            "pid": os.getpid(),
            "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "xdist_worker": os.environ.get("PYTEST_XDIST_WORKER"),
        }
        if share is not None:
            record.update(share.to_record())
        return record

    def _from_benchmark(self, item: pytest.Item, spec: TestSpec) -> list[Measurement]:
        """A test that times its target with pytest-benchmark's `benchmark` fixture is
        judged on that fixture's rounds (round means, not per-call latencies)."""
        from pytest_hwperf.interop.benchmark import measurement_from_benchmark

        fixture = getattr(item, "funcargs", {}).get("benchmark")
        found = measurement_from_benchmark(
            fixture,
            name="benchmark",
            budgets=spec.budgets,
            alpha=self.settings.alpha,
            device=item.stash.get(DEVICE_KEY, "cpu"),
        )
        return [] if found is None else [found]

    def pytest_report_teststatus(
        self, report: pytest.TestReport
    ) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
        data = getattr(report, REPORT_ATTR, None)
        if (
            report.when == "call"
            and report.failed
            and isinstance(data, dict)
            and data.get("breach")
        ):
            return "failed", "P", ("PERF", {"red": True})
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        data = getattr(report, REPORT_ATTR, None)
        if isinstance(data, dict):
            self.records.extend(data.get("records", []))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = self.settings.json_path
        if _is_xdist_worker(self.config) or path is None:
            return
        s = self.settings
        fp = self.context.fingerprint
        environment: dict[str, Any] = dict(software_versions())
        environment["machine"] = self.context.machine.to_record()
        environment["fingerprint"] = fp.to_record()
        document = build_document(
            self.records,
            sweeps=sweeps(self.records),
            environment=environment,
            settings={
                "alpha": s.alpha,
                "max_time_s": s.max_time_s,
                "warmup_s": s.warmup_s,
                "inconclusive": s.inconclusive,
                "gc": s.gc,
            },
            plugin_version=software_versions()["pytest_hwperf"],
        )
        try:
            write_document(path, document)
        except ReportError as exc:
            self.report_errors.append(str(exc))
            # A requested report that could not be written must not leave CI green.
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        else:
            self.json_written = str(path)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if _is_xdist_worker(self.config):
            return
        tr = terminalreporter
        if self.records:
            tr.write_sep("=", "hwperf", bold=True)
            for line in summary_lines(self.records):
                tr.write_line(line)
        found = sweeps(self.records)
        if found:
            tr.write_sep("-", "hwperf: workers x threads sweeps")
            for line in sweep_lines(found):
                tr.write_line(line)
        if self.json_written:
            tr.write_line(f"hwperf: JSON report written to {self.json_written}")
        for error in self.report_errors:
            tr.write_line(f"hwperf: error: {error}", red=True, bold=True)
