"""Budgets confirmed in rounds: a budget judged in several rounds gets the verdict of its
best round.

A budget the first round of a measurement breaches is measured again in
`--hwperf-confirm` more rounds (measure/rounds.py), each judged on its own samples as
compliance.py judges any round. Interference from the rest of the machine (a co-tenant,
a stall of the host) only ever adds time, and comes and goes within seconds; a target
that is really over its budget is over it in every round. So the budget is judged on
its best round: the best verdict (pass, then inconclusive, then fail), and among the
rounds with that verdict the lowest latency at the budget's percentile, or the highest
throughput. It fails only when every round breaches it. docs/statistics.md says why
this is sound. Nothing here knows about pytest or the sampling loop.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from pytest_hwperf.judge import stats
from pytest_hwperf.judge.budgets import Budget, LatencyBudget, Outcome
from pytest_hwperf.judge.compliance import BudgetVerdict

__all__ = ["best_of_rounds", "figure_of"]

# The order of the verdicts, best first. An undecided verdict (not settled yet) ranks
# with an inconclusive one.
_RANK = {Outcome.PASS: 0, Outcome.INCONCLUSIVE: 1, Outcome.UNDECIDED: 1, Outcome.FAIL: 2}


def figure_of(budget: Budget, samples_ns: np.ndarray) -> float | None:
    """The figure `budget` is judged on, from one round's samples (ns) without judging
    it: the latency at its percentile in ms, or its items per second (None: no samples;
    infinite for a target faster than the clock)."""
    if samples_ns.size == 0:
        return None
    if isinstance(budget, LatencyBudget):
        ordered = np.sort(samples_ns.astype(np.float64))
        return stats.percentile(ordered, budget.percentile) / 1e6
    mean_s = float(np.mean(samples_ns.astype(np.float64))) / 1e9
    return budget.batch_size / mean_s if mean_s > 0 else math.inf


def _key(item: tuple[int, BudgetVerdict]) -> tuple[int, float, int]:
    """Better rounds sort first: the better verdict, then the better figure, then the
    earlier round."""
    index, verdict = item
    figure = verdict.measured  # throughput may be infinite: faster than the clock
    if not isinstance(verdict.budget, LatencyBudget):
        figure = -figure  # throughput: higher is better
    return _RANK[verdict.outcome], figure, index


def best_of_rounds(judged: Sequence[tuple[int, BudgetVerdict]]) -> BudgetVerdict:
    """One budget's verdict over the rounds it was judged in: `judged` holds (round
    number from 1, that round's verdict), the first round first. The verdict is the best
    round's, with `rounds`, `best_round`, `breached_rounds` and the first round's
    verdict filled in; the first round's verdict as it is when there is only one."""
    if not judged:
        raise ValueError("no rounds to judge a budget on")
    for _, verdict in judged[1:]:
        if verdict.budget != judged[0][1].budget:
            raise ValueError("rounds of different budgets")
    if len(judged) == 1:
        return judged[0][1]
    best_round, best = min(judged, key=_key)
    first = judged[0][1]
    return dataclasses.replace(
        best,
        rounds=len(judged),
        best_round=best_round,
        breached_rounds=sum(v.outcome is Outcome.FAIL for _, v in judged),
        first_outcome=first.outcome,
        first_measured=first.measured,
    )
