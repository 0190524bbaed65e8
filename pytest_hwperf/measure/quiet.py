"""Waiting for a quiet machine: a pause that ends as soon as the co-tenant's burst has.

A round measured while another program keeps this test's CPUs busy is disturbed
(measure/contention.py) and the gates leave it out; on this project's 2-core runner a
torch model's call took ~120 ms inside such a burst against 0.9 ms outside it, so a
disturbed round costs far more than a quiet one and tells nothing. Rather than sleeping
a fixed time after one, `until_quiet` watches the CPUs this process may run on
(`hardware/affinity.read_affinity`) and returns at the first short step in which other processes
used less than `QUIET_SHARE` of them, or when the longest wait is over.

The share is read from the kernel's per-CPU counters (`psutil.cpu_times(percpu=True)`:
every state but idle and iowait counts as busy, steal included, so a hypervisor's
other guests count too) less this process's own CPU time over the step. Where the
counters cannot be read the share is unknown (None) and the wait lasts its full length,
as a plain sleep did.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pytest_hwperf.hardware.affinity import read_affinity

__all__ = ["QUIET_SHARE", "STEP_S", "BusyShare", "busy_share", "until_quiet"]

QUIET_SHARE = 0.3
"""The share of this process's CPUs other processes may use over a step for it to be
quiet: a co-tenant spinning on one of two cores reads ~0.5 and keeps a two-thread model
waiting at each barrier; an idle runner reads 0-0.1 (the counters tick every 10 ms)."""

STEP_S = 0.05
"""How long each look at the CPUs lasts."""

BusyShare = Callable[[], "float | None"]
"""Reads the share of this process's CPUs other processes used since the last reading
(0-1; None while unknown, as at the first reading)."""


def busy_share() -> BusyShare:
    """A reader of other processes' share of this process's CPUs: each call returns the
    share since the previous one (None at the first, or when the counters fail)."""
    import psutil

    cpus = read_affinity()
    me = psutil.Process()
    last: list[tuple[float, float, float] | None] = [None]

    def sample() -> tuple[float, float, float] | None:
        try:
            per_cpu = psutil.cpu_times(percpu=True)
            own = me.cpu_times()
        except (OSError, psutil.Error):
            return None
        chosen = [per_cpu[i] for i in cpus if i < len(per_cpu)] if cpus else per_cpu
        if not chosen:
            return None
        busy = 0.0
        for times in chosen:
            idle = times.idle + getattr(times, "iowait", 0.0)
            busy += sum(times) - idle
        return busy, own.user + own.system, float(len(chosen))

    def read() -> float | None:
        now, then = sample(), last[0]
        started = time.monotonic()
        last[0] = None if now is None else (now[0], now[1], started)
        if now is None or then is None:
            return None
        wall = started - then[2]
        if wall <= 0:
            return None
        others = (now[0] - then[0]) - (now[1] - then[1])
        return min(1.0, max(0.0, others / (wall * now[2])))

    return read


def until_quiet(
    longest_s: float,
    *,
    read: BusyShare | None = None,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    step_s: float = STEP_S,
    quiet_share: float = QUIET_SHARE,
) -> float:
    """Wait until other processes leave this process's CPUs quiet (a step in which their
    share stayed under `quiet_share`), `longest_s` at most; returns the seconds waited.
    With the share unknown the wait lasts `longest_s`."""
    if longest_s <= 0:
        return 0.0
    share = busy_share() if read is None else read
    start = clock()
    share()  # the first reading: a start for the next
    while True:
        left = longest_s - (clock() - start)
        if left <= 0:
            break
        sleep(min(step_s, left))
        found = share()
        if found is not None and found < quiet_share:
            break
    return clock() - start
