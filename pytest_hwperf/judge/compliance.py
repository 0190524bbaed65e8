"""Budget verdicts: does a measurement meet its latency or throughput budget?

A latency budget "p95 within 50 ms" is a claim about the fraction of calls over
50 ms: it holds when that fraction is at most 5%. With n calls of which e were over
budget, the exact binomial test decides (MLPerf LoadGen's early-stopping idea):

- compliance is shown when P(X <= e | n, 1 - p) <= alpha,
- violation is shown when P(X >= e | n, 1 - p) <= alpha,
- otherwise the data cannot tell yet: keep sampling, and at the time limit the
  verdict is "inconclusive" (:func:`settle`).

A throughput budget is a claim about the mean time per call (items per second =
batch size / mean seconds per call); it is judged with one-sided Student-t bounds on
the mean at the same alpha. Nothing here knows about pytest.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from pytest_hwperf.judge import stats
from pytest_hwperf.judge.budgets import (
    Budget,
    LatencyBudget,
    Outcome,
    ThroughputBudget,
    fmt_ms,
    fmt_rate,
)

__all__ = [
    "Budget",
    "BudgetVerdict",
    "LatencyBudget",
    "Outcome",
    "ThroughputBudget",
    "judge",
    "settle",
]


@dataclass(frozen=True)
class BudgetVerdict:
    """The verdict on one budget, with the figures behind it.

    For latency, `measured` is the sample percentile in ms and `lower`/`upper` its
    order-statistic confidence bounds; for throughput they are items per second.
    For latency, `p_value` is the exact binomial p-value of the test that decided
    (compliance for a pass, violation for a fail), or the smaller of the two when
    undecided; throughput verdicts rest on the bounds alone and carry None.
    """

    budget: Budget
    outcome: Outcome
    n: int
    measured: float
    lower: float | None
    upper: float | None
    alpha: float
    p_value: float | None
    exceedances: int | None = None
    # Judged in several rounds (--hwperf-confirm, judge/rounds.py): this is the verdict
    # of round `best_round` of `rounds`; `breached_rounds` of them breached the budget,
    # and the first round's verdict was `first_outcome` at `first_measured`.
    rounds: int = 1
    best_round: int | None = None
    breached_rounds: int | None = None
    first_outcome: Outcome | None = None
    first_measured: float | None = None
    # Of those rounds, how many were not judged: disturbed (measure/contention.py), the
    # test's threads kept waiting for a CPU, and the budget breached there.
    busy_rounds: int = 0

    def with_outcome(self, outcome: Outcome) -> BudgetVerdict:
        return dataclasses.replace(self, outcome=outcome)

    @property
    def cleared(self) -> bool:
        """The first round breached the budget and a later round showed it met."""
        return self.first_outcome is Outcome.FAIL and self.outcome is Outcome.PASS

    @property
    def confidence_pct(self) -> str:
        return f"{100.0 * (1.0 - self.alpha):.3g}"

    def reason(self) -> str:
        """One line: statistic, measured value with its bound, budget, n."""
        b = self.budget
        if isinstance(b, LatencyBudget):
            value = f"{b.statistic} {fmt_ms(self.measured)}"
            if self.outcome is Outcome.FAIL and self.lower is not None:
                value += f" (>= {fmt_ms(self.lower)} at {self.confidence_pct}% confidence)"
            elif self.upper is not None:
                value += f" (<= {fmt_ms(self.upper)} at {self.confidence_pct}% confidence)"
            budget = f"budget {fmt_ms(b.ms)}"
            counts = f"{self.exceedances}/{self.n} calls over budget"
        else:
            value = f"throughput {fmt_rate(self.measured)}/s"
            bound = self.upper if self.outcome is Outcome.FAIL else self.lower
            if bound is not None and math.isfinite(bound) and bound > 0:
                word = "<=" if self.outcome is Outcome.FAIL else ">="
                value += f" ({word} {fmt_rate(bound)}/s at {self.confidence_pct}% confidence)"
            budget = f"budget {fmt_rate(b.min_per_s)}/s"
            counts = f"n={self.n}"
        relation = {
            Outcome.PASS: "within",
            Outcome.FAIL: "breaches",
        }.get(self.outcome, "undecided against")
        if self.rounds > 1:
            return f"{value} {relation} {budget} {self._rounds_text(counts)}"
        return f"{value} {relation} {budget} ({counts})"

    def _rounds_text(self, counts: str) -> str:
        """Where a verdict of several rounds came from: `in all 6 rounds (best round 4:
        40/90 calls over budget)`, or `in round 2 of 2 (0/90 calls over budget); breached
        in 1 of 2 rounds (round 1: p95 25.0 ms)`."""
        busy = self.busy_rounds
        if self.outcome is Outcome.INCONCLUSIVE and busy == self.rounds:
            return (
                f"(breached in all {self.rounds} rounds, but the machine was busy in every"
                f" one: best round {self.best_round}: {counts})"
            )
        if self.outcome is Outcome.FAIL and busy == self.rounds:
            return (
                f"in all {self.rounds} rounds, the machine busy in every one, but no call of"
                f" any round met it (best round {self.best_round}: {counts})"
            )
        if self.outcome is Outcome.FAIL:  # the best round breached: so did every round
            quiet = f", {busy} of them busy" if busy else ""
            return f"in all {self.rounds} rounds{quiet} (best round {self.best_round}: {counts})"
        first = self._figure(self.first_measured)
        if self.first_outcome is not Outcome.FAIL and self.first_outcome is not None:
            first += f", {self.first_outcome.value}"
        return (
            f"in round {self.best_round} of {self.rounds} ({counts}); breached in"
            f" {self.breached_rounds} of {self.rounds} rounds (round 1: {first})"
        )

    def _figure(self, measured: float | None) -> str:
        if measured is None:
            return "-"
        b = self.budget
        if isinstance(b, LatencyBudget):
            return f"{b.statistic} {fmt_ms(measured)}"
        return f"throughput {fmt_rate(measured)}/s"

    def to_record(self) -> dict[str, object]:
        b = self.budget
        record: dict[str, object] = {"kind": b.kind, "outcome": self.outcome.value}
        if isinstance(b, LatencyBudget):
            record.update(
                percentile=b.percentile,
                budget_ms=b.ms,
                measured_ms=self.measured,
                lower_ms=self.lower,
                upper_ms=self.upper,
                exceedances=self.exceedances,
            )
        else:
            record.update(
                min_per_s=b.min_per_s,
                batch_size=b.batch_size,
                measured_per_s=_finite_or_none(self.measured),
                lower_per_s=_finite_or_none(self.lower),
                upper_per_s=_finite_or_none(self.upper),
            )
        record.update(n=self.n, alpha=self.alpha, p_value=self.p_value, reason=self.reason())
        record.update(
            rounds=self.rounds,
            best_round=self.best_round,
            breached_rounds=self.breached_rounds,
            first_outcome=None if self.first_outcome is None else self.first_outcome.value,
            cleared=self.cleared,
            busy_rounds=self.busy_rounds,
        )
        return record


def judge(budget: Budget, samples_ns: np.ndarray, alpha: float) -> BudgetVerdict:
    """Judge one budget on per-call samples (ns) at level alpha."""
    if samples_ns.size == 0:
        raise ValueError("cannot judge a budget on no samples")
    if isinstance(budget, LatencyBudget):
        return _judge_latency(budget, samples_ns, alpha)
    return _judge_throughput(budget, samples_ns, alpha)


def settle(verdicts: Iterable[BudgetVerdict]) -> list[BudgetVerdict]:
    """The final verdicts, once no more samples will come.

    A verdict the samples could not decide (UNDECIDED) becomes INCONCLUSIVE; a decided
    one (pass or fail) is kept as it is. The order is kept.
    """
    return [
        v.with_outcome(Outcome.INCONCLUSIVE) if v.outcome is Outcome.UNDECIDED else v
        for v in verdicts
    ]


def _judge_latency(budget: LatencyBudget, samples_ns: np.ndarray, alpha: float) -> BudgetVerdict:
    n = int(samples_ns.size)
    q_over = 1.0 - budget.percentile / 100.0  # largest tolerated fraction over budget
    exceedances = int(np.count_nonzero(samples_ns > budget.ms * 1e6))
    p_comply = stats.binom_cdf(exceedances, n, q_over)
    p_violate = stats.binom_sf(exceedances, n, q_over)
    if p_comply <= alpha:
        outcome, p_value = Outcome.PASS, p_comply
    elif p_violate <= alpha:
        outcome, p_value = Outcome.FAIL, p_violate
    else:
        outcome, p_value = Outcome.UNDECIDED, min(p_comply, p_violate)
    ordered = np.sort(samples_ns)
    q = budget.percentile / 100.0
    hi = stats.quantile_upper_bound_index(n, q, alpha)
    lo = stats.quantile_lower_bound_index(n, q, alpha)
    return BudgetVerdict(
        budget=budget,
        outcome=outcome,
        n=n,
        measured=stats.percentile(ordered, budget.percentile) / 1e6,
        lower=None if lo is None else float(ordered[lo]) / 1e6,
        upper=None if hi is None else float(ordered[hi]) / 1e6,
        alpha=alpha,
        p_value=p_value,
        exceedances=exceedances,
    )


def _judge_throughput(
    budget: ThroughputBudget, samples_ns: np.ndarray, alpha: float
) -> BudgetVerdict:
    n = int(samples_ns.size)
    seconds = samples_ns.astype(np.float64) / 1e9
    mean_s, lower_s, upper_s = stats.mean_bounds(seconds, alpha)

    def rate(sec: float) -> float:
        return budget.batch_size / sec if sec > 0 else math.inf

    measured = rate(mean_s)
    rate_lower = rate(upper_s) if math.isfinite(upper_s) else 0.0
    rate_upper = rate(lower_s) if math.isfinite(lower_s) else math.inf
    deadline_s = budget.batch_size / budget.min_per_s
    if n >= budget.min_samples(alpha) and upper_s <= deadline_s:
        outcome = Outcome.PASS
    elif n >= budget.min_samples(alpha) and lower_s > deadline_s:
        outcome = Outcome.FAIL
    else:
        outcome = Outcome.UNDECIDED
    return BudgetVerdict(
        budget=budget,
        outcome=outcome,
        n=n,
        measured=measured,
        lower=rate_lower,
        upper=rate_upper,
        alpha=alpha,
        p_value=None,
    )


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
