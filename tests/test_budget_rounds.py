"""Budgets confirmed before they fail (issue 12, item 2): a budget the first round
breaches is measured again in the --hwperf-confirm rounds and judged on its best round.

Everything here runs on synthetic samples or on a virtual clock that only the target's
calls advance: no timing of this machine enters an assertion."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from _output import FAST_RUN, assert_clean, load_json
from _rounds import round_of, samples_of

from pytest_hwperf.judge.budgets import LatencyBudget, Outcome, ThroughputBudget
from pytest_hwperf.judge.compliance import Budget, BudgetVerdict, judge
from pytest_hwperf.judge.rounds import best_of_rounds, figure_of
from pytest_hwperf.measure.result import Measurement
from pytest_hwperf.measure.rounds import confirm
from pytest_hwperf.measure.sampler import STOPPED_AT_FAILURE
from pytest_hwperf.records.codec import from_json, to_json
from pytest_hwperf.records.types import BudgetRecord, MeasurementRecord, RoundRecord

LATENCY = LatencyBudget(ms=10.0, percentile=95.0)
THROUGHPUT = ThroughputBudget(min_per_s=100.0, batch_size=1)
ALPHA = 0.001


def _samples(ms: float, n: int = 300) -> np.ndarray:
    return samples_of(ms, n)


def _measured(samples: np.ndarray, budgets: tuple[Budget, ...]) -> Measurement:
    """A round as the sampler gives it: its samples and its budgets' settled verdicts."""
    return round_of(samples, budgets)


class Rounds:
    """The rounds after the first, each at the next latency in `ms`; records which
    budgets each round was asked to judge."""

    def __init__(self, *ms: float) -> None:
        self._ms: Iterator[float] = iter(ms)
        self.asked: list[tuple[Budget, ...]] = []

    def __call__(self, budgets: tuple[Budget, ...]) -> Measurement:
        self.asked.append(budgets)
        return _measured(_samples(next(self._ms)), budgets)


# --- one budget over several rounds (judge/rounds.py) --------------------------------


def _verdict(ms: float, budget: Budget = LATENCY) -> BudgetVerdict:
    return judge(budget, _samples(ms), ALPHA)


def test_a_breach_in_one_round_and_a_pass_in_another_pass_on_the_best_round():
    first, second = _verdict(25.0), _verdict(4.0)
    assert first.outcome is Outcome.FAIL
    assert second.outcome is Outcome.PASS
    verdict = best_of_rounds([(1, first), (2, second)])
    assert verdict.outcome is Outcome.PASS
    assert (verdict.rounds, verdict.best_round, verdict.breached_rounds) == (2, 2, 1)
    assert verdict.first_outcome is Outcome.FAIL
    assert verdict.cleared
    assert verdict.measured == pytest.approx(second.measured)
    reason = verdict.reason()
    assert "within budget 10.00 ms in round 2 of 2 (" in reason
    assert "; breached in 1 of 2 rounds (round 1: p95 26.00 ms)" in reason
    record = from_json(BudgetRecord, verdict.to_record())
    assert record.cleared
    assert record.rounds == 2
    assert record.best_round == 2
    assert record.first_outcome == "fail"
    assert record.breached_rounds == 1


def test_a_breach_in_every_round_fails_with_the_best_rounds_figures():
    rounds = [(1, _verdict(30.0)), (2, _verdict(20.0)), (3, _verdict(40.0))]
    verdict = best_of_rounds(rounds)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.best_round == 2  # the lowest p95 of the three
    assert verdict.breached_rounds == 3
    assert not verdict.cleared
    assert verdict.measured == pytest.approx(rounds[1][1].measured)
    assert "breaches budget 10.00 ms in all 3 rounds (best round 2: " in verdict.reason()


def test_throughput_is_judged_on_its_highest_round():
    rounds = [(1, _verdict(30.0, THROUGHPUT)), (2, _verdict(5.0, THROUGHPUT))]
    rounds.append((3, _verdict(2.0, THROUGHPUT)))
    verdict = best_of_rounds(rounds)
    assert verdict.outcome is Outcome.PASS
    assert verdict.best_round == 3  # ~500/s beats ~200/s; both pass
    assert verdict.measured == pytest.approx(1000 / 2.04, rel=0.01)
    assert "breached in 1 of 3 rounds (round 1: throughput 32.7/s)" in verdict.reason()


def test_one_round_is_the_verdict_as_it_was():
    only = _verdict(25.0)
    assert best_of_rounds([(1, only)]) is only
    assert only.rounds == 1
    assert only.best_round is None
    assert " in all " not in only.reason()
    assert "round" not in only.reason()
    with pytest.raises(ValueError, match="no rounds"):
        best_of_rounds([])
    with pytest.raises(ValueError, match="different budgets"):
        best_of_rounds([(1, only), (2, _verdict(4.0, THROUGHPUT))])


def test_a_budgets_figure_without_judging_it_is_the_one_the_verdict_reads():
    samples = _samples(4.0)
    assert figure_of(LATENCY, samples) == pytest.approx(judge(LATENCY, samples, ALPHA).measured)
    assert figure_of(THROUGHPUT, samples) == pytest.approx(
        judge(THROUGHPUT, samples, ALPHA).measured
    )
    assert figure_of(LATENCY, np.asarray([], dtype=np.int64)) is None


# --- the confirmation rounds (measure/rounds.py) -------------------------------------


def test_a_first_round_breach_is_measured_again_until_it_passes():
    first = _measured(_samples(25.0), (LATENCY,))
    more = Rounds(30.0, 4.0, 4.0, 4.0, 4.0)
    assert confirm(first, more, rounds=5, every_round=False) == 3
    assert more.asked == [(LATENCY,), (LATENCY,)]  # passed in round 3: no more
    (verdict,) = first.verdicts
    assert verdict.outcome is Outcome.PASS
    assert verdict.cleared
    assert (verdict.rounds, verdict.best_round, verdict.breached_rounds) == (3, 3, 2)
    assert first.outcome is Outcome.PASS
    assert [r.budgets[0].outcome for r in first.rounds] == ["fail", "fail", "pass"]
    assert first.rounds[0].p95_ms == pytest.approx(first.p95_ms)
    assert first.rounds[2].budgets[0].measured_ms == pytest.approx(verdict.measured)
    assert first.stats.n == 300
    assert first.p95_ms > 25
    assert any(
        "the first round breached p95 <= 10.00 ms: measured in 2 more rounds" in note
        for note in first.notes
    )


def test_a_real_breach_is_measured_in_every_round_and_fails():
    slow_enough = ThroughputBudget(min_per_s=10.0)  # ~40/s passes it
    first = _measured(_samples(25.0), (LATENCY, slow_enough))
    more = Rounds(22.0, 24.0, 21.0)
    assert confirm(first, more, rounds=3, every_round=False) == 4
    latency, throughput = first.verdicts
    assert latency.outcome is Outcome.FAIL
    assert latency.breached_rounds == 4
    assert latency.best_round == 4  # 21 ms: the lowest p95
    assert "in all 4 rounds (best round 4: " in latency.reason()
    assert throughput.outcome is Outcome.PASS  # passed in round 1: never judged again
    assert throughput.rounds == 1
    assert more.asked == [(LATENCY,)] * 3


def test_nothing_breached_and_nothing_suspected_is_one_round():
    first = _measured(_samples(4.0), (LATENCY,))
    more = Rounds()
    assert confirm(first, more, rounds=5, every_round=False) == 1
    assert first.rounds == []
    assert more.asked == []


def test_no_confirmation_rounds_judge_the_first_round_alone():
    first = _measured(_samples(25.0), (LATENCY,))
    before = list(first.verdicts)
    assert confirm(first, Rounds(4.0), rounds=0, every_round=True) == 1
    assert first.verdicts == before
    assert first.rounds == []
    assert first.outcome is Outcome.FAIL


def test_a_saved_or_suspected_run_measures_every_round_and_leaves_passed_budgets_alone():
    first = _measured(_samples(4.0), (LATENCY,))
    more = Rounds(4.0, 4.0)
    assert confirm(first, more, rounds=2, every_round=True) == 3
    assert more.asked == [(), ()]  # the budgets passed: the rounds are the gate's
    assert first.verdicts[0].rounds == 1
    # Figures of every round all the same, for the tail gate and the report.
    assert all(r.p95_ms is not None and r.p99_ms is not None for r in first.rounds)
    assert [r.budgets[0].outcome for r in first.rounds] == ["pass", None, None]
    assert all(r.budgets[0].measured_ms for r in first.rounds)


def test_a_breach_in_a_saved_run_is_judged_in_every_round_not_only_until_it_passes():
    first = _measured(_samples(25.0), (LATENCY,))
    more = Rounds(4.0, 30.0, 4.0)
    assert confirm(first, more, rounds=3, every_round=True) == 4
    (verdict,) = first.verdicts
    assert verdict.outcome is Outcome.PASS
    assert verdict.rounds == 4
    assert verdict.breached_rounds == 2


def test_budgets_left_undecided_by_the_first_rounds_failure_are_decided_in_the_next():
    first = _measured(_samples(25.0, n=8), (LATENCY, THROUGHPUT))
    first.verdicts[1] = first.verdicts[1].with_outcome(Outcome.INCONCLUSIVE)
    first.notes.append(STOPPED_AT_FAILURE)
    more = Rounds(4.0)
    assert confirm(first, more, rounds=3, every_round=False) == 2
    assert more.asked == [(LATENCY, THROUGHPUT)]
    latency, throughput = first.verdicts
    assert latency.cleared
    assert throughput.outcome is Outcome.PASS
    assert not throughput.cleared
    assert throughput.first_outcome is Outcome.INCONCLUSIVE
    assert "(round 1: throughput " in throughput.reason()
    assert ", inconclusive)" in (throughput.reason())
    assert STOPPED_AT_FAILURE not in first.notes


def test_old_rounds_without_the_new_figures_still_load():
    old = {"n": 200, "min_ms": 1.5, "p50_ms": 1.7}
    record = from_json(RoundRecord, old)
    assert record.p95_ms is None
    assert record.p99_ms is None
    assert record.budgets == ()
    budget = from_json(
        BudgetRecord, {"kind": "latency", "outcome": "fail", "n": 8, "alpha": 0.01, "reason": "x"}
    )
    assert budget.rounds == 1
    assert budget.best_round is None
    assert not budget.cleared
    new = _measured(_samples(4.0), (LATENCY, THROUGHPUT)).round_record([LATENCY, THROUGHPUT])
    assert from_json(RoundRecord, to_json(new)) == new
    assert new.budgets[1].measured_per_s == pytest.approx(1000 / 4.08, rel=0.01)


# --- under pytest --hwperf -----------------------------------------------------------

# A virtual clock that only the target's calls advance: the first SLOW_CALLS calls of
# the process take 30 ms (a stall), the rest 2 ms (SLOW_CALLS=-1: every call is slow).
# A round is a few warm-up calls (0.01 s of --hwperf-warmup) and its samples; a latency
# budget of 10 ms fails at the first look (8 slow calls), a throughput one at 16.
PROJECT = """
import os

import pytest

CALLS = [0]
NOW = [0]  # the virtual clock, in ns


def work():
    CALLS[0] += 1
    slow_calls = int(os.environ.get("SLOW_CALLS", "0"))
    slow = slow_calls < 0 or CALLS[0] <= slow_calls
    NOW[0] += 30_000_000 if slow else 2_000_000


@pytest.fixture
def hwperf(hwperf):
    hwperf.clock = lambda: NOW[0]
    return hwperf


{marks}
def test_work(hwperf):
    hwperf(work)
"""

RUN = (*FAST_RUN, "--hwperf", "--hwperf-reference=off", "--hwperf-profile=off", "-p", "no:randomly")


def _run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, marks: str, slow: int, *args: str
) -> tuple[pytest.RunResult, MeasurementRecord, dict]:
    pytester.makepyfile(test_rounds=PROJECT.format(marks=marks))
    monkeypatch.setenv("SLOW_CALLS", str(slow))
    result = pytester.runpytest(*RUN, "--hwperf-json=out.json", *args)
    assert_clean(result)
    (raw,) = load_json(pytester.path / "out.json")["measurements"]
    return result, from_json(MeasurementRecord, raw), raw


def test_a_stalled_first_round_is_cleared_by_the_next(pytester, monkeypatch):
    result, record, raw = _run(pytester, monkeypatch, "@pytest.mark.latency(ms=10)", 10)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert len(record.rounds) == 2  # round 1 breached, round 2 passed: done
    (budget,) = record.budgets
    assert budget.outcome == "pass"
    assert budget.cleared
    assert budget.first_outcome == "fail"
    assert (budget.rounds, budget.best_round, budget.breached_rounds) == (2, 2, 1)
    assert raw["budgets"][0]["cleared"] is True  # visible as such in the JSON
    assert [r.budgets[0].outcome for r in record.rounds] == ["fail", "pass"]
    assert record.rounds[0].budgets[0].measured_ms == pytest.approx(30.0)
    assert record.rounds[1].p95_ms == pytest.approx(2.0)
    assert record.stats.p95_ms == pytest.approx(30.0)  # the samples of record: round 1
    result.stdout.fnmatch_lines(["*test_work*work*cpu*p95<=10.00ms (best of 2 rounds)*pass*"])


def test_a_stall_over_two_rounds_takes_three(pytester, monkeypatch):
    # Round 1: 2 warm-up calls and 8 samples, all slow; round 2 the same (calls 11-20).
    result, record, _ = _run(pytester, monkeypatch, "@pytest.mark.latency(ms=10)", 20)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    (budget,) = record.budgets
    assert (budget.rounds, budget.breached_rounds, budget.outcome) == (3, 2, "pass")
    assert "in round 3 of 3" in budget.reason
    assert "breached in 2 of 3 rounds" in budget.reason


def test_a_real_latency_breach_fails_in_every_round(pytester, monkeypatch):
    result, record, _ = _run(
        pytester, monkeypatch, "@pytest.mark.latency(ms=10)", -1, "--hwperf-confirm=3"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert len(record.rounds) == 4
    (budget,) = record.budgets
    assert budget.outcome == "fail"
    assert budget.breached_rounds == 4
    assert not budget.cleared
    result.stdout.fnmatch_lines(
        [
            "*hwperf: 'work' on cpu: p95 30.00 ms (>= * at *% confidence) breaches budget"
            " 10.00 ms in all 4 rounds (best round *: 8/8 calls over budget)*"
        ]
    )
    assert record.verdict == "fail"


def test_without_confirmation_rounds_a_stall_fails_on_one_round(pytester, monkeypatch):
    result, record, _ = _run(
        pytester, monkeypatch, "@pytest.mark.latency(ms=10)", 10, "--hwperf-confirm=0"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert record.rounds == ()
    (budget,) = record.budgets
    assert budget.rounds == 1
    assert budget.best_round is None
    assert not budget.cleared
    result.stdout.fnmatch_lines(["*breaches budget 10.00 ms (8/8 calls over budget)*"])
    result.stdout.no_fnmatch_line("*in all * rounds*")
    result.stdout.no_fnmatch_line("*best of*")


def test_a_stalled_throughput_budget_is_cleared_and_a_real_one_fails(pytester, monkeypatch):
    marks = "@pytest.mark.throughput(min_per_s=100)"
    # 2 warm-up calls and 16 samples (the first look that can decide) are slow.
    result, record, _ = _run(pytester, monkeypatch, marks, 18)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    (budget,) = record.budgets
    assert budget.cleared
    assert budget.rounds == 2
    assert budget.measured_per_s == pytest.approx(500.0)
    assert record.rounds[0].budgets[0].measured_per_s == pytest.approx(1000 / 30)

    result, record, _ = _run(pytester, monkeypatch, marks, -1, "--hwperf-confirm=2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*throughput 33.3/s (<= * at *% confidence) breaches budget 100/s in all 3 rounds*"]
    )


def test_latency_and_throughput_together(pytester, monkeypatch):
    marks = "@pytest.mark.latency(ms=10)\n@pytest.mark.throughput(min_per_s=100)"
    result, record, _ = _run(pytester, monkeypatch, marks, 10)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    by_kind = {b.kind: b for b in record.budgets}
    assert by_kind["latency"].cleared
    # Round 1 stopped at the latency breach with throughput undecided; round 2 decided it.
    assert by_kind["throughput"].first_outcome == "inconclusive"
    assert by_kind["throughput"].outcome == "pass"
    assert not by_kind["throughput"].cleared
    assert record.outcome == "pass"
    assert STOPPED_AT_FAILURE not in record.notes
    kinds = [[b.kind for b in r.budgets] for r in record.rounds]
    assert kinds == [["latency", "throughput"]] * 2


def test_a_memory_budget_is_not_measured_again(pytester, monkeypatch):
    # Over its memory budget (1 MB: the process holds far more) and within its latency
    # budget: the memory breach fails the test, judged once, with no extra rounds.
    marks = "@pytest.mark.latency(ms=10)\n@pytest.mark.memory(rss_mb=1)"
    result, record, _ = _run(pytester, monkeypatch, marks, 0)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert record.rounds == ()
    assert record.memory is not None
    assert record.memory.outcome == "fail"
    assert record.budgets[0].outcome == "pass"
    assert record.budgets[0].rounds == 1
    result.stdout.fnmatch_lines(["*hwperf: 'work' on cpu: memory: peak RSS * over the 1 MB*"])


def test_rounds_that_confirm_a_suspicion_are_spread_over_seconds():
    """A breach confirmed in rounds waits 0.1, 0.2, 0.4 ... s before each (capped by
    --hwperf-confirm-pause), so that a co-tenant's burst cannot span them all; a run
    being saved (no pause given) and `longest_pause_s=0` measure back to back."""
    from pytest_hwperf.measure.rounds import ROUND_PAUSES_S

    def breaching() -> Rounds:
        return Rounds(*[30.0] * 6)

    waits: list[float] = []
    first = _measured(_samples(25.0), (LATENCY,))
    assert confirm(first, breaching(), rounds=6, every_round=False, pause=waits.append) == 7
    assert waits == [*ROUND_PAUSES_S, ROUND_PAUSES_S[-1]]
    waits.clear()
    first = _measured(_samples(25.0), (LATENCY,))
    confirm(
        first, breaching(), rounds=5, every_round=False, pause=waits.append, longest_pause_s=0.3
    )
    assert waits == [0.1, 0.2, 0.3, 0.3, 0.3]
    waits.clear()
    first = _measured(_samples(25.0), (LATENCY,))
    confirm(first, breaching(), rounds=5, every_round=False, pause=waits.append, longest_pause_s=0)
    assert waits == []
