"""A fixed reference workload, timed next to every measurement, to cancel machine drift.

The same runner is not the same speed from one run to the next: co-tenants, frequency
scaling and thermal state move every timing together. On this project's shared machine
a torch model's median moved by 45% between two runs minutes apart, and a fixed matrix
product moved with it (the ratio stayed within 1.3%). Timing a fixed workload right
before and after each measurement gives the machine's speed at that moment; the
regression gate rescales the baseline by the ratio of the two runs' reference times
(docs/statistics.md), so a slower machine is not mistaken for slower code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["reference_ns"]

_SIZE = (64, 256, 256)  # (rows, inner, cols): ~50 us of BLAS on a current core


def reference_ns(
    *, budget_s: float = 0.03, clock: Callable[[], int] = time.perf_counter_ns
) -> float:
    """Median time of one call of the reference workload, over ~`budget_s` of calls."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        # One BLAS thread: a multi-threaded BLAS would leave its workers spinning into
        # the measurement that follows (the observed gate would count them busy), and a
        # single thread is the steadier gauge of the machine's speed.
        return _timed(np, budget_s, clock)


def _timed(np: Any, budget_s: float, clock: Callable[[], int]) -> float:
    rng = np.random.default_rng(0)
    rows, inner, cols = _SIZE
    a = rng.standard_normal((rows, inner)).astype(np.float32)
    b = rng.standard_normal((inner, cols)).astype(np.float32)
    np.dot(a, b)  # first call: page faults and BLAS initialisation
    samples: list[int] = []
    deadline = clock() + int(budget_s * 1e9)
    while len(samples) < 5 or (clock() < deadline and len(samples) < 10_000):
        t0 = clock()
        np.dot(a, b)
        samples.append(clock() - t0)
    return float(np.median(samples))
