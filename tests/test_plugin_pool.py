"""The `worker_pool` fixture and the observed gate, seen from the command line."""

from __future__ import annotations

import json
import time

import psutil
import pytest
from _output import FAST_RUN

torch = pytest.importorskip("torch", reason="the pool serves a torch model")

FACTORIES = """
import os


def make_model():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64).eval()

    def serve(x):
        with torch.inference_mode():
            return float(model(x).sum())

    return serve


def make_failing():
    raise ValueError("boom: the model file is missing")
"""

POOL_TEST = """
import pytest
import torch

import factories


@pytest.mark.workers(2)
@pytest.mark.latency(ms=2000)
def test_pool(worker_pool, worker_config):
    pool = worker_pool(factories.make_model)
    assert len(pool.pids) == worker_config.workers == 2
    run = pool.run([torch.randn(8, 64)], concurrency=2, requests=200)
    assert run.requests == 200
    assert run.samples_ns.size == 200
    assert run.throughput_per_s > 0
    assert sum(run.per_worker_counts) >= 200


def test_failing_factory(worker_pool):
    worker_pool(factories.make_failing)
"""


def _children() -> set[int]:
    return {
        p.pid
        for p in psutil.Process().children(recursive=True)
        if "resource_tracker" not in " ".join(_cmdline(p))
    }


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _wait_until_gone(before: set[int], timeout_s: float = 5.0) -> set[int]:
    deadline = time.monotonic() + timeout_s
    left = _children() - before
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {
            pid
            for pid in _children() - before
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        }
    return left


def test_worker_pool_runs_judges_and_leaves_no_worker(pytester):
    before = _children()
    pytester.makepyfile(factories=FACTORIES, test_pool=POOL_TEST)
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--hwperf-json=out.json", "-rf")
    result.assert_outcomes(passed=1, failed=1)
    # A factory that raises fails its test with the worker's traceback.
    result.stdout.fnmatch_lines(
        [
            "*worker_pool: worker 0 (pid *) failed to start*",
            "*ValueError: boom: the model file is missing*",
        ]
    )
    document = json.loads((pytester.path / "out.json").read_text())
    (record,) = [r for r in document["measurements"] if r["name"] == "pool"]
    assert record["stats"]["n"] == 200
    assert record["budgets"][0]["outcome"] == "pass"
    assert record["worker_config"] == {"workers": 2, "threads": 1, "total": 2}
    assert _wait_until_gone(before) == set()


def test_without_hwperf_the_pool_serves_one_request_per_worker(pytester):
    before = _children()
    pytester.makepyfile(
        factories=FACTORIES,
        test_once="""
import pytest
import torch

import factories


@pytest.mark.workers(2)
def test_once(worker_pool):
    run = worker_pool(factories.make_model).run([torch.randn(8, 64)])
    assert run.requests == 2
""",
    )
    pytester.runpytest().assert_outcomes(passed=1)
    assert _wait_until_gone(before) == set()


def test_observed_gate_fails_more_busy_threads_than_cores(pytester):
    cores = len(psutil.Process().cpu_affinity() or [])
    # One more thread than cores burns CPU through the measurement. Each thread hashes
    # without the GIL and waits on nothing else (an OpenMP pool's threads wait at
    # barriers for a descheduled sibling: under another process's load they used less
    # than the gate's fifth of a core each). The target sleeps, leaving the GIL to them,
    # for 200 calls that span the gate's shortest window (0.5 s). Under fair scheduling
    # each gets 2 cores / (3 + others' runnable threads): a fifth of a core up to 7.
    pytester.makepyfile(
        f"""
        import hashlib
        import threading
        import time

        def test_over(hwperf):
            stop = threading.Event()
            data = b"x" * (8 << 20)

            def burn():
                while not stop.is_set():
                    hashlib.sha256(data).digest()

            threads = [threading.Thread(target=burn) for _ in range({cores + 1})]
            for thread in threads:
                thread.start()
            try:
                hwperf(time.sleep, 0.005)
            finally:
                stop.set()
                for thread in threads:
                    thread.join()
        """
    )
    result = pytester.runpytest("--hwperf", *FAST_RUN)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*oversubscribed: observed * busy threads (test process *) > * usable core*"]
    )
    off = pytester.runpytest("--hwperf", *FAST_RUN, "--hwperf-oversubscription=off")
    off.assert_outcomes(passed=1)
