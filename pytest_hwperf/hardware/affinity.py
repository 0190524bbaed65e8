"""The process's CPU affinity, read before anything can pin the main thread.

Its own light module (no psutil): the plugin reads it at every pytest start, with or
without --hwperf.
"""

from __future__ import annotations

import os

__all__ = ["read_affinity"]


def read_affinity() -> tuple[int, ...]:
    """The CPUs this process may run on, sorted.

    Read it early (at plugin configuration): OpenMP runtimes loaded with torch or numpy
    may pin the main thread when ``OMP_PROC_BIND``, ``GOMP_CPU_AFFINITY`` or
    ``KMP_AFFINITY`` are set, shrinking the set seen afterwards to a single CPU.
    """
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        try:
            cpus: set[int] = getaffinity(0)
            if cpus:
                return tuple(sorted(cpus))
        except OSError:
            pass
    return tuple(range(os.cpu_count() or 1))
