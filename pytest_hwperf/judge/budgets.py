"""Budgets and verdict outcomes: the plain data that markers declare and verdicts judge.

Free of numpy and the statistics, so that the plugin imports it at start-up at no
cost; verdict.py does the judging.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pytest_hwperf.units import fmt_ms, fmt_pct, fmt_rate

__all__ = [
    "Budget",
    "LatencyBudget",
    "Outcome",
    "ThroughputBudget",
    "fmt_ms",
    "fmt_pct",
    "fmt_rate",
]


class Outcome(str, enum.Enum):
    """The verdict on one budget."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    UNDECIDED = "undecided"  # not yet: sampling goes on

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class LatencyBudget:
    """The `percentile`-th percentile of per-call latency must be within `ms`."""

    ms: float
    percentile: float = 95.0

    @property
    def kind(self) -> str:
        return "latency"

    @property
    def statistic(self) -> str:
        return f"p{fmt_pct(self.percentile)}"

    def describe(self) -> str:
        return f"{self.statistic} <= {fmt_ms(self.ms)}"

    def min_samples(self, alpha: float) -> int:
        from pytest_hwperf.judge import stats  # numpy: imported when measuring, not at start-up

        return stats.min_samples_for_compliance(self.percentile, alpha)


@dataclass(frozen=True)
class ThroughputBudget:
    """Items per second (batch_size per call / mean time per call) must reach `min_per_s`."""

    min_per_s: float
    batch_size: int = 1

    @property
    def kind(self) -> str:
        return "throughput"

    @property
    def statistic(self) -> str:
        return "throughput"

    def describe(self) -> str:
        return f"throughput >= {fmt_rate(self.min_per_s)}/s"

    def min_samples(self, alpha: float) -> int:
        # A Student-t bound needs a handful of calls before it means anything.
        return 10


Budget = LatencyBudget | ThroughputBudget
