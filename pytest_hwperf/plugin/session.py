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
import platform
import sqlite3
import uuid
from collections.abc import Generator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_hwperf.hardware import software_versions
from pytest_hwperf.hardware.context import HardwareContext
from pytest_hwperf.judge.budgets import Outcome
from pytest_hwperf.plugin.keys import (
    CONTEXT_KEY,
    DEVICE_KEY,
    MEASUREMENTS_KEY,
    MODELS_KEY,
    PLACEMENT_KEY,
    PROFILE_TARGETS_KEY,
    SPEC_KEY,
    WORKER_CONFIG_KEY,
)
from pytest_hwperf.plugin.markers import TestSpec
from pytest_hwperf.plugin.options import Settings
from pytest_hwperf.report import ReportError, build_document, summary_lines, write_document
from pytest_hwperf.report.advice import advice_lines
from pytest_hwperf.report.sweep import sweep_lines, sweeps
from pytest_hwperf.store import Baseline, BaselineStore, StoreError, commit_label

if TYPE_CHECKING:
    from collections.abc import Callable

    from pytest_hwperf.judge.regression import Comparison
    from pytest_hwperf.measure.device import DeviceSync
    from pytest_hwperf.measure.result import Measurement

__all__ = ["REPORT_ATTR", "HwperfSession"]

REPORT_ATTR = "hwperf"
# On every report of a test case of the `device` fixture: its device and device group,
# so that the controller learns of skipped devices too (xdist carries the attribute).
DEVICE_ATTR = "hwperf_device"

# Saved runs kept per measurement: their statistics give the run-to-run spread the
# regression gate weighs (Student t with k-1 degrees of freedom; 20 runs give 19).
BASELINE_RUNS = 20

_PERF_FIXTURES = frozenset({"hwperf", "worker_pool", "benchmark"})


def _drift_text(factor: float | None) -> str:
    """How the reference workload rescaled the baseline, when it moved noticeably."""
    if factor is None or abs(factor - 1.0) < 0.02:
        return ""
    return f" (baseline x{factor:.2f} for machine speed, from the reference workload)"


def _median_ms(samples_ns: list[int]) -> float:
    from pytest_hwperf.judge import stats

    return stats.percentile(sorted(samples_ns), 50) / 1e6


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
    comparison = record.get("comparison") or {}
    if comparison.get("outcome") == "regression":
        reasons.append(f"hwperf: {where}: regression: {comparison['reason']}")
    elif comparison.get("outcome") == "improvement" and settings.fail_on_improvement:
        reasons.append(
            f"hwperf: {where}: improvement (--hwperf-fail-on-improvement: refresh the"
            f" baseline with --hwperf-save): {comparison['reason']}"
        )
    if record.get("oversubscription") and settings.oversubscription == "fail":
        reasons.append(f"hwperf: {where}: oversubscribed: {record['oversubscription']}")
    memory = record.get("memory") or {}
    if memory.get("outcome") == Outcome.FAIL.value:
        reasons.append(f"hwperf: {where}: memory: {memory['reason']}")
    return reasons


def _profiled_breach(record: dict[str, Any], settings: Settings) -> bool:
    """A measurement that fails its test on a latency or throughput budget, or on a
    regression: the breaches a profile of its target can explain (issue 6). An
    oversubscribed config or a memory budget is not about where the time goes."""
    for budget in record["budgets"]:
        if budget["outcome"] == Outcome.FAIL.value:
            return True
        if budget["outcome"] == Outcome.INCONCLUSIVE.value and settings.inconclusive == "fail":
            return True
    return (record.get("comparison") or {}).get("outcome") == "regression"


def _judge_memory(record: dict[str, Any], spec: TestSpec) -> None:
    """The `memory` marker's verdict onto a measured record: budgets, outcome and reason
    in `record["memory"]`; a breach makes the measurement's outcome "fail", and a met
    budget gives a measurement without other budgets the outcome "pass"."""
    if spec.memory is None or record.get("mode") != "measured":
        return
    from pytest_hwperf.measure.memory import judge_memory

    memory, notes = judge_memory(
        record.get("memory"),
        rss_mb=spec.memory.rss_mb,
        gpu_mb=spec.memory.gpu_mb,
        device=str(record.get("device")),
    )
    record["notes"].extend(notes)
    if memory is None:
        return
    record["memory"] = memory
    if memory["outcome"] == Outcome.FAIL.value:
        record["outcome"] = Outcome.FAIL.value
    elif memory["outcome"] == Outcome.PASS.value and record.get("outcome") is None:
        record["outcome"] = Outcome.PASS.value


def _device_case(item: pytest.Item) -> dict[str, str] | None:
    """The device a test case of the `device` fixture stands for and its device group
    (the node id without the device parameter); None for other tests."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or "device" not in callspec.params:
        return None
    from pytest_hwperf.hardware.devices import device_id
    from pytest_hwperf.measure.device import DeviceError, normalize_device
    from pytest_hwperf.report.advice import device_group

    raw = callspec.params["device"]
    try:
        name = normalize_device(raw)
    except DeviceError:
        name = str(raw)
    ids = [device_id(name), str(raw), name]
    return {"device": name, "group": device_group(item.nodeid, ids)}


def _unmeasured_reason(report: pytest.TestReport, device: str) -> str:
    """Why a device case took no measurement, from its skip or failure report."""
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2])
    elif crash is not None and getattr(crash, "message", None):
        text = str(crash.message)
    else:  # pytest.fail(..., pytrace=False) leaves the message as a plain string
        text = str(longrepr or "no reason given")
    text = (text.strip().splitlines() or ["no reason given"])[0]
    text = text.removeprefix("Skipped: ").removeprefix("Failed: ")
    text = text.removeprefix(f"device {device}: ")
    return f"{'skipped' if report.skipped else 'failed'}: {text}"


def _section(records: list[dict[str, Any]]) -> str:
    lines = summary_lines(records)
    for record in records:
        for budget in record["budgets"]:
            lines.append(f"{record['name']}: {budget['outcome']}: {budget['reason']}")
        memory = record.get("memory") or {}
        if memory.get("outcome"):
            lines.append(f"{record['name']}: memory {memory['outcome']}: {memory['reason']}")
        timing = record["timing"]
        lines.append(
            f"{record['name']}: {timing['clock']}, sync {timing['sync']}, warm-up"
            f" {timing['warmup_calls']} calls, gc {timing['gc']}, stopped: {timing['stop_reason']}"
        )
        lines.extend(f"{record['name']}: note: {note}" for note in record["notes"])
        if record.get("profile"):
            from pytest_hwperf.profiling.profile import profile_lines

            lines.extend(profile_lines(record["name"], record["profile"]))
    return "\n".join(lines)


class HwperfSession:
    """All state of an --hwperf session."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.records: list[dict[str, Any]] = []
        self.store = BaselineStore(settings.baseline_dir)
        self.store_errors: list[str] = []
        self.perf_items = 0
        self._baseline_loaded = False
        self._baseline_value: Baseline | None = None
        self.saved: str | None = None
        self.history_errors: list[str] = []
        self.markdown_written: str | None = None
        self.report_errors: list[str] = []
        self.json_written: str | None = None
        self.html_written: str | None = None
        # device group -> device -> why it took no measurement (None: it ran)
        self.device_cases: dict[str, dict[str, str | None]] = {}
        # device group -> device -> why the test failed there on its own (not a breach)
        self.device_failures: dict[str, dict[str, str]] = {}
        self._advice_value: list[dict[str, Any]] | None = None

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
        device_case = _device_case(item)
        if device_case is not None:
            setattr(report, DEVICE_ATTR, device_case)
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
            if device_case is not None:
                record["device_param"] = device_case["device"]
                record["device_group"] = device_case["group"]
            if record.get("model") is None and len(models) == 1:
                # The test prepared one model; its measurements are of that model.
                record["model"] = dict(models[0])
            self._compare(record, spec, comparisons=len(measurements))
            _judge_memory(record, spec)
            records.append(record)
        reasons = [line for r in records for line in _breaches(r, self.settings)]
        # The targets hold models and tensors: they leave the item's stash now, whatever
        # happens, and only a breaching measurement's is run again under the profiler.
        targets = item.stash.get(PROFILE_TARGETS_KEY, {})
        if PROFILE_TARGETS_KEY in item.stash:
            del item.stash[PROFILE_TARGETS_KEY]
        self._profile(records, targets)
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
        elif (spec.budgets or spec.memory) and not measurements and report.passed:
            described = [b.describe() for b in spec.budgets]
            budgets = ", ".join(described + ([spec.memory.describe()] if spec.memory else []))
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
            comparison = record.get("comparison") or {}
            if comparison.get("outcome") not in (None, "no baseline"):
                figures.append((f"{prefix}.change_pct", round(comparison["change_pct"], 3)))
                figures.append((f"{prefix}.vs_baseline", comparison["outcome"]))
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

    def _profile(
        self,
        records: list[dict[str, Any]],
        targets: dict[str, tuple[Callable[[], object], DeviceSync]],
    ) -> None:
        """Run each breaching measurement's target again under --hwperf-profile's profiler
        and put what it found on the record. Never raises: a profile that cannot be taken
        says why in `record["profile"]["error"]`, and the verdict stays as it was."""
        if self.settings.profile == "off":
            return
        from pytest_hwperf.profiling.profile import (
            Profile,
            artifact_base,
            resolve_tool,
            take_profile,
        )

        for record in records:
            tool = resolve_tool(self.settings.profile, str(record["device"]))
            if tool is None or not _profiled_breach(record, self.settings):
                continue
            kept = targets.get(record["name"])
            if kept is None:
                profile = Profile(tool, error="no target to run again (only hwperf(...) calls are)")
            else:
                target, sync = kept
                base = artifact_base(
                    self.settings.baseline_dir / "profiles",
                    record["test_id"],
                    record["name"],
                    datetime.now(timezone.utc),
                )
                try:
                    profile = take_profile(
                        tool, target, synchronize=sync.synchronize, base=base, device=sync.device
                    )
                except Exception as exc:  # a bug here must not change the test's outcome
                    profile = Profile(tool, error=f"profiling failed: {type(exc).__name__}: {exc}")
            record["profile"] = profile.to_record()

    # -- baselines ------------------------------------------------------------------

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # The family of the session's regression comparisons, for Bonferroni: every test
        # that can measure. Known before any test runs, so each verdict can be given with
        # its own report (Holm would need every p-value first).
        self.perf_items = sum(
            1 for item in items if _PERF_FIXTURES & set(getattr(item, "fixturenames", ()))
        )

    def _baseline(self) -> Baseline | None:
        """This fingerprint's baseline, loaded once; None when there is none or it is
        unreadable (then the error is reported and nothing is compared or overwritten)."""
        if not self._baseline_loaded:
            self._baseline_loaded = True
            try:
                self._baseline_value = self.store.load(self.context.fingerprint.digest)
            except StoreError as exc:
                self.store_errors.append(str(exc))
        return self._baseline_value

    def _judge(
        self,
        key: str,
        value_ms: float,
        threshold_pct: float,
        alpha: float,
        reference: tuple[float | None, str | None] = (None, None),
    ) -> tuple[Comparison, float | None]:
        """This run's statistic against the saved runs of `key` on this fingerprint, and
        the machine-speed factor the reference workload applied (None: none)."""
        from pytest_hwperf.judge.regression import compare, drift_adjusted
        from pytest_hwperf.store import gate_runs

        baseline = self._baseline()
        runs = gate_runs(baseline.runs_for(key) if baseline is not None else ())
        values, drift = drift_adjusted(
            [value for _, value in runs],
            [run.reference_ms for run, _ in runs],
            reference[0],
            baseline_kinds=[run.reference_kind for run, _ in runs],
            current_kind=reference[1],
        )
        found = compare(
            value_ms, values, threshold_pct=threshold_pct, alpha=alpha, drift_factor=drift
        )
        return found, drift

    def suspects_regression(
        self, test_id: str, name: str, device: str, value_ms: float, spec: TestSpec
    ) -> bool:
        """Would this value be a regression? Asked by the hwperf fixture right after a
        measurement, to measure it again (--hwperf-confirm) before the verdict. It asks
        at the level of a test with one measurement, which is the loosest a verdict of
        that test can be judged at, so every regression the verdict finds is confirmed."""
        from pytest_hwperf.judge.regression import REGRESSION, bonferroni_alpha
        from pytest_hwperf.store import measurement_key

        if value_ms <= 0:
            return False
        key = measurement_key(test_id, name, device)
        threshold = spec.regression_pct or self.settings.regression_pct
        alpha = bonferroni_alpha(self.settings.alpha, max(1, self.perf_items))
        found, _ = self._judge(key, value_ms, threshold, alpha)
        return found.outcome == REGRESSION

    def _compare(self, record: dict[str, Any], spec: TestSpec, *, comparisons: int) -> None:
        """Attach the comparison with this fingerprint's baseline to a measured record."""
        if record.get("mode") != "measured" or not record.get("samples_ns"):
            return
        from pytest_hwperf.judge.regression import STATISTIC, bonferroni_alpha, gate_ms
        from pytest_hwperf.store import measurement_key

        fp = self.context.fingerprint
        key = measurement_key(record["test_id"], record["name"], record["device"])
        threshold = spec.regression_pct or self.settings.regression_pct
        alpha = bonferroni_alpha(self.settings.alpha, max(1, self.perf_items) * max(1, comparisons))
        value = gate_ms(record) or 0.0
        if value <= 0:
            # Faster than the clock resolves: there is no ratio to judge.
            record["notes"].append(f"not compared with the baseline: the {STATISTIC} is 0 ns")
            return
        found, drift = self._judge(
            key,
            value,
            threshold,
            alpha,
            (record.get("reference_ms"), record.get("reference_kind")),
        )
        comparison = found.to_record(fp.digest)
        comparison["key"] = key
        comparison["drift_factor"] = drift
        rounds = len(record.get("rounds") or [])
        confirmed = f" (the fastest of {rounds} rounds)" if rounds > 1 else ""
        comparison["rounds"] = max(1, rounds)
        comparison["reason"] = found.reason(fp.digest) + _drift_text(drift) + confirmed
        record["comparison"] = comparison
        record["fingerprint"] = {"digest": fp.digest, "label": fp.label, "hashed": fp.hashed}

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
        self._note_device_case(report)
        if report.when != "call":
            return
        data = getattr(report, REPORT_ATTR, None)
        if isinstance(data, dict):
            self.records.extend(data.get("records", []))

    # -- device advice --------------------------------------------------------------

    def _note_device_case(self, report: pytest.TestReport) -> None:
        case = getattr(report, DEVICE_ATTR, None)
        if not isinstance(case, dict) or report.when == "teardown":
            return
        cases = self.device_cases.setdefault(case["group"], {})
        device = case["device"]
        if report.skipped or report.failed:
            # A failed call that measured is still measured: its records win later.
            cases[device] = _unmeasured_reason(report, device)
        else:
            cases.setdefault(device, None)
        data = getattr(report, REPORT_ATTR, None)
        breach = isinstance(data, dict) and bool(data.get("breach"))
        if report.when == "call" and report.failed and not breach:
            failures = self.device_failures.setdefault(case["group"], {})
            failures[device] = _unmeasured_reason(report, device)

    def _absent_kinds(self) -> dict[str, str]:
        """The kinds of accelerator this machine lacks, when the `device` fixture runs on
        every device present: a recommendation made without them must say so."""
        if self.settings.devices is not None:
            return {}  # the user chose the devices; the skipped ones are listed anyway
        present = self.context.present_devices()
        absent: dict[str, str] = {}
        if not any(d.startswith("cuda:") for d in present):
            why = self.context.gpus.reason or "none found"
            absent["cuda"] = f"no CUDA device on this machine: {why}"
        if platform.system() == "Darwin" and "mps" not in present:
            absent["mps"] = "torch reports the MPS backend unavailable"
        return absent

    def _advice(self) -> list[dict[str, Any]]:
        """The device advice, worked out once when the session's records are complete
        (the JSON, Markdown and HTML reports and the terminal summary all show it)."""
        if self._advice_value is None:
            self._advice_value = self._work_out_advice()
        return self._advice_value

    def _work_out_advice(self) -> list[dict[str, Any]]:
        from pytest_hwperf.report.advice import device_advice

        if not self.device_cases:
            return []
        measured = {
            (r.get("device_group"), r.get("device_param"))
            for r in self.records
            if r.get("mode") == "measured"
        }
        absent = self._absent_kinds()
        unmeasured: dict[str, dict[str, str]] = {}
        for group, cases in self.device_cases.items():
            missing = unmeasured.setdefault(group, {})
            for device, reason in cases.items():
                if (group, device) not in measured:
                    missing[device] = reason or "the test took no measurement on it"
            for kind, reason in absent.items():
                if not any(d.split(":")[0] == kind for d in cases):
                    missing[kind] = reason
        return device_advice(self.records, unmeasured, self.device_failures)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if _is_xdist_worker(self.config):
            return
        # Only the controller writes: history, the baseline, then the reports. Each step
        # reports its own failure and the others still run.
        run_id = uuid.uuid4().hex[:12]
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        commit = commit_label(self.config.rootpath)
        self._record_history(run_id, created, commit)
        if self.settings.save:
            self._save_baseline(run_id, created, commit)
        # One document for the JSON and the HTML report.
        wanted = self.settings.json_path or self.settings.html_path
        document = self._document() if wanted else {}
        self._write_json(document)
        self._write_markdown()
        self._write_html(document)
        self._baseline()  # a baseline that cannot be read is reported even if unused
        failed = bool(self.report_errors or self.store_errors)
        if failed and session.exitstatus == pytest.ExitCode.OK:
            # A requested report, a save, or a gate that could not run must not leave
            # CI green.
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _measured(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("mode") == "measured" and r.get("samples_ns")]

    def _record_history(self, run_id: str, created: str, commit: str | None) -> None:
        from pytest_hwperf.store import History, measurement_key

        measured = self._measured()
        if not measured:
            return
        fp = self.context.fingerprint
        rows = [
            {
                "key": measurement_key(r["test_id"], r["name"], r["device"]),
                "test_id": r["test_id"],
                "name": r["name"],
                "device": r["device"],
                "n": r["stats"]["n"],
                "median_ms": _median_ms(r["samples_ns"]),
                "mean_ms": r["stats"]["mean_ms"],
                "p95_ms": r["stats"]["p95_ms"],
                "outcome": r.get("outcome"),
                "samples_ns": r["samples_ns"],
            }
            for r in measured
        ]
        try:
            History(self.settings.baseline_dir / "history.sqlite").record_run(
                run_id, created, fp.digest, fp.label, commit, rows
            )
        except (StoreError, OSError, sqlite3.Error) as exc:
            self.history_errors.append(f"run history not recorded: {exc}")

    def _save_baseline(self, run_id: str, created: str, commit: str | None) -> None:
        from pytest_hwperf.judge.regression import gate_ms
        from pytest_hwperf.store import RunSummary, measurement_key

        by_fingerprint: dict[str, tuple[dict[str, Any], dict[str, RunSummary]]] = {}
        for r in self._measured():
            fingerprint = r.get("fingerprint") or {}
            digest = fingerprint.get("digest")
            if not digest:
                continue
            key = measurement_key(r["test_id"], r["name"], r["device"])
            run = RunSummary.from_samples(
                run_id,
                created,
                commit,
                r["samples_ns"],
                r["timing"]["block_size"],
                min_ms=gate_ms(r),
                reference_ms=r.get("reference_ms"),
                reference_kind=r.get("reference_kind"),
            )
            by_fingerprint.setdefault(digest, (fingerprint, {}))[1][key] = run
        saved = []
        for fingerprint, runs in by_fingerprint.values():
            try:
                path = self.store.save(fingerprint, runs, keep=BASELINE_RUNS)
            except (StoreError, ValueError) as exc:
                self.store_errors.append(f"baseline not saved: {exc}")
            else:
                saved.append(f"{path} ({len(runs)} measurements)")
        self.saved = ", ".join(saved) or None

    def _document(self) -> dict[str, Any]:
        s = self.settings
        fp = self.context.fingerprint
        environment: dict[str, Any] = dict(software_versions())
        environment["machine"] = self.context.machine.to_record()
        environment["fingerprint"] = fp.to_record()
        return build_document(
            self.records,
            sweeps=sweeps(self.records),
            environment=environment,
            settings={
                "alpha": s.alpha,
                "max_time_s": s.max_time_s,
                "warmup_s": s.warmup_s,
                "inconclusive": s.inconclusive,
                "gc": s.gc,
                "regression_pct": s.regression_pct,
                "confirm": s.confirm,
                "reference": s.reference,
                "baseline_dir": str(s.baseline_dir),
                "profile": s.profile,
                "perf_items": self.perf_items,
            },
            plugin_version=software_versions()["pytest_hwperf"],
            advice=self._advice(),
        )

    def _write_json(self, document: dict[str, Any]) -> None:
        path = self.settings.json_path
        if path is None:
            return
        try:
            write_document(path, document)
        except ReportError as exc:
            self.report_errors.append(str(exc))
        else:
            self.json_written = str(path)

    def _write_markdown(self) -> None:
        from pytest_hwperf.report.markdown import markdown_summary

        targets = [self.settings.markdown_path]
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            targets.append(Path(step_summary))
        if not any(targets):
            return
        text = markdown_summary(
            self.records,
            sweeps=sweeps(self.records),
            fingerprint=self.context.fingerprint.label,
            advice=self._advice(),
        )
        path = self.settings.markdown_path
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            except OSError as exc:
                self.report_errors.append(f"cannot write the Markdown report {path}: {exc}")
            else:
                self.markdown_written = str(path)
        if step_summary:
            try:
                with open(step_summary, "a", encoding="utf-8") as fh:  # appended, as GitHub asks
                    fh.write(text)
            except OSError as exc:
                self.report_errors.append(f"cannot append to $GITHUB_STEP_SUMMARY: {exc}")

    def _write_html(self, document: dict[str, Any]) -> None:
        path = self.settings.html_path
        if path is None:
            return
        from pytest_hwperf.report.html import read_history, render_html, write_html

        # Recorded above, so the trend ends with this run; a history that cannot be read
        # leaves the trends out with a note, it does not cost the report.
        history, history_error = read_history(document, self.settings.baseline_dir)
        try:
            write_html(path, render_html(document, history=history, history_error=history_error))
        except ReportError as exc:
            self.report_errors.append(str(exc))
        else:
            self.html_written = str(path)

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
        if self.saved:
            tr.write_line(f"hwperf: baseline saved to {self.saved}")
        if self.json_written:
            tr.write_line(f"hwperf: JSON report written to {self.json_written}")
        if self.markdown_written:
            tr.write_line(f"hwperf: Markdown report written to {self.markdown_written}")
        if self.html_written:
            tr.write_line(f"hwperf: HTML report written to {self.html_written}")
        for error in self.store_errors:
            tr.write_line(f"hwperf: error: {error}", red=True, bold=True)
        for error in self.history_errors:
            tr.write_line(f"hwperf: warning: {error}", yellow=True)
        for error in self.report_errors:
            tr.write_line(f"hwperf: error: {error}", red=True, bold=True)
