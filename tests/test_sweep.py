"""Sweeps over worker configs: grouping, the recommendation, the lines and the plugin."""

from __future__ import annotations

import json

from _output import FAST_RUN
from _typed_records import typed

from pytest_hwperf.report.sweep import sweep_lines, sweeps


def _record(test_id, workers, threads, *, rate, p95, latency="pass", over=None, name="pool"):
    return typed(
        {
            "test_id": test_id,
            "name": name,
            "device": "cpu",
            "worker_config": {"workers": workers, "threads": threads, "total": workers * threads},
            "served_per_s": rate,
            "stats": {"p95_ms": p95, "throughput_per_s": 1.0},
            "outcome": latency,
            "budgets": [{"kind": "latency", "outcome": latency}],
            "oversubscription": over,
        }
    )


def test_recommends_the_fastest_config_within_the_latency_budget():
    records = [
        _record("t.py::test_serve[1x1]", 1, 1, rate=1000, p95=1.0),
        _record("t.py::test_serve[2x1]", 2, 1, rate=2000, p95=2.0),
        _record("t.py::test_serve[4x1]", 4, 1, rate=2500, p95=60.0, latency="fail"),
        _record("t.py::test_serve[1x2]", 1, 2, rate=3000, p95=1.0, over="observed 3 > 2"),
    ]
    (found,) = sweeps(records)
    sweep = found.to_dict()  # as the JSON report's `sweeps` carry it
    assert sweep["test"] == "t.py::test_serve"
    assert [(r["workers"], r["threads"]) for r in sweep["configs"]] == [
        (1, 1),
        (1, 2),
        (2, 1),
        (4, 1),
    ]
    assert set(sweep) == {"test", "name", "device", "configs", "recommended"}
    assert sweep["configs"][0] == {
        "workers": 1,
        "threads": 1,
        "throughput_per_s": 1000.0,
        "p95_ms": 1.0,
        "outcome": "pass",
        "meets_latency": True,
        "oversubscribed": False,
    }
    # 4x1 breached the latency budget and 1x2 was oversubscribed: 2x1 is the best left.
    assert sweep["recommended"] == {"workers": 2, "threads": 1}
    lines = sweep_lines([found])
    assert "  2 workers x 1 thread: 2,000/s, p95 2.00ms" in lines
    assert "  4 workers x 1 thread: 2,500/s, p95 60.00ms  (over the latency budget)" in lines
    assert "  1 worker x 2 threads: 3,000/s, p95 1.00ms  (oversubscribed)" in lines
    assert lines[-1].startswith("  recommended: 2 workers x 1 thread")


def test_no_sweep_for_a_single_config_or_records_without_one():
    records = [
        _record("t.py::test_a[1x1]", 1, 1, rate=1000, p95=1.0),
        typed({"test_id": "t.py::test_b", "name": "x", "device": "cpu", "worker_config": None}),
    ]
    assert sweeps(records) == []


def test_no_recommendation_when_nothing_meets_the_budget():
    records = [
        _record("t.py::t[1x1]", 1, 1, rate=1000, p95=99.0, latency="fail"),
        _record("t.py::t[2x1]", 2, 1, rate=2000, p95=99.0, latency="fail"),
    ]
    (sweep,) = sweeps(records)
    assert sweep.to_dict()["recommended"] is None
    assert sweep_lines([sweep])[-1] == "  recommended: none (no config met the latency budget)"


def test_the_plugin_reports_the_sweep_in_the_summary_and_json(pytester):
    pytester.makepyfile(
        """
        import time

        def test_serve(hwperf, worker_config):
            hwperf(time.sleep, 0.001 * worker_config.workers)
        """
    )
    result = pytester.runpytest(
        "--hwperf",
        *FAST_RUN,
        "--hwperf-workers=1,2",
        "--hwperf-threads=1",
        "--hwperf-json=out.json",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*hwperf: workers x threads sweeps*",
            "*test_serve [[]sleep on cpu[]]",
            "*recommended: 1 worker x 1 thread*",
        ]
    )
    document = json.loads((pytester.path / "out.json").read_text())
    (sweep,) = document["sweeps"]
    assert sweep["recommended"] == {"workers": 1, "threads": 1}
    assert len(sweep["configs"]) == 2
