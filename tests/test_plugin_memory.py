"""The `memory` marker and the memory figures, seen from the command line (issue 6)."""

from __future__ import annotations

import json
import sys

import pytest

from pytest_hwperf.measure.memory import linux_readers

QUICK = (
    "--hwperf",
    # Not FAST_RUN's limit: each call allocates and touches 300 MiB, and the targets
    # have no latency budget, so a measurement lasts its whole time limit; 0.2 s is enough.
    "--hwperf-max-time=0.2",
    "--hwperf-warmup=0.01",
    "--hwperf-reference=off",
    "-p",
    "no:randomly",
)

# Each call holds a 300 MiB array (np.ones touches every page) while it works, and
# frees it when it returns: a peak the kernel's high-water mark keeps.
HOLDER = """
import numpy as np
import pytest

def hold():
    block = np.ones(300 * 1024 * 1024 // 8)
    return float(block[::4096].sum())

@pytest.mark.memory(rss_mb=100)
def test_over(hwperf):
    hwperf(hold, name="hold")

@pytest.mark.memory(rss_mb=2000)
def test_within(hwperf):
    hwperf(hold, name="hold")

def test_unbudgeted(hwperf):
    hwperf(lambda: None, name="tiny")
"""


def _exact_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the exact peak (kernel high-water mark) is Linux's; elsewhere it is sampled"
    import os

    if not linux_readers().reset_peak(os.getpid()):
        return "/proc/self/clear_refs is not writable here (kernel before 4.0, or hardened)"
    return None


def _records(pytester: pytest.Pytester, path: str = "out.json") -> dict[str, dict]:
    document = json.loads((pytester.path / path).read_text())
    return {r["test_id"].split("::")[1]: r for r in document["measurements"]}


def test_a_300_mb_peak_fails_a_100_mb_budget_and_passes_a_2000_mb_one(pytester):
    pytester.makepyfile(test_mem=HOLDER)
    result = pytester.runpytest(*QUICK, "--hwperf-json=out.json", "-rA")
    result.assert_outcomes(passed=2, failed=1)
    text = result.stdout.str()
    assert "Traceback" not in text
    assert "INTERNALERROR" not in text
    # Children are counted when the test process has any (a worker pool's resource
    # tracker left by an earlier test of this session, say).
    how = "kernel high-water mark(s, some children sampled every 10 ms)?"
    if _exact_reason() is not None:
        how = "sampled every 10 ms"
    scope = f"test process( and children)?, {how}"
    result.stdout.re_match_lines(
        [
            r"^hwperf: 'hold' on cpu: memory: peak RSS \d+(\.\d)? (MB|GB) over the 100 MB"
            rf" budget \({scope}\)$",
            r"^PERF test_mem.py::test_over - hwperf: 'hold' on cpu: memory: peak RSS .*",
        ]
    )
    records = _records(pytester)
    over, within, tiny = records["test_over"], records["test_within"], records["test_unbudgeted"]
    for record in (over, within):
        memory = record["memory"]
        assert memory["rss_peak_mb"] >= memory["rss_start_mb"] + 250  # the array, and more
        assert memory["rss_peak_mb"] >= 300
        assert memory["gpu_peak_mb"] is None
        assert memory["method"] in ("kernel-hwm", "kernel-hwm+sampled", "sampled")
    assert over["memory"]["rss_budget_mb"] == 100
    assert over["memory"]["outcome"] == "fail"
    assert over["outcome"] == "fail"
    assert over["breach"] is True
    assert within["memory"]["rss_budget_mb"] == 2000
    assert within["memory"]["outcome"] == "pass"
    assert within["memory"]["reason"].startswith("peak RSS ")
    assert within["outcome"] == "pass"  # no other budget: the memory verdict is the verdict
    assert within["breach"] is False
    # Every measurement carries the figures, with or without the marker.
    assert tiny["memory"]["rss_peak_mb"] > 0
    assert "rss_budget_mb" not in tiny["memory"]
    assert tiny["outcome"] is None
    # The report section has the verdict line, passed or failed.
    result.stdout.re_match_lines(
        [
            r"^hold: memory fail: peak RSS .* over the 100 MB budget .*",
            r"^hold: memory pass: peak RSS .* within the 2000 MB budget .*",
        ]
    )
    # The summary table has the peak and the budget.
    result.stdout.re_match_lines(
        [r"^test +name +device +n +p50 +p95 +p99 +rss +budget +verdict\b.*"]
    )
    result.stdout.re_match_lines(
        [r"^test_mem.py::test_over +hold +cpu +.* \d+MB +rss<=100MB +FAIL\b.*"]
    )


@pytest.mark.skipif(_exact_reason() is not None, reason=str(_exact_reason()))
def test_on_linux_the_peak_is_the_kernels_exact_high_water_mark(pytester):
    pytester.makepyfile(test_mem=HOLDER)
    result = pytester.runpytest(*QUICK, "--hwperf-json=out.json", "-k", "within")
    result.assert_outcomes(passed=1, deselected=2)
    memory = _records(pytester)["test_within"]["memory"]
    assert memory["method"] in ("kernel-hwm", "kernel-hwm+sampled")
    assert memory["process_peak_mb"] >= memory["rss_start_mb"] + 250 - (
        memory["children_peak_mb"] or 0
    )
    if memory["method"] == "kernel-hwm":
        assert memory["resolution_ms"] == 0.0


def test_a_gpu_budget_on_the_cpu_is_not_judged_and_says_so(pytester):
    pytester.makepyfile(
        test_gpu_budget="""
        import pytest

        @pytest.mark.memory(gpu_mb=10)
        def test_cpu_only(hwperf):
            hwperf(lambda: bytearray(50 * 1024 * 1024), name="alloc")
        """
    )
    result = pytester.runpytest(*QUICK, "--hwperf-json=out.json", "-rA")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "alloc: note: memory: gpu_mb budget not judged: this measurement ran on cpu"
            " (device memory is tracked for CUDA measurements)"
        ]
    )
    record = _records(pytester)["test_cpu_only"]
    assert record["memory"]["gpu_budget_mb"] == 10
    assert record["memory"]["outcome"] is None
    assert record["outcome"] is None


def test_a_memory_budget_without_a_measurement_fails(pytester):
    pytester.makepyfile(
        test_none="""
        import pytest

        @pytest.mark.memory(rss_mb=100)
        def test_nothing_measured():
            pass
        """
    )
    result = pytester.runpytest(*QUICK)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "hwperf: the test declares a budget (peak RSS <= 100 MB) but took no measurement:"
            " call the hwperf fixture on the code to measure"
        ]
    )


def test_without_hwperf_the_budget_is_not_judged(pytester):
    pytester.makepyfile(test_mem=HOLDER)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=3)


def test_a_bad_memory_marker_fails_its_test_with_one_line(pytester):
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.memory()
        def test_empty(hwperf):
            hwperf(lambda: None)

        @pytest.mark.memory(rss_mb="1GB")
        def test_string(hwperf):
            hwperf(lambda: None)

        def test_fine(hwperf):
            hwperf(lambda: None)
        """
    )
    for args in (QUICK, ("-p", "no:randomly")):
        result = pytester.runpytest(*args)
        result.assert_outcomes(passed=1, failed=2)
        text = result.stdout.str()
        assert "Traceback" not in text
        assert "INTERNALERROR" not in text
        result.stdout.fnmatch_lines(
            [
                "*test_bad.py::test_empty: @pytest.mark.memory: give a budget, 'rss_mb',"
                " 'gpu_mb', 'rss_added_mb' or 'gpu_added_mb' (signature: memory(*,"
                " rss_mb=None, gpu_mb=None, rss_added_mb=None, gpu_added_mb=None))",
                "*test_bad.py::test_string: @pytest.mark.memory: argument 'rss_mb' must be a"
                " positive number of MB (MiB), got '1GB'",
            ]
        )


def test_markers_listing_names_memory(pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.memory(*, rss_mb=None, gpu_mb=None, rss_added_mb=None,"
            " gpu_added_mb=None): Peak memory*"
        ]
    )


POOL_FACTORIES = """
def make_hungry():
    import numpy as np

    def serve(x):
        block = np.ones(int(x) * 1024 * 1024 // 8)  # x MiB, touched, freed on return
        return float(block[::4096].sum())

    return serve
"""

POOL_TEST = """
import pytest

import factories


@pytest.mark.memory(rss_mb=100000)
def test_pool(worker_pool):
    pool = worker_pool(factories.make_hungry, workers=1)
    pool.run([150], concurrency=1, requests=3)
"""


@pytest.mark.skipif(_exact_reason() is not None, reason=str(_exact_reason()))
def test_a_worker_pool_counts_its_workers_peaks(pytester):
    pytester.makepyfile(factories=POOL_FACTORIES, test_pool=POOL_TEST)
    result = pytester.runpytest(*QUICK, "--hwperf-json=out.json")
    result.assert_outcomes(passed=1)
    memory = _records(pytester)["test_pool"]["memory"]
    assert memory["children"] >= 1
    assert memory["children_peak_mb"] >= 150  # the worker's 150 MiB, whoever else is there
    assert memory["rss_peak_mb"] >= memory["process_peak_mb"] + 150
    assert memory["scope"].startswith("test process and children")
    assert memory["outcome"] == "pass"
    assert memory["gpu_peak_mb"] is None


# The process already holds 1 GiB (touched) before each measurement: an absolute budget
# counts it, a budget on what the measurement adds does not.
ADDED = """
import numpy as np
import pytest

HELD = np.ones(1024 * 1024 * 1024 // 8)  # what the process holds before measuring

def hold():
    block = np.ones(300 * 1024 * 1024 // 8)
    return float(block[::4096].sum())

@pytest.mark.memory(rss_added_mb=100)
def test_added_over(hwperf):
    hwperf(hold, name="hold")

@pytest.mark.memory(rss_added_mb=2000)
def test_added_within(hwperf):
    hwperf(hold, name="hold")

@pytest.mark.memory(rss_mb=1200)
def test_absolute_counts_what_was_held(hwperf):
    hwperf(hold, name="hold")
"""


def test_a_budget_on_what_the_measurement_adds_ignores_what_was_held(pytester):
    pytester.makepyfile(test_added=ADDED)
    result = pytester.runpytest(*QUICK, "--hwperf-json=out.json", "--hwperf-profile=off")
    result.assert_outcomes(passed=1, failed=2)
    assert "Traceback" not in result.stdout.str()
    result.stdout.re_match_lines(
        [
            r"^hwperf: 'hold' on cpu: memory: RSS grew \d+(\.\d)? MB over the 100 MB budget"
            r" for what the measurement adds \(from \d+(\.\d)? (MB|GB) to .*\)$",
        ]
    )
    records = _records(pytester)
    over, within = records["test_added_over"], records["test_added_within"]
    absolute = records["test_absolute_counts_what_was_held"]
    for record in (over, within, absolute):
        memory = record["memory"]
        assert memory["rss_start_mb"] >= 1000  # the held GiB is in the start...
        assert 250 <= memory["rss_peak_mb"] - memory["rss_start_mb"] < 1000  # ...not the rise
    assert (over["memory"]["outcome"], over["breach"]) == ("fail", True)
    assert over["memory"]["rss_added_budget_mb"] == 100
    assert (within["memory"]["outcome"], within["breach"]) == ("pass", False)
    assert within["memory"]["reason"].startswith("RSS grew ")
    # The same target against an absolute budget above what it adds fails: the peak
    # counts the GiB the process held before it.
    assert (absolute["memory"]["outcome"], absolute["breach"]) == ("fail", True)
