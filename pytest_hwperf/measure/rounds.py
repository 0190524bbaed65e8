"""Confirmation rounds (`--hwperf-confirm`): a measurement measured again before its
verdict, for the regression gate and for the budgets alike.

One set of extra rounds serves every reason to measure again:

- a run being saved, and a run whose first round looks like a regression, are measured
  in every round, and the regression gate judges the fastest call of all of them;
- a budget the first round breaches is judged again in each extra round, and then on
  its best round (judge/rounds.py): it fails only when every round breaches it. When
  nothing else asks for every round, the rounds end as soon as each budget judged again
  has passed in one of them (a pass cannot be undone by later rounds).

Rounds that confirm a suspicion (a breached budget, a suspected regression) are spread
over a few seconds (`pause`, with `ROUND_PAUSES_S` before each): a co-tenant's
interference comes in bursts of seconds, and rounds measured back to back share one, so
that a burst would fail a budget "in every round". A run being saved is measured back to
back: nothing is suspected there, and a suite's save would cost seconds per measurement.

The first round stays the measurement's samples of record (its statistics, the table);
every round, the first included, is recorded in `rounds` with its percentiles and each
budget's figure. Pure: the caller gives the function that measures one more round.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from pytest_hwperf.judge.budgets import Budget, LatencyBudget, Outcome
from pytest_hwperf.judge.compliance import BudgetVerdict
from pytest_hwperf.judge.rounds import best_of_rounds
from pytest_hwperf.measure.device import DeviceSync
from pytest_hwperf.measure.result import Measurement
from pytest_hwperf.measure.sampler import (
    STOPPED_AT_FAILURE,
    HangOption,
    SamplingPolicy,
    measure,
)

__all__ = ["ROUND_PAUSES_S", "MeasureRound", "confirm", "measuring"]

ROUND_PAUSES_S = (0.1, 0.2, 0.4, 0.8, 1.6)
"""The pause before each round after the first when a suspicion is confirmed, in
seconds (the last one repeats): 3.1 s over the default 5 rounds, so the rounds span
several of the bursts a busy co-tenant makes, at a cost paid only where a test looked
like failing."""

# Measure the target once more, judging these budgets (none: the fastest call only).
MeasureRound = Callable[[tuple[Budget, ...]], Measurement]


def measuring(
    target: Callable[[], object],
    name: str,
    policy: SamplingPolicy,
    sync: DeviceSync,
    clock: Callable[[], int],
    hang: HangOption,
    gauge: Callable[[], float] | None = None,
) -> MeasureRound:
    """The rounds after the first of `target`, measured as the first was (`hang`: the
    sampler's `on_hang`, when the caller has one); `gauge`: the reference workload's
    time (ns), taken right after each round (--hwperf-reference)."""

    def again(budgets: tuple[Budget, ...]) -> Measurement:
        measured = measure(
            target, name=name, budgets=budgets, policy=policy, sync=sync, clock=clock, **hang
        )[1]
        if gauge is not None:
            measured.reference_ns = gauge()
        return measured

    return again


def confirm(
    first: Measurement,
    measure_round: MeasureRound,
    *,
    rounds: int,
    every_round: bool,
    pause: Callable[[float], object] | None = None,
    longest_pause_s: float = ROUND_PAUSES_S[-1],
    spread: bool = True,
    wait: Callable[[float], object] | None = None,
) -> int:
    """Measure `first`'s target again in `rounds` more quiet rounds, where needed.

    `every_round`: the run is saved, or its first round looks like a regression: all the
    rounds are measured. Otherwise rounds are measured only when the first round breached
    a budget. When one did, every budget the first round did not pass is judged in each
    extra round and gets the verdict of its best quiet round (or of any round it
    passed in); `first.verdicts` are replaced by those.

    A disturbed round (measure/contention.py: the test's threads waited for a CPU) does
    not count: another is measured in its place, up to `rounds` of them, so that at most
    `2 * rounds` more rounds are measured; while every round so far was disturbed, up to
    `rounds` more again (`3 * rounds`), waiting for a quiet moment to judge by. `pause`
    (e.g. `time.sleep`; None: back to back) is called with `ROUND_PAUSES_S` (none longer
    than `longest_pause_s`) before each extra round when `spread`, and before a round
    that follows a disturbed one whatever `spread` says; before the latter, `wait`
    instead when given (measure/quiet.py `until_quiet`: as long, or until the machine is
    quiet again, as a round inside the burst would be wasted and cost the most). Returns
    how many rounds were measured in all (1: none more).
    """
    if rounds < 1:
        return 1
    breached = [v.budget for v in first.verdicts if v.outcome is Outcome.FAIL]
    if not every_round and not breached:
        return 1
    again = tuple(v.budget for v in first.verdicts if v.outcome is not Outcome.PASS)
    if not breached:
        again = ()  # the budgets stand on the first round: nothing to confirm
    judged: dict[Budget, list[tuple[int, BudgetVerdict, bool]]] = {
        v.budget: [(1, v, first.disturbed)] for v in first.verdicts if v.budget in again
    }
    budgets = [v.budget for v in first.verdicts]
    first.rounds.append(first.round_record(budgets))
    quiet = 0 if first.disturbed else 1
    extra = 0
    while quiet < rounds + 1 and (extra < 2 * rounds or (quiet == 0 and extra < 3 * rounds)):
        extra += 1
        busy = first.rounds[-1].disturbed
        if pause is not None and longest_pause_s > 0 and (spread or busy):
            step = min(ROUND_PAUSES_S[min(extra - 1, len(ROUND_PAUSES_S) - 1)], longest_pause_s)
            (wait if busy and wait is not None else pause)(step)
        measured = measure_round(again)
        record = measured.round_record(budgets)
        first.rounds.append(record)
        quiet += not record.disturbed
        for verdict in measured.verdicts:
            if verdict.budget in judged:
                judged[verdict.budget].append((extra + 1, verdict, record.disturbed))
        if not every_round and all(
            any(v.outcome is Outcome.PASS for _, v, _ in found) for found in judged.values()
        ):
            break
    if judged:
        _judge_on_rounds(first, judged, breached)
    _fastest_reference(first)
    return len(first.rounds)


def _fastest_reference(first: Measurement) -> None:
    """The reference time of a measurement measured in rounds: the fastest over all its
    rounds, as the gate's own figure is taken (records/types.py `gate_ms`)."""
    if first.reference_ns is None:
        return
    found = [r.reference_ms for r in first.rounds if r.reference_ms]
    if found:
        first.reference_ns = min(found) * 1e6


def _verdict_of(
    judged: list[tuple[int, BudgetVerdict, bool]], fastest_ms: float | None = None
) -> BudgetVerdict:
    """One budget's verdict from its rounds: the best of the quiet rounds and of those it
    passed in (a pass stands, however busy the machine was); with none of those, the
    best of all, undecided: only disturbed rounds breached it, unless `no_call_met` it
    (`fastest_ms`: the fastest call of every round)."""
    kept = [(n, v) for n, v, disturbed in judged if not disturbed or v.outcome is Outcome.PASS]
    pool = kept or [(n, v) for n, v, _ in judged]
    verdict = best_of_rounds(pool)
    best_round = verdict.best_round if len(pool) > 1 else pool[0][0]
    if not kept and not no_call_met(verdict.budget, fastest_ms):
        verdict = verdict.with_outcome(Outcome.INCONCLUSIVE)
    if len(judged) == 1:
        return verdict
    first = judged[0][1]
    return dataclasses.replace(
        verdict,
        rounds=len(judged),
        best_round=best_round,
        breached_rounds=sum(v.outcome is Outcome.FAIL for _, v, _ in judged),
        first_outcome=first.outcome,
        first_measured=first.measured,
        busy_rounds=len(judged) - len(kept),
    )


BUSY_BREACH_MARGIN = 1.2
"""How far over a latency budget the fastest call of every round must be for a breach
seen only in disturbed rounds to stand: a busy machine slowed the fastest call over a
run's rounds by up to 8% here (0.917 ms in a run busy in all 16 rounds, 0.846 ms quiet),
so 20% over the budget is more than a busy machine explains."""


def no_call_met(budget: Budget, fastest_ms: float | None) -> bool:
    """Whether no call of any round met a latency budget, beyond what a busy machine
    explains: the fastest call over every round is over the budget by
    `BUSY_BREACH_MARGIN`. Then the budget's percentile, whichever it is, is over it too,
    however busy the rounds were."""
    return (
        isinstance(budget, LatencyBudget)
        and fastest_ms is not None
        and fastest_ms > BUSY_BREACH_MARGIN * budget.ms
    )


def _judge_on_rounds(
    first: Measurement,
    judged: dict[Budget, list[tuple[int, BudgetVerdict, bool]]],
    breached: list[Budget],
) -> None:
    fastest = min((r.min_ms for r in first.rounds if r.min_ms), default=None)
    first.verdicts = [
        _verdict_of(judged[v.budget], fastest) if v.budget in judged else v for v in first.verdicts
    ]
    if all(v.outcome is not Outcome.INCONCLUSIVE for v in first.verdicts):
        # The first round stopped at its failure; the rounds after it decided the rest.
        first.notes[:] = [note for note in first.notes if note != STOPPED_AT_FAILURE]
    measured = len(first.rounds)
    names = ", ".join(b.describe() for b in breached)
    first.notes.append(
        f"the first round breached {names}: measured in {measured - 1} more"
        f" round{'s' if measured > 2 else ''} (--hwperf-confirm), each budget judged on its"
        " best round"
    )
