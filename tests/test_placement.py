"""xdist placement: disjoint CPU shares and one GPU per worker."""

from __future__ import annotations

import pytest

from pytest_hwperf.workers.placement import (
    apply_placement,
    split_cpus,
    xdist_placement,
    xdist_worker,
)


def test_split_cpus_gives_disjoint_contiguous_runs():
    assert split_cpus([3, 0, 1, 2, 4], 2) == ((0, 1, 2), (3, 4))
    assert split_cpus(range(4), 4) == ((0,), (1,), (2,), (3,))
    with pytest.raises(ValueError, match="cannot pin 3 workers to disjoint CPU sets: only 2 CPUs"):
        split_cpus([0, 1], 3)


def test_each_worker_gets_its_share_and_a_gpu_round_robin():
    gpus = ["GPU-aaa", "GPU-bbb"]
    shares = [xdist_placement(f"gw{i}", 4, range(8), gpus) for i in range(4)]
    assert [p.cpus for p in shares] == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert all(p.disjoint for p in shares)
    assert [p.cuda_visible_devices for p in shares] == ["GPU-aaa", "GPU-bbb", "GPU-aaa", "GPU-bbb"]


def test_more_workers_than_cpus_share_one_cpu_each_and_say_so():
    placement = xdist_placement("gw3", 4, [0, 1], [])
    assert placement.cpus == (1,)
    assert placement.disjoint is False
    assert placement.cuda_visible_devices is None
    assert placement.to_record()["disjoint"] is False


def test_apply_sets_thread_limits_and_gpu_in_the_given_environment(monkeypatch):
    import os

    pinned: list[tuple[int, ...]] = []
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: pinned.append(tuple(cpus)))
    env: dict[str, str] = {}
    apply_placement(xdist_placement("gw1", 2, [0, 1, 2, 3], ["GPU-x", "GPU-y"]), env)
    assert pinned == [(2, 3)]
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "2"
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-y"


def test_xdist_worker_reads_the_environment():
    assert xdist_worker({"PYTEST_XDIST_WORKER": "gw2", "PYTEST_XDIST_WORKER_COUNT": "4"}) == (
        "gw2",
        4,
    )
    assert xdist_worker({}) is None
    assert xdist_worker({"PYTEST_XDIST_WORKER": "gw2", "PYTEST_XDIST_WORKER_COUNT": "x"}) is None
