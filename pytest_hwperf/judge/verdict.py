"""A test's verdict: its measurements, judged against the policy, and the breaches that
fail it.

Pure: the pytest layer's makereport wrapper calls `judge_test` and turns its
`TestVerdict` into the test's outcome and failure line; the reports show the records it
returns. Every rule that decides whether a test fails on performance is here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pytest_hwperf.busy import busy_note
from pytest_hwperf.judge.gate import SavedRun, compare_with_runs, comparison_alpha, threshold_for
from pytest_hwperf.judge.paired import NOT_COMPARED
from pytest_hwperf.judge.regression import REGRESSION
from pytest_hwperf.records.types import ComparisonRecord, MeasurementRecord, MemoryRecord
from pytest_hwperf.units import fmt_mb

__all__ = [
    "Breach",
    "MemoryBudget",
    "Policy",
    "TestVerdict",
    "VerdictCounts",
    "breaches_of",
    "count_verdicts",
    "every_round_tail",
    "judge_memory",
    "judge_test",
    "tails_of",
]


@dataclass(frozen=True)
class Policy:
    """The session's settings that judging reads."""

    alpha: float = 0.01
    regression_pct: float = 10.0
    perf_items: int = 1  # the Bonferroni family of the session's regression comparisons
    inconclusive: str = "pass"  # "pass" or "fail"
    max_time_s: float = 5.0
    oversubscription: str = "fail"  # "fail", "warn" or "off"
    fail_on_improvement: bool = False


@dataclass(frozen=True)
class MemoryBudget:
    """A `memory` marker's budgets, in MiB (None: not given): the peaks (`rss_mb`,
    `gpu_mb`) and what the measurement adds over the memory held when it started
    (`rss_added_mb`, `gpu_added_mb`: the model's own share, whatever the process held)."""

    rss_mb: float | None = None
    gpu_mb: float | None = None
    rss_added_mb: float | None = None
    gpu_added_mb: float | None = None


_PROFILED_KINDS = frozenset({"budget", "inconclusive", "regression"})


@dataclass(frozen=True)
class Breach:
    """One reason a test fails on performance: its kind and its one line."""

    kind: str  # "budget", "inconclusive", "regression", "improvement", "oversubscribed", "memory"
    name: str  # the measurement's name
    device: str
    reason: str

    @property
    def profiled(self) -> bool:
        """Whether a profile of the target can explain it: where the time goes explains
        a budget breach or a regression, not an oversubscribed config or memory."""
        return self.kind in _PROFILED_KINDS

    @property
    def line(self) -> str:
        """The test's failure line."""
        return f"hwperf: {self.name!r} on {self.device}: {self.reason}"


@dataclass(frozen=True)
class TestVerdict:
    records: tuple[MeasurementRecord, ...]
    breaches: tuple[Breach, ...]

    __test__ = False  # not a pytest test class, whatever its name

    @property
    def failed(self) -> bool:
        return bool(self.breaches)


def breaches_of(record: MeasurementRecord, policy: Policy) -> list[Breach]:
    """The reasons this measurement fails its test, if any."""
    found: list[Breach] = []
    where = (record.name, record.device)
    for budget in record.budgets:
        if budget.outcome == "fail":
            found.append(Breach("budget", *where, budget.reason))
        elif budget.outcome == "inconclusive" and policy.inconclusive == "fail":
            found.append(
                Breach(
                    "inconclusive",
                    *where,
                    f"inconclusive within {policy.max_time_s:g} s"
                    f" (--hwperf-inconclusive=fail): {budget.reason}",
                )
            )
    comparison = record.comparison
    tail = None if comparison is None else comparison.tail
    if comparison is not None and comparison.outcome == "regression":
        found.append(Breach("regression", *where, f"regression: {comparison.reason}"))
    elif comparison is not None and tail is not None and tail.outcome == "regression":
        # The tail's own line does not say what the comparison was made across.
        changed = comparison.versions_changed
        across = f"; across {', '.join(changed)}" if changed else ""
        found.append(Breach("regression", *where, f"tail regression: {tail.reason}{across}"))
    elif (
        comparison is not None
        and comparison.outcome == "improvement"
        and policy.fail_on_improvement
    ):
        found.append(
            Breach(
                "improvement",
                *where,
                "improvement (--hwperf-fail-on-improvement: refresh the baseline with"
                f" --hwperf-save): {comparison.reason}",
            )
        )
    if record.oversubscription and policy.oversubscription == "fail":
        found.append(Breach("oversubscribed", *where, f"oversubscribed: {record.oversubscription}"))
    if record.memory is not None and record.memory.outcome == "fail":
        found.append(Breach("memory", *where, f"memory: {record.memory.reason}"))
    return found


def judge_memory(
    memory: MemoryRecord | None, budget: MemoryBudget, *, device: str
) -> tuple[MemoryRecord | None, list[str]]:
    """A measurement's memory figures against a `memory` marker's budgets: the record
    with the budgets, `outcome` ("pass", "fail", or None when nothing could be judged)
    and `reason` filled in, and notes for budgets that could not be judged."""
    notes: list[str] = []
    if memory is None:
        notes.append("memory budget not judged: no memory figures for this measurement")
        return None, notes
    fails: list[str] = []
    passes: list[str] = []
    if budget.rss_mb is not None:
        if memory.rss_peak_mb is not None:
            line = (
                f"peak RSS {fmt_mb(memory.rss_peak_mb)} {{}} the {budget.rss_mb:g} MB budget"
                f" ({memory.scope})"
            )
            (fails if memory.rss_peak_mb > budget.rss_mb else passes).append(
                line.format("over" if memory.rss_peak_mb > budget.rss_mb else "within")
            )
        else:
            notes.append("memory: rss_mb budget not judged: the RSS could not be read")
    if budget.gpu_mb is not None:
        if memory.gpu_peak_mb is not None:
            where = memory.gpu_device or device
            over = memory.gpu_peak_mb > budget.gpu_mb
            line = (
                f"peak allocated {fmt_mb(memory.gpu_peak_mb)} on {where}"
                f" {'over' if over else 'within'} the {budget.gpu_mb:g} MB budget"
                " (torch allocator)"
            )
            (fails if over else passes).append(line)
        elif device.startswith("cuda"):
            notes.append(
                "memory: gpu_mb budget not judged: torch's CUDA allocator statistics"
                " could not be read for this measurement"
            )
        else:
            notes.append(
                f"memory: gpu_mb budget not judged: this measurement ran on {device}"
                " (device memory is tracked for CUDA measurements)"
            )
    _judge_added(memory, budget, device, fails, passes, notes)
    outcome, reason = (
        ("fail", "; ".join(fails))
        if fails
        else ("pass", "; ".join(passes))
        if passes
        else (None, None)
    )
    judged = dataclasses.replace(
        memory,
        rss_budget_mb=budget.rss_mb,
        gpu_budget_mb=budget.gpu_mb,
        rss_added_budget_mb=budget.rss_added_mb,
        gpu_added_budget_mb=budget.gpu_added_mb,
        outcome=outcome,
        reason=reason,
    )
    return judged, notes


def _judge_added(
    memory: MemoryRecord,
    budget: MemoryBudget,
    device: str,
    fails: list[str],
    passes: list[str],
    notes: list[str],
) -> None:
    """The budgets on what the measurement added over the memory held at its start."""
    if budget.rss_added_mb is not None:
        added = memory.rss_added_mb
        if added is None:
            notes.append("memory: rss_added_mb budget not judged: the RSS could not be read")
        else:
            over = added > budget.rss_added_mb
            (fails if over else passes).append(
                f"RSS grew {fmt_mb(added)} {'over' if over else 'within'} the"
                f" {budget.rss_added_mb:g} MB budget for what the measurement adds (from"
                f" {fmt_mb(memory.rss_start_mb or 0.0)} to {fmt_mb(memory.rss_peak_mb or 0.0)};"
                f" {memory.scope})"
            )
    if budget.gpu_added_mb is not None:
        added = memory.gpu_added_mb
        if added is None:
            notes.append(
                "memory: gpu_added_mb budget not judged: "
                + (
                    "torch's CUDA allocator statistics could not be read"
                    if device.startswith("cuda")
                    else f"this measurement ran on {device}"
                )
            )
        else:
            over = added > budget.gpu_added_mb
            where = memory.gpu_device or device
            (fails if over else passes).append(
                f"allocated {fmt_mb(added)} more on {where} {'over' if over else 'within'}"
                f" the {budget.gpu_added_mb:g} MB budget for what the measurement adds"
                " (torch allocator)"
            )


RunsFor = Callable[[str], Sequence[SavedRun]]


def _compared(
    record: MeasurementRecord,
    runs_for: RunsFor | None,
    policy: Policy,
    marker_regression_pct: float | None,
    in_test: int,
    fingerprint: str | None,
    versions: Mapping[str, str] | None = None,
    no_baseline_note: str | None = None,
) -> MeasurementRecord:
    if runs_for is None or not record.measured:
        return record
    value = record.gate_ms or 0.0
    if value <= 0:
        # Faster than the clock resolves: there is no ratio to judge.
        note = "not compared with the baseline: the min is 0 ns"
        return dataclasses.replace(record, notes=(*record.notes, note))
    comparison = compare_with_runs(
        value,
        runs_for(record.key),
        key=record.key,
        threshold_pct=threshold_for(marker_regression_pct, policy.regression_pct),
        alpha=comparison_alpha(policy.alpha, policy.perf_items, in_test),
        rounds=len(record.rounds),
        reference_ms=record.reference_ms,
        reference_kind=record.reference_kind,
        fingerprint=fingerprint,
        versions=versions,
        no_baseline_note=no_baseline_note,
        current_rounds=record.round_mins,
        current_p95_ms=tails_of(record),
        every_round_p95_ms=every_round_tail(record),
    )
    if record.busy:
        comparison = _not_judged_busy(comparison, record)
    return dataclasses.replace(record, comparison=comparison)


def _not_judged_busy(comparison: ComparisonRecord, record: MeasurementRecord) -> ComparisonRecord:
    """A regression (of the fastest call or of the tail) seen only in rounds the machine
    disturbed, every one of them, is not a verdict: it becomes "not compared", its line
    saying why (measure/contention.py)."""
    note = f"; not judged: {busy_note([r.cpu_wait for r in record.rounds])}"
    tail = comparison.tail
    if tail is not None and tail.outcome == REGRESSION:
        tail = dataclasses.replace(tail, outcome=NOT_COMPARED, reason=tail.reason + note)
    if comparison.outcome == REGRESSION:
        return dataclasses.replace(
            comparison, outcome=NOT_COMPARED, reason=comparison.reason + note, tail=tail
        )
    return dataclasses.replace(comparison, tail=tail)


def tails_of(record: MeasurementRecord) -> list[float]:
    """The p95 of each round measured (the first round's alone when there was one)."""
    if record.timing.block_size != 1:
        return []  # block means: no per-call percentile
    found = [r.p95_ms for r in record.quiet_rounds if r.p95_ms]
    if found:
        return found
    return [record.stats.p95_ms] if record.stats.p95_ms else []


def every_round_tail(record: MeasurementRecord) -> list[float]:
    """The p95 of every round measured, the disturbed ones too (none for block means)."""
    if record.timing.block_size != 1:
        return []
    return [r.p95_ms for r in record.rounds if r.p95_ms]


def _with_memory(record: MeasurementRecord, budget: MemoryBudget | None) -> MeasurementRecord:
    if budget is None or record.mode != "measured":
        return record
    memory, notes = judge_memory(record.memory, budget, device=record.device)
    record = dataclasses.replace(record, notes=(*record.notes, *notes))
    if memory is None:
        return record
    outcome = record.outcome
    if memory.outcome == "fail":
        outcome = "fail"
    elif memory.outcome == "pass" and outcome is None:
        outcome = "pass"
    return dataclasses.replace(record, memory=memory, outcome=outcome)


def judge_test(
    records: Sequence[MeasurementRecord],
    policy: Policy,
    *,
    runs_for: RunsFor | None = None,
    marker_regression_pct: float | None = None,
    memory_budget: MemoryBudget | None = None,
    fingerprint: str | None = None,
    versions: Mapping[str, str] | None = None,
    no_baseline_note: str | None = None,
) -> TestVerdict:
    """Judge one test from its measurements: each is compared with its saved runs (when
    `runs_for` gives them; None: no baseline gate), its memory judged against the
    marker's budget, and `breach` set; the breaches are returned in measurement order.
    `versions` and `no_baseline_note` go to `gate.compare_with_runs`."""
    judged: list[MeasurementRecord] = []
    breaches: list[Breach] = []
    for record in records:
        record = _compared(
            record,
            runs_for,
            policy,
            marker_regression_pct,
            len(records),
            fingerprint,
            versions,
            no_baseline_note,
        )
        record = _with_memory(record, memory_budget)
        found = breaches_of(record, policy)
        judged.append(dataclasses.replace(record, breach=bool(found)))
        breaches.extend(found)
    return TestVerdict(tuple(judged), tuple(breaches))


@dataclass(frozen=True)
class VerdictCounts:
    """The measurements counted by their test-level verdict (`MeasurementRecord.verdict`),
    as every report shows them: `passing + failing + inconclusive + no_budget` is
    `measurements`; `regressions` counts the failing ones whose comparison found a
    regression (a regression fails its test: they are among `failing`)."""

    measurements: int = 0
    passing: int = 0
    failing: int = 0
    inconclusive: int = 0
    no_budget: int = 0
    regressions: int = 0


def count_verdicts(records: Iterable[MeasurementRecord]) -> VerdictCounts:
    """Count `records` by their test-level verdict."""
    verdicts: list[str] = []
    regressions = 0
    for record in records:
        verdicts.append(record.verdict)
        comparison = record.comparison
        if record.verdict == "fail" and comparison is not None:
            regressions += comparison.outcome == "regression"
    return VerdictCounts(
        measurements=len(verdicts),
        passing=verdicts.count("pass"),
        failing=verdicts.count("fail"),
        inconclusive=verdicts.count("inconclusive"),
        no_budget=verdicts.count("no budget"),
        regressions=regressions,
    )
