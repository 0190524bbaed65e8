"""The `mlserver` fixture seen from the command line: a real MLServer per test, timed by
`hwperf(server.infer, x)` and `server.load(...)`, its failures as one line, and no
server or worker process left behind, however the test ends (checked by PID).

Each inner test writes its server's pids to a file before doing what it tests; the
outer test then checks every one of them is gone. A server costs 2-3 s to start.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from _output import FAST_RUN, assert_clean, load_json, output_of

from pytest_hwperf.serving.process import mlserver_available

MODELS = Path(__file__).parent / "mlserver_models"

pytestmark = pytest.mark.skipif(
    not mlserver_available(),
    reason="mlserver: MLServer is not installed (pip install 'pytest-hwperf[mlserver]')",
)

HEADER = f"""
import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

MODELS = Path({str(MODELS)!r})
X = np.array([[0.5], [-1.0]], dtype=np.float32)


def record(server, name):
    Path(f"pids-{{name}}.json").write_text(json.dumps(list(server.pids)))
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if _alive(p.pid)}


def _left_running(pids: set[int], timeout_s: float = 15.0) -> set[int]:
    deadline = time.monotonic() + timeout_s
    left = {pid for pid in pids if _alive(pid)}
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {pid for pid in left if _alive(pid)}
    return left


def _recorded(folder: Path) -> dict[str, list[int]]:
    return {
        path.stem.removeprefix("pids-"): json.loads(path.read_text())
        for path in folder.glob("pids-*.json")
    }


def _assert_nothing_left(folder: Path, before: set[int], names: set[str]) -> None:
    recorded = _recorded(folder)
    assert set(recorded) == names
    for pids in recorded.values():
        assert len(pids) >= 3  # the server, its resource tracker, a worker at least
    everything = {pid for pids in recorded.values() for pid in pids}
    assert _left_running(everything | (_children() - before)) == set()


def test_infer_and_load_are_timed_and_judged(pytester: pytest.Pytester) -> None:
    before = _children()
    pytester.makepyfile(
        test_served=HEADER
        + """
@pytest.mark.latency(ms=5000)
def test_fast(mlserver, hwperf):
    server = mlserver(MODELS / "tiny")
    record(server, "fast")
    assert server.model == "tiny"
    assert server.url.startswith("http://127.0.0.1:")
    assert (server.config.workers, server.config.threads) == (1, 1)
    np.testing.assert_allclose(hwperf(server.infer, X), 2 * np.tanh(X), rtol=1e-6)
    run = server.load(X, concurrency=2, seconds=1)
    assert run.errors == 0
    assert run.requests > 0
    assert run.throughput_per_s > 0
    assert run.concurrency == 2
    arrivals = server.load(X, rate=50, seconds=1, name="open")
    assert arrivals.mode == "open"
    assert arrivals.errors == 0
    assert arrivals.requests > 0


@pytest.mark.latency(ms=0.001)
def test_slow(mlserver, hwperf):
    server = mlserver(MODELS / "tiny")
    record(server, "slow")
    hwperf(server.infer, X)
"""
    )
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--hwperf-json=out.json", "-rf")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["hwperf: 'infer' on cpu: p95 * breaches budget 1.0 us in all *"])
    assert_clean(result)
    document = load_json(pytester.path / "out.json")
    records = {(r["test_id"].split("::")[-1], r["name"]): r for r in document["measurements"]}
    infer, load = records[("test_fast", "infer")], records[("test_fast", "load")]
    assert infer["budgets"][0]["outcome"] == "pass"
    # hwperf(server.infer, x) is observed as the load is: the server's workers only, and
    # a 1 x 1 server does not trip the observed gate on a 2-core runner.
    assert infer["oversubscription"] is None
    assert load["oversubscription"] is None
    assert load["served_per_s"] > 0
    assert load["stats"]["n"] > 0
    assert load["worker_config"] == {"workers": 1, "threads": 1, "total": 1}
    assert records[("test_fast", "open")]["served_per_s"] > 0
    assert records[("test_slow", "infer")]["budgets"][0]["outcome"] == "fail"
    _assert_nothing_left(pytester.path, before, {"fast", "slow"})


def test_failures_are_one_line_and_leave_nothing(pytester: pytest.Pytester) -> None:
    before = _children()
    pytester.makepyfile(
        test_failing=HEADER
        + """
def test_model_raises(mlserver):
    server = mlserver(MODELS / "raiser")
    record(server, "raises")
    server.infer(X)


def test_load_with_model_raising(mlserver):
    server = mlserver(MODELS / "raiser")
    record(server, "load")
    server.load(X, concurrency=1)


def test_request_hangs(mlserver):
    server = mlserver(MODELS / "sleeper", request_timeout_s=1)
    record(server, "hangs")
    server.infer(X)


def test_worker_exits(mlserver):
    server = mlserver(MODELS / "exiter")
    record(server, "exits")
    server.infer(X)


def test_worker_killed(mlserver):
    server = mlserver(MODELS / "tiny")
    record(server, "killed")
    os.kill(server.worker_pids[0], signal.SIGKILL)
    server.infer(X)


def test_runtime_import_error(mlserver):
    mlserver(MODELS / "imperr")


def test_bad_model_settings(mlserver, tmp_path):
    (tmp_path / "model-settings.json").write_text('{"name": "x", ')
    mlserver(tmp_path)
"""
    )
    result = pytester.runpytest("-rf")
    result.assert_outcomes(failed=7)
    # Each failure is its message line alone under the test's header.
    result.stdout.fnmatch_lines_random(
        [
            "mlserver: request to model 'raiser' failed: HTTP 500: *boom: the model cannot"
            " serve this input",
            "mlserver: load(name='load'): request to model 'raiser' failed after 0 answered:"
            " HTTP 500: *boom*",
            "mlserver: request to model 'sleeper': timed out after 1 s (request_timeout_s)",
            "mlserver: worker pid * died | server log: *PID * stopped unexpectedly with exit"
            " code 768*",
            "mlserver: worker pid * died | server log: *exit code 9*",
            "mlserver: the server exited with code * before model 'imperr' was ready | server"
            " log: *ModuleNotFoundError: No module named 'hwperf_no_such_module'",
            "mlserver: */model-settings.json is not valid JSON (*)",
        ]
    )
    text = output_of(result)
    assert "During handling" not in text
    assert text.count("\nmlserver: ") == 7  # one line each, and nothing else
    assert_clean(result)
    _assert_nothing_left(pytester.path, before, {"raises", "load", "hangs", "exits", "killed"})


def test_pass_fail_and_crash_leave_nothing(pytester: pytest.Pytester) -> None:
    before = _children()
    pytester.makepyfile(
        test_ends=HEADER
        + """
def test_passes(mlserver):
    record(mlserver(MODELS / "tiny"), "passes")


def test_fails(mlserver):
    record(mlserver(MODELS / "tiny"), "fails")
    assert False, "the test's own failure"


def test_crashes(mlserver):
    record(mlserver(MODELS / "tiny"), "crashes")
    raise RuntimeError("an exception in the test")
"""
    )
    pytester.runpytest().assert_outcomes(passed=1, failed=2)
    _assert_nothing_left(pytester.path, before, {"passes", "fails", "crashes"})


def test_keyboard_interrupt_in_the_test_leaves_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_interrupted=HEADER
        + """
def test_interrupted(mlserver):
    record(mlserver(MODELS / "tiny", workers=2), "interrupted")
    raise KeyboardInterrupt
"""
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    (pids,) = _recorded(pytester.path).values()
    assert len(pids) >= 4
    assert _left_running(set(pids)) == set()


SLEEPS = """
def test_sleeps(mlserver):
    record(mlserver(MODELS / "tiny", workers=2), "sleeps")
    time.sleep(120)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_signal_to_pytest_leaves_nothing(pytester: pytest.Pytester, sig: signal.Signals) -> None:
    pytester.makepyfile(test_sleeps=HEADER + SLEEPS)
    inner = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_sleeps.py"],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        facts = pytester.path / "pids-sleeps.json"
        while not facts.exists() and inner.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert facts.exists(), "the inner test did not start its server"
        time.sleep(0.2)  # the file is written whole (small), but let the write land
        pids = set(json.loads(facts.read_text()))
        assert len(pids) >= 4
        inner.send_signal(sig)
        code = inner.wait(timeout=60)
        assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 2)
        assert _left_running(pids) == set()
    finally:
        inner.kill()
        inner.wait()


def _usable_cores() -> int:
    from pytest_hwperf.hardware.cpu import read_affinity, read_cpu_quota, usable_cores

    return usable_cores(len(read_affinity()), read_cpu_quota())[0]


def test_sweep_over_worker_configs(pytester: pytest.Pytester) -> None:
    cores = _usable_cores()
    if cores < 2:
        pytest.skip(f"a sweep over 1 and 2 workers needs 2 usable cores; this runner has {cores}")
    before = _children()
    pytester.makepyfile(
        test_mlserver_sweep_inner=HEADER
        + """
@pytest.mark.latency(ms=5000)
def test_sweep(mlserver, worker_config):
    server = mlserver(MODELS / "tiny")
    record(server, worker_config.id)
    assert server.config == worker_config
    assert len(server.worker_pids) == worker_config.workers
    server.load(X, seconds=1)
"""
    )
    over = cores + 1
    result = pytester.runpytest(
        "--hwperf",
        *FAST_RUN,
        f"--hwperf-workers=1,2,{over}",
        "--hwperf-threads=1",
        "--hwperf-json=out.json",
        "-rf",
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"hwperf: oversubscribed: {over} workers x 1 thread = {over} > {cores} usable"
            " cores (*)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*hwperf: workers x threads sweeps*",
            "*test_sweep* [[]load on cpu]",
            "  1 worker x 1 thread: * p95 *",
            "  2 workers x 1 thread: * p95 *",
            "  recommended: *",
        ]
    )
    document = load_json(pytester.path / "out.json")
    (sweep,) = document["sweeps"]
    assert sorted(c["workers"] for c in sweep["configs"]) == [1, 2]
    assert all(c["throughput_per_s"] > 0 for c in sweep["configs"])
    # The oversubscribed config never started a server.
    _assert_nothing_left(pytester.path, before, {"1x1", "2x1"})


def test_two_servers_in_parallel_under_xdist(pytester: pytest.Pytester) -> None:
    before = _children()
    pytester.makepyfile(
        test_parallel=HEADER
        + """
@pytest.mark.parametrize("n", [1, 2])
def test_served(mlserver, n):
    server = mlserver(MODELS / "tiny")
    record(server, f"parallel-{n}")
    Path(f"url-{n}.txt").write_text(server.url)
    np.testing.assert_allclose(server.infer(X), 2 * np.tanh(X), rtol=1e-6)
"""
    )
    result = pytester.runpytest("-n", "2")
    result.assert_outcomes(passed=2)
    urls = {(pytester.path / f"url-{n}.txt").read_text() for n in (1, 2)}
    assert len(urls) == 2
    _assert_nothing_left(pytester.path, before, {"parallel-1", "parallel-2"})
    assert "Traceback" not in output_of(result)
