"""How long this process's threads waited for a CPU while a round was measured.

On a shared runner the timings a round takes depend on who else runs. A torch model on
two threads with a co-tenant spinning on the same two cores does not slow down by a
third: one of its threads waits for a CPU at every barrier, and its p95 rose 40-100x
here (docs/benchmarks.md), its fastest call up to 100x in a round spent wholly inside
the co-tenant's burst. Such a round says nothing about the code.

The kernel says how long each thread waited on a run queue: the second field of
``/proc/<pid>/task/<tid>/schedstat`` (nanoseconds, since the thread started). The
threads' waits summed over a round, divided by the round's wall time, is the round's
*CPU wait*: 0 when every thread ran whenever it was runnable, 1 when, on average, one of
them was kept waiting the whole round. Measured on this project's 2-core runner: quiet
rounds 0.003-0.03; rounds beside a spinning co-tenant ~1.0, with their p95 up 50-100x;
rounds with a brief burst 0.09-0.13, their p95 up to 2x.

A round whose CPU wait reaches ``DISTURBED_CPU_WAIT`` (pytest_hwperf/busy.py) is
*disturbed*. Confirmation
rounds (measure/rounds.py) do not count disturbed rounds, and measure quiet ones
instead, up to a limit; the gates judge the quiet rounds, and a verdict that only
disturbed rounds could give is not given (docs/statistics.md, "A busy machine").

Where the kernel does not keep these statistics (no ``/proc``, or a kernel without
``CONFIG_SCHED_INFO``) the wait is unknown (None) and no round counts as disturbed: the
gates then behave as they did before they could tell.

A process whose own threads outnumber the cores waits too, with nobody else running;
the observed oversubscription gate names that case (workers/gate.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from pytest_hwperf.busy import DISTURBED_CPU_WAIT, busy_note, is_disturbed

__all__ = [
    "DISTURBED_CPU_WAIT",
    "WaitClock",
    "busy_note",
    "cpu_wait",
    "is_disturbed",
    "read_wait_ns",
]

WaitClock = Callable[[], "int | None"]
"""Reads the total run-queue wait (ns) of this process's threads so far, or None."""


def read_wait_ns(pid: int | None = None) -> int | None:
    """The run-queue wait of every thread of process `pid` (this one by default), summed,
    in ns since each started; None when the kernel does not say."""
    base = f"/proc/{'self' if pid is None else pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return None
    total = 0
    seen = False
    for tid in tids:
        try:
            with open(f"{base}/{tid}/schedstat", "rb") as fh:
                fields = fh.read(128).split()
        except OSError:  # the thread ended meanwhile
            continue
        if len(fields) >= 2 and fields[1].isdigit():
            total += int(fields[1])
            seen = True
    return total if seen else None


def cpu_wait(before_ns: int | None, after_ns: int | None, wall_ns: int) -> float | None:
    """The CPU wait of a round: the threads' added wait over its wall time; None when
    either reading is missing, the wall time is not positive, or the wait went down
    (threads that ended took their wait with them)."""
    if before_ns is None or after_ns is None or wall_ns <= 0:
        return None
    added = after_ns - before_ns
    if added < 0:
        return None
    return added / wall_ns
