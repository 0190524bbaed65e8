"""The result of one measurement: raw samples, statistics, verdicts and how it was taken."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from pytest_hwperf.judge import stats
from pytest_hwperf.judge.budgets import Budget, LatencyBudget
from pytest_hwperf.judge.compliance import BudgetVerdict, Outcome, settle
from pytest_hwperf.judge.rounds import figure_of
from pytest_hwperf.records.codec import as_facts, to_json
from pytest_hwperf.records.types import (
    ComparisonRecord,
    GpuUtilizationRecord,
    JSONValue,
    MeasurementRecord,
    MemoryRecord,
    ModelRecord,
    RoundBudgetRecord,
    RoundRecord,
)

__all__ = ["Measurement", "Statistics", "overall_outcome"]


@dataclass(frozen=True)
class Statistics:
    """Summary of per-call latency in milliseconds.

    When the target was timed in blocks (`block_size` > 1), a sample is a block mean:
    percentiles of block means are not per-call percentiles, so p50/p95/p99 are None and
    only mean-based figures are given.
    """

    n: int
    n_calls: int
    mean_ms: float
    stdev_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    throughput_per_s: float  # calls per second over the measured calls

    @classmethod
    def from_samples(cls, samples_ns: np.ndarray, block_size: int) -> Statistics:
        if samples_ns.size == 0:
            raise ValueError("no samples")
        ms = np.sort(samples_ns.astype(np.float64)) / 1e6
        per_call = block_size == 1
        mean = float(ms.mean())
        return cls(
            n=int(ms.size),
            n_calls=int(ms.size) * block_size,
            mean_ms=mean,
            stdev_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
            min_ms=float(ms[0]),
            max_ms=float(ms[-1]),
            p50_ms=stats.percentile(ms, 50) if per_call else None,
            p95_ms=stats.percentile(ms, 95) if per_call else None,
            p99_ms=stats.percentile(ms, 99) if per_call else None,
            throughput_per_s=1000.0 / mean if mean > 0 else float("inf"),
        )

    def to_record(self) -> dict[str, object]:
        return {
            "n": self.n,
            "n_calls": self.n_calls,
            "mean_ms": self.mean_ms,
            "stdev_ms": self.stdev_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            # A target faster than the clock's resolution has no finite rate.
            "throughput_per_s": (
                self.throughput_per_s if math.isfinite(self.throughput_per_s) else None
            ),
        }


def overall_outcome(verdicts: list[BudgetVerdict]) -> Outcome | None:
    """FAIL if any budget failed, else INCONCLUSIVE if any was, else PASS; None without budgets."""
    if not verdicts:
        return None
    outcomes = {v.outcome for v in verdicts}
    if Outcome.FAIL in outcomes:
        return Outcome.FAIL
    if outcomes & {Outcome.INCONCLUSIVE, Outcome.UNDECIDED}:
        return Outcome.INCONCLUSIVE
    return Outcome.PASS


@dataclass
class Measurement:
    """One named measurement of a test.

    `samples_ns` holds one entry per call (or per block of `block_size` calls, as the
    block mean). `mode` is "measured" under --hwperf and "functional" without it (the
    target ran once; the single timing includes any first-call initialisation).
    """

    name: str
    device: str
    mode: str
    timing_method: str
    sync_method: str
    block_size: int
    samples_ns: np.ndarray
    warmup_calls: int
    warmup_ns: int
    per_call_estimate_ns: float
    gc_policy: str
    stop_reason: str
    alpha: float
    looks: int
    sampling_ns: int = 0  # wall time of the sampling phase (warm-up excluded)
    verdicts: list[BudgetVerdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    threads: dict[str, object] = field(default_factory=dict)
    model: ModelRecord | None = None  # hwperf_model's facts, when it was the target
    observed_threads: dict[str, object] | None = None  # busy/idle threads during sampling
    oversubscription: str | None = None  # the observed gate's line, when it tripped
    served_per_s: float | None = None  # a worker pool's requests per second, all workers
    reference_ns: float | None = None  # the reference workload's time around this measurement
    reference_kind: str | None = None  # which reference: "torch-mm/2", "numpy-dot/1"
    memory: MemoryRecord | None = None  # peak RSS and device memory (measure/memory.py)
    # How busy the GPU was while a CUDA measurement ran (measure/gpu_util.py); None off
    # CUDA or when NVML could not say (a note says why).
    gpu_utilization: GpuUtilizationRecord | None = None
    # Each round of a suspected regression, a breached budget or a saved run measured
    # again (--hwperf-confirm), the first being this measurement. Empty when none was.
    rounds: list[RoundRecord] = field(default_factory=list)
    # Same-run A/B (--hwperf-against): the paired comparison with the REF, made while
    # measuring (judge/paired.py); the session's judging keeps it as the comparison.
    comparison: ComparisonRecord | None = None
    # How long this process's threads waited for a CPU while sampling, per second of it
    # (measure/contention.py); None where the kernel does not say.
    cpu_wait: float | None = None
    # Whether that wait reached --hwperf-busy-wait: the machine disturbed the measurement.
    disturbed: bool = False

    # --- building one --------------------------------------------------------------

    @classmethod
    def from_samples(
        cls,
        *,
        name: str,
        device: str,
        samples_ns: np.ndarray,
        timing_method: str,
        gc_policy: str,
        stop_reason: str,
        alpha: float,
        mode: str = "measured",
        sync_method: str = "none",
        block_size: int = 1,
        warmup_calls: int = 0,
        warmup_ns: int = 0,
        per_call_estimate_ns: float | None = None,
        looks: int = 1,
        sampling_ns: int = 0,
        verdicts: list[BudgetVerdict] | None = None,
        notes: list[str] | None = None,
        threads: dict[str, object] | None = None,
    ) -> Measurement:
        """A measurement from its samples (int64 ns) and how they were taken.

        What most measurements share is the default: measured, no device
        synchronisation, one call per sample, no warm-up recorded, one look, no budgets.
        ``per_call_estimate_ns`` defaults to the samples' mean. The other fields keep
        their defaults and are set on the measurement afterwards.
        """
        samples = np.asarray(samples_ns, dtype=np.int64)
        return cls(
            name=name,
            device=device,
            mode=mode,
            timing_method=timing_method,
            sync_method=sync_method,
            block_size=block_size,
            samples_ns=samples,
            warmup_calls=warmup_calls,
            warmup_ns=warmup_ns,
            per_call_estimate_ns=(
                float(samples.mean()) if per_call_estimate_ns is None else per_call_estimate_ns
            ),
            gc_policy=gc_policy,
            stop_reason=stop_reason,
            alpha=alpha,
            looks=looks,
            sampling_ns=sampling_ns,
            verdicts=list(verdicts or ()),
            notes=list(notes or ()),
            threads=dict(threads or {}),
        )

    @cached_property
    def stats(self) -> Statistics:
        return Statistics.from_samples(self.samples_ns, self.block_size)

    @property
    def outcome(self) -> Outcome | None:
        return overall_outcome(self.verdicts)

    # Convenience accessors, readable in a test after the measurement.
    @property
    def n(self) -> int:
        return int(self.samples_ns.size)

    @property
    def mean_ms(self) -> float:
        return self.stats.mean_ms

    @property
    def p50_ms(self) -> float | None:
        return self.stats.p50_ms

    @property
    def p95_ms(self) -> float | None:
        return self.stats.p95_ms

    @property
    def p99_ms(self) -> float | None:
        return self.stats.p99_ms

    @property
    def throughput_per_s(self) -> float:
        return self.stats.throughput_per_s

    @property
    def samples_ms(self) -> list[float]:
        return [float(x) / 1e6 for x in self.samples_ns]

    def to_record(self) -> dict[str, JSONValue]:
        """This measurement as the JSON report writes it (before the session adds the
        test's context and verdicts)."""
        outcome = self.outcome
        return {
            "name": self.name,
            "device": self.device,
            "mode": self.mode,
            "outcome": outcome.value if outcome is not None else None,
            "stats": as_facts(self.stats.to_record()),
            "budgets": [as_facts(v.to_record()) for v in self.verdicts],
            "timing": {
                "clock": self.timing_method,
                "sync": self.sync_method,
                "block_size": self.block_size,
                "warmup_calls": self.warmup_calls,
                "warmup_ms": self.warmup_ns / 1e6,
                "per_call_estimate_ms": self.per_call_estimate_ns / 1e6,
                "gc": self.gc_policy,
                "stop_reason": self.stop_reason,
                "alpha": self.alpha,
                "looks": self.looks,
                "sampling_ms": self.sampling_ns / 1e6,
            },
            "notes": list(self.notes),
            "threads": as_facts(self.threads),
            "model": to_json(self.model),
            "observed_threads": (
                None if self.observed_threads is None else as_facts(self.observed_threads)
            ),
            "oversubscription": self.oversubscription,
            "served_per_s": self.served_per_s,
            "reference_ms": None if self.reference_ns is None else self.reference_ns / 1e6,
            "reference_kind": self.reference_kind,
            "memory": to_json(self.memory),
            "gpu_utilization": to_json(self.gpu_utilization),
            "rounds": to_json(self.rounds),
            "samples_ns": [int(x) for x in self.samples_ns],
            **({} if self.comparison is None else {"comparison": to_json(self.comparison)}),
        }

    def round_record(self, budgets: Sequence[Budget] = ()) -> RoundRecord:
        """This measurement as one round of a confirmation (`rounds`), with each of the
        test's `budgets`' figure in it and this round's verdict on those it judged."""
        stats = self.stats
        figures: list[RoundBudgetRecord] = []
        for budget in dict.fromkeys(budgets):
            verdict = next((v for v in self.verdicts if v.budget == budget), None)
            figure = figure_of(budget, self.samples_ns) if verdict is None else verdict.measured
            if figure is not None and not math.isfinite(figure):
                figure = None  # faster than the clock: no finite rate
            outcome = None if verdict is None else str(settle([verdict])[0].outcome)
            if isinstance(budget, LatencyBudget):
                figures.append(
                    RoundBudgetRecord(
                        "latency", outcome, percentile=budget.percentile, measured_ms=figure
                    )
                )
            else:
                figures.append(RoundBudgetRecord("throughput", outcome, measured_per_s=figure))
        return RoundRecord(
            n=stats.n,
            min_ms=stats.min_ms,
            p50_ms=stats.p50_ms,
            p95_ms=stats.p95_ms,
            p99_ms=stats.p99_ms,
            budgets=tuple(figures),
            cpu_wait=self.cpu_wait,
            disturbed=self.disturbed,
            reference_ms=None if self.reference_ns is None else self.reference_ns / 1e6,
        )

    def as_record(self, test_id: str) -> MeasurementRecord:
        """This measurement as the typed record the judging layer and reports read (its
        verdicts already in; the regression and memory verdicts are added by judging)."""
        from pytest_hwperf.records.codec import measurement_from_json

        return measurement_from_json({**self.to_record(), "test_id": test_id}, self.name)
