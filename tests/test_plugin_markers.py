"""The `latency` and `throughput` markers seen from the command line.

A bad marker fails only its own test, with one line naming the test and the argument,
with or without --hwperf; `pytest --markers` documents both; a budget on a test that
measures nothing fails under --hwperf; class and function markers combine per
percentile, the closest one winning.
"""

from __future__ import annotations

import inspect
import json
import re
from typing import Any

import pytest
from _output import FAST_RUN, output_of

# marker arguments -> what the one-line message must say about them
BAD_MARKERS = [
    pytest.param(
        "latency(ms=-1)",
        "@pytest.mark.latency: argument 'ms' must be a positive number of milliseconds, got -1",
        id="latency-negative-ms",
    ),
    pytest.param(
        'latency(ms="fast")',
        "@pytest.mark.latency: argument 'ms' must be a positive number of milliseconds, got 'fast'",
        id="latency-string-ms",
    ),
    pytest.param(
        "latency(ms=True)",
        "@pytest.mark.latency: argument 'ms' must be a positive number of milliseconds, got True",
        id="latency-bool-ms",
    ),
    pytest.param(
        "latency(msec=5)",
        "@pytest.mark.latency: unknown argument 'msec' (allowed: ms, percentile, regression)",
        id="latency-unknown-argument",
    ),
    pytest.param(
        "latency(ms=5, percentile=120)",
        "@pytest.mark.latency: argument 'percentile' must be a number between 0 and 100"
        " (exclusive), got 120",
        id="latency-percentile-120",
    ),
    pytest.param(
        "latency()",
        "@pytest.mark.latency: missing required argument 'ms' (signature: latency(*",
        id="latency-no-arguments",
    ),
    pytest.param(
        'latency(ms=5, regression="x")',
        "@pytest.mark.latency: argument 'regression' must be a positive percentage*, got 'x'",
        id="latency-bad-regression",
    ),
    pytest.param(
        "throughput(min_per_s=0)",
        "@pytest.mark.throughput: argument 'min_per_s' must be a positive number of items"
        " per second, got 0",
        id="throughput-zero-rate",
    ),
    pytest.param(
        "throughput(min_per_s=10, batch_size=0)",
        "@pytest.mark.throughput: argument 'batch_size' must be a positive integer, got 0",
        id="throughput-zero-batch",
    ),
]


# Every numeric marker argument, as marker text with 10**400 in it (issue 13): no float
# holds that number, and the marker must say so instead of aborting the session.
HUGE = "10**400"
HUGE_SHOWN = "10000000000000000000... (401 digits)"
NUMERIC_ARGUMENTS = [
    ("latency", "ms", ""),
    ("latency", "percentile", "ms=5, "),
    ("latency", "regression", "ms=5, "),
    ("throughput", "min_per_s", ""),
    ("throughput", "batch_size", "min_per_s=1, "),
    ("memory", "rss_mb", ""),
    ("memory", "gpu_mb", ""),
    ("hardware", "min_gpus", ""),
    ("hardware", "min_cores", ""),
    ("hardware", "min_memory_gb", ""),
    ("hardware", "min_gpu_memory_gb", ""),
    ("hardware", "min_compute_capability", ""),
    ("workers", "n", ""),
    ("workers", "threads", "n=1, "),
]
HUGE_MARKERS = [
    pytest.param(
        f"{marker}({before}{arg}={HUGE})",
        f"@pytest.mark.{marker}: argument '{arg}' must be *, got {HUGE_SHOWN}",
        id=f"{marker}-{arg}-huge",
    )
    for marker, arg, before in NUMERIC_ARGUMENTS
] + [
    pytest.param(
        "latency(ms=10**5000)",  # beyond the digits str() of an int may have
        "@pytest.mark.latency: argument 'ms' must be a positive number of milliseconds,"
        " got an integer too large to show",
        id="latency-ms-beyond-str",
    ),
    pytest.param(
        "hardware(min_compute_capability=(10**400, 0))",
        "@pytest.mark.hardware: argument 'min_compute_capability' must be a compute capability"
        ' such as 8.0, "8.6" or (9, 0), got (1000000000000000000... (406 characters)',
        id="hardware-compute-capability-huge-tuple",
    ),
]


def assert_no_plugin_traceback(result: pytest.RunResult) -> None:
    text = output_of(result)
    assert "INTERNALERROR" not in text
    assert "Traceback" not in text
    assert not re.search(r"pytest_hwperf[/\\]\w+\.py", text), text


def bad_marker_file(marker: str) -> str:
    return f"""
import pytest

def target():
    return 1

def test_before(hwperf):
    assert hwperf(target) == 1

@pytest.mark.{marker}
def test_bad(hwperf):
    hwperf(target)

@pytest.mark.{marker}
def test_bad_without_fixture():
    pass

@pytest.mark.latency(ms=500)
def test_after(hwperf):
    assert hwperf(target) == 1
"""


@pytest.mark.parametrize("measuring", [True, False], ids=["hwperf", "no-hwperf"])
@pytest.mark.parametrize(("marker", "message"), BAD_MARKERS + HUGE_MARKERS)
def test_bad_marker_fails_only_its_own_test(pytester: pytest.Pytester, marker, message, measuring):
    pytester.makepyfile(test_marks=bad_marker_file(marker))
    args = ["--hwperf", *FAST_RUN] if measuring else []
    result = pytester.runpytest("-rf", *args)
    assert_no_plugin_traceback(result)
    result.assert_outcomes(passed=2, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    for test in ("test_bad", "test_bad_without_fixture"):
        # The failure section holds exactly the one line that names test and argument.
        result.stdout.fnmatch_lines(
            [f"_* {test} _*", f"test_marks.py::{test}: {message}", "[_=]*"], consecutive=True
        )
        result.stdout.fnmatch_lines([f"FAILED test_marks.py::{test} - *"])
    result.stdout.no_fnmatch_line("FAILED test_marks.py::test_before*")
    result.stdout.no_fnmatch_line("FAILED test_marks.py::test_after*")


def test_bad_marker_is_found_at_collection_and_does_not_run_the_test(pytester: pytest.Pytester):
    pytester.makepyfile(
        test_marks="""
        import pytest

        @pytest.mark.latency(ms=0)
        def test_bad():
            open("ran.txt", "w").close()
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    assert not (pytester.path / "ran.txt").exists()


def test_markers_are_documented_with_their_signatures(pytester: pytest.Pytester):
    result = pytester.runpytest("--markers")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.latency(ms, *, percentile=95, regression=None): Per-call latency"
            " at `percentile` (default p95) must be within `ms` milliseconds*",
            "@pytest.mark.throughput(min_per_s, *, batch_size=1): Items per second*",
        ]
    )


def test_marker_help_is_read_off_each_marker_dataclass():
    """Argument names and defaults are the dataclass fields; the text is its docstring."""
    import dataclasses

    from pytest_hwperf.hardware.requirements import HardwareRequirements
    from pytest_hwperf.plugin.markers import MARKERS, HardwareMarker, marker_help

    for marker in MARKERS:
        declared = [(f.name, f.default) for f in dataclasses.fields(marker)]
        shown = [(name, p.default) for name, p in marker.SIGNATURE.parameters.items()]
        assert shown == [
            (name, inspect.Parameter.empty if default is dataclasses.MISSING else default)
            for name, default in declared
        ]
        doc = " ".join((marker.__doc__ or "").split())
        assert marker_help(marker) == f"{marker.NAME}{marker.SIGNATURE}: {doc}"
    assert [f.name for f in dataclasses.fields(HardwareMarker)] == [
        f.name for f in dataclasses.fields(HardwareRequirements)
    ]


def test_strict_markers_accepts_both_markers(pytester: pytest.Pytester):
    """The markers are registered: --strict-markers does not reject them."""
    pytester.makepyfile(
        test_marks="""
        import pytest

        @pytest.mark.latency(ms=50, percentile=99, regression="5%")
        @pytest.mark.throughput(min_per_s=1, batch_size=4)
        def test_marked(hwperf):
            assert hwperf(lambda: 2) == 2
        """
    )
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=1)


def test_budget_without_a_measurement_fails_under_hwperf(pytester: pytest.Pytester):
    pytester.makepyfile(
        test_marks="""
        import pytest

        @pytest.mark.latency(ms=5)
        def test_forgot_to_measure(hwperf):
            pass

        @pytest.mark.throughput(min_per_s=100)
        def test_no_fixture_at_all():
            pass

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest("--hwperf", *FAST_RUN)
    assert_no_plugin_traceback(result)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "hwperf: the test declares a budget (p95 <= 5.00 ms) but took no measurement:"
            " call the hwperf fixture on the code to measure",
            "hwperf: the test declares a budget (throughput >= 100/s) but took no measurement:*",
        ]
    )

    # Without --hwperf nothing is judged: the same tests pass.
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)


CLASS_MARKS = """
import time
import pytest

def twenty_ms():
    time.sleep(0.02)

def one_ms():
    time.sleep(0.001)

@pytest.mark.latency(ms=0.5)
class TestSamePercentile:
    @pytest.mark.latency(ms=500)
    def test_function_wins(self, hwperf):
        hwperf(one_ms)

@pytest.mark.latency(ms=50, percentile=50)
class TestDifferentPercentiles:
    @pytest.mark.latency(ms=60, percentile=95)
    def test_both_judged(self, hwperf):
        hwperf(one_ms)

@pytest.mark.latency(ms=5, percentile=50)
class TestClassBudgetBreached:
    @pytest.mark.latency(ms=500, percentile=95)
    def test_class_budget_fails(self, hwperf):
        hwperf(twenty_ms)
"""


def budgets_by_test(path: Any) -> dict[str, list[dict[str, Any]]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    return {m["test_id"].split("::", 1)[1]: m["budgets"] for m in document["measurements"]}


def test_class_and_function_markers(pytester: pytest.Pytester):
    pytester.makepyfile(test_classes=CLASS_MARKS)
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--hwperf-json=out.json")
    assert_no_plugin_traceback(result)
    result.assert_outcomes(passed=2, failed=1)
    budgets = budgets_by_test(pytester.path / "out.json")

    # Same percentile: the function's 500 ms replaces the class's 0.5 ms (which 1 ms breaches).
    (only,) = budgets["TestSamePercentile::test_function_wins"]
    assert (only["percentile"], only["budget_ms"], only["outcome"]) == (95, 500, "pass")

    # Different percentiles: both budgets are judged.
    both = budgets["TestDifferentPercentiles::test_both_judged"]
    assert sorted((b["percentile"], b["budget_ms"]) for b in both) == [(50, 50), (95, 60)]
    assert {b["outcome"] for b in both} == {"pass"}

    # The class's p50 budget is judged too, and its breach fails the test.
    breached = {
        b["percentile"]: b for b in budgets["TestClassBudgetBreached::test_class_budget_fails"]
    }
    assert set(breached) == {50, 95}
    assert breached[50]["outcome"] == "fail"
    result.stdout.fnmatch_lines(
        ["hwperf: 'twenty_ms' on cpu: p50 * breaches budget 5.00 ms *calls over budget)"]
    )
