"""Statistics for performance verdicts: exact binomial tails, order-statistic bounds,
percentiles and a confidence bound for the mean.

Pure Python and numpy; nothing here knows about pytest. The binomial functions are
exact (summed in log space), so verdicts near alpha are not at the mercy of a normal
approximation. See docs/statistics.md for how the verdicts use them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

__all__ = [
    "binom_cdf",
    "binom_sf",
    "mean_bounds",
    "min_samples_for_compliance",
    "percentile",
    "quantile_lower_bound_index",
    "quantile_upper_bound_index",
    "student_t_quantile",
]


def _log_pmf(k: int, n: int, p: float) -> float:
    if p == 0.0:
        return 0.0 if k == 0 else -math.inf
    if p == 1.0:
        return 0.0 if k == n else -math.inf
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(math.fsum(math.exp(v - top) for v in values))


def _check(n: int, p: float) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be within [0, 1], got {p}")


def _tail(n: int, p: float, start: int, stop: int, step: int) -> float:
    """Sum of the pmf over range(start, stop, step), a range that walks away from the
    mode, so its terms only shrink: the sum stops once they no longer count (e^-60 of
    the first), which keeps the cost at a few standard deviations' worth of terms."""
    logs: list[float] = []
    for i in range(start, stop, step):
        v = _log_pmf(i, n, p)
        if logs and not v > logs[0] - 60.0:
            break
        logs.append(v)
    return math.exp(_logsumexp(logs)) if logs else 0.0


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), exactly."""
    _check(n, p)
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    # Sum the tail away from the mean: the other one would be summed only to be
    # subtracted from 1, which loses the small probabilities a verdict depends on.
    if k < n * p:
        return min(1.0, _tail(n, p, k, -1, -1))
    return max(0.0, 1.0 - _tail(n, p, k + 1, n + 1, 1))


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exactly."""
    _check(n, p)
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if k > n * p:
        return min(1.0, _tail(n, p, k, n + 1, 1))
    return max(0.0, 1.0 - binom_cdf(k - 1, n, p))


def min_samples_for_compliance(percentile: float, alpha: float) -> int:
    """The fewest calls that can show compliance with a percentile at level alpha.

    With no call over budget, compliance is shown once P(X = 0) = q^n <= alpha,
    q = percentile / 100: n >= ln(alpha) / ln(q) (p99 at alpha 0.01: 459, as in
    MLPerf LoadGen's early-stopping rule).
    """
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"percentile must be within (0, 100), got {percentile}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be within (0, 1), got {alpha}")
    q = percentile / 100.0
    # The small relative tolerance keeps an exact boundary (0.5^n = alpha) from
    # tipping over to n + 1 through rounding of the logarithms.
    return max(1, math.ceil(math.log(alpha) / math.log(q) - 1e-9))


def percentile(sorted_values: Sequence[float] | np.ndarray, pct: float) -> float:
    """The pct-th percentile by linear interpolation between order statistics
    (numpy's default method, also Excel's PERCENTILE.INC)."""
    if len(sorted_values) == 0:
        raise ValueError("percentile of no values")
    return float(np.percentile(sorted_values, pct))


def _binom_cdf_array(n: int, q: float) -> np.ndarray:
    """P(Bin(n, q) <= k) for k = 0..n, vectorised (for confidence bounds, where the
    probabilities that matter are near 1 - alpha rather than in the far tails)."""
    i = np.arange(n, dtype=np.float64)
    steps = np.log(n - i) - np.log(i + 1) + math.log(q) - math.log1p(-q)
    log_pmf = np.concatenate(([n * math.log1p(-q)], n * math.log1p(-q) + np.cumsum(steps)))
    pmf = np.exp(log_pmf - log_pmf.max())
    cdf: np.ndarray = np.cumsum(pmf) / pmf.sum()
    return cdf


def quantile_upper_bound_index(n: int, q: float, alpha: float) -> int | None:
    """0-based index of the order statistic that is an upper (1 - alpha) confidence
    bound for the q-quantile, or None when n samples cannot give one.

    x_(k) (1-based) bounds the quantile from above when P(Bin(n, q) <= k - 1) >= 1 - alpha.
    """
    if n <= 0:
        return None
    cdf = _binom_cdf_array(n, q)[:n]  # P(X <= k - 1) for k = 1..n
    hits = np.nonzero(cdf >= 1.0 - alpha)[0]
    return int(hits[0]) if hits.size else None


def quantile_lower_bound_index(n: int, q: float, alpha: float) -> int | None:
    """0-based index of the order statistic that is a lower (1 - alpha) confidence
    bound for the q-quantile, or None when n samples cannot give one.

    x_(j) (1-based) bounds the quantile from below when P(Bin(n, q) >= j) >= 1 - alpha.
    """
    if n <= 0:
        return None
    cdf = _binom_cdf_array(n, q)
    # P(X >= j) = 1 - P(X <= j - 1) for j = 1..n
    sf = 1.0 - cdf[:n]
    hits = np.nonzero(sf >= 1.0 - alpha)[0]
    return int(hits[-1]) if hits.size else None


def student_t_quantile(prob: float, dof: int) -> float:
    """Quantile of Student's t distribution (Cornish-Fisher expansion around the normal
    quantile; within 0.5% of the exact value for dof >= 9 at the levels used here,
    where throughput verdicts use it: they need at least 10 samples)."""
    if dof < 1:
        raise ValueError("dof must be >= 1")
    z = NormalDist().inv_cdf(prob)
    v = float(dof)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
    )


def mean_bounds(values: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """(mean, lower, upper): one-sided (1 - alpha) Student-t bounds on the mean.

    With fewer than two values the bounds are infinite.
    """
    n = int(values.size)
    if n == 0:
        raise ValueError("mean of no values")
    mean = float(values.mean())
    if n < 2:
        return mean, -math.inf, math.inf
    sem = float(values.std(ddof=1)) / math.sqrt(n)
    t = student_t_quantile(1.0 - alpha, n - 1)
    return mean, mean - t * sem, mean + t * sem
