"""Which threads actually competed for the CPU while a measurement ran.

The observed gate (DESIGN section 5, last bullet: "observed means busy") compares what
was in use with the usable cores. Counting threads that merely exist would fail nearly
every test: the interpreter, pytest and torch keep helper threads, and an OpenMP or
tokenizer pool parked between calls holds its threads without running them. None of
those compete for a core. So a thread counts as busy only when its CPU time (user +
system) grew by at least ``busy_fraction`` of the window's wall time, e.g. 10% of a
core; the others are counted as idle and reported, never failed.

The threads of this process and of all its descendants (worker processes, their own
children) are read, since worker processes left at torch's default thread count are
the classic oversubscription nobody declared. Threads and processes come and go during
a window: a thread that appears counts with its whole CPU time (all of it was spent in
the window), a process or thread that vanished before the end is ignored (its final
CPU time cannot be read), and a process that exits while it is being read is skipped.

The reader and the clock are injectable so the counting is tested on synthetic
snapshots; nothing here imports pytest.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import psutil

from pytest_hwperf.hardware.threads import thread_settings
from pytest_hwperf.measure.window import WindowContext

if TYPE_CHECKING:
    from pytest_hwperf.measure.result import Measurement

__all__ = [
    "DEFAULT_BUSY_FRACTION",
    "ThreadObservation",
    "ThreadSampler",
    "ThreadTimes",
    "classify_threads",
    "read_pools",
    "read_thread_times",
    "xdist_worker_count",
]

ThreadTimes = dict[int, dict[int, float]]
"""pid -> thread id -> CPU seconds (user + system) consumed so far."""

DEFAULT_BUSY_FRACTION = 0.1

# A process can exit, turn zombie or change owner between listing and reading it.
_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)


def _read_one(process: psutil.Process) -> dict[int, float] | None:
    try:
        threads = process.threads()
    except (*_GONE, OSError):
        return None
    return {thread.id: float(thread.user_time + thread.system_time) for thread in threads}


def read_thread_times(pid: int | None = None, *, descendants: bool = True) -> ThreadTimes:
    """Per-thread CPU seconds of process ``pid`` (default: this one) and, unless
    ``descendants`` is false, of its descendants.

    Never raises for a process that exits while it is read: that process is left out
    (an empty dict when ``pid`` itself is gone).
    """
    try:
        root = psutil.Process(pid)
        processes = [root, *(root.children(recursive=True) if descendants else ())]
    except (*_GONE, OSError):
        return {}
    times: ThreadTimes = {}
    for process in processes:
        threads = _read_one(process)
        if threads is not None:
            times[process.pid] = threads
    return times


def read_pools() -> dict[str, int]:
    """Pool sizes in this process: torch intra/inter-op (when torch is loaded) and each
    native pool threadpoolctl finds, keyed by its internal API ("openblas", "openmp",
    "mkl"...); when one API is loaded twice (numpy's and scipy's OpenBLAS) the larger
    size is kept, being the one that can oversubscribe."""
    settings = thread_settings()
    pools: dict[str, int] = {}
    for key in ("torch_intra_op", "torch_inter_op"):
        value = settings.get(key)
        if isinstance(value, int):
            pools[key] = value
    native = settings.get("native_pools")
    if isinstance(native, list):
        for pool in native:
            if not isinstance(pool, dict):
                continue
            api, size = pool.get("internal_api"), pool.get("num_threads")
            if isinstance(api, str) and isinstance(size, int):
                pools[api] = max(size, pools.get(api, 0))
    return pools


def xdist_worker_count(environ: Mapping[str, str] | None = None) -> int:
    """How many pytest-xdist workers run on this machine (1 outside xdist)."""
    env = os.environ if environ is None else environ
    try:
        count = int(env.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    except ValueError:
        return 1
    return max(1, count)


def classify_threads(
    before: ThreadTimes, after: ThreadTimes, window_s: float, busy_fraction: float
) -> dict[int, dict[int, bool]]:
    """pid -> thread id -> busy, for every thread alive at the end of the window.

    Busy means the thread's CPU time grew by at least ``busy_fraction * window_s`` (and
    by something at all, so a zero-length window does not make every thread busy).
    A thread or process absent from ``before`` counts with its whole CPU time, as does
    a thread whose time went down (its id was reused by a new thread).
    """
    threshold = busy_fraction * max(window_s, 0.0)
    verdicts: dict[int, dict[int, bool]] = {}
    for pid, threads in after.items():
        earlier = before.get(pid, {})
        process: dict[int, bool] = {}
        for tid, cpu in threads.items():
            start = earlier.get(tid, 0.0)
            used = cpu - start if cpu >= start else cpu
            process[tid] = used > 0 and used >= threshold
        verdicts[pid] = process
    return verdicts


@dataclass(frozen=True)
class ThreadObservation:
    """What competed for the CPU during one window.

    ``busy_by_process`` and ``idle_by_process`` hold every process alive at the end of
    the window (counts may be 0); ``test_pid`` is the process the sampler watched,
    the others are its descendants. ``pools`` are this process's pool sizes (see
    :func:`read_pools`); ``xdist_workers`` the pytest-xdist workers on this machine.
    """

    test_pid: int
    busy_by_process: dict[int, int]
    idle_by_process: dict[int, int]
    busy_total: int
    window_s: float
    pools: dict[str, int]
    xdist_workers: int

    @property
    def idle_total(self) -> int:
        """Threads that existed but did not compete (listed in reports, never failed)."""
        return sum(self.idle_by_process.values())

    def children_only(self) -> ThreadObservation:
        """The busy threads of the descendants only, the watched process counted as 0
        busy: a worker pool's load, driven from the test process that stands for clients
        running elsewhere in production."""
        busy = {pid: n for pid, n in self.busy_by_process.items() if pid != self.test_pid}
        return replace(
            self,
            busy_by_process={self.test_pid: 0, **busy},
            busy_total=sum(busy.values()),
        )

    def to_record(self) -> dict[str, object]:
        """A JSON-ready dict (pids as string keys, as JSON requires)."""
        return {
            "test_pid": self.test_pid,
            "busy_by_process": {str(pid): n for pid, n in sorted(self.busy_by_process.items())},
            "idle_by_process": {str(pid): n for pid, n in sorted(self.idle_by_process.items())},
            "busy_total": self.busy_total,
            "idle_total": self.idle_total,
            "window_s": self.window_s,
            "pools": dict(sorted(self.pools.items())),
            "xdist_workers": self.xdist_workers,
        }


class ThreadSampler(WindowContext):
    """Counts busy threads over a window; wrap the measurement in it.

    >>> with ThreadSampler() as sampler:  # doctest: +SKIP
    ...     run_measurement()
    >>> sampler.observation.busy_total  # doctest: +SKIP

    ``start()``/``stop()`` do the same without a ``with``, and ``apply(measurement)``
    records the counts (a window of measure/window.py). The window should be long
    enough for the kernel's CPU accounting (clock ticks, usually 10 ms) to resolve
    ``busy_fraction`` of it: a second or more is comfortable. ``children_only``: count
    only the descendants' busy threads (see :meth:`ThreadObservation.children_only`).
    """

    def __init__(
        self,
        *,
        busy_fraction: float = DEFAULT_BUSY_FRACTION,
        pid: int | None = None,
        read_threads: Callable[[], ThreadTimes] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        read_pools: Callable[[], dict[str, int]] = read_pools,
        environ: Mapping[str, str] | None = None,
        children_only: bool = False,
    ) -> None:
        if not 0 <= busy_fraction <= 1:
            raise ValueError(f"busy_fraction must be within [0, 1], got {busy_fraction!r}")
        self.busy_fraction = busy_fraction
        self.pid = os.getpid() if pid is None else pid
        self._read_threads = read_threads or functools.partial(read_thread_times, self.pid)
        self._clock = clock
        self._read_pools = read_pools
        self._environ = environ
        self.children_only = children_only
        self._before: ThreadTimes | None = None
        self._start = 0.0
        self._observation: ThreadObservation | None = None

    def start(self) -> None:
        """Take the first snapshot; the window opens."""
        self._observation = None
        self._before = self._read_threads()
        self._start = self._clock()

    def stop(self) -> ThreadObservation:
        """Take the second snapshot and count; the window closes."""
        if self._before is None:
            raise RuntimeError("ThreadSampler.stop() called before start()")
        window_s = max(0.0, self._clock() - self._start)
        after = self._read_threads()
        verdicts = classify_threads(self._before, after, window_s, self.busy_fraction)
        busy = {pid: sum(threads.values()) for pid, threads in verdicts.items()}
        idle = {pid: len(threads) - busy[pid] for pid, threads in verdicts.items()}
        self._before = None
        observation = ThreadObservation(
            test_pid=self.pid,
            busy_by_process=busy,
            idle_by_process=idle,
            busy_total=sum(busy.values()),
            window_s=window_s,
            pools=self._read_pools(),
            xdist_workers=xdist_worker_count(self._environ),
        )
        if self.children_only:
            observation = observation.children_only()
        self._observation = observation
        return observation

    def apply(self, measurement: Measurement) -> None:
        """The counts onto the measurement (`observed_threads`)."""
        measurement.observed_threads = self.observation.to_record()

    @property
    def observation(self) -> ThreadObservation:
        """The last window's counts; RuntimeError before a window has closed."""
        if self._observation is None:
            raise RuntimeError("no observation yet: the ThreadSampler window has not closed")
        return self._observation
