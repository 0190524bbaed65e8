"""The tail against the saved runs: the p95 a serving team watches, in stored-baseline
mode.

The gate's statistic, the fastest call, does not move when every 10th call becomes 4x
slower; the p95 does. So each comparison with saved runs also compares the p95, like
with like: a run measured in several rounds (--hwperf-confirm) by its best round's p95
against the saved runs' best quiet-round p95s, a run of one round by that round's p95
against the saved runs' typical quiet round (the lower median of their quiet rounds'
p95s). A saved run measured in rounds none of which was quiet has no tail to compare:
its p95 is the burst's (saves whose first round fell in a co-tenant's burst read ~120
ms against 3.8 ms quiet, and a 4x tail then read -97%); a run saved before rounds were
recorded is compared by its p95. The interval comes from `regression.compare` on the
tail figures (their rounds give the spread as the fastest calls' do). Tails move more
with a co-tenant than fastest calls do, so a tail regression also needs the current p95
beyond the slowest saved run's by the threshold, a spread of at least 8%, and the best
of the confirmation rounds (a tail that looks slower in the first round is measured
again, as a suspected regression is): a tail within what the saved runs have already
shown, or seen in one round only, is reported with its interval but fails nothing. The
rounds compared are the quiet ones (`MeasurementRecord.quiet_rounds`); the ceiling is
checked against every round, the disturbed ones too, so that a run with one quiet round
among several fails only on a tail that every round showed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_hwperf.judge.budgets import fmt_ms
from pytest_hwperf.judge.regression import NOT_SIGNIFICANT, REGRESSION, compare
from pytest_hwperf.judge.spread import lower_median
from pytest_hwperf.records.types import ComparisonRecord

__all__ = ["TAIL_STATISTIC", "SavedTail", "compare_tail"]

TAIL_STATISTIC = "p95"
TAIL_SIGMA_FLOOR_PCT = 8.0
"""The least run-to-run spread assumed for a p95: a tail is made of the calls the
machine interrupted, so it moves from run to run far more than the fastest call. The
p95 of 20 separate unchanged runs against 3 saves spread by 3.6-4.2% (log standard
deviation) with a co-tenant and by 7.0% on a quiet runner (docs/statistics.md); at the
5% this was, one quiet unchanged run failed on a p95 +14.8%. A 4x tail on every 10th
call reads +220% or more."""


@dataclass(frozen=True)
class SavedTail:
    """A saved run's tail: its first round's p95, each quiet round's (when recorded), and
    how many rounds it measured in all (0: not recorded)."""

    p95_ms: float | None
    round_p95_ms: tuple[float, ...] = ()
    rounds: int = 0


def compare_tail(
    current_p95_ms: Sequence[float],
    saved: Sequence[SavedTail],
    *,
    threshold_pct: float,
    alpha: float,
    fingerprint: str | None = None,
    every_round_p95_ms: Sequence[float] = (),
) -> ComparisonRecord | None:
    """This run's p95 (one per quiet round measured, the first round first) against the
    saved runs'; None when either side has no tail figure (a target timed in blocks).
    ``every_round_p95_ms``: the p95 of every round measured, the disturbed ones included
    (measure/contention.py): the run was confirmed when there were several, even with
    one quiet round among them, and a regression fails only when each of them is beyond
    the slowest saved run's p95 plus the threshold."""
    current_rounds = [v for v in current_p95_ms if v > 0]
    if not current_rounds:
        return None
    every_round = [v for v in every_round_p95_ms if v > 0]
    confirmed = len(current_rounds) > 1 or len(every_round) > 1
    figures: list[float] = []
    rounds: list[tuple[float, ...]] = []
    for run in saved:
        quiet_p95 = tuple(v for v in run.round_p95_ms if v > 0)
        if quiet_p95:
            figures.append(min(quiet_p95) if confirmed else lower_median(quiet_p95))
            rounds.append(quiet_p95 if confirmed else ())
        elif run.rounds > 0:
            continue  # measured in rounds, none of them quiet: the burst's tail
        elif run.p95_ms is not None and run.p95_ms > 0:
            figures.append(run.p95_ms)
            rounds.append(())
    if not figures:
        return None
    current = min(current_rounds) if confirmed else current_rounds[0]
    found = compare(
        current,
        figures,
        threshold_pct=threshold_pct,
        alpha=alpha,
        statistic=TAIL_STATISTIC,
        baseline_rounds=rounds,
        current_rounds=current_rounds if len(current_rounds) > 1 else (),
        sigma_floor_pct=TAIL_SIGMA_FLOOR_PCT,
    )
    outcome, reason = found.outcome, found.reason(fingerprint)
    ceiling = max(figures) * (1.0 + threshold_pct / 100.0)
    if outcome == REGRESSION and min([current, *every_round]) <= ceiling:
        outcome = NOT_SIGNIFICANT
        reason += (
            f"; within the slowest saved run's {TAIL_STATISTIC} plus the threshold"
            f" ({fmt_ms(ceiling)}): not failed"
        )
    elif outcome == REGRESSION and not confirmed:
        # One round's tail is one draw of the machine's interruptions: a tail
        # regression is only failed once it held in the best of the confirmation rounds.
        outcome = NOT_SIGNIFICANT
        reason += "; one round only (--hwperf-confirm=0): not failed"
    measured = max(len(current_rounds), len(every_round))
    if confirmed and measured > len(current_rounds):
        quiet = len(current_rounds)
        reason += f" (the best of {quiet} quiet round{'s' if quiet != 1 else ''} of {measured})"
    elif confirmed:
        reason += f" (the best of {measured} rounds)"
    return found.as_record(reason, outcome=outcome, rounds=measured)
