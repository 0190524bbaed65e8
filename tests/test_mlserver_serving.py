"""The model as it is served (issue 15's acceptance): a torch model behind a real
MLServer swept over parallel_workers 1, 2, 4 x threads 1, 2 on this machine; a runtime
that keeps more threads busy than it declares, failed by the observed gate; an open loop
beyond what the server can serve, whose latency grows with the queue and fails its
budget. After each, no process of any server is left (checked by PID).

Figures are asserted only as relations with wide margins (a queue of a second against
a 20 ms service time), never as timings of this machine."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from _output import FAST_RUN, load_json
from test_mlserver_fixture import HEADER, _assert_nothing_left, _children

from pytest_hwperf.hardware.cpu import detect_cpu
from pytest_hwperf.serving.process import mlserver_available

pytestmark = pytest.mark.skipif(
    not mlserver_available(),
    reason="mlserver: MLServer is not installed (pip install 'pytest-hwperf[mlserver]')",
)

CORES = detect_cpu().usable_cores
EMBEDDER = Path(__file__).resolve().parent.parent / "example_project" / "serving" / "embedder"


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="the served embedder needs torch"
)
@pytest.mark.skipif(CORES != 2, reason=f"the sweep's expectations are for 2 usable cores; {CORES}")
def test_a_torch_model_swept_over_workers_and_threads(pytester: pytest.Pytester) -> None:
    before = _children()
    pytester.makepyfile(
        test_mlserver_sweep_inner=HEADER
        + f"""
EMBEDDER = Path({str(EMBEDDER)!r})
TEXTS = np.array(["cheap flights to lisbon", "reset a router", "lasagne", "dataclass"])


@pytest.mark.latency(ms=2000)
def test_served(mlserver, worker_config):
    server = mlserver(EMBEDDER)
    record(server, worker_config.id)
    assert len(server.worker_pids) == worker_config.workers
    server.load(TEXTS, seconds=1)
"""
    )
    result = pytester.runpytest(
        "--hwperf",
        *FAST_RUN,
        "--hwperf-workers=1,2,4",
        "--hwperf-threads=1,2",
        "--hwperf-json=out.json",
        "-rf",
    )
    # The three configs above the 2 usable cores are failed by the gate, unmeasured.
    result.assert_outcomes(passed=3, failed=3)
    for workers, threads in ((2, 2), (4, 1), (4, 2)):
        total = workers * threads
        result.stdout.fnmatch_lines(
            [
                f"*hwperf: oversubscribed: {workers} workers x {threads}"
                f" thread{'s' * (threads > 1)} = {total} > 2 usable cores (*"
            ]
        )
    result.stdout.fnmatch_lines(
        [
            "*hwperf: workers x threads sweeps*",
            "*test_served* [[]load on cpu]",
            "  1 worker x 1 thread: */s*p95 *",
            "  1 worker x 2 threads: */s*p95 *",
            "  2 workers x 1 thread: */s*p95 *",
            "  recommended: *",
        ]
    )
    (sweep,) = load_json(pytester.path / "out.json")["sweeps"]
    configs = {(c["workers"], c["threads"]): c for c in sweep["configs"]}
    assert set(configs) == {(1, 1), (1, 2), (2, 1)}
    assert all(c["throughput_per_s"] > 0 and c["p95_ms"] > 0 for c in configs.values())
    fastest = max(configs, key=lambda k: configs[k]["throughput_per_s"])
    assert (sweep["recommended"]["workers"], sweep["recommended"]["threads"]) == fastest
    _assert_nothing_left(pytester.path, before, {"1x1", "1x2", "2x1"})


@pytest.mark.skipif(CORES > 2, reason=f"3 busy threads oversubscribe 2 cores, not {CORES}")
def test_a_runtime_busier_than_it_declares_fails_the_observed_gate(
    pytester: pytest.Pytester,
) -> None:
    before = _children()
    pytester.makepyfile(
        test_greedy=HEADER
        + """
@pytest.mark.workers(1, threads=1)
def test_greedy(mlserver):
    server = mlserver(MODELS / "greedy")
    record(server, "greedy")
    server.load(X, concurrency=1, seconds=2)
"""
    )
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--hwperf-json=out.json", "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*oversubscribed: observed * busy threads (*) > * usable core*"])
    (measured,) = load_json(pytester.path / "out.json")["measurements"]
    observed = measured["observed_threads"]
    assert observed["busy_total"] > CORES
    # Only the server's worker counted: not the test process, not the server's front.
    assert observed["busy_by_process"][str(observed["test_pid"])] == 0
    _assert_nothing_left(pytester.path, before, {"greedy"})


def test_an_open_loop_beyond_capacity_grows_the_queue_and_fails_its_budget(
    pytester: pytest.Pytester,
) -> None:
    before = _children()
    pytester.makepyfile(
        test_open=HEADER
        + """
@pytest.mark.latency(ms=100)
def test_open(mlserver):
    server = mlserver(MODELS / "steady")  # 20 ms a request, one at a time: 50/s
    record(server, "open")
    run = server.load(X, rate=80, seconds=2)
    quarter = run.requests // 4
    Path("growth.json").write_text(json.dumps({
        "first_ms": float(np.median(run.samples_ns[:quarter])) / 1e6,
        "last_ms": float(np.median(run.samples_ns[-quarter:])) / 1e6,
        "p95_ms": run.p95_ms,
        "served_per_s": run.throughput_per_s,
        "errors": run.errors,
    }))
"""
    )
    result = pytester.runpytest("--hwperf", *FAST_RUN, "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*p95 * breaches budget 100*ms*"])
    growth = json.loads((pytester.path / "growth.json").read_text())
    assert growth["errors"] == 0
    assert growth["served_per_s"] < 80  # the server could not keep up ...
    # ... so each request waited for the ones scheduled before it: latency, counted from
    # the scheduled time, grows through the run, far past the 20 ms of service.
    assert growth["last_ms"] > 4 * growth["first_ms"]
    assert growth["p95_ms"] > 10 * 20
    _assert_nothing_left(pytester.path, before, {"open"})
