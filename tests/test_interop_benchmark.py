"""pytest-benchmark interop: budgets judged on a `benchmark` fixture's rounds, and the
`hwperf` block for pytest-benchmark's machine_info.

The fixture tests run real pytest-benchmark fixtures in pytester runs (hwperf's own
plugin switched off there, so only the conversion is under test); each inner test hands
its fixture to `measurement_from_benchmark` and writes what came back to a JSON file.
Budgets are far from the measured figures (a 20 ms sleep against 5 ms, a ~1 ms sleep
against 100 ms), so the verdicts hold on a loaded machine. The edge cases use stand-ins
built like pytest-benchmark's objects, so their verdicts are exact.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# pytester's in-process runs drop modules first imported during a run, and numpy
# cannot be loaded twice in one process: import it (and what imports it) here first.
import numpy
import pytest
from _output import load_json

from pytest_hwperf.judge.budgets import LatencyBudget, Outcome, ThroughputBudget
from pytest_hwperf.measure.from_benchmark import machine_info_block, measurement_from_benchmark

pytest.importorskip("pytest_benchmark")

ROUND_NOTE = "judged on pytest-benchmark's rounds: one call per round"

INNER = """
import json
import time
from pathlib import Path

import pytest

from pytest_hwperf.judge.budgets import LatencyBudget, ThroughputBudget
from pytest_hwperf.measure.from_benchmark import measurement_from_benchmark


def dump(key, benchmark, budgets=(), alpha=0.01):
    measurement = measurement_from_benchmark(
        benchmark, name=key, budgets=budgets, alpha=alpha
    )
    meta = benchmark.stats
    facts = {
        "measurement": None if measurement is None else measurement.to_record(),
        "disabled": benchmark.disabled,
        "has_error": benchmark.has_error,
        "stats_is_none": meta is None,
        "iterations": None if meta is None else meta.iterations,
        "data": None if meta is None else list(meta.stats.data),
    }
    out = Path("facts")
    out.mkdir(exist_ok=True)
    (out / f"{key}.json").write_text(json.dumps(facts))


def sleep_1ms():
    time.sleep(0.001)


def sleep_20ms():
    time.sleep(0.02)


def test_rounds_50(benchmark):
    benchmark.pedantic(sleep_1ms, rounds=50, iterations=1)
    dump("rounds_50", benchmark, [LatencyBudget(ms=100), LatencyBudget(ms=100, percentile=50)])


def test_rounds_100(benchmark):
    benchmark.pedantic(sleep_1ms, rounds=100, iterations=1)
    dump("rounds_100", benchmark, [LatencyBudget(ms=100), ThroughputBudget(min_per_s=10)])


def test_slow(benchmark):
    benchmark.pedantic(sleep_20ms, rounds=20, iterations=1)
    dump("slow", benchmark, [LatencyBudget(ms=5)])


def test_iterations(benchmark):
    benchmark.pedantic(sleep_1ms, rounds=10, iterations=5)
    dump("iterations", benchmark, [LatencyBudget(ms=100)])


# Calibration stops at the first loop count whose round lasts min_time: at the default
# 5 us one preempted call on a busy runner ends it at 1 iteration. 10 ms cannot be
# reached by one ~200 ns call, however the scheduler treats it.
@pytest.mark.benchmark(min_time=0.01)
def test_auto_fast(benchmark):
    benchmark(sum, range(10))
    dump("auto_fast", benchmark)


@pytest.mark.benchmark(disable_gc=True)
def test_auto_sleep(benchmark):
    benchmark(sleep_1ms)
    dump("auto_sleep", benchmark)


def test_unused(benchmark):
    dump("unused", benchmark)


def test_raises(benchmark):
    calls = []

    def third_call_raises():
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")

    try:
        benchmark.pedantic(third_call_raises, rounds=10)
    finally:
        dump("raises", benchmark)
"""

QUICK = ("-p", "no:hwperf", "--benchmark-max-time=0.05", "--benchmark-min-rounds=5")

_RUN: dict[str, dict[str, Any]] = {}  # the inner run's facts, taken once per process


@pytest.fixture(autouse=True)
def not_an_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-benchmark disables itself where PYTEST_XDIST_WORKER is set; an outer run
    under pytest-xdist must not leak that into the inner runs. Nor the suite's
    PYTEST_ADDOPTS (conftest.py): these inner runs go without the plugin (-p no:hwperf),
    to which its option is unknown."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)


@pytest.fixture
def facts(pytester: pytest.Pytester) -> dict[str, dict[str, Any]]:
    """The facts of one run of INNER (about a second), shared by the tests that read it."""
    if not _RUN:
        pytester.makepyfile(test_inner=INNER)
        result = pytester.runpytest(*QUICK)
        result.assert_outcomes(passed=7, failed=1)  # test_raises fails, as it should
        for path in (pytester.path / "facts").glob("*.json"):
            _RUN[path.stem] = json.loads(path.read_text())
    return _RUN


def test_pedantic_rounds_become_samples(facts: dict[str, dict[str, Any]]) -> None:
    run = facts["rounds_50"]
    m = run["measurement"]
    assert len(run["data"]) == 50
    assert m["stats"]["n"] == 50
    assert m["timing"]["block_size"] == 1
    assert m["samples_ns"] == [round(x * 1e9) for x in run["data"]]
    assert min(m["samples_ns"]) >= 1_000_000  # a 1 ms sleep, in ns
    assert m["stats"]["p95_ms"] is not None  # one call per round: percentiles are real
    assert m["mode"] == "measured"
    assert m["timing"]["sync"] == "none"
    assert m["timing"]["stop_reason"] == "pytest-benchmark"
    assert m["timing"]["looks"] == 1
    assert m["timing"]["warmup_calls"] == 0
    assert m["timing"]["warmup_ms"] == 0
    assert m["timing"]["clock"] == "pytest-benchmark rounds (timer time.perf_counter)"
    assert m["timing"]["gc"] == "enabled"
    assert m["timing"]["alpha"] == 0.01
    assert m["notes"][0] == ROUND_NOTE


def test_too_few_rounds_is_inconclusive_not_undecided(facts: dict[str, dict[str, Any]]) -> None:
    # p95 at alpha 0.01 needs 90 calls all within budget; 50 rounds cannot show it,
    # while the p50 budget is decided on them.
    m = facts["rounds_50"]["measurement"]
    assert [b["outcome"] for b in m["budgets"]] == ["inconclusive", "pass"]
    assert m["outcome"] == "inconclusive"
    assert any("a pass needs at least 90" in note for note in m["notes"])


def test_generous_budget_passes(facts: dict[str, dict[str, Any]]) -> None:
    m = facts["rounds_100"]["measurement"]
    assert m["stats"]["n"] == 100
    assert [(b["kind"], b["outcome"]) for b in m["budgets"]] == [
        ("latency", "pass"),
        ("throughput", "pass"),
    ]
    assert m["outcome"] == "pass"
    assert m["notes"] == [ROUND_NOTE]


def test_budget_breach_fails(facts: dict[str, dict[str, Any]]) -> None:
    m = facts["slow"]["measurement"]
    (verdict,) = m["budgets"]
    assert verdict["outcome"] == "fail"
    assert verdict["exceedances"] == 20
    assert verdict["n"] == 20
    assert "breaches budget 5.00 ms (20/20 calls over budget)" in verdict["reason"]
    assert m["outcome"] == "fail"


def test_iterations_make_round_means(facts: dict[str, dict[str, Any]]) -> None:
    run = facts["iterations"]
    m = run["measurement"]
    assert run["iterations"] == 5
    assert m["timing"]["block_size"] == 5
    assert m["stats"]["n"] == 10
    assert m["stats"]["n_calls"] == 50
    # pytest-benchmark divides each round by its iterations: a sample is ~1 ms, not ~5 ms.
    assert 1.0 <= m["stats"]["mean_ms"] < 5.0
    assert m["stats"]["p95_ms"] is None  # round means: no per-call percentiles
    assert m["timing"]["clock"] == (
        "pytest-benchmark rounds (timer time.perf_counter, 5 iterations per round)"
    )
    assert m["notes"][0] == (
        "judged on pytest-benchmark's rounds: each sample is a round mean over 5"
        " iterations, not a per-call latency"
    )
    assert m["timing"]["sampling_ms"] >= 50.0  # 10 rounds x 5 calls x >= 1 ms


def test_auto_mode_fast_function(facts: dict[str, dict[str, Any]]) -> None:
    run = facts["auto_fast"]
    m = run["measurement"]
    assert run["iterations"] > 1  # calibrated: a sum of ten ints is far below the clock
    assert m["timing"]["block_size"] == run["iterations"]
    assert m["stats"]["n"] == len(run["data"]) >= 5
    assert m["stats"]["p50_ms"] is None
    assert m["budgets"] == []
    assert m["outcome"] is None
    assert f"over {run['iterations']} iterations" in m["notes"][0]


def test_auto_mode_gc_from_marker(facts: dict[str, dict[str, Any]]) -> None:
    run = facts["auto_sleep"]
    m = run["measurement"]
    assert m["timing"]["block_size"] == run["iterations"]
    assert m["stats"]["n"] == len(run["data"])
    assert m["timing"]["gc"] == "disabled-during-rounds"


def test_fixture_that_did_not_run_gives_none(facts: dict[str, dict[str, Any]]) -> None:
    unused = facts["unused"]
    assert unused["stats_is_none"]
    assert unused["measurement"] is None
    raised = facts["raises"]  # two rounds were recorded before the third call raised
    assert raised["has_error"] is True
    assert len(raised["data"]) == 2
    assert raised["measurement"] is None


def test_benchmark_disable_gives_none(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest(*QUICK, "--benchmark-disable", "-k", "rounds_50 or auto_fast")
    result.assert_outcomes(passed=2)
    for key in ("rounds_50", "auto_fast"):
        run = load_json(pytester.path / "facts" / f"{key}.json")
        # Disabled, the fixture calls the function once and never makes its stats.
        assert run["disabled"] is True
        assert run["stats_is_none"] is True
        assert run["measurement"] is None


def test_benchmark_skip_never_runs_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest(*QUICK, "--benchmark-skip", "-k", "rounds_50")
    result.assert_outcomes(skipped=1)
    assert not (pytester.path / "facts").exists()


def test_machine_info_carries_the_block_in_saved_json(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_hwperf.measure.from_benchmark import machine_info_block

        def pytest_benchmark_update_machine_info(config, machine_info):
            machine_info["hwperf"] = machine_info_block(
                usable_cores=2,
                usable_source="affinity",
                gpus=[],
                thread_pools=[{"internal_api": "openblas", "num_threads": 2}],
                torch_threads={"intra_op": 2, "inter_op": 2},
                fingerprint="abc123",
                fingerprint_label="2-core x86-64-v3, no GPU",
            )
        """
    )
    pytester.makepyfile(
        """
        def test_one(benchmark):
            benchmark.pedantic(sum, args=(range(10),), rounds=3)
        """
    )
    result = pytester.runpytest("-p", "no:hwperf", "--benchmark-json=out.json")
    result.assert_outcomes(passed=1)
    saved = json.loads((pytester.path / "out.json").read_text())
    block = saved["machine_info"]["hwperf"]
    assert list(block) == [
        "usable_cores",
        "usable_source",
        "gpus",
        "thread_pools",
        "torch_threads",
        "fingerprint",
        "fingerprint_label",
    ]
    assert block["usable_cores"] == 2
    assert block["fingerprint"] == "abc123"
    assert block["thread_pools"] == [{"internal_api": "openblas", "num_threads": 2}]


# --------------------------------------------------------------- stand-in fixtures


def fake_fixture(
    data: list[float],
    iterations: int = 1,
    *,
    disable_gc: bool | None = False,
    **flags: bool,
) -> SimpleNamespace:
    """Built like BenchmarkFixture after a run: .stats is a Metadata, .stats.stats a Stats."""
    options: dict[str, object] = {"timer": math.fsum}
    if disable_gc is not None:
        options["disable_gc"] = disable_gc
    metadata = SimpleNamespace(
        iterations=iterations, stats=SimpleNamespace(data=list(data)), options=options
    )
    attrs: dict[str, object] = {"disabled": False, "skipped": False, "has_error": False}
    attrs.update(flags)
    return SimpleNamespace(stats=metadata, **attrs)


def convert(fixture: object, budgets: list[Any] | None = None, **kw: Any) -> Any:
    return measurement_from_benchmark(
        fixture, name="bench", budgets=budgets or [], alpha=kw.pop("alpha", 0.01), **kw
    )


@pytest.mark.parametrize(
    "fixture",
    [
        pytest.param(object(), id="not-a-fixture"),
        pytest.param(SimpleNamespace(stats=None, disabled=False), id="never-ran"),
        pytest.param(fake_fixture([]), id="no-rounds"),
        pytest.param(fake_fixture([0.001] * 5, disabled=True), id="disabled"),
        pytest.param(fake_fixture([0.001] * 5, skipped=True), id="skipped"),
        pytest.param(fake_fixture([0.001] * 5, has_error=True), id="raised"),
        pytest.param(fake_fixture([0.001] * 5, iterations=0), id="zero-iterations"),
        pytest.param(fake_fixture([0.001, math.nan]), id="nan-round"),
        pytest.param(fake_fixture([0.001, math.inf]), id="inf-round"),
    ],
)
def test_no_measurement_without_usable_rounds(fixture: object) -> None:
    assert convert(fixture, [LatencyBudget(ms=5)]) is None


def test_undecided_becomes_inconclusive_exactly() -> None:
    # 20 rounds all within budget: p95 at alpha 0.01 needs 90, so it cannot pass.
    m = convert(fake_fixture([0.001] * 20), [LatencyBudget(ms=5)])
    assert m is not None
    assert m.verdicts[0].outcome is Outcome.INCONCLUSIVE
    assert m.outcome is Outcome.INCONCLUSIVE
    assert m.notes == [
        ROUND_NOTE,
        "no decision on 20 pytest-benchmark rounds: a pass needs at least 90 at alpha"
        " 0.01; raise the rounds (benchmark.pedantic(rounds=...) or --benchmark-min-rounds)",
    ]


def test_undecided_with_enough_rounds_says_the_budget_is_close() -> None:
    # 100 rounds, 6 over a p95 budget: neither compliance nor violation is shown.
    m = convert(fake_fixture([0.001] * 94 + [0.01] * 6), [LatencyBudget(ms=5)])
    assert m is not None
    assert m.verdicts[0].outcome is Outcome.INCONCLUSIVE
    assert "too close" in m.notes[-1]


def test_pass_and_fail_exactly() -> None:
    fast = convert(fake_fixture([0.001] * 100), [LatencyBudget(ms=5)])
    slow = convert(fake_fixture([0.02] * 20), [LatencyBudget(ms=5)])
    assert fast is not None
    assert slow is not None
    assert fast.outcome is Outcome.PASS
    assert slow.outcome is Outcome.FAIL
    assert slow.verdicts[0].exceedances == 20


def test_samples_and_figures_in_ns() -> None:
    m = convert(fake_fixture([0.0015, 0.0025], iterations=4), [])
    assert m is not None
    assert m.samples_ns.tolist() == [1_500_000, 2_500_000]
    assert m.samples_ns.dtype == numpy.int64
    assert m.block_size == 4
    assert m.per_call_estimate_ns == pytest.approx(2_000_000)
    assert m.sampling_ns == 16_000_000  # (1.5 + 2.5) ms x 4 iterations
    assert m.stats.n_calls == 8
    assert m.p95_ms is None
    assert m.timing_method == "pytest-benchmark rounds (timer math.fsum, 4 iterations per round)"


def test_duplicate_budgets_judged_once() -> None:
    budget = LatencyBudget(ms=5, percentile=50)
    m = convert(fake_fixture([0.001] * 20), [budget, budget])
    assert m is not None
    assert [v.budget for v in m.verdicts] == [budget]


def test_throughput_budget() -> None:
    m = convert(fake_fixture([0.001] * 20), [ThroughputBudget(min_per_s=100)])
    assert m is not None
    assert m.outcome is Outcome.PASS
    assert m.throughput_per_s == pytest.approx(1000.0)


@pytest.mark.parametrize(
    ("disable_gc", "policy"),
    [(True, "disabled-during-rounds"), (False, "enabled"), (None, "unknown")],
)
def test_gc_policy(disable_gc: bool | None, policy: str) -> None:
    m = convert(fake_fixture([0.001] * 3, disable_gc=disable_gc), [])
    assert m is not None
    assert m.gc_policy == policy


def test_device_is_recorded_with_the_missing_sync_named() -> None:
    m = convert(fake_fixture([0.001] * 3), [], device="cuda:0")
    assert m is not None
    assert m.device == "cuda:0"
    assert m.sync_method == "none"
    assert "does not synchronize cuda:0" in m.notes[-1]
    cpu = convert(fake_fixture([0.001] * 3), [])
    assert cpu is not None
    assert cpu.device == "cpu"
    assert cpu.notes == [ROUND_NOTE]


def test_record_is_json_ready() -> None:
    m = convert(fake_fixture([0.001] * 100, iterations=2), [LatencyBudget(ms=5)])
    assert m is not None
    record = json.loads(json.dumps(m.to_record()))
    assert record["timing"]["stop_reason"] == "pytest-benchmark"
    assert record["budgets"][0]["outcome"] == "pass"


# ------------------------------------------------------------------- machine_info


def block(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "usable_cores": 4,
        "usable_source": "cgroup v2 quota",
        "gpus": [{"name": "NVIDIA H200", "memory_total_bytes": 150 * 2**30, "index": 0}],
        "thread_pools": [
            {"internal_api": "openmp", "num_threads": 4, "prefix": "libgomp"},
            {"internal_api": "openblas", "num_threads": 4, "prefix": "libopenblas"},
        ],
        "torch_threads": {"intra_op": 4, "inter_op": 4},
        "fingerprint": "0123456789abcdef",
        "fingerprint_label": "4-core x86-64-v4, 1x NVIDIA H200",
    }
    kwargs.update(overrides)
    return machine_info_block(**kwargs)


def test_machine_info_block_layout() -> None:
    b = block()
    assert list(b) == [
        "usable_cores",
        "usable_source",
        "gpus",
        "thread_pools",
        "torch_threads",
        "fingerprint",
        "fingerprint_label",
    ]
    assert b["usable_cores"] == 4
    assert b["usable_source"] == "cgroup v2 quota"
    assert b["fingerprint"] == "0123456789abcdef"
    assert b["fingerprint_label"] == "4-core x86-64-v4, 1x NVIDIA H200"
    # Nested mappings in sorted key order; list order (device index, pool order) kept.
    assert list(b["gpus"][0]) == ["index", "memory_total_bytes", "name"]
    assert [p["internal_api"] for p in b["thread_pools"]] == ["openmp", "openblas"]
    assert list(b["torch_threads"]) == ["inter_op", "intra_op"]


def test_machine_info_block_is_stable_and_json_ready() -> None:
    a = block(torch_threads={"intra_op": 4, "inter_op": 4})
    b = block(torch_threads={"inter_op": 4, "intra_op": 4})
    assert json.dumps(a) == json.dumps(b)  # the same facts dump the same, key order aside
    odd = block(
        gpus=[{"name": "x", "mig": ("a", "b"), "clock": math.inf, "path": Path("/dev/x")}],
        torch_threads={"available": False, "reason": None, 3: {1, 2}},
    )
    text = json.dumps(odd, allow_nan=False)
    back = json.loads(text)
    assert back["gpus"] == [{"clock": None, "mig": ["a", "b"], "name": "x", "path": "/dev/x"}]
    assert back["torch_threads"] == {"3": [1, 2], "available": False, "reason": None}


def test_machine_info_block_is_pure() -> None:
    gpus = [{"name": "NVIDIA H200"}]
    pools = [{"internal_api": "openblas", "num_threads": 2}]
    torch_threads = {"intra_op": 2}
    kwargs: dict[str, Any] = {
        "usable_cores": 2,
        "usable_source": "affinity",
        "gpus": gpus,
        "thread_pools": pools,
        "torch_threads": torch_threads,
        "fingerprint": "f",
        "fingerprint_label": "l",
    }
    first = machine_info_block(**kwargs)
    assert machine_info_block(**kwargs) == first
    first["gpus"][0]["name"] = "changed"
    first["thread_pools"].append({})
    first["torch_threads"]["intra_op"] = 99
    assert gpus == [{"name": "NVIDIA H200"}]
    assert pools == [{"internal_api": "openblas", "num_threads": 2}]
    assert torch_threads == {"intra_op": 2}
    assert machine_info_block(**kwargs)["gpus"] == [{"name": "NVIDIA H200"}]
    assert block(gpus=[])["gpus"] == []


def test_module_imports_neither_numpy_nor_pytest_benchmark() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import pytest_hwperf.measure.from_benchmark;"
        " print(sorted(m for m in ('numpy', 'pytest_benchmark') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
