"""The session under --hwperf: thin hook wiring around three jobs.

Registered only when --hwperf is on. At each call's report, `judging.judge_call` judges
the test (a breach fails its own test: JUnit XML counts it, the exit code is 1); the
records travel on the report as JSON values (pytest-xdist serialises them), and the
controller alone gathers them, works out the device advice (`device_cases`) and writes
files (`writing`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import pytest

from pytest_hwperf.hardware.context import HardwareContext
from pytest_hwperf.judge.gate import SavedRun
from pytest_hwperf.plugin.device_cases import DEVICE_ATTR, DeviceCases, device_case
from pytest_hwperf.plugin.fixtures import CONTEXT_KEY, DEVICE_KEY, PLACEMENT_KEY
from pytest_hwperf.plugin.judging import (
    REPORT_ATTR,
    judge_call,
    measurements_of,
    policy_of,
    records_of_report,
    unjudged_of_report,
)
from pytest_hwperf.plugin.markers import SPEC_KEY, TestSpec
from pytest_hwperf.plugin.options import AB_PEER_DEST, Settings
from pytest_hwperf.plugin.writing import Written, write_outputs
from pytest_hwperf.records.codec import as_facts
from pytest_hwperf.records.types import FingerprintRecord, JSONValue, MeasurementRecord
from pytest_hwperf.report import summary_lines
from pytest_hwperf.report.advice import advice_lines
from pytest_hwperf.report.sweep import sweep_lines, sweeps
from pytest_hwperf.store import Baseline, BaselineStore, RunSummary, StoreError, commit_label
from pytest_hwperf.store.matching import FoundBaseline

__all__ = ["REPORT_ATTR", "HwperfSession"]

_PERF_FIXTURES = frozenset({"hwperf", "worker_pool", "benchmark"})


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class HwperfSession:
    """All state of an --hwperf session."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.records: list[MeasurementRecord] = []
        # (test id, why its budgets were not judged), in run order
        self.unjudged: list[tuple[str, str]] = []
        # tests whose call failed on its own (not on performance): not saved as baselines
        self.failed_tests: set[str] = set()
        self.store = BaselineStore(settings.baseline_dir)
        self.perf_items = 0
        self.device_cases = DeviceCases()
        self.written = Written()
        self._found_value: FoundBaseline | None = None

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

    # -- per test -------------------------------------------------------------------

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # The family of the session's regression comparisons, for Bonferroni: every test
        # that can measure. Known before any test runs, so each verdict can be given with
        # its own report (Holm would need every p-value first).
        self.perf_items = sum(
            1 for item in items if _PERF_FIXTURES & set(getattr(item, "fixturenames", ()))
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        case = device_case(item)
        if case is not None:
            setattr(report, DEVICE_ATTR, case)
        if call.when != "call":
            return report
        measurements = measurements_of(item)
        spec = item.stash.get(SPEC_KEY, TestSpec())
        if not measurements and spec.budgets and "benchmark" in getattr(item, "funcargs", {}):
            measurements = self._from_benchmark(item, spec)
        measured = any(m.mode == "measured" and m.samples_ns.size for m in measurements)
        fp = self.context.fingerprint if measured else None
        judge_call(
            item,
            report,
            measurements=measurements,
            settings=self.settings,
            policy=policy_of(self.settings, self.perf_items),
            # Same-run A/B (--hwperf-against) compares with the REF, not the baseline.
            runs_for=None if self.settings.against is not None else self.runs_for,
            fingerprint=(
                None
                if fp is None
                else FingerprintRecord(
                    digest=fp.digest,
                    label=fp.label,
                    hashed=as_facts(fp.hashed),
                    versions=dict(fp.versions),
                )
            ),
            placement=self._placement(),
            device_case=case,
            no_baseline_note=None if fp is None else self._found().no_baseline_note(),
        )
        return report

    def _placement(self) -> dict[str, JSONValue]:
        """Where this test ran: the process, its CPUs and, under xdist, the worker's share."""
        share = self.config.stash.get(PLACEMENT_KEY, None)
        record: dict[str, JSONValue] = {
            "pid": os.getpid(),
            "cpus": (
                sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None  # type: ignore[dict-item]
            ),
            "xdist_worker": os.environ.get("PYTEST_XDIST_WORKER"),
        }
        if share is not None:
            record.update(as_facts(share.to_record()))
        return record

    def _from_benchmark(self, item: pytest.Item, spec: TestSpec) -> list[Any]:
        """A test that times its target with pytest-benchmark's `benchmark` fixture is
        judged on that fixture's rounds (round means, not per-call latencies)."""
        from pytest_hwperf.measure.from_benchmark import measurement_from_benchmark

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
        if report.when == "call" and report.failed and records_of_report(report)[1]:
            return "failed", "P", ("PERF", {"red": True})
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        records, breach = records_of_report(report)
        self.device_cases.note(report, breach=breach)
        if report.when == "call":
            self.records.extend(records)
            unjudged = unjudged_of_report(report)
            if unjudged is not None:
                self.unjudged.append((report.nodeid, unjudged))
            if report.failed and not breach:
                self.failed_tests.add(report.nodeid)

    # -- baselines ------------------------------------------------------------------

    def _found(self) -> FoundBaseline:
        """This machine's baseline (`store.matching`: by digest, or migrated from an
        older fingerprint version), found once; an unreadable file is reported and then
        nothing is compared or overwritten."""
        if self._found_value is None:
            from pytest_hwperf.store.matching import find_baseline

            fp = self.context.fingerprint
            try:
                self._found_value = find_baseline(
                    self.store,
                    FingerprintRecord(digest=fp.digest, label=fp.label, hashed=as_facts(fp.hashed)),
                )
            except StoreError as exc:
                self.written.store_errors.append(str(exc))
                self._found_value = FoundBaseline(None)
        return self._found_value

    def _baseline(self) -> Baseline | None:
        """This fingerprint's baseline; None when there is none or it is unreadable."""
        return self._found().baseline

    def _carried(self) -> Mapping[str, Sequence[RunSummary]] | None:
        """Under --hwperf-save, the runs migrated from an older fingerprint version's
        files, for the first save under this one to continue (`BaselineStore.save`)."""
        if not self.settings.save:
            return None
        found = self._found()
        if found.baseline is None or not found.migrated_from:
            return None
        return found.baseline.measurements

    def runs_for(self, key: str) -> Sequence[SavedRun]:
        """The saved runs of one measurement key on this fingerprint the gate compares."""
        from pytest_hwperf.store.matching import gate_inputs

        baseline = self._baseline()
        return gate_inputs(baseline.runs_for(key) if baseline is not None else ())

    def saved_reference_kind(self, test_id: str, name: str, device: str) -> str | None:
        """The reference kind the saved runs of this measurement were gauged with, when
        they share one: this run's gauge times the same kind, so that a co-tenant that
        starves a parallel model's second thread (which settles the kind by the threads
        it kept busy) does not leave the run without a machine-speed correction."""
        from pytest_hwperf.store import measurement_key

        if self.settings.against is not None:
            return None
        kinds = {
            run.reference_kind for run in self.runs_for(measurement_key(test_id, name, device))
        }
        return kinds.pop() if len(kinds) == 1 else None

    def suspects_regression(
        self,
        test_id: str,
        name: str,
        device: str,
        value_ms: float,
        spec: TestSpec,
        p95_ms: float | None = None,
        reference_ms: float | None = None,
        reference_kind: str | None = None,
    ) -> bool:
        """Would this value be a regression? Asked by the hwperf fixture right after a
        measurement, to measure it again (--hwperf-confirm) before the verdict. It asks
        at the level of a test with one measurement, which is the loosest a verdict of
        that test can be judged at, so every regression the verdict finds is confirmed
        (`judge.gate.suspected`)."""
        from pytest_hwperf.judge.gate import comparison_alpha, suspected, threshold_for
        from pytest_hwperf.store import measurement_key

        if value_ms <= 0 or self.settings.against is not None:
            return False
        key = measurement_key(test_id, name, device)
        return suspected(
            value_ms,
            self.runs_for(key),
            key=key,
            threshold_pct=threshold_for(spec.regression_pct, self.settings.regression_pct),
            alpha=comparison_alpha(self.settings.alpha, self.perf_items, 1),
            p95_ms=p95_ms,
            reference_ms=reference_ms,
            reference_kind=reference_kind,
        )

    # -- the end --------------------------------------------------------------------

    def _advice(self) -> list[dict[str, JSONValue]]:
        return self.device_cases.advice(
            self.records, self.context, devices_chosen=self.settings.devices is not None
        )

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if _is_xdist_worker(self.config) or self.config.getoption(AB_PEER_DEST, None):
            return  # an A/B run's base session writes nothing either
        # Only the controller writes: history, the baseline, then the reports.
        run = (
            uuid.uuid4().hex[:12],
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
            commit_label(self.config.rootpath),
        )
        written = write_outputs(
            self.records,
            settings=self.settings,
            context=self.context,
            store=self.store,
            perf_items=self.perf_items,
            advice=self._advice,
            run=run,
            failed_tests=frozenset(self.failed_tests),
            carry=self._carried(),
        )
        self._baseline()  # a baseline that cannot be read is reported even if unused
        written.store_errors[:0] = self.written.store_errors
        self.written = written
        failed = bool(written.report_errors or written.store_errors)
        if failed and session.exitstatus == pytest.ExitCode.OK:
            # A requested report, a save, or a gate that could not run must not leave
            # CI green.
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if _is_xdist_worker(self.config):
            return
        tr = terminalreporter
        if self.records:
            tr.write_sep("=", "hwperf", bold=True)
            for line in summary_lines(self.records):
                tr.write_line(line)
        advice = advice_lines(self._advice())
        if advice:
            tr.write_sep("-", "hwperf: device advice")
            for line in advice:
                tr.write_line(line)
        found = sweeps(self.records)
        if found:
            tr.write_sep("-", "hwperf: workers x threads sweeps")
            for line in sweep_lines(found):
                tr.write_line(line)
        if self.unjudged:
            tr.write_sep("-", "hwperf: budgets not judged")
            for nodeid, why in self.unjudged:
                tr.write_line(f"{nodeid}: {why}", yellow=True)
        w = self.written
        if w.saved:
            tr.write_line(f"hwperf: baseline saved to {w.saved}")
        if w.not_saved:
            tr.write_line(
                f"hwperf: not saved as baseline ({len(w.not_saved)}: their tests failed;"
                " to make a failing run the baseline, `hwperf baseline accept` its JSON"
                f" report): {', '.join(w.not_saved)}",
                yellow=True,
            )
        if w.not_saved_busy:
            tr.write_line(
                f"hwperf: not saved as baseline ({len(w.not_saved_busy)}: the machine was"
                " busy in every round they were measured in; save again on a quieter"
                f" machine): {', '.join(w.not_saved_busy)}",
                yellow=True,
            )
        if w.json:
            tr.write_line(f"hwperf: JSON report written to {w.json}")
        if w.markdown:
            tr.write_line(f"hwperf: Markdown report written to {w.markdown}")
        if w.html:
            tr.write_line(f"hwperf: HTML report written to {w.html}")
        for error in w.store_errors:
            tr.write_line(f"hwperf: error: {error}", red=True, bold=True)
        for error in w.history_errors:
            tr.write_line(f"hwperf: warning: {error}", yellow=True)
        for error in w.report_errors:
            tr.write_line(f"hwperf: error: {error}", red=True, bold=True)
