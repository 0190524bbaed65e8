"""pytest_hwperf.judge.stats against scipy (a dev dependency) and first principles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from pytest_hwperf.judge import stats

REL = 1e-9
TINY = 1e-300  # below this the relative comparison means nothing (denormals, underflow)

NS = [1, 2, 3, 5, 8, 10, 37, 100, 459, 1000, 2500, 5000]
PS = [
    0.0,
    1e-12,
    1e-9,
    1e-6,
    1e-3,
    0.01,
    0.05,
    0.3,
    0.5,
    0.7,
    0.95,
    0.99,
    0.999,
    1 - 1e-6,
    1 - 1e-9,
    1 - 1e-12,
    1.0,
]


def _ks(n, p):
    """k values that matter for (n, p): both ends, the mean and around it, far tails."""
    mean = n * p
    sd = math.sqrt(n * p * (1 - p))
    ks = {-1, 0, 1, 2, 3, n // 2, n - 3, n - 2, n - 1, n, n + 1}
    for d in (-10, -3, -1, 0, 1, 3, 10):
        ks.add(int(mean + d * max(sd, 1.0)))
    return sorted(k for k in ks if -1 <= k <= n + 1)


def _assert_close(got, want, what):
    assert 0.0 <= got <= 1.0, f"{what}: {got} is not a probability"
    if want > TINY:
        assert got == pytest.approx(want, rel=REL, abs=0.0), f"{what}: {got} != {want}"
    else:
        assert got < 1e-290, f"{what}: {got}, scipy says {want}"


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("n", NS)
def test_binom_cdf_matches_scipy(n, p):
    for k in _ks(n, p):
        want = float(sps.binom.cdf(k, n, p))
        _assert_close(stats.binom_cdf(k, n, p), want, f"cdf(k={k}, n={n}, p={p})")


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("n", NS)
def test_binom_sf_matches_scipy(n, p):
    # stats.binom_sf(k) is P(X >= k); scipy's sf(k) is P(X > k).
    for k in _ks(n, p):
        want = float(sps.binom.sf(k - 1, n, p))
        _assert_close(stats.binom_sf(k, n, p), want, f"sf(k={k}, n={n}, p={p})")


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [
        # Far upper tails left of n/2: computing these as 1 - cdf loses them entirely.
        (50, 1000, 0.01),  # ~8.3e-20
        (3, 10, 1e-12),  # ~1.2e-34
        (1, 5000, 1e-12),  # ~5e-9, where 1 - (1 - 5e-9) keeps only 8 digits
        (40, 5000, 0.001),
    ],
)
def test_binom_sf_small_upper_tail_is_exact(k, n, p):
    want = float(sps.binom.sf(k - 1, n, p))
    assert want < 1e-8
    assert stats.binom_sf(k, n, p) == pytest.approx(want, rel=REL)


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [
        (990, 1000, 0.999),  # lower tail right of n/2: ~1.07e-7
        (4900, 5000, 0.995),
        (4990, 5000, 1 - 1e-6),
    ],
)
def test_binom_cdf_small_lower_tail_is_exact(k, n, p):
    want = float(sps.binom.cdf(k, n, p))
    assert want < 1e-6
    assert stats.binom_cdf(k, n, p) == pytest.approx(want, rel=REL)


def test_binom_cdf_and_sf_are_complementary():
    # P(X <= k) + P(X >= k + 1) = 1 for any k.
    for n, p in [(10, 0.3), (1000, 0.01), (459, 0.99)]:
        for k in range(-1, n + 1, max(1, n // 50)):
            assert stats.binom_cdf(k, n, p) + stats.binom_sf(k + 1, n, p) == pytest.approx(
                1.0, abs=1e-12
            )


def test_binom_small_cases_by_hand():
    # n = 2, p = 0.5: P(0) = 1/4, P(1) = 1/2, P(2) = 1/4.
    assert stats.binom_cdf(0, 2, 0.5) == pytest.approx(0.25, rel=1e-12)
    assert stats.binom_cdf(1, 2, 0.5) == pytest.approx(0.75, rel=1e-12)
    assert stats.binom_sf(2, 2, 0.5) == pytest.approx(0.25, rel=1e-12)
    assert stats.binom_sf(1, 2, 0.5) == pytest.approx(0.75, rel=1e-12)
    # P(X = 0) = q^n
    assert stats.binom_cdf(0, 459, 0.01) == pytest.approx(0.99**459, rel=1e-12)
    # Outside the support
    assert stats.binom_cdf(-1, 10, 0.5) == 0.0
    assert stats.binom_cdf(10, 10, 0.5) == 1.0
    assert stats.binom_sf(0, 10, 0.5) == 1.0
    assert stats.binom_sf(11, 10, 0.5) == 0.0


def test_binom_degenerate_p():
    assert stats.binom_cdf(0, 10, 0.0) == 1.0
    assert stats.binom_sf(1, 10, 0.0) == 0.0
    assert stats.binom_cdf(9, 10, 1.0) == 0.0
    assert stats.binom_sf(10, 10, 1.0) == 1.0


def test_binom_n_zero():
    assert stats.binom_cdf(0, 0, 0.3) == 1.0
    assert stats.binom_sf(0, 0, 0.3) == 1.0
    assert stats.binom_sf(1, 0, 0.3) == 0.0


@pytest.mark.parametrize("fn", [stats.binom_cdf, stats.binom_sf])
@pytest.mark.parametrize(
    ("n", "p", "match"),
    [
        (-1, 0.5, "n must be >= 0"),
        (10, -0.1, "p must be within"),
        (10, 1.5, "p must be within"),
        (10, math.nan, "p must be within"),
    ],
)
def test_binom_rejects_bad_arguments(fn, n, p, match):
    with pytest.raises(ValueError, match=match):
        fn(1, n, p)


# --- min_samples_for_compliance ------------------------------------------------------


def test_min_samples_known_values():
    # ln(0.01) / ln(0.99) = 458.2 -> 459 (MLPerf LoadGen); ln(0.01) / ln(0.95) = 89.8 -> 90
    assert stats.min_samples_for_compliance(99, 0.01) == 459
    assert stats.min_samples_for_compliance(95, 0.01) == 90


@pytest.mark.parametrize("pct", [50, 75, 90, 95, 99, 99.5, 99.9])
@pytest.mark.parametrize("alpha", [0.2, 0.1, 0.05, 0.01, 0.01 / 11, 1e-3, 1e-4, 1e-6])
def test_min_samples_is_the_smallest_n_with_q_pow_n_at_most_alpha(pct, alpha):
    q = pct / 100
    n = stats.min_samples_for_compliance(pct, alpha)
    assert q**n <= alpha
    if n > 1:
        assert q ** (n - 1) > alpha
    # The same thing through the exact binomial: zero exceedances out of n show compliance.
    assert sps.binom.cdf(0, n, 1 - q) <= alpha * (1 + 1e-12)


def test_min_samples_exact_boundary_does_not_tip_over():
    # 0.5^10 == 2^-10 exactly: 10 calls suffice, not 11.
    assert stats.min_samples_for_compliance(50, 2.0**-10) == 10


@pytest.mark.parametrize(
    ("pct", "alpha"), [(100, 0.01), (0, 0.01), (-5, 0.01), (101, 0.01), (99, 0.0), (99, 1.5)]
)
def test_min_samples_rejects_bad_arguments(pct, alpha):
    with pytest.raises(ValueError, match="must be within"):
        stats.min_samples_for_compliance(pct, alpha)


# --- order-statistic confidence bounds -----------------------------------------------


def _brute_upper(n, q, alpha):
    # 0-based i: x_(i+1) bounds the q-quantile from above when P(Bin(n, q) <= i) >= 1 - alpha
    hits = np.nonzero(sps.binom.cdf(np.arange(n), n, q) >= 1 - alpha)[0]
    return int(hits[0]) if hits.size else None


def _brute_lower(n, q, alpha):
    # 0-based i: x_(i+1) bounds the q-quantile from below when P(Bin(n, q) >= i + 1) >= 1 - alpha
    hits = np.nonzero(sps.binom.sf(np.arange(n), n, q) >= 1 - alpha)[0]
    return int(hits[-1]) if hits.size else None


BOUND_GRID = [
    (n, q, alpha)
    for n in [1, 2, 5, 8, 10, 20, 50, 100, 200, 459, 1000, 3000]
    for q in [0.5, 0.9, 0.95, 0.99, 0.999]
    for alpha in [0.1, 0.05, 0.01, 1e-3, 1e-4]
]


@pytest.mark.parametrize(("n", "q", "alpha"), BOUND_GRID)
def test_quantile_bound_indices_match_brute_force(n, q, alpha):
    assert stats.quantile_upper_bound_index(n, q, alpha) == _brute_upper(n, q, alpha)
    assert stats.quantile_lower_bound_index(n, q, alpha) == _brute_lower(n, q, alpha)


def test_quantile_bounds_need_enough_samples():
    # The max of n samples bounds the p99 from above only once 1 - 0.99^n >= 1 - alpha,
    # that is 0.99^n <= alpha: n >= 459 at alpha 0.01.
    assert stats.quantile_upper_bound_index(458, 0.99, 0.01) is None
    assert stats.quantile_upper_bound_index(459, 0.99, 0.01) == 458
    # The median of 1000 samples: the bounds straddle the middle.
    hi = stats.quantile_upper_bound_index(1000, 0.5, 0.01)
    lo = stats.quantile_lower_bound_index(1000, 0.5, 0.01)
    assert lo is not None
    assert hi is not None
    assert lo < 499 < hi


@pytest.mark.parametrize("n", [0, -3])
def test_quantile_bounds_without_samples(n):
    assert stats.quantile_upper_bound_index(n, 0.95, 0.01) is None
    assert stats.quantile_lower_bound_index(n, 0.95, 0.01) is None


def test_quantile_bounds_cover_at_the_stated_rate():
    # Coverage check by simulation with a known quantile (fixed seed, no timing).
    rng = np.random.default_rng(12345)
    n, q, alpha = 200, 0.9, 0.05
    true_q = -math.log(1 - q)  # Exp(1) quantile
    hi = stats.quantile_upper_bound_index(n, q, alpha)
    lo = stats.quantile_lower_bound_index(n, q, alpha)
    assert hi is not None
    assert lo is not None
    trials = 2000
    x = np.sort(rng.exponential(size=(trials, n)), axis=1)
    miss_hi = np.mean(x[:, hi] < true_q)
    miss_lo = np.mean(x[:, lo] > true_q)
    # Each one-sided miss rate is at most alpha (plus simulation noise, sd ~0.005).
    assert miss_hi <= alpha + 0.02
    assert miss_lo <= alpha + 0.02


# --- percentile, Student t, mean bounds -----------------------------------------------


def test_percentile_is_linear_interpolation():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert stats.percentile(values, 50) == 3.0
    assert stats.percentile(values, 0) == 1.0
    assert stats.percentile(values, 100) == 5.0
    # rank (n - 1) * 0.9 = 3.6: 4 + 0.6 * (5 - 4)
    assert stats.percentile(values, 90) == pytest.approx(4.6)
    with pytest.raises(ValueError, match="no values"):
        stats.percentile([], 50)


STUDENT_GRID = [
    (prob, dof)
    for prob in [0.9, 0.95, 0.975, 0.99]
    for dof in [5, 6, 7, 8, 9, 10, 15, 20, 30, 50, 100, 1000]
] + [
    # Throughput verdicts need >= 10 samples (dof >= 9); at the per-look alphas a run
    # of up to 18 looks gives (0.01 / 18 ~ 5.6e-4), the expansion is still within 0.5%.
    (prob, dof)
    for prob in [0.995, 0.999, 1 - 0.01 / 18]
    for dof in [9, 10, 15, 20, 50, 100, 1000]
]


@pytest.mark.parametrize(("prob", "dof"), STUDENT_GRID)
def test_student_t_quantile_matches_scipy(prob, dof):
    want = float(sps.t.ppf(prob, dof))
    assert stats.student_t_quantile(prob, dof) == pytest.approx(want, rel=0.005)


def test_student_t_quantile_symmetry_and_limit():
    assert stats.student_t_quantile(0.5, 7) == pytest.approx(0.0, abs=1e-12)
    assert stats.student_t_quantile(0.05, 20) == pytest.approx(
        -stats.student_t_quantile(0.95, 20), rel=1e-12
    )
    # Large dof: the normal quantile.
    assert stats.student_t_quantile(0.99, 10**7) == pytest.approx(
        float(sps.norm.ppf(0.99)), rel=1e-6
    )


@pytest.mark.parametrize("dof", [0, -1])
def test_student_t_quantile_rejects_bad_dof(dof):
    with pytest.raises(ValueError, match="dof"):
        stats.student_t_quantile(0.95, dof)


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.001])
def test_mean_bounds_match_student_t(alpha):
    rng = np.random.default_rng(7)
    values = rng.normal(10.0, 2.0, size=40)
    mean, lower, upper = stats.mean_bounds(values, alpha)
    assert mean == pytest.approx(float(np.mean(values)), rel=1e-12)
    half = float(sps.t.ppf(1 - alpha, 39)) * float(np.std(values, ddof=1)) / math.sqrt(40)
    assert mean - lower == pytest.approx(half, rel=0.005)
    assert upper - mean == pytest.approx(half, rel=0.005)
    assert lower < mean < upper


def test_mean_bounds_by_hand():
    # values 1..5: mean 3, sd sqrt(2.5), sem sqrt(2.5 / 5) = sqrt(0.5)
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    mean, lower, upper = stats.mean_bounds(values, 0.05)
    t = stats.student_t_quantile(0.95, 4)
    assert mean == 3.0
    assert lower == pytest.approx(3.0 - t * math.sqrt(0.5))
    assert upper == pytest.approx(3.0 + t * math.sqrt(0.5))


def test_mean_bounds_constant_values_collapse():
    mean, lower, upper = stats.mean_bounds(np.full(20, 4.0), 0.01)
    assert mean == lower == upper == 4.0


def test_mean_bounds_one_value_is_unbounded():
    assert stats.mean_bounds(np.array([2.5]), 0.01) == (2.5, -math.inf, math.inf)


def test_mean_bounds_no_values():
    with pytest.raises(ValueError, match="no values"):
        stats.mean_bounds(np.array([]), 0.01)
