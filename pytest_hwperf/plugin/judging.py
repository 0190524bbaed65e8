"""Per-test judging, at the call's report: the test's measurements become typed records,
`judge.verdict.judge_test` judges them, a breaching target is profiled, and the verdict
becomes the test's outcome, its one line, its report section and its JUnit properties.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pytest

from pytest_hwperf.judge.gate import SavedRun
from pytest_hwperf.judge.verdict import MemoryBudget, Policy, TestVerdict, judge_test
from pytest_hwperf.plugin.fixtures import (
    DEVICE_KEY,
    MEASUREMENTS_KEY,
    MODELS_KEY,
    PROFILE_TARGETS_KEY,
    WORKER_CONFIG_KEY,
)
from pytest_hwperf.plugin.markers import (
    DECLARED_OVERSUBSCRIPTION_KEY,
    DECLARED_WARNED_KEY,
    SPEC_KEY,
    TestSpec,
)
from pytest_hwperf.plugin.options import Settings
from pytest_hwperf.records.codec import RecordError, from_json, to_json
from pytest_hwperf.records.types import (
    FingerprintRecord,
    MeasurementRecord,
    ModelRecord,
    WorkerConfigRecord,
)
from pytest_hwperf.report.terminal import summary_lines

if TYPE_CHECKING:
    from pytest_hwperf.measure.device import DeviceSync
    from pytest_hwperf.measure.result import Measurement
    from pytest_hwperf.records.types import Facts

__all__ = [
    "REPORT_ATTR",
    "judge_call",
    "policy_of",
    "records_of_report",
    "section",
    "unjudged_of_report",
]

# The attribute of a call report that carries its records as JSON values, which
# pytest-xdist serialises with the report.
REPORT_ATTR = "hwperf"


def policy_of(settings: Settings, perf_items: int) -> Policy:
    return Policy(
        alpha=settings.alpha,
        regression_pct=settings.regression_pct,
        perf_items=perf_items,
        inconclusive=settings.inconclusive,
        max_time_s=settings.max_time_s,
        oversubscription=settings.oversubscription,
        fail_on_improvement=settings.fail_on_improvement,
    )


def unjudged_of_report(report: pytest.TestReport) -> str | None:
    """Why a test's budgets could not be judged, when they could not (a disabled
    pytest-benchmark fixture)."""
    data = getattr(report, REPORT_ATTR, None)
    found = data.get("unjudged") if isinstance(data, dict) else None
    return found if isinstance(found, str) else None


def records_of_report(report: pytest.TestReport) -> tuple[list[MeasurementRecord], bool]:
    """The records a call report carries, and whether it failed on performance."""
    data = getattr(report, REPORT_ATTR, None)
    if not isinstance(data, dict):
        return [], False
    records = []
    for index, raw in enumerate(data.get("records") or []):
        try:
            records.append(from_json(MeasurementRecord, raw, f"{report.nodeid} record {index}"))
        except RecordError:
            continue  # only this plugin writes the attribute; a foreign one is ignored
    return records, bool(data.get("breach"))


def _figures(record: MeasurementRecord) -> list[tuple[str, object]]:
    """The compact figures JUnit XML shows as properties."""
    prefix = f"hwperf[{record.name}]"
    stats = record.stats
    figures: list[tuple[str, object]] = [
        (f"{prefix}.device", record.device),
        (f"{prefix}.n", stats.n),
        (f"{prefix}.mean_ms", round(stats.mean_ms, 6)),
        (f"{prefix}.p95_ms", None if stats.p95_ms is None else round(stats.p95_ms, 6)),
        (f"{prefix}.outcome", record.outcome or "no budget"),
    ]
    comparison = record.comparison
    if comparison is not None and comparison.outcome != "no baseline":
        if comparison.change_pct is not None:
            figures.append((f"{prefix}.change_pct", round(comparison.change_pct, 3)))
        figures.append((f"{prefix}.vs_baseline", comparison.outcome))
    return figures


def section(records: Sequence[MeasurementRecord]) -> str:
    """The test's `hwperf` report section: the table, every verdict, how it was timed."""
    lines = summary_lines(records)
    for record in records:
        for budget in record.budgets:
            lines.append(f"{record.name}: {budget.outcome}: {budget.reason}")
        if record.memory is not None and record.memory.outcome:
            lines.append(f"{record.name}: memory {record.memory.outcome}: {record.memory.reason}")
        timing = record.timing
        lines.append(
            f"{record.name}: {timing.clock}, sync {timing.sync}, warm-up"
            f" {timing.warmup_calls} calls, gc {timing.gc}, stopped: {timing.stop_reason}"
        )
        lines.extend(f"{record.name}: note: {note}" for note in record.notes)
        if record.profile is not None:
            from pytest_hwperf.profiling.profile import profile_lines

            lines.extend(profile_lines(record.name, record.profile))
    return "\n".join(lines)


def _with_context(
    record: MeasurementRecord,
    item: pytest.Item,
    placement: Facts,
    device_case: dict[str, str] | None,
    models: Sequence[ModelRecord],
) -> MeasurementRecord:
    config = item.stash.get(WORKER_CONFIG_KEY, None)
    model = record.model
    if model is None and len(models) == 1:
        # The test prepared one model; its measurements are of that model.
        model = models[0]
    warned = item.stash.get(DECLARED_WARNED_KEY, None)
    return dataclasses.replace(
        record,
        # Measured under --hwperf-oversubscription=warn although its declared config does
        # not fit: the observed gate's line if it tripped too, else the declared one.
        oversubscription=record.oversubscription
        or (None if warned is None else f"declared: {warned}"),
        placement=placement,
        worker_config=(
            None if config is None else from_json(WorkerConfigRecord, config.to_record())
        ),
        device_param=None if device_case is None else device_case["device"],
        device_group=None if device_case is None else device_case["group"],
        model=model,
    )


def _profiled(
    verdict: TestVerdict,
    settings: Settings,
    targets: dict[str, tuple[Callable[[], object], DeviceSync]],
) -> TestVerdict:
    """Each measurement that fails its test on a budget or a regression (what a profile
    can explain) has its target run again under --hwperf-profile's profiler. Never
    raises: a profile that cannot be taken says why in its `error`."""
    if settings.profile == "off":
        return verdict
    from pytest_hwperf.profiling.profile import Profile, artifact_base, resolve_tool, take_profile

    profiled = {(b.name, b.device) for b in verdict.breaches if b.profiled}
    records = []
    for record in verdict.records:
        tool = resolve_tool(settings.profile, record.device)
        if tool is None or (record.name, record.device) not in profiled:
            records.append(record)
            continue
        kept = targets.get(record.name)
        if kept is None:
            profile = Profile(tool, error="no target to run again (only hwperf(...) calls are)")
        else:
            target, sync = kept
            base = artifact_base(
                settings.baseline_dir / "profiles",
                record.test_id,
                record.name,
                datetime.now(timezone.utc),
            )
            try:
                profile = take_profile(
                    tool, target, synchronize=sync.synchronize, base=base, device=sync.device
                )
            except Exception as exc:  # a bug here must not change the test's outcome
                profile = Profile(tool, error=f"profiling failed: {type(exc).__name__}: {exc}")
        records.append(dataclasses.replace(record, profile=profile.as_record()))
    return dataclasses.replace(verdict, records=tuple(records))


def judge_call(
    item: pytest.Item,
    report: pytest.TestReport,
    *,
    measurements: Sequence[Measurement],
    settings: Settings,
    policy: Policy,
    runs_for: Callable[[str], Sequence[SavedRun]] | None,
    fingerprint: FingerprintRecord | None,
    placement: Facts,
    device_case: dict[str, str] | None,
    no_baseline_note: str | None = None,
) -> None:
    """Judge the test behind this call report and write the verdict onto the report."""
    spec = item.stash.get(SPEC_KEY, TestSpec())
    models = item.stash.get(MODELS_KEY, [])
    records = [
        _with_context(m.as_record(item.nodeid), item, placement, device_case, models)
        for m in measurements
    ]
    memory_budget = (
        None
        if spec.memory is None
        else MemoryBudget(
            rss_mb=spec.memory.rss_mb,
            gpu_mb=spec.memory.gpu_mb,
            rss_added_mb=spec.memory.rss_added_mb,
            gpu_added_mb=spec.memory.gpu_added_mb,
        )
    )
    verdict = judge_test(
        records,
        policy,
        runs_for=runs_for,
        marker_regression_pct=spec.regression_pct,
        memory_budget=memory_budget,
        fingerprint=None if fingerprint is None else fingerprint.digest,
        versions=None if fingerprint is None else fingerprint.versions,
        no_baseline_note=no_baseline_note,
    )
    if fingerprint is not None:
        verdict = dataclasses.replace(
            verdict,
            records=tuple(
                r if r.comparison is None else dataclasses.replace(r, fingerprint=fingerprint)
                for r in verdict.records
            ),
        )
    # The targets hold models and tensors: they leave the item's stash now, whatever
    # happens, and only a breaching measurement's is run again under the profiler.
    targets = item.stash.get(PROFILE_TARGETS_KEY, {})
    if PROFILE_TARGETS_KEY in item.stash:
        del item.stash[PROFILE_TARGETS_KEY]
    verdict = _profiled(verdict, settings, targets)
    reasons = [b.line for b in verdict.breaches]
    declared = item.stash.get(DECLARED_OVERSUBSCRIPTION_KEY, None)
    if declared is not None:
        # The declared config oversubscribes the usable cores: the test was not run, and
        # it fails on performance (`P`), not as an error of its own.
        report.outcome = "failed"
        report.longrepr = f"hwperf: oversubscribed: {declared}"
        setattr(report, REPORT_ATTR, {"records": [], "breach": True, "unjudged": None})
        return
    # PERF (the status letter) marks a test that passed and failed only its budgets;
    # a test that failed on its own keeps its failure, with the figures attached.
    perf_breach = bool(reasons) and report.passed
    uses_benchmark = "benchmark" in getattr(item, "funcargs", {})
    unjudged: str | None = None
    if spec.budgets and not measurements and uses_benchmark:
        # pytest-benchmark switched itself off (--benchmark-disable, or under xdist):
        # the test ran once as a plain test, with nothing to judge. It passes, and the
        # session's summary names it, so that a disabled benchmark cannot hide a budget.
        unjudged = "budget not judged: pytest-benchmark took no rounds (disabled)"
        report.sections.append(("hwperf", unjudged))
    elif (spec.budgets or spec.memory) and not measurements and report.passed:
        described = [b.describe() for b in spec.budgets]
        budgets = ", ".join(described + ([spec.memory.describe()] if spec.memory else []))
        reasons.append(
            f"hwperf: the test declares a budget ({budgets}) but took no measurement:"
            " call the hwperf fixture on the code to measure"
        )
    for record in verdict.records:
        figures = _figures(record)
        # The call report carries them for hooks and xdist; JUnit XML reads the
        # teardown report, which copies item.user_properties.
        report.user_properties.extend(figures)
        item.user_properties.extend(figures)
    setattr(
        report,
        REPORT_ATTR,
        {
            "records": [to_json(r) for r in verdict.records],
            "breach": perf_breach,
            "unjudged": unjudged,
        },
    )
    if verdict.records:
        report.sections.append(("hwperf", section(verdict.records)))
    if reasons and report.passed:
        report.outcome = "failed"
        extra = (
            f" (and {len(reasons) - 1} more, see the hwperf section)" if len(reasons) > 1 else ""
        )
        report.longrepr = reasons[0] + extra


def device_of(item: pytest.Item) -> str:
    return item.stash.get(DEVICE_KEY, "cpu")


def measurements_of(item: pytest.Item) -> list[Measurement]:
    found: list[Measurement] = item.stash.get(MEASUREMENTS_KEY, [])
    return list(found)
