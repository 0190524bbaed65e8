"""A fixed reference workload, timed next to every measurement, to cancel machine drift.

The same runner is not the same speed from one run to the next: co-tenants, frequency
scaling and thermal state move every timing together. On this project's shared machine
a torch model's median moved by 45% between two runs minutes apart, and a fixed matrix
product moved with it (the ratio stayed within 1.3%). Timing a fixed workload right
before and after each measurement gives the machine's speed at that moment; the
regression gate rescales the baseline by the ratio of the two runs' reference times
(docs/statistics.md), so a slower machine is not mistaken for slower code.

The gauge has to feel what the model feels. A model on two threads slows down by half
when a co-tenant takes one of two cores, a single-threaded gauge not at all. So the
reference runs in the thread pool the model most likely uses, with the thread count in
force, when torch is loaded (a torch model): torch's intra-op pool, which leaves no second
pool's workers spinning into the measurement (libgomp's spin is short). Otherwise numpy's
BLAS on one thread: OpenBLAS workers spin for ~0.1 s after a call, long enough to
disturb a measurement that does not use them. The kind (`torch-mm/2`, `numpy-dot/1`)
is recorded, and runs are only rescaled against runs whose reference was of the same
kind.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Reference", "reference"]

_SIZE = (64, 256, 256)  # (rows, inner, cols): ~50 us of BLAS on a current core


@dataclass(frozen=True)
class Reference:
    """The median time of one reference call, and which reference it was."""

    ns: float
    kind: str


def reference(
    *, budget_s: float = 0.03, clock: Callable[[], int] = time.perf_counter_ns
) -> Reference:
    """Median time of one call of the reference workload, over ~`budget_s` of calls."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "mm") and hasattr(torch, "get_num_threads"):
        return _torch(torch, budget_s, clock)
    return _numpy(budget_s, clock)


def _torch(torch: Any, budget_s: float, clock: Callable[[], int]) -> Reference:
    rows, inner, cols = _SIZE
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(rows, inner, generator=generator)
    b = torch.randn(inner, cols, generator=generator)
    with torch.inference_mode():
        ns = _timed(lambda: torch.mm(a, b), budget_s, clock)
    return Reference(ns, f"torch-mm/{int(torch.get_num_threads())}")


def _numpy(budget_s: float, clock: Callable[[], int]) -> Reference:
    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    rows, inner, cols = _SIZE
    a = rng.standard_normal((rows, inner)).astype(np.float32)
    b = rng.standard_normal((inner, cols)).astype(np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        ns = _timed(lambda: np.dot(a, b), budget_s, clock)
    return Reference(ns, "numpy-dot/1")


def _timed(call: Callable[[], object], budget_s: float, clock: Callable[[], int]) -> float:
    import numpy as np

    call()  # first call: page faults and BLAS or thread-pool initialisation
    samples: list[int] = []
    deadline = clock() + int(budget_s * 1e9)
    while len(samples) < 5 or (clock() < deadline and len(samples) < 10_000):
        t0 = clock()
        call()
        samples.append(clock() - t0)
    return float(np.median(samples))
