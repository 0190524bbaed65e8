"""The declared and observed oversubscription gates: exact one-line reasons."""

from __future__ import annotations

import pytest

from pytest_hwperf.measure.observe import ThreadObservation
from pytest_hwperf.workers.gate import Oversubscription, declared_gate, observed_gate

SOURCE = "affinity 0-1, no CPU quota"


def observation(busy, idle, *, pools=None, xdist_workers=1, test_pid=100):
    return ThreadObservation(
        test_pid=test_pid,
        busy_by_process=busy,
        idle_by_process=idle,
        busy_total=sum(busy.values()),
        window_s=1.0,
        pools={} if pools is None else pools,
        xdist_workers=xdist_workers,
    )


# ---------------------------------------------------------------------- declared


def test_four_single_thread_workers_on_two_cores():
    result = declared_gate(4, 1, 2, SOURCE)
    assert result == Oversubscription(
        total=4,
        usable_cores=2,
        usable_source=SOURCE,
        message="4 workers x 1 thread = 4 > 2 usable cores (affinity 0-1, no CPU quota)",
    )


def test_two_workers_of_two_threads_on_two_cores():
    result = declared_gate(2, 2, 2, SOURCE)
    assert result is not None
    assert (
        result.message == "2 workers x 2 threads = 4 > 2 usable cores (affinity 0-1, no CPU quota)"
    )
    assert result.total == 4


def test_singular_worker_and_core():
    result = declared_gate(1, 2, 1, "affinity 0 (1 CPU), no CPU quota")
    assert result is not None
    assert (
        result.message
        == "1 worker x 2 threads = 2 > 1 usable core (affinity 0 (1 CPU), no CPU quota)"
    )


@pytest.mark.parametrize(
    ("workers", "threads", "cores"), [(1, 1, 2), (2, 1, 2), (1, 2, 2), (1, 1, 1)]
)
def test_fitting_configs_pass(workers, threads, cores):
    assert declared_gate(workers, threads, cores, SOURCE) is None


def test_source_is_quoted_as_given():
    source = (
        "CPU quota 1.5 cores (cgroup v2 cpu.max at /sys/fs/cgroup), rounded up to 2"
        "; affinity 0-3 (4 CPUs)"
    )
    result = declared_gate(3, 1, 2, source)
    assert result is not None
    assert result.message == f"3 workers x 1 thread = 3 > 2 usable cores ({source})"
    assert result.to_record() == {
        "total": 3,
        "usable_cores": 2,
        "usable_source": source,
        "message": result.message,
    }


# ---------------------------------------------------------------------- observed


def test_observed_within_cores_passes_however_many_idle():
    assert observed_gate(observation({100: 1, 123: 1}, {100: 30, 123: 8}), 2, SOURCE) is None


def test_observed_two_torch_workers_at_default_threads():
    result = observed_gate(
        observation({100: 0, 123: 2, 124: 2}, {100: 5, 123: 1, 124: 1}), 2, SOURCE
    )
    assert result is not None
    assert result.total == 4
    assert result.message == (
        "observed 4 busy threads (test process 0, worker pid 123: 2, worker pid 124: 2)"
        " > 2 usable cores (affinity 0-1, no CPU quota); idle: 7 threads"
    )


def test_observed_message_as_in_the_design():
    result = observed_gate(observation({100: 2, 123: 2, 124: 0}, {100: 5, 124: 0}), 2, SOURCE)
    assert result is not None
    assert result.message == (
        "observed 4 busy threads (test process 2, worker pid 123: 2)"
        " > 2 usable cores (affinity 0-1, no CPU quota); idle: 5 threads"
    )


def test_observed_lists_pools_and_xdist_workers():
    pools = {"openmp": 2, "torch_inter_op": 2, "openblas": 2, "torch_intra_op": 2}
    result = observed_gate(observation({100: 3}, {100: 1}, pools=pools, xdist_workers=2), 2, SOURCE)
    assert result is not None
    assert result.message == (
        "observed 3 busy threads (test process 3) > 2 usable cores (affinity 0-1, no CPU quota)"
        "; idle: 1 thread; pools: torch intra-op 2, torch inter-op 2, openblas 2, openmp 2"
        "; 2 xdist workers on this machine"
    )


def test_observed_single_xdist_worker_is_not_mentioned():
    result = observed_gate(
        observation({100: 2}, {100: 0}, xdist_workers=1), 1, "affinity 0 (1 CPU)"
    )
    assert result is not None
    assert result.message == (
        "observed 2 busy threads (test process 2) > 1 usable core (affinity 0 (1 CPU))"
        "; idle: 0 threads"
    )
