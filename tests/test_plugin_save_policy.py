"""What --hwperf-save keeps, and budgets that could not be judged (issue 14, items 5, 9).

A run saved as the baseline is the reference every later run is judged against: a
measurement whose test failed (a budget breach, a regression, or an error of its own)
must not become it unless the user says so (`hwperf baseline accept`). A budget that
could not be judged (pytest-benchmark disabled) is named in the session's summary.
"""

from __future__ import annotations

import json

import pytest
from _output import FAST_RUN

QUICK = ("--hwperf", *FAST_RUN, "--hwperf-reference=off", "-p", "no:randomly")

PROJECT = """
import time

import pytest


def work():
    time.sleep(0.001)


def test_passes(hwperf):
    hwperf(work, name="kept")


@pytest.mark.latency(ms=0.001)
def test_breaches(hwperf):
    hwperf(work, name="breach")


def test_fails_on_its_own(hwperf):
    hwperf(work, name="asserted")
    assert False, "the test's own assertion"
"""


def _saved_keys(pytester: pytest.Pytester) -> set[str]:
    (path,) = (pytester.path / ".hwperf" / "baselines").glob("*.json")
    return set(json.loads(path.read_text())["measurements"])


def test_only_measurements_of_passing_tests_are_saved(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_save=PROJECT)
    result = pytester.runpytest(*QUICK, "--hwperf-save", "--hwperf-profile=off")
    result.assert_outcomes(passed=1, failed=2)
    keys = _saved_keys(pytester)
    assert keys == {"test_save.py::test_passes::kept@cpu"}
    result.stdout.fnmatch_lines(
        [
            "hwperf: baseline saved to *(1 measurements)",
            "hwperf: not saved as baseline (2: their tests failed;*"
            "test_save.py::test_breaches 'breach' on cpu*"
            "test_save.py::test_fails_on_its_own 'asserted' on cpu*",
        ]
    )


BENCHMARK_PROJECT = """
import time

import pytest


@pytest.mark.latency(ms=0.001)
def test_slow_benchmark(benchmark):
    benchmark(time.sleep, 0.001)
"""


def test_a_budget_not_judged_is_named_in_the_summary(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_benchmark", reason="pytest-benchmark is not installed")
    pytester.makepyfile(test_bench=BENCHMARK_PROJECT)
    result = pytester.runpytest(*QUICK, "--benchmark-disable")
    result.assert_outcomes(passed=1)  # nothing was measured: no verdict to fail on
    result.stdout.fnmatch_lines(
        [
            "*- hwperf: budgets not judged -*",
            "test_bench.py::test_slow_benchmark: budget not judged:"
            " pytest-benchmark took no rounds (disabled)",
        ]
    )
