"""A fixed reference workload, timed next to every measurement, to cancel machine drift.

The same runner is not the same speed from one run to the next: co-tenants, frequency
scaling and thermal state move every timing together. On this project's shared machine
the fastest call of one torch model read 2.0 ms in one session and 1.0 ms in another,
and drifted by 15% within a 100-minute series, both ways on different days. Timing a
fixed workload in each round of a measurement gives the machine's speed at that moment;
the regression gate rescales the baseline by the ratio of the two runs' reference times
(docs/statistics.md), so a slower machine is not mistaken for slower code.

The gauge measures what the gate compares: the fastest call, here of the reference
workload, timed right after each round of the measurement (`ReferenceGauge.again` for
the confirmation rounds), and the run's figure is the fastest of the rounds the machine
did not disturb, as the target's own figure is (measure/rounds.py). A busy stretch
slows a two-thread matrix product and a model by different factors; the quiet speed of
the machine is what both share.

The gauge has to feel what the model feels. A model on two threads slows down by half
when a co-tenant takes one of two cores, a single-threaded gauge not at all. So the
reference is chosen by what the measurement did: when more than one thread of the test
process was busy while it ran (a parallel model), the reference runs in the thread pool
such a model most likely uses, with the thread count in force: torch's intra-op pool
when torch is loaded, otherwise numpy's BLAS pool. A single-threaded target gets numpy on
one BLAS thread, and a target that kept no thread busy (it waited: a sleep, I/O, a
server in another process) none at all. The kind (`torch-mm/2`, `numpy-dot/1`) is
recorded, and runs are only rescaled against runs whose reference was of the same kind;
so a measurement whose saved runs share a kind is gauged with that kind, whatever its
threads did this time (a co-tenant can starve a parallel model's second thread below
the busy mark, which on the full co-tenant benchmark left 2 runs in 60 uncorrected).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_hwperf.measure.window import WindowContext

if TYPE_CHECKING:
    from pytest_hwperf.measure.result import Measurement

__all__ = [
    "Reference",
    "ReferenceGauge",
    "busy_threads",
    "reference",
    "thread_times",
    "timeable",
]

# A thread counts as busy when it used at least this share of a core over the window.
BUSY_FRACTION = 0.2

_SIZE = (64, 256, 256)  # (rows, inner, cols): ~50 us of BLAS on a current core


@dataclass(frozen=True)
class Reference:
    """The fastest of a burst of reference calls (ns), and which reference it was."""

    ns: float
    kind: str


def thread_times() -> dict[int, float]:
    """CPU seconds used so far by each thread of this process (empty when unreadable)."""
    from pytest_hwperf.measure.observe import read_thread_times

    return read_thread_times(descendants=False).get(os.getpid(), {})


def busy_threads(before: dict[int, float], after: dict[int, float], window_s: float) -> int:
    """How many threads used at least `BUSY_FRACTION` of a core between two snapshots
    (counted as the observed oversubscription gate counts them)."""
    if window_s <= 0:
        return 0
    from pytest_hwperf.measure.observe import classify_threads

    verdicts = classify_threads({0: before}, {0: after}, window_s, BUSY_FRACTION)
    return sum(verdicts[0].values())


def reference(
    *,
    parallel: bool = True,
    budget_s: float = 0.02,
    clock: Callable[[], int] = time.perf_counter_ns,
    kind: str | None = None,
) -> Reference:
    """The fastest call of the reference workload, over ~`budget_s` of calls.

    `parallel`: the measured target kept more than one thread busy, so the gauge runs
    in a thread pool with the thread count in force; otherwise on one thread. `kind`:
    this kind instead (the saved runs'), when it can be timed here (`timeable`).
    """
    if kind is not None and timeable(kind):
        family, _, threads = kind.partition("/")
        if family == "numpy-dot":
            return _numpy(budget_s, clock, threads=int(threads))
        return _torch(sys.modules["torch"], budget_s, clock)
    if not parallel:
        return _numpy(budget_s, clock, threads=1)
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "mm") and hasattr(torch, "get_num_threads"):
        return _torch(torch, budget_s, clock)
    return _numpy(budget_s, clock, threads=None)


def timeable(kind: str) -> bool:
    """Whether a reference of this kind (from a saved run: any text) can be timed here:
    `numpy-dot/N` on 1 to this machine's CPU count threads, `torch-mm/N` when torch is
    loaded with N intra-op threads."""
    family, _, threads = kind.partition("/")
    if not (threads.isdecimal() and len(threads) <= 4):  # int() takes every one of these
        return False
    if not 1 <= int(threads) <= (os.cpu_count() or 1):
        return False
    if family == "numpy-dot":
        return True
    torch = sys.modules.get("torch")
    return (
        family == "torch-mm"
        and torch is not None
        and hasattr(torch, "mm")
        and int(getattr(torch, "get_num_threads", lambda: 0)()) == int(threads)
    )


class ReferenceGauge(WindowContext):
    """The reference around one measurement, a window of measure/window.py: `start()`
    notes the test process's thread times, `stop()` right after the measurement counts
    the threads the target kept busy (which settles the kind), and `apply(measurement)`
    times the reference and records its time (ns) and kind; `finish()` gives them
    without a measurement. `again()` times the same kind once more, after each
    confirmation round. Nothing is timed until asked for, so a measurement that failed
    costs none.
    """

    def __init__(self, saved_kind: str | None = None) -> None:
        # The kind the saved runs were gauged with: timed in place of the one the busy
        # threads would settle on, so that this run is comparable with them.
        self._saved_kind = saved_kind
        self._threads: dict[int, float] = {}
        self._started = 0.0
        self._busy: int | None = None
        self._result: Reference | None = None

    def start(self) -> None:
        self._busy = self._result = None
        self._threads = thread_times()
        self._started = time.perf_counter()

    def stop(self) -> None:
        window = time.perf_counter() - self._started
        self._busy = busy_threads(self._threads, thread_times(), window)

    def finish(self) -> Reference:
        """The reference time and kind (closing the window first if still open)."""
        if self._result is not None:
            return self._result
        if self._busy is None:
            self.stop()
        self._result = reference(parallel=self._parallel, kind=self._kept_kind)
        return self._result

    @property
    def _parallel(self) -> bool:
        return (self._busy or 0) >= 2

    def again(self) -> float:
        """The same reference timed once more (ns), as a confirmation round ends."""
        return reference(parallel=self._parallel, kind=self.finish().kind).ns

    @property
    def idle(self) -> bool:
        """No thread of the test process was busy: the target waited (a sleep, I/O, a
        server in another process), and a waiting target does not follow the CPU's
        speed, so it is not gauged (nor rescaled); unless its saved runs were."""
        if self._busy is None:
            self.stop()
        return self._busy == 0 and self._kept_kind is None

    @property
    def _kept_kind(self) -> str | None:
        """The saved runs' kind, when it can be timed here (a saved file may hold any)."""
        kind = self._saved_kind
        return kind if kind is not None and timeable(kind) else None

    def apply(self, measurement: Measurement) -> None:
        if self.idle:
            return
        speed = self.finish()
        measurement.reference_ns, measurement.reference_kind = speed.ns, speed.kind


def _torch(torch: Any, budget_s: float, clock: Callable[[], int]) -> Reference:
    rows, inner, cols = _SIZE
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(rows, inner, generator=generator)
    b = torch.randn(inner, cols, generator=generator)
    with torch.inference_mode():
        ns = _timed(lambda: torch.mm(a, b), budget_s, clock)
    return Reference(ns, f"torch-mm/{int(torch.get_num_threads())}")


def _numpy(budget_s: float, clock: Callable[[], int], *, threads: int | None) -> Reference:
    """numpy's BLAS on `threads` threads (None: the count in force)."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows, inner, cols = _SIZE
    a = rng.standard_normal((rows, inner)).astype(np.float32)
    b = rng.standard_normal((inner, cols)).astype(np.float32)
    from pytest_hwperf.hardware.probing import quiet_probe

    with quiet_probe():  # the user's warning filters are not for our probing
        blas = _blas()
        if threads is None:
            found = [p.num_threads for p in blas.lib_controllers]
            threads = int(found[0]) if found else 1
        limits = blas.limit(limits=threads)
    with limits:
        ns = _timed(lambda: np.dot(a, b), budget_s, clock)
    return Reference(ns, f"numpy-dot/{threads}")


@functools.cache
def _blas() -> Any:
    """numpy's BLAS libraries, found once per process: scanning the loaded libraries
    costs ~0.2 s, each time (numpy, imported first, has loaded its BLAS by then)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


def _timed(call: Callable[[], object], budget_s: float, clock: Callable[[], int]) -> float:
    call()  # first call: page faults and BLAS or thread-pool initialisation
    fastest = 0
    count = 0
    deadline = clock() + int(budget_s * 1e9)
    while count < 5 or (clock() < deadline and count < 10_000):
        t0 = clock()
        call()
        elapsed = clock() - t0
        fastest = elapsed if count == 0 else min(fastest, elapsed)
        count += 1
    return float(fastest)
