"""Budgets and verdict outcomes: the plain data that markers declare and verdicts judge.

Free of numpy and the statistics, so that the plugin imports it at start-up at no
cost; verdict.py does the judging.
"""

from __future__ import annotations

import enum
import math
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
    "parse_threshold",
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


def parse_threshold(raw: str | float) -> float:
    """A tolerated slowdown in percent: 10, 10.0, "10" and "10%" all mean 10%.

    The one percent parser: `--hwperf-regression`, `latency(regression=...)` and
    `hwperf compare --regression` all use it. A bad value is a one-line ValueError.
    """
    value = raw.strip().removesuffix("%").strip() if isinstance(raw, str) else raw
    try:  # True is an int to Python, not a percentage to a user
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError, OverflowError):  # 10**400 overflows a float
        number = math.nan
    if not (number > 0.0 and math.isfinite(number)):
        try:
            shown = repr(raw)
        except ValueError:  # an int beyond Python's digit limit for str()
            shown = "an integer too large to show"
        if len(shown) > 40:
            shown = f"{shown[:20]}... ({len(shown)} characters)"
        raise ValueError(
            f'the regression threshold must be a positive percentage such as 10 or "10%",'
            f" got {shown}"
        )
    return number
