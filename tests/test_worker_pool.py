"""The worker pool: spawned model servers driven by a closed loop, and none outliving it.

Real processes throughout (spawn costs ~0.5 s per pool here, ~2 s with torch), so the
pools are few and the request counts small; the torch pool is shared by the tests that
only read from it. Every test checks that no child process it started is left (the
multiprocessing resource tracker, a helper "spawn" starts once per parent, is not a
worker and is ignored).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from _pool_factories import (
    CrashOn,
    LinearFactory,
    RaiseOn,
    SegfaultOn,
    Sleepy,
    SlowStart,
    failing_factory,
    sum_factory,
)

from pytest_hwperf.hardware.cpu import read_affinity
from pytest_hwperf.judge.budgets import LatencyBudget, Outcome, ThroughputBudget
from pytest_hwperf.workers.pool import (
    TIMING_METHOD,
    PoolConfig,
    PoolRun,
    WorkerError,
    WorkerPool,
    measurement_from_run,
    split_cpus,
    worker_environment,
)

TESTS_DIR = Path(__file__).resolve().parent
GRACE_S = 5.0


def _live_children() -> dict[int, str]:
    """This process's live descendants (pid -> command line), resource tracker excluded."""
    found: dict[int, str] = {}
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(child.cmdline())
        except psutil.Error:  # exited while being read
            continue
        if "multiprocessing.resource_tracker" in cmdline:
            continue
        found[child.pid] = cmdline
    return found


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_until_no_new_children(before: set[int]) -> dict[int, str]:
    deadline = time.monotonic() + GRACE_S
    while True:
        left = {pid: cmd for pid, cmd in _live_children().items() if pid not in before}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_child_left() -> Iterator[None]:
    """After the test body (a short grace period allowed), no child it started is alive."""
    before = set(_live_children())
    yield
    left = _wait_until_no_new_children(before)
    assert not left, f"worker processes outlived the test: {left}"


# ------------------------------------------------------------- pure parts, no processes


def test_config_is_validated() -> None:
    assert PoolConfig(workers=2, cpus=(3, 1, 1)).cpus == (1, 3)
    assert PoolConfig(workers=2, threads=2, pin=True).describe() == (
        "2 workers x 2 threads, pinned"
    )
    with pytest.raises(ValueError, match="workers must be at least 1"):
        PoolConfig(workers=0)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        PoolConfig(workers=1, threads=0)
    with pytest.raises(TypeError, match="workers must be an int"):
        PoolConfig(workers=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cpus must not be empty"):
        PoolConfig(workers=1, cpus=())
    with pytest.raises(ValueError, match="request_timeout_s must be positive"):
        PoolConfig(workers=1, request_timeout_s=0)


def test_split_cpus_gives_disjoint_contiguous_sets() -> None:
    assert split_cpus([0, 1, 2, 3], 2) == ((0, 1), (2, 3))
    assert split_cpus([4, 0, 1, 2, 3], 2) == ((0, 1, 2), (3, 4))
    assert split_cpus([0, 1], 2) == ((0,), (1,))
    assert split_cpus([8, 9, 10], 1) == ((8, 9, 10),)
    with pytest.raises(ValueError, match=r"cannot pin 3 workers .* only 2 CPUs \(0-1\)"):
        split_cpus([0, 1], 3)


def test_worker_environment_sets_limits_and_binding() -> None:
    pinned = worker_environment(2, (2, 3))
    assert pinned["OMP_NUM_THREADS"] == pinned["MKL_NUM_THREADS"] == "2"
    assert pinned["OPENBLAS_NUM_THREADS"] == "2"
    assert pinned["OMP_PROC_BIND"] == "close"
    assert pinned["OMP_PLACES"] == "{2},{3}"
    assert pinned["KMP_AFFINITY"] == "granularity=fine,compact"
    free = worker_environment(1, None)
    assert free["OMP_NUM_THREADS"] == "1"
    assert free["OMP_PROC_BIND"] == "false"
    assert free["KMP_AFFINITY"] is None  # removed: unpinned workers must not bind
    assert free["OMP_PLACES"] is None


def test_bad_requests_are_refused_before_any_process_starts() -> None:
    pool = WorkerPool(sum_factory, PoolConfig(workers=1))
    with pytest.raises(ValueError, match="requests=, duration_s= or both"):
        pool.run([1], concurrency=1)
    with pytest.raises(ValueError, match="concurrency must be an int >= 1"):
        pool.run([1], concurrency=0, requests=1)
    with pytest.raises(ValueError, match="inputs must not be empty"):
        pool.run([], concurrency=1, requests=1)
    with pytest.raises(TypeError, match=r"input 0 .* cannot be pickled"):
        pool.run([lambda: None], concurrency=1, requests=1)
    assert not pool.started
    assert pool.pids == ()


def test_an_unpicklable_factory_is_named() -> None:
    pool = WorkerPool(lambda: sum_factory(), PoolConfig(workers=1))
    with pytest.raises(TypeError, match=r"cannot be pickled.*module-level function"):
        pool.start()
    assert pool.pids == ()


def test_more_pinned_workers_than_cpus_is_refused() -> None:
    pool = WorkerPool(sum_factory, PoolConfig(workers=3, pin=True, cpus=(0, 1)))
    with pytest.raises(ValueError, match="cannot pin 3 workers"):
        pool.start()
    assert pool.pids == ()


# ------------------------------------------------------------- a torch model, pinned


@pytest.fixture(scope="module")
def torch_pool() -> Iterator[WorkerPool]:
    pytest.importorskip("torch")
    if len(read_affinity()) < 2:
        pytest.skip("needs 2 CPUs to pin 2 workers")
    pool = WorkerPool(LinearFactory(32), PoolConfig(workers=2, threads=1, pin=True))
    with pool:
        yield pool
    assert pool.alive_pids() == ()
    assert all(_gone(pid) for pid in pool.pids)


@pytest.fixture(scope="module")
def torch_run(torch_pool: WorkerPool) -> PoolRun:
    import torch

    inputs = [torch.randn(4, 32) for _ in range(3)]
    return torch_pool.run(inputs, concurrency=2, requests=150)


def test_two_workers_on_a_torch_model_give_latency_and_throughput(
    torch_pool: WorkerPool, torch_run: PoolRun
) -> None:
    run = torch_run
    assert run.requests == 150
    assert run.samples_ns.dtype == np.int64
    assert run.samples_ns.size == 150  # warm-up requests are not samples
    assert run.warmup_requests >= 2
    assert (run.samples_ns > 0).all()
    assert run.elapsed_ns > 0
    assert run.throughput_per_s > 0
    assert run.throughput_per_s == pytest.approx(150 / (run.elapsed_ns / 1e9))
    assert len(run.per_worker_counts) == 2
    assert all(count > 0 for count in run.per_worker_counts), run.per_worker_counts
    assert sum(run.per_worker_counts) == 150
    assert run.stop_reason == "requests"
    assert run.p50_ms <= run.p95_ms <= run.p99_ms
    assert {w.pid for w in run.workers} == set(torch_pool.pids)
    # The pool serves real results too.
    import torch

    out = torch_pool.call(torch.ones(1, 32), worker=1)
    assert tuple(out.shape) == (1, 32)


def test_pinned_workers_get_disjoint_cpus_and_their_thread_limits(torch_pool: WorkerPool) -> None:
    reports = [torch_pool.call("report", worker=index) for index in range(2)]
    cpus = [set(report["cpus"]) for report in reports]
    assert cpus[0]
    assert cpus[1]
    assert not cpus[0] & cpus[1]
    assert [tuple(sorted(c)) for c in cpus] == list(torch_pool.cpu_sets)
    assert [report["pid"] for report in reports] == list(torch_pool.pids)
    for report, cpu_set in zip(reports, torch_pool.cpu_sets, strict=True):
        env = report["env"]
        assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
        assert env["OPENBLAS_NUM_THREADS"] == "1"
        assert env["OMP_PROC_BIND"] == "close"
        assert env["KMP_AFFINITY"] == "granularity=fine,compact"
        assert env["OMP_PLACES"] == ",".join(f"{{{c}}}" for c in cpu_set or ())
        assert report["torch_threads"] == 1  # torch's default here would be 2
    for info in torch_pool.workers:
        assert info.threads["torch_intra_op"] == 1
        assert info.pinned == torch_pool.cpu_sets[info.index]
    # The parent's own environment is left as it was.
    assert os.environ.get("OMP_PLACES") != torch_pool.workers[0].threads["env"].get("OMP_PLACES")


def test_measurement_from_run_judges_budgets(torch_run: PoolRun) -> None:
    generous = measurement_from_run(
        torch_run,
        name="pool",
        budgets=[LatencyBudget(ms=10_000.0), ThroughputBudget(min_per_s=0.001)],
        alpha=0.01,
    )
    assert generous.outcome is Outcome.PASS, [v.reason() for v in generous.verdicts]
    assert generous.mode == "measured"
    assert generous.timing_method == TIMING_METHOD
    assert generous.timing_method == "perf_counter_ns per request (parent, queueing included)"
    assert generous.sync_method == "none"
    assert generous.block_size == 1
    assert generous.stop_reason == "requests"
    assert generous.n == 150
    assert generous.warmup_calls == torch_run.warmup_requests
    # Throughput is judged on the pool's rate (Little's law), not 1 / mean latency.
    throughput = generous.verdicts[1]
    assert throughput.measured == pytest.approx(torch_run.throughput_per_s, rel=1e-6)
    notes = "\n".join(generous.notes)
    assert "2 worker processes x 1 thread each" in notes
    assert "concurrency 2" in notes
    assert "pinned: worker 0 on CPU" in notes
    assert generous.threads["workers"] == 2
    assert generous.threads["threads_per_worker"] == 1
    record = json.loads(json.dumps(generous.to_record()))  # JSON-ready, as reports need
    assert record["timing"]["stop_reason"] == "requests"
    assert record["threads"]["per_worker"][0]["torch_intra_op"] == 1

    tiny = measurement_from_run(
        torch_run,
        name="pool",
        budgets=[LatencyBudget(ms=1e-6), ThroughputBudget(min_per_s=1e12)],
        alpha=0.01,
    )
    assert tiny.outcome is Outcome.FAIL
    assert [v.outcome for v in tiny.verdicts] == [Outcome.FAIL, Outcome.FAIL]


def test_an_undecided_budget_is_inconclusive(torch_run: PoolRun) -> None:
    # p50 at the measured median: neither compliance nor violation can be shown.
    median_ms = float(np.median(torch_run.samples_ns)) / 1e6
    measurement = measurement_from_run(
        torch_run, name="pool", budgets=[LatencyBudget(ms=median_ms, percentile=50)], alpha=0.01
    )
    assert measurement.verdicts[0].outcome is Outcome.INCONCLUSIVE


# ------------------------------------------------------------- lifecycle and failures


def test_after_a_normal_run_no_worker_remains() -> None:
    with WorkerPool(sum_factory, PoolConfig(workers=2, request_timeout_s=10)) as pool:
        pids = pool.pids
        assert len(pids) == 2
        assert pool.call([1, 2, 3]) == 6
        run = pool.run([1, [2, 3]], concurrency=3, duration_s=0.2, warmup_requests=2)
        assert run.stop_reason == "duration"
        assert run.requests == run.samples_ns.size > 0
        assert sum(run.per_worker_counts) == run.requests
        assert run.workers[0].pinned is None
    assert pool.closed
    assert pool.alive_pids() == ()
    assert all(_gone(pid) for pid in pids)
    pool.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        pool.run([1], concurrency=1, requests=1)


def test_a_factory_that_raises_gives_its_traceback() -> None:
    pool = WorkerPool(failing_factory, PoolConfig(workers=2))
    with pytest.raises(WorkerError) as info:
        pool.start()
    message = str(info.value)
    assert "failed to start" in message
    assert "Traceback (most recent call last)" in message
    assert "ValueError: boom" in message
    assert "failing_factory" in message
    assert info.value.worker in (0, 1)
    assert info.value.worker_traceback is not None
    assert f"worker {info.value.worker} (pid {info.value.pid})" in message
    assert pool.closed
    assert all(_gone(pid) for pid in pool.pids)


def test_a_worker_crash_mid_run_names_the_worker() -> None:
    pool = WorkerPool(CrashOn(7), PoolConfig(workers=2, request_timeout_s=20))
    with pool, pytest.raises(WorkerError) as info:
        pool.run([1, 2, 7], concurrency=2, requests=30, warmup_requests=0)
    error = info.value
    assert error.worker in (0, 1)
    assert error.pid == pool.pids[error.worker]
    assert f"worker {error.worker} (pid {error.pid}) died with exit code 3" in str(error)
    assert "(input 2)" in str(error)
    assert pool.alive_pids() == ()
    assert all(_gone(pid) for pid in pool.pids)


def test_a_native_crash_reports_the_signal_and_faulthandler_output() -> None:
    pool = WorkerPool(SegfaultOn("bad"), PoolConfig(workers=1, request_timeout_s=20))
    with pool, pytest.raises(WorkerError) as info:
        pool.run(["ok", "bad"], concurrency=1, requests=4, warmup_requests=0)
    message = str(info.value)
    assert "worker 0 (pid" in message
    assert "was killed by SIGSEGV while serving request" in message
    assert "faulthandler output of the worker" in message
    assert "Segmentation fault" in message
    assert all(_gone(pid) for pid in pool.pids)


def test_a_slow_start_times_out() -> None:
    pool = WorkerPool(SlowStart(30.0), PoolConfig(workers=2, start_timeout_s=1.0))
    started = time.monotonic()
    with pytest.raises(WorkerError, match=r"workers 0, 1 not ready within start_timeout_s=1 s"):
        pool.start()
    assert time.monotonic() - started < 10
    assert all(_gone(pid) for pid in pool.pids)


def test_a_model_that_raises_gives_the_worker_traceback() -> None:
    with WorkerPool(RaiseOn("bad"), PoolConfig(workers=1)) as pool:
        assert pool.call("good") == "good"
        with pytest.raises(WorkerError) as info:
            pool.run(["good", "bad"], concurrency=1, requests=4, warmup_requests=0)
    message = str(info.value)
    assert "worker 0 (pid" in message
    assert "raised while serving request" in message
    assert "KeyError" in message
    assert "no such item: 'bad'" in message
    assert "Traceback (most recent call last)" in message
    assert all(_gone(pid) for pid in pool.pids)


def test_a_request_over_the_timeout_fails_and_the_worker_is_stopped() -> None:
    pool = WorkerPool(Sleepy(30.0), PoolConfig(workers=1, request_timeout_s=0.3))
    with pool:
        started = time.monotonic()
        with pytest.raises(WorkerError, match=r"worker 0 \(pid \d+\) timed out") as info:
            pool.run([1], concurrency=1, requests=1, warmup_requests=0)
        assert "request_timeout_s=0.3 s" in str(info.value)
        assert time.monotonic() - started < 10  # terminated, not waited for
    assert all(_gone(pid) for pid in pool.pids)


_SIGINT_SCRIPT = """
import json
import sys

import psutil
from _pool_factories import Sleepy

from pytest_hwperf.workers.pool import PoolConfig, WorkerPool


def live_children():
    pids = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            if "multiprocessing.resource_tracker" in " ".join(child.cmdline()):
                continue
        except psutil.Error:
            continue
        pids.append(child.pid)
    return pids


if __name__ == "__main__":
    try:
        with WorkerPool(Sleepy(0.02), PoolConfig(workers=2)) as pool:
            print(json.dumps({"pids": list(pool.pids)}), flush=True)
            pool.run([1, 2, 3], concurrency=4, duration_s=120)
    except KeyboardInterrupt:
        print(json.dumps({"interrupted": True, "children": live_children()}), flush=True)
        sys.exit(0)
    sys.exit(5)
"""


def test_sigint_during_a_run_leaves_no_worker(tmp_path: Path) -> None:
    script = tmp_path / "interrupted_pool.py"
    script.write_text(textwrap.dedent(_SIGINT_SCRIPT))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, proc.stderr.read() if proc.stderr else ""
        pids = json.loads(first)["pids"]
        assert len(pids) == 2
        time.sleep(0.7)  # well inside the run
        assert proc.poll() is None
        assert all(not _gone(pid) for pid in pids)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report == {"interrupted": True, "children": []}
    deadline = time.monotonic() + GRACE_S
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in pids)
