"""Budget verdicts on synthetic samples, against exact binomial values from scipy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from pytest_hwperf.judge.compliance import (
    BudgetVerdict,
    LatencyBudget,
    Outcome,
    ThroughputBudget,
    judge,
    settle,
)

MS = 1_000_000  # ns


def latency_samples(n, exceedances, budget_ms=10.0, seed=0):
    """n samples (ns), exactly `exceedances` of them over `budget_ms`, shuffled.

    Under-budget samples lie in [1 ms, budget]; one sits exactly on the budget, which is
    within it ("p99 <= 10 ms").
    """
    rng = np.random.default_rng(seed)
    budget_ns = int(budget_ms * MS)
    under = rng.integers(1 * MS, budget_ns, size=n - exceedances, endpoint=True)
    if under.size:
        under[0] = budget_ns
    over = rng.integers(budget_ns + 1, 3 * budget_ns, size=exceedances, endpoint=True)
    samples = np.concatenate([under, over]).astype(np.int64)
    rng.shuffle(samples)
    return samples


def expected_latency_outcome(e, n, pct, alpha):
    q_over = 1 - pct / 100
    if sps.binom.cdf(e, n, q_over) <= alpha:
        return Outcome.PASS
    if sps.binom.sf(e - 1, n, q_over) <= alpha:
        return Outcome.FAIL
    return Outcome.UNDECIDED


def boundaries(n, pct, alpha):
    """(largest e shown compliant, smallest e shown violating), from scipy."""
    q_over = 1 - pct / 100
    es = np.arange(n + 1)
    comply = np.nonzero(sps.binom.cdf(es, n, q_over) <= alpha)[0]
    violate = np.nonzero(sps.binom.sf(es - 1, n, q_over) <= alpha)[0]
    return (int(comply[-1]) if comply.size else None), (int(violate[0]) if violate.size else None)


# --- latency: the binomial test ------------------------------------------------------


def test_p99_n1000_boundaries_are_where_scipy_puts_them():
    # Worked by hand from the binomial pmf with n = 1000, p = 0.01: P(X <= 2) = 0.0027,
    # P(X <= 3) = 0.0101 (just over alpha); P(X >= 19) = 0.0069, P(X >= 18) = 0.0138.
    assert boundaries(1000, 99, 0.01) == (2, 19)


@pytest.mark.parametrize(
    ("pct", "n", "alpha"),
    [
        (99, 1000, 0.01),
        (95, 1000, 0.01),
        (95, 200, 0.05),
        (90, 100, 0.01),
        (99, 5000, 0.001),
    ],
)
def test_latency_verdict_switches_exactly_at_the_binomial_boundaries(pct, n, alpha):
    e_pass, e_fail = boundaries(n, pct, alpha)
    assert e_pass is not None
    assert e_fail is not None
    budget = LatencyBudget(10.0, pct)
    cases = {
        e_pass - 1: Outcome.PASS,
        e_pass: Outcome.PASS,
        e_pass + 1: Outcome.UNDECIDED,
        e_fail - 1: Outcome.UNDECIDED,
        e_fail: Outcome.FAIL,
        e_fail + 1: Outcome.FAIL,
    }
    for e, want in cases.items():
        if e < 0:
            continue
        v = judge(budget, latency_samples(n, e, seed=e), alpha)
        assert v.exceedances == e
        assert v.n == n
        assert v.outcome is want, f"e={e}: {v.outcome} (expected {want})"


def test_latency_verdict_matches_scipy_for_every_exceedance_count():
    n, pct, alpha = 1000, 99, 0.01
    q_over = 0.01
    budget = LatencyBudget(10.0, pct)
    for e in range(0, 40):
        v = judge(budget, latency_samples(n, e, seed=100 + e), alpha)
        want = expected_latency_outcome(e, n, pct, alpha)
        assert v.outcome is want, f"e={e}"
        p_comply = float(sps.binom.cdf(e, n, q_over))
        p_violate = float(sps.binom.sf(e - 1, n, q_over))
        if want is Outcome.PASS:
            expected_p = p_comply
        elif want is Outcome.FAIL:
            expected_p = p_violate
        else:
            expected_p = min(p_comply, p_violate)
        assert v.p_value == pytest.approx(expected_p, rel=1e-9)


def test_latency_verdict_near_alpha_is_exact_not_approximate():
    # P(X <= 3 | 1000, 0.01) = 0.01007: a hair over alpha 0.01, so 3 exceedances do not
    # show compliance, but at alpha 0.0101 they do.
    samples = latency_samples(1000, 3)
    assert judge(LatencyBudget(10.0, 99), samples, 0.01).outcome is Outcome.UNDECIDED
    assert judge(LatencyBudget(10.0, 99), samples, 0.0101).outcome is Outcome.PASS


def test_sample_exactly_on_the_budget_is_within_it():
    samples = np.full(1000, 10 * MS, dtype=np.int64)
    v = judge(LatencyBudget(10.0, 99), samples, 0.01)
    assert v.exceedances == 0
    assert v.outcome is Outcome.PASS
    v = judge(LatencyBudget(10.0, 99), samples + 1, 0.01)
    assert v.exceedances == 1000
    assert v.outcome is Outcome.FAIL


def test_p95_pass_fail_undecided():
    alpha = 0.01
    budget = LatencyBudget(50.0)  # p95 by default
    assert budget.percentile == 95.0
    # 90 calls, none over: 0.95^90 = 0.0099 <= 0.01 (the minimum for p95 at 0.01).
    v = judge(budget, np.full(90, 1 * MS, dtype=np.int64), alpha)
    assert v.outcome is Outcome.PASS
    assert v.p_value == pytest.approx(0.95**90, rel=1e-9)
    # 89 calls, none over: 0.95^89 = 0.0104 > 0.01: not yet.
    v = judge(budget, np.full(89, 1 * MS, dtype=np.int64), alpha)
    assert v.outcome is Outcome.UNDECIDED
    # 8 calls, all over: P(X >= 8) = 0.05^8.
    v = judge(budget, np.full(8, 60 * MS, dtype=np.int64), alpha)
    assert v.outcome is Outcome.FAIL
    assert v.p_value == pytest.approx(0.05**8, rel=1e-9)
    # 2 calls, both over: 0.05^2 = 0.0025 <= 0.01 already.
    assert judge(budget, np.full(2, 60 * MS, dtype=np.int64), alpha).outcome is Outcome.FAIL
    # 1 call over: 0.05 > 0.01.
    assert judge(budget, np.full(1, 60 * MS, dtype=np.int64), alpha).outcome is Outcome.UNDECIDED


def _brute_index(n, q, alpha, upper):
    i = np.arange(n)
    if upper:
        hits = np.nonzero(sps.binom.cdf(i, n, q) >= 1 - alpha)[0]
        return int(hits[0]) if hits.size else None
    hits = np.nonzero(sps.binom.sf(i, n, q) >= 1 - alpha)[0]
    return int(hits[-1]) if hits.size else None


@pytest.mark.parametrize(("n", "pct"), [(1000, 99), (1000, 95), (300, 95), (100, 99), (20, 50)])
def test_latency_measured_value_and_bounds(n, pct):
    samples = latency_samples(n, n // 50, seed=n)
    alpha = 0.01
    v = judge(LatencyBudget(10.0, pct), samples, alpha)
    ordered = np.sort(samples)
    assert v.measured == pytest.approx(float(np.percentile(samples, pct)) / 1e6)
    hi = _brute_index(n, pct / 100, alpha, upper=True)
    lo = _brute_index(n, pct / 100, alpha, upper=False)
    assert v.upper == (None if hi is None else pytest.approx(ordered[hi] / 1e6))
    assert v.lower == (None if lo is None else pytest.approx(ordered[lo] / 1e6))
    if v.lower is not None and v.upper is not None:
        assert v.lower <= v.measured <= v.upper


def test_judge_refuses_no_samples():
    with pytest.raises(ValueError, match="no samples"):
        judge(LatencyBudget(10.0), np.array([], dtype=np.int64), 0.01)
    with pytest.raises(ValueError, match="no samples"):
        judge(ThroughputBudget(10.0), np.array([], dtype=np.int64), 0.01)


# --- reason() --------------------------------------------------------------------------


def test_reason_pass_line():
    # 1000 calls of exactly 5 ms: p99 5 ms, its upper bound 5 ms, 0 over a 10 ms budget.
    v = judge(LatencyBudget(10.0, 99), np.full(1000, 5 * MS, dtype=np.int64), 0.01)
    assert v.outcome is Outcome.PASS
    line = v.reason()
    assert "\n" not in line
    assert line == (
        "p99 5.00 ms (<= 5.00 ms at 99% confidence) within budget 10.00 ms"
        " (0/1000 calls over budget)"
    )


def test_reason_fail_line_names_statistic_value_bound_budget_and_n():
    # 975 calls at 5 ms, 25 at 20 ms: the p99 (rank 989.01 of 0..999) is 20 ms.
    samples = np.array([5 * MS] * 975 + [20 * MS] * 25, dtype=np.int64)
    v = judge(LatencyBudget(10.0, 99), samples, 0.01)
    assert v.outcome is Outcome.FAIL
    line = v.reason()
    assert line.startswith("p99 20.00 ms")
    assert f"(>= {v.lower:.2f} ms at 99% confidence)" in line
    assert "breaches budget 10.00 ms" in line
    assert "25/1000" in line


def test_reason_undecided_line():
    v = judge(LatencyBudget(10.0, 99), latency_samples(1000, 10), 0.01)
    assert v.outcome is Outcome.UNDECIDED
    line = v.reason()
    assert "p99" in line
    assert "undecided against budget 10.00 ms" in line
    assert "10/1000" in line


def test_reason_inconclusive_keeps_undecided_wording():
    v = judge(LatencyBudget(10.0, 99), latency_samples(1000, 10), 0.01)
    v = v.with_outcome(Outcome.INCONCLUSIVE)
    assert v.outcome is Outcome.INCONCLUSIVE
    assert "undecided against budget 10.00 ms" in v.reason()


def test_reason_sub_millisecond_budget_in_microseconds():
    v = judge(LatencyBudget(0.5, 95), np.full(200, 250_000, dtype=np.int64), 0.01)
    assert v.outcome is Outcome.PASS
    line = v.reason()
    assert "p95 250.0 us" in line
    assert "budget 500.0 us" in line
    assert "/200 calls" in line


def test_confidence_pct():
    v = judge(LatencyBudget(10.0), np.full(10, MS, dtype=np.int64), 0.05)
    assert v.confidence_pct == "95"
    v = judge(LatencyBudget(10.0), np.full(10, MS, dtype=np.int64), 0.001)
    assert v.confidence_pct == "99.9"


# --- throughput ------------------------------------------------------------------------


def throughput_samples(mean_ms, half_spread_ms, n):
    """n samples alternating mean -/+ half_spread: the mean is exact."""
    lo, hi = (mean_ms - half_spread_ms) * MS, (mean_ms + half_spread_ms) * MS
    return np.array([lo, hi] * (n // 2), dtype=np.int64)


def t_bounds_s(samples_ns, alpha):
    s = samples_ns / 1e9
    n = s.size
    half = float(sps.t.ppf(1 - alpha, n - 1)) * float(np.std(s, ddof=1)) / math.sqrt(n)
    return float(s.mean()) - half, float(s.mean()) + half


@pytest.mark.parametrize(
    ("mean_ms", "want"),
    [(5.0, Outcome.PASS), (20.0, Outcome.FAIL), (10.0, Outcome.UNDECIDED)],
)
def test_throughput_verdict(mean_ms, want):
    # 100 items/s per call of batch 1: a call may take 10 ms on average.
    budget = ThroughputBudget(min_per_s=100.0)
    alpha = 0.01
    samples = throughput_samples(mean_ms, 2.0, 50)
    lo_s, hi_s = t_bounds_s(samples, alpha)
    # The cases are far from the edges of the Student-t bounds (scipy's exact ones).
    if want is Outcome.PASS:
        assert hi_s < 0.009
    elif want is Outcome.FAIL:
        assert lo_s > 0.011
    else:
        assert lo_s < 0.010 < hi_s
    v = judge(budget, samples, alpha)
    assert v.outcome is want
    assert v.n == 50
    assert v.p_value is None
    assert v.measured == pytest.approx(1000.0 / mean_ms)
    # Rate bounds come from the time bounds, inverted.
    assert v.lower == pytest.approx(1.0 / hi_s, rel=5e-3)
    assert v.upper == pytest.approx(1.0 / lo_s, rel=5e-3)
    assert v.lower < v.measured < v.upper


def test_throughput_batch_size_scales_the_rate():
    # 4 items per call at 10 ms per call = 400 items/s; budget 300/s allows 13.3 ms.
    samples = throughput_samples(10.0, 1.0, 40)
    v = judge(ThroughputBudget(min_per_s=300.0, batch_size=4), samples, 0.01)
    assert v.measured == pytest.approx(400.0)
    assert v.outcome is Outcome.PASS
    # ... and budget 500/s allows 8 ms: a clear failure.
    v = judge(ThroughputBudget(min_per_s=500.0, batch_size=4), samples, 0.01)
    assert v.outcome is Outcome.FAIL


def test_throughput_needs_ten_samples():
    budget = ThroughputBudget(min_per_s=100.0)
    samples = np.full(10, 1 * MS, dtype=np.int64)
    assert judge(budget, samples[:9], 0.01).outcome is Outcome.UNDECIDED
    assert judge(budget, samples, 0.01).outcome is Outcome.PASS


def test_throughput_reason():
    samples = throughput_samples(5.0, 1.0, 50)  # 200/s
    v = judge(ThroughputBudget(min_per_s=100.0), samples, 0.01)
    assert v.outcome is Outcome.PASS
    line = v.reason()
    assert line.startswith("throughput 200/s (>= ")
    assert "at 99% confidence) within budget 100/s (n=50)" in line
    v = judge(ThroughputBudget(min_per_s=1000.0), samples, 0.01)
    assert v.outcome is Outcome.FAIL
    line = v.reason()
    assert line.startswith("throughput 200/s (<= ")
    assert "breaches budget 1,000/s (n=50)" in line


def test_throughput_one_sample_has_no_finite_bound():
    v = judge(ThroughputBudget(min_per_s=100.0), np.array([5 * MS]), 0.01)
    assert v.outcome is Outcome.UNDECIDED
    assert v.measured == pytest.approx(200.0)
    # One sample bounds nothing: the rate may be anything from 0 to infinity.
    assert v.lower == 0.0
    assert v.upper == math.inf
    assert "(n=1)" in v.reason()
    rec = v.to_record()
    assert rec["upper_per_s"] is None
    json.dumps(rec, allow_nan=False)


# --- to_record -------------------------------------------------------------------------

# Where a verdict of several confirmation rounds came from (judge/rounds.py); a verdict
# of one round carries them too: 1, null, null, null, false.
ROUND_KEYS = ("rounds", "best_round", "breached_rounds", "first_outcome", "cleared", "busy_rounds")


def test_latency_to_record():
    samples = latency_samples(1000, 25)
    v = judge(LatencyBudget(10.0, 99), samples, 0.01)
    rec = v.to_record()
    assert set(rec) == {
        "kind",
        "outcome",
        "percentile",
        "budget_ms",
        "measured_ms",
        "lower_ms",
        "upper_ms",
        "exceedances",
        "n",
        "alpha",
        "p_value",
        "reason",
        *ROUND_KEYS,
    }
    assert rec["kind"] == "latency"
    assert rec["outcome"] == "fail"
    assert rec["percentile"] == 99
    assert rec["budget_ms"] == 10.0
    assert rec["exceedances"] == 25
    assert rec["n"] == 1000
    assert rec["alpha"] == 0.01
    assert rec["reason"] == v.reason()
    assert (rec["rounds"], rec["best_round"], rec["cleared"]) == (1, None, False)
    json.dumps(rec, allow_nan=False)  # the report writer refuses NaN/inf


def test_throughput_to_record():
    v = judge(ThroughputBudget(min_per_s=100.0, batch_size=2), throughput_samples(5, 1, 20), 0.05)
    rec = v.to_record()
    assert set(rec) == {
        "kind",
        "outcome",
        "min_per_s",
        "batch_size",
        "measured_per_s",
        "lower_per_s",
        "upper_per_s",
        "n",
        "alpha",
        "p_value",
        "reason",
        *ROUND_KEYS,
    }
    assert rec["kind"] == "throughput"
    assert rec["outcome"] == "pass"
    assert rec["batch_size"] == 2
    assert rec["measured_per_s"] == pytest.approx(400.0)
    assert rec["p_value"] is None
    json.dumps(rec, allow_nan=False)


def test_with_outcome_keeps_everything_else():
    v = judge(LatencyBudget(10.0, 99), latency_samples(1000, 10), 0.01)
    w = v.with_outcome(Outcome.INCONCLUSIVE)
    assert isinstance(w, BudgetVerdict)
    assert w.outcome is Outcome.INCONCLUSIVE
    for field in ("budget", "n", "measured", "lower", "upper", "alpha", "p_value", "exceedances"):
        assert getattr(w, field) == getattr(v, field)


def test_settle_turns_only_undecided_into_inconclusive_and_keeps_order():
    budget = LatencyBudget(50.0)  # p95: 90 calls none over pass, 89 do not yet
    passed = judge(budget, np.full(90, 1 * MS, dtype=np.int64), 0.01)
    failed = judge(budget, np.full(8, 60 * MS, dtype=np.int64), 0.01)
    undecided = judge(budget, np.full(89, 1 * MS, dtype=np.int64), 0.01)
    throughput = judge(ThroughputBudget(1.0), np.full(3, 1 * MS, dtype=np.int64), 0.01)
    inconclusive = undecided.with_outcome(Outcome.INCONCLUSIVE)
    assert undecided.outcome is Outcome.UNDECIDED
    assert throughput.outcome is Outcome.UNDECIDED  # too few samples for a t bound

    settled = settle(iter([undecided, passed, failed, throughput, inconclusive]))

    assert [v.outcome for v in settled] == [
        Outcome.INCONCLUSIVE,
        Outcome.PASS,
        Outcome.FAIL,
        Outcome.INCONCLUSIVE,
        Outcome.INCONCLUSIVE,
    ]
    assert settled[0] == inconclusive  # figures kept, only the outcome changes
    assert settled[1] is passed
    assert settled[2] is failed
    assert settled[3].budget == throughput.budget
    assert settled[4] is inconclusive
    assert settle([]) == []


def test_outcome_str_and_budget_describe():
    assert str(Outcome.PASS) == "pass"
    assert Outcome("inconclusive") is Outcome.INCONCLUSIVE
    assert LatencyBudget(50.0, 99).describe() == "p99 <= 50.00 ms"
    assert LatencyBudget(50.0, 99.9).statistic == "p99.9"
    assert ThroughputBudget(1500.0).describe() == "throughput >= 1,500/s"
