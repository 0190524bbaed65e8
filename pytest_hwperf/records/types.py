"""The typed result model: what one measurement of one test became once judged.

Every report, the baseline store, the run history and the `hwperf` command read these
frozen dataclasses; JSON is only their (de)serialisation, in `records/codec.py`. A field
is named exactly as its key in the JSON report (docs/json-schema.md), so the file format
and the model cannot drift apart.

Descriptive facts that are shown but never judged (thread settings, placement, the
observed threads, a profile's top functions) stay JSON values (`Facts`): they are read
by at most one report, and typing them would only copy their producers' shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

__all__ = [
    "VERDICTS",
    "BudgetRecord",
    "ComparisonRecord",
    "Facts",
    "FingerprintRecord",
    "GpuUtilizationRecord",
    "JSONValue",
    "MeasurementRecord",
    "MemoryRecord",
    "ModelRecord",
    "ProfileRecord",
    "RoundBudgetRecord",
    "RoundRecord",
    "StatsRecord",
    "TimingRecord",
    "TopFunction",
    "WorkerConfigRecord",
]

# The test-level verdicts every report shows for a measurement (`MeasurementRecord.verdict`).
VERDICTS = ("pass", "fail", "inconclusive", "no budget")

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"
Facts: TypeAlias = Mapping[str, "JSONValue"]


@dataclass(frozen=True)
class StatsRecord:
    """Summary of the samples, in milliseconds (docs/json-schema.md `stats`)."""

    n: int
    n_calls: int
    mean_ms: float
    stdev_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    throughput_per_s: float | None = None  # calls per second; None: faster than the clock


@dataclass(frozen=True)
class BudgetRecord:
    """One budget's verdict. Latency budgets fill the `_ms` fields, throughput budgets
    the `_per_s` ones; the others stay None."""

    kind: str  # "latency" or "throughput"
    outcome: str  # "pass", "fail", "inconclusive"
    n: int
    alpha: float
    reason: str
    p_value: float | None = None
    percentile: float | None = None
    budget_ms: float | None = None
    measured_ms: float | None = None
    lower_ms: float | None = None
    upper_ms: float | None = None
    exceedances: int | None = None
    min_per_s: float | None = None
    batch_size: int | None = None
    measured_per_s: float | None = None
    lower_per_s: float | None = None
    upper_per_s: float | None = None
    # Confirmation (--hwperf-confirm): a budget the first round breached is judged again
    # in more rounds, on its best one; these say which and how it went. One round: 1,
    # None, None, None, False.
    rounds: int = 1
    best_round: int | None = None
    breached_rounds: int | None = None
    first_outcome: str | None = None
    cleared: bool = False
    # Rounds not judged because the machine was busy in them (measure/contention.py).
    busy_rounds: int = 0


@dataclass(frozen=True)
class TimingRecord:
    """How the samples were taken (docs/json-schema.md `timing`)."""

    clock: str
    sync: str
    block_size: int
    warmup_calls: int
    warmup_ms: float
    per_call_estimate_ms: float
    gc: str
    stop_reason: str
    alpha: float
    looks: int
    sampling_ms: float = 0.0


@dataclass(frozen=True)
class RoundBudgetRecord:
    """One budget's figure in one round (docs/json-schema.md `rounds[].budgets`): the
    latency at its percentile (`measured_ms`) or its items per second (`measured_per_s`),
    and that round's verdict on it (None when the round did not judge it)."""

    kind: str  # "latency" or "throughput"
    outcome: str | None = None
    percentile: float | None = None
    measured_ms: float | None = None
    measured_per_s: float | None = None


@dataclass(frozen=True)
class RoundRecord:
    """One round of a measurement measured again (--hwperf-confirm): its sample count,
    fastest call and percentiles, and each budget's figure (and verdict) in that round."""

    n: int
    min_ms: float | None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    budgets: tuple[RoundBudgetRecord, ...] = ()
    # How long the test's threads waited for a CPU, per second of the round
    # (measure/contention.py); from DISTURBED_CPU_WAIT on, the round is disturbed.
    cpu_wait: float | None = None
    disturbed: bool = False  # the wait reached --hwperf-busy-wait
    # The reference workload's fastest call right after this round (--hwperf-reference).
    reference_ms: float | None = None


@dataclass(frozen=True)
class MemoryRecord:
    """Peak memory during the measurement, and its budget's verdict when the test has a
    `memory` marker (docs/json-schema.md `memory`)."""

    rss_peak_mb: float | None = None
    rss_start_mb: float | None = None
    process_peak_mb: float | None = None
    children_peak_mb: float | None = None
    children: int = 0
    tree_sampled_peak_mb: float | None = None
    gpu_peak_mb: float | None = None
    gpu_device: str | None = None
    gpu_start_mb: float | None = None
    method: str = "unavailable"
    resolution_ms: float | None = None
    samples: int = 0
    scope: str = ""
    rss_budget_mb: float | None = None
    gpu_budget_mb: float | None = None
    rss_added_budget_mb: float | None = None
    gpu_added_budget_mb: float | None = None
    outcome: str | None = None
    reason: str | None = None

    @property
    def rss_added_mb(self) -> float | None:
        """What the measurement added to the resident memory: its peak over the start."""
        if self.rss_peak_mb is None or self.rss_start_mb is None:
            return None
        return max(0.0, self.rss_peak_mb - self.rss_start_mb)

    @property
    def gpu_added_mb(self) -> float | None:
        """What the measurement added to the device allocator's holding."""
        if self.gpu_peak_mb is None or self.gpu_start_mb is None:
            return None
        return max(0.0, self.gpu_peak_mb - self.gpu_start_mb)

    def json_omitted(self) -> frozenset[str]:
        """The verdict's keys are in the JSON only when the test has a `memory` marker
        (a budget given), as docs/json-schema.md says."""
        budgets = (
            self.rss_budget_mb,
            self.gpu_budget_mb,
            self.rss_added_budget_mb,
            self.gpu_added_budget_mb,
        )
        if all(b is None for b in budgets):
            return frozenset(
                {
                    "rss_budget_mb",
                    "gpu_budget_mb",
                    "rss_added_budget_mb",
                    "gpu_added_budget_mb",
                    "outcome",
                    "reason",
                }
            )
        # Reports written before the added budgets existed did not carry them.
        return frozenset(
            name
            for name in ("rss_added_budget_mb", "gpu_added_budget_mb")
            if getattr(self, name) is None
        )


@dataclass(frozen=True)
class ComparisonRecord:
    """A measurement against the saved runs of its key (docs/json-schema.md
    `comparison`): what the regression gate decided, and the one line saying why."""

    # "regression", "improvement", "unchanged", "not significant", "no baseline",
    # "not compared"
    outcome: str
    statistic: str
    current_ms: float
    reason: str
    baseline_ms: float | None = None
    change_pct: float | None = None
    ci_low_pct: float | None = None
    ci_high_pct: float | None = None
    ci_confidence_pct: float | None = None
    p_value: float | None = None
    sigma_pct: float | None = None
    sigma_source: str = ""
    baseline_runs: int = 0
    threshold_pct: float = 10.0
    alpha: float = 0.01
    key: str | None = None
    drift_factor: float | None = None
    rounds: int = 1
    # The software changes between the newest saved run and this one ("torch 2.13 ->
    # 2.14"): the comparison was made across them.
    versions_changed: tuple[str, ...] = ()
    # Same-run A/B (--hwperf-against, judge/paired.py): mode "ab", the REF measured in
    # the same run ("HEAD~1 (abc1234)"), the tail percentile's paired comparison, and
    # each side's rounds (head_rounds[i] was measured right beside base_rounds[i]).
    # In A/B mode `baseline_ms` is the REF's figure and `baseline_runs` the pairs.
    mode: str = "baseline"  # "baseline" (against saved runs) or "ab"
    ref: str | None = None
    tail: ComparisonRecord | None = None
    head_rounds: tuple[RoundRecord, ...] = ()
    base_rounds: tuple[RoundRecord, ...] = ()

    def json_omitted(self) -> frozenset[str]:
        """The A/B keys are in the JSON only for an A/B comparison; the tail's only when
        it was compared."""
        omitted = {"tail"} if self.tail is None else set()
        if self.mode != "ab":
            omitted |= {"mode", "ref", "head_rounds", "base_rounds"}
        return frozenset(omitted)


@dataclass(frozen=True)
class FingerprintRecord:
    """The fingerprint of the process that measured."""

    digest: str
    label: str = ""
    hashed: Facts = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerConfigRecord:
    """A serving config: worker processes and threads per worker."""

    workers: int
    threads: int
    total: int | None = None


@dataclass(frozen=True)
class ModelRecord:
    """What `hwperf_model` prepared."""

    name: str | None = None
    device: str | None = None
    dtype: str | None = None
    parameters: int | None = None
    parameter_bytes: int | None = None


@dataclass(frozen=True)
class TopFunction:
    function: str
    own_ms: float
    share: float


@dataclass(frozen=True)
class ProfileRecord:
    """A failing measurement's profile (docs/json-schema.md `profile`)."""

    tool: str
    path: str | None = None
    top: tuple[TopFunction, ...] = ()
    error: str | None = None
    calls: int = 0


@dataclass(frozen=True)
class GpuUtilizationRecord:
    mean_pct: float
    max_pct: float
    samples: int
    method: str
    idle_below_pct: float = 30.0


@dataclass(frozen=True)
class MeasurementRecord:
    """One measurement of one test, judged: the unit every report shows.

    `outcome` is the measurement's budgets' verdict ("fail" when any budget, the memory
    budget included, failed; None without budgets); `breach` is whether it fails its
    test, whatever the reason (a budget, a regression, an oversubscribed config).
    `verdict` joins them into the one word every report shows.
    """

    test_id: str
    name: str
    device: str
    mode: str  # "measured" or "functional"
    stats: StatsRecord
    timing: TimingRecord
    outcome: str | None = None
    breach: bool = False
    budgets: tuple[BudgetRecord, ...] = ()
    notes: tuple[str, ...] = ()
    threads: Facts = field(default_factory=dict)
    model: ModelRecord | None = None
    observed_threads: Facts | None = None
    oversubscription: str | None = None
    served_per_s: float | None = None
    reference_ms: float | None = None
    reference_kind: str | None = None
    memory: MemoryRecord | None = None
    gpu_utilization: GpuUtilizationRecord | None = None
    rounds: tuple[RoundRecord, ...] = ()
    samples_ns: tuple[int, ...] = ()
    placement: Facts | None = None
    worker_config: WorkerConfigRecord | None = None
    device_param: str | None = None
    device_group: str | None = None
    comparison: ComparisonRecord | None = None
    fingerprint: FingerprintRecord | None = None
    profile: ProfileRecord | None = None

    def json_omitted(self) -> frozenset[str]:
        """Keys that are absent from the JSON report rather than null when not set."""
        optional = ("comparison", "fingerprint", "profile", "device_param", "device_group")
        return frozenset(name for name in optional if getattr(self, name) is None)

    @property
    def verdict(self) -> str:
        """The test-level verdict every report shows (one of `VERDICTS`): "fail" when
        the measurement fails its test, whatever the reason (a budget, a regression, an
        oversubscribed config, memory); else its budgets' verdict, "inconclusive" or
        "pass", or "no budget" when it has none."""
        if self.breach or self.outcome == "fail":
            return "fail"
        if self.outcome in ("pass", "inconclusive"):
            return self.outcome
        return "no budget"

    @property
    def measured(self) -> bool:
        """Measured under --hwperf, with samples (not a functional run)."""
        return self.mode == "measured" and bool(self.samples_ns)

    @property
    def key(self) -> str:
        """The key of its saved runs: `test_id::name@device`."""
        return f"{self.test_id}::{self.name}@{self.device}"

    @property
    def quiet_rounds(self) -> tuple[RoundRecord, ...]:
        """The rounds the gates judge: those the machine did not disturb
        (measure/contention.py), or all of them when it disturbed every one (`busy`)."""
        quiet = tuple(r for r in self.rounds if not r.disturbed)
        return quiet or self.rounds

    @property
    def busy(self) -> bool:
        """Measured in rounds, and the machine disturbed every one of them."""
        return bool(self.rounds) and all(r.disturbed for r in self.rounds)

    @property
    def round_mins(self) -> tuple[float, ...]:
        """The fastest call of every round, the disturbed ones too: time the machine takes
        only slows a call, so a disturbed round's fastest call is as much a fastest call
        as a quiet round's (docs/statistics.md, "A busy machine")."""
        return tuple(r.min_ms for r in self.rounds if r.min_ms)

    @property
    def gate_ms(self) -> float | None:
        """The figure the regression gate compares: the fastest call over every round it
        was measured in, in ms; None when there is nothing to compare."""
        values = self.round_mins
        if values:
            return min(values)
        if self.stats.min_ms is not None and self.stats.n:
            return self.stats.min_ms
        return min(self.samples_ns) / 1e6 if self.samples_ns else None

    @property
    def items_per_s(self) -> float | None:
        """Throughput in items per second: a throughput budget's measured rate (items),
        else a worker pool's requests per second, else calls per second."""
        for budget in self.budgets:
            if budget.kind == "throughput" and budget.measured_per_s is not None:
                return budget.measured_per_s
        if self.served_per_s is not None:
            return self.served_per_s
        return self.stats.throughput_per_s

    @property
    def batch_size(self) -> int:
        for budget in self.budgets:
            if budget.kind == "throughput" and budget.batch_size:
                return budget.batch_size
        return 1
