"""The oversubscription gates: more runnable threads than usable cores.

When more threads want to run than there are cores, they take turns: latency grows
with the queue and throughput drops (context switches, cache thrash, OpenMP threads
spinning for a barrier while their partner waits for a core). Numbers measured that way
describe the runner's overload, not the model, so such a configuration fails with one
line that names the numbers and where the core count came from (DESIGN section 5).

The declared gate checks ``workers x threads`` before anything runs; the observed gate
checks what was busy during the measurement (see :mod:`pytest_hwperf.measure.observe`),
which catches the configurations nobody declared, such as worker processes left at
torch's default thread count. Both are pure functions of their inputs; what to do with
a result (fail, warn, nothing) is the plugin's choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_hwperf.measure.observe import ThreadObservation

__all__ = ["Oversubscription", "declared_gate", "observed_gate"]


@dataclass(frozen=True)
class Oversubscription:
    """A configuration that needs more cores than this process may use, and why."""

    total: int
    usable_cores: int
    usable_source: str
    message: str

    def to_record(self) -> dict[str, object]:
        """A JSON-ready dict for reports."""
        return {
            "total": self.total,
            "usable_cores": self.usable_cores,
            "usable_source": self.usable_source,
            "message": self.message,
        }


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _cores(usable_cores: int, usable_source: str) -> str:
    return f"{usable_cores} usable {'core' if usable_cores == 1 else 'cores'} ({usable_source})"


def declared_gate(
    workers: int, threads: int, usable_cores: int, usable_source: str
) -> Oversubscription | None:
    """None when ``workers x threads`` fits the usable cores, else the one-line reason:
    "4 workers x 1 thread = 4 > 2 usable cores (affinity 0-1, no CPU quota)"."""
    total = workers * threads
    if total <= usable_cores:
        return None
    message = (
        f"{_count(workers, 'worker')} x {_count(threads, 'thread')} = {total}"
        f" > {_cores(usable_cores, usable_source)}"
    )
    return Oversubscription(total, usable_cores, usable_source, message)


_POOL_NAMES = {"torch_intra_op": "torch intra-op", "torch_inter_op": "torch inter-op"}


def _processes(observation: ThreadObservation) -> str:
    own = observation.busy_by_process.get(observation.test_pid, 0)
    parts = [f"test process {own}"]
    for pid, busy in sorted(observation.busy_by_process.items()):
        if pid != observation.test_pid and busy > 0:
            parts.append(f"worker pid {pid}: {busy}")
    return ", ".join(parts)


def _pools(pools: dict[str, int]) -> str:
    ordered = [key for key in _POOL_NAMES if key in pools]
    ordered += sorted(key for key in pools if key not in _POOL_NAMES)
    return ", ".join(f"{_POOL_NAMES.get(key, key)} {pools[key]}" for key in ordered)


def observed_gate(
    observation: ThreadObservation, usable_cores: int, usable_source: str
) -> Oversubscription | None:
    """None when the threads busy during the window fit the usable cores, else a line
    such as "observed 4 busy threads (test process 2, worker pid 123: 2) > 2 usable
    cores (affinity 0-1, no CPU quota); idle: 5 threads; pools: torch intra-op 2,
    openblas 2; 2 xdist workers on this machine".

    Idle threads never fail (they exist but do not compete) and are only listed; the
    pools are this process's; the xdist count is named when there is more than one
    worker, since the others run beside this one.
    """
    total = observation.busy_total
    if total <= usable_cores:
        return None
    message = (
        f"observed {_count(total, 'busy thread')} ({_processes(observation)})"
        f" > {_cores(usable_cores, usable_source)}"
        f"; idle: {_count(observation.idle_total, 'thread')}"
    )
    if observation.pools:
        message += f"; pools: {_pools(observation.pools)}"
    if observation.xdist_workers > 1:
        message += f"; {observation.xdist_workers} xdist workers on this machine"
    return Oversubscription(total, usable_cores, usable_source, message)
