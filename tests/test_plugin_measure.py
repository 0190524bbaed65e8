"""Measuring with `pytest --hwperf`: the acceptance items of the measuring core.

Budgets are far from the measured figures (a 20 ms sleep against 5 ms, a ~1 ms sleep
against 50 ms), so the verdicts hold on a loaded 2-core machine.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from _output import FAST_RUN, load_json, output_of

ACCEPTANCE = """
import time
from pathlib import Path

import pytest

CALLS = Path(__file__).with_name("calls.txt")

def slow():
    with CALLS.open("a") as fh:
        fh.write("slow\\n")
    time.sleep(0.02)
    return "slow result"

def fast():
    with CALLS.open("a") as fh:
        fh.write("fast\\n")
    time.sleep(0.001)
    return "fast result"

def test_plain():
    assert 1 + 1 == 2

@pytest.mark.latency(ms=5)
def test_slow(hwperf):
    assert hwperf(slow) == "slow result"

@pytest.mark.latency(ms=50)
def test_fast(hwperf):
    assert hwperf(fast) == "fast result"
"""

REASON_RE = (
    r"hwperf: 'slow' on cpu: p95 (?P<value>[\d.]+) ms \(>= (?P<bound>[\d.]+) ms at"
    r" [\d.]+% confidence\) breaches budget 5\.00 ms in all 6 rounds \(best round \d:"
    r" (?P<over>\d+)/(?P<n>\d+) calls over budget\)$"
)


def assert_no_traceback(result: pytest.RunResult) -> None:
    text = output_of(result)
    assert "INTERNALERROR" not in text
    assert "Traceback" not in text
    assert not re.search(r"pytest_hwperf[/\\]\w+\.py", text), text


def records_by_name(path: Path) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in load_json(path)["measurements"]}


def calls(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "calls.txt"
    return path.read_text().split() if path.exists() else []


# --- acceptance: the breach, and the same file without --hwperf --------------------------


def test_breach_fails_only_its_test_with_a_one_line_reason(pytester: pytest.Pytester):
    pytester.makepyfile(test_accept=ACCEPTANCE)
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--junitxml=junit.xml", "-rf")
    assert_no_traceback(result)
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED

    # The status letter of a performance failure, in the progress line.
    result.stdout.fnmatch_lines(["test_accept.py .P. *"])
    result.stdout.fnmatch_lines(["PERF test_accept.py::test_slow - hwperf: 'slow' on cpu: *"])

    # The failure is one line: statistic, value and bound, budget, the rounds it breached
    # in (confirmed in --hwperf-confirm's 5 more), n and device.
    (reason,) = [line for line in result.outlines if line.startswith("hwperf: 'slow' on cpu:")]
    match = re.match(REASON_RE, reason)
    assert match is not None, reason
    assert float(match["value"]) >= 20
    assert float(match["bound"]) > 5
    assert int(match["over"]) == int(match["n"]) >= 8
    # The failure section: the reason first, then the named hwperf section.
    result.stdout.fnmatch_lines(
        ["_* test_slow _*", reason, "-* hwperf -*", "test * name * device * n * p50*"],
        consecutive=True,
    )

    # JUnit XML counts exactly one failure: the breach.
    suite = ET.parse(pytester.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")
    failed = [case for case in suite.iter("testcase") if case.find("failure") is not None]
    assert [case.get("name") for case in failed] == ["test_slow"]
    failure = failed[0].find("failure")
    assert failure is not None
    assert failure.get("message") == reason

    # Warm-up calls plus samples: the targets ran many times.
    ran = calls(pytester)
    assert ran.count("slow") >= 10
    assert ran.count("fast") > 100


def test_without_hwperf_everything_passes_and_each_target_runs_once(pytester: pytest.Pytester):
    pytester.makepyfile(test_accept=ACCEPTANCE)
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.OK
    assert sorted(calls(pytester)) == ["fast", "slow"]
    result.stdout.no_fnmatch_line("*= hwperf =*")
    result.stdout.no_fnmatch_line("hwperf: measuring*")


def test_generous_latency_budget_passes_and_p99_takes_enough_samples(pytester: pytest.Pytester):
    pytester.makepyfile(
        test_budget="""
        import time
        import pytest

        @pytest.mark.latency(ms=50)
        def test_p95(hwperf):
            hwperf(time.sleep, 0.001, name="p95")

        @pytest.mark.latency(ms=50, percentile=99)
        def test_p99(hwperf):
            hwperf(time.sleep, 0.001, name="p99")
        """
    )
    # Not FAST_RUN's limit: p99 needs ~700 samples under this many looks: ~0.8 s here,
    # more time on a loaded host.
    result = pytester.runpytest(
        "--hwperf", "--hwperf-max-time=5", "--hwperf-warmup=0.01", "--hwperf-json=out.json"
    )
    result.assert_outcomes(passed=2)
    records = records_by_name(pytester.path / "out.json")
    for name in ("p95", "p99"):
        assert records[name]["outcome"] == "pass"
        (budget,) = records[name]["budgets"]
        assert budget["outcome"] == "pass"
        assert budget["exceedances"] == 0 or budget["exceedances"] < budget["n"] / 100
    # The exact binomial rule: 0.99**n <= 0.01 needs n >= 459 (more with several looks).
    assert records["p99"]["budgets"][0]["percentile"] == 99
    assert records["p99"]["budgets"][0]["n"] >= 459
    assert records["p99"]["stats"]["n"] >= 459
    assert len(records["p99"]["samples_ns"]) == records["p99"]["stats"]["n"]


# --- several measurements per test ---------------------------------------------------


def test_two_named_measurements_are_judged_and_reported_separately(pytester: pytest.Pytester):
    pytester.makepyfile(
        test_named="""
        import time
        import pytest

        def quick():
            time.sleep(0.001)

        def sluggish():
            time.sleep(0.02)

        @pytest.mark.latency(ms=5)
        def test_two(hwperf):
            hwperf(quick, name="a")
            hwperf(sluggish, name="b")
            assert set(hwperf.results) == {"a", "b"}
        """
    )
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--hwperf-json=out.json")
    assert_no_traceback(result)
    result.assert_outcomes(failed=1)
    # The failure names the breaching measurement only.
    result.stdout.fnmatch_lines(["hwperf: 'b' on cpu: p95 * breaches budget 5.00 ms *"])
    result.stdout.no_fnmatch_line("hwperf: 'a' on cpu:*")
    # Both rows in the terminal summary, each with its own verdict.
    summary = result.outlines[result.outlines.index(_sep_line(result, "hwperf")) :]
    result_rows = [line.split() for line in summary if line.startswith("test_named.py::test_two")]
    # name, then verdict (before the gate's columns: the fastest call, "-", "no baseline").
    assert [(row[1], row[-5]) for row in result_rows] == [("a", "pass"), ("b", "FAIL")]
    assert all(row[-2:] == ["no", "baseline"] for row in result_rows)
    # And both in the JSON report.
    records = records_by_name(pytester.path / "out.json")
    assert (records["a"]["outcome"], records["b"]["outcome"]) == ("pass", "fail")
    assert records["a"]["test_id"] == records["b"]["test_id"] == "test_named.py::test_two"
    assert records["a"]["breach"] is False
    assert records["b"]["breach"] is True


def _sep_line(result: pytest.RunResult, title: str) -> str:
    pattern = re.compile(rf"^=+ {title} =+$")
    return next(line for line in result.outlines if pattern.match(line))


# --- what the test can read, and what the fixture returns ------------------------------

READABLE = """
import math
import time

import numpy as np
import pytest

def one_ms(x, scale=1):
    time.sleep(0.001)
    return x * scale

def test_readable(hwperf):
    sentinel = object()
    assert hwperf(lambda: sentinel) is sentinel
    assert hwperf(one_ms, 21, scale=2, name="doubled") == 42
    assert hwperf(dict, a=1, name="kw") == {"a": 1}

    m = hwperf.results["doubled"]
    assert hwperf["doubled"] is m
    assert hwperf.last is hwperf.results["kw"]
    assert [x.name for x in hwperf] == ["lambda", "doubled", "kw"]
    assert m.name == "doubled" and m.device == "cpu"
    assert isinstance(m.samples_ns, np.ndarray) and m.samples_ns.dtype == np.int64
    assert m.n == len(m.samples_ns) == len(m.samples_ms)
    assert m.mean_ms > 0 and m.throughput_per_s > 0
    assert math.isclose(m.throughput_per_s, 1000 / m.mean_ms)
    if hwperf.enabled:
        assert m.mode == "measured"
        assert m.n > 1
        assert 1 <= m.p50_ms <= m.p95_ms <= m.p99_ms
        assert m.samples_ns.min() >= 1_000_000
    else:
        assert m.mode == "functional"
        assert m.n == 1
        assert m.p50_ms == m.p95_ms == m.p99_ms == m.mean_ms >= 1
    with open("readable.txt", "w") as fh:
        fh.write(f"{m.mode} {m.n}")
"""


@pytest.mark.parametrize("measuring", [True, False], ids=["hwperf", "no-hwperf"])
def test_results_are_readable_in_the_test(pytester: pytest.Pytester, measuring):
    pytester.makepyfile(test_readable=READABLE)
    args = ["--hwperf", *FAST_RUN] if measuring else []
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)
    mode, n = (pytester.path / "readable.txt").read_text().split()
    assert mode == ("measured" if measuring else "functional")
    assert (int(n) > 1) is measuring


# --- torch ----------------------------------------------------------------------------

TORCH_MLP = """
import pytest
import torch
from torch import nn

@pytest.mark.latency(ms=500)
def test_mlp(hwperf):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    x = torch.randn(8, 32)
    with torch.inference_mode():
        out = hwperf(model, x, name="mlp", device=torch.device("cpu"))
    assert out.shape == (8, 10)
    assert out.is_inference()
    with torch.inference_mode():
        assert torch.equal(out, model(x))
"""


def test_torch_module_is_measured_on_cpu(pytester: pytest.Pytester):
    # Imported here, before the in-process run, so that the run does not import it anew.
    torch = pytest.importorskip("torch", reason="torch is not installed: pip install torch")
    pytester.makepyfile(test_mlp=TORCH_MLP)
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--hwperf-json=out.json")
    result.assert_outcomes(passed=1)
    record = records_by_name(pytester.path / "out.json")["mlp"]
    assert record["device"] == "cpu"
    assert record["timing"]["sync"] == "none"
    assert record["outcome"] == "pass"
    assert record["stats"]["n"] > 1
    assert record["threads"]["torch_intra_op"] == torch.get_num_threads()


# --- throughput -------------------------------------------------------------------------


def test_throughput_budgets_pass_and_fail(pytester: pytest.Pytester):
    pytester.makepyfile(
        test_rate="""
        import time
        import pytest

        def one_ms():
            time.sleep(0.001)

        def twenty_ms():
            time.sleep(0.02)

        @pytest.mark.throughput(min_per_s=10)
        def test_fast_enough(hwperf):
            hwperf(one_ms)

        @pytest.mark.throughput(min_per_s=1000)
        def test_too_slow(hwperf):
            hwperf(twenty_ms)

        @pytest.mark.throughput(min_per_s=100, batch_size=10)
        def test_batched(hwperf):
            hwperf(twenty_ms, name="batched")
        """
    )
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--hwperf-json=out.json")
    assert_no_traceback(result)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "hwperf: 'twenty_ms' on cpu: throughput * (<= * at *% confidence) breaches"
            " budget 1,000/s in all 6 rounds (best round *: n=*)"
        ]
    )
    records = records_by_name(pytester.path / "out.json")
    fast, slow, batched = (records[k]["budgets"][0] for k in ("one_ms", "twenty_ms", "batched"))
    assert (fast["outcome"], slow["outcome"], batched["outcome"]) == ("pass", "fail", "pass")
    assert slow["measured_per_s"] < 60
    # batch_size counts items per call: ten per ~20 ms call is ~500 items per second.
    assert batched["batch_size"] == 10
    assert 200 < batched["measured_per_s"] < 600


# --- the JSON report ------------------------------------------------------------------


def test_json_report_schema(pytester: pytest.Pytester):
    pytester.makepyfile(
        test_schema="""
        import time
        import pytest

        @pytest.mark.latency(ms=50)
        def test_latency(hwperf):
            hwperf(time.sleep, 0.001, name="lat")

        @pytest.mark.throughput(min_per_s=10)
        def test_throughput(hwperf):
            hwperf(time.sleep, 0.001, name="thr")

        def test_no_budget(hwperf):
            hwperf(sum, range(10), name="free")
        """
    )
    result = pytester.runpytest(
        "--hwperf",
        *FAST_RUN,
        "--hwperf-json=out.json",
        "--hwperf-gc=disable",
        "--hwperf-alpha=0.02",
    )
    result.assert_outcomes(passed=3)
    document = load_json(pytester.path / "out.json")
    assert document["schema_version"] == 1
    assert document["generator"]["name"] == "pytest-hwperf"
    environment = document["environment"]
    assert environment["pytest_hwperf"] == metadata.version("pytest-hwperf")
    assert re.fullmatch(r"3\.\d+\.\d+.*", environment["python"])
    assert "torch" in environment
    try:
        assert environment["torch"] == metadata.version("torch")
    except metadata.PackageNotFoundError:
        assert environment["torch"] is None
    settings = document["settings"]
    assert {k: settings[k] for k in ("alpha", "gc", "inconclusive", "max_time_s", "warmup_s")} == {
        "alpha": 0.02,
        "gc": "disable",
        "inconclusive": "pass",
        "max_time_s": 1.0,  # FAST_RUN
        "warmup_s": 0.01,
    }
    assert settings["regression_pct"] == 10.0
    assert settings["perf_items"] == 3
    assert document["summary"]["measurements"] == 3
    assert (document["summary"]["pass"], document["summary"]["no_budget"]) == (2, 1)

    records = {r["name"]: r for r in document["measurements"]}
    assert set(records) == {"lat", "thr", "free"}
    for record in records.values():
        assert record["device"] == "cpu"
        assert record["mode"] == "measured"
        stats = record["stats"]
        assert stats["n"] == len(record["samples_ns"]) > 1
        assert all(isinstance(x, int) and x > 0 for x in record["samples_ns"])
        for key in ("mean_ms", "stdev_ms", "min_ms", "max_ms", "throughput_per_s", "n_calls"):
            assert isinstance(stats[key], (int, float))
        timing = record["timing"]
        assert timing["clock"].startswith("perf_counter_ns")
        assert timing["sync"] == "none"
        assert timing["block_size"] >= 1
        assert timing["gc"] == "collect-then-disabled"
        assert timing["alpha"] == 0.02
        assert timing["warmup_calls"] >= 2
        assert isinstance(record["threads"], dict)
        assert "native_pools" in record["threads"]
        assert "env" in record["threads"]

    # Per-call percentiles for the 1 ms targets.
    lat = records["lat"]
    assert lat["timing"]["block_size"] == 1
    assert lat["stats"]["p50_ms"] <= lat["stats"]["p95_ms"] <= lat["stats"]["p99_ms"]
    (budget,) = lat["budgets"]
    assert budget["kind"] == "latency"
    assert (budget["percentile"], budget["budget_ms"], budget["outcome"]) == (95, 50, "pass")
    assert budget["upper_ms"] is not None
    assert budget["upper_ms"] < 50
    assert budget["measured_ms"] >= 1
    assert 0 < budget["alpha"] < 0.02  # the level of one look
    assert 0 <= budget["p_value"] <= budget["alpha"]
    assert budget["n"] <= lat["stats"]["n"]
    assert isinstance(budget["exceedances"], int)
    assert "within budget 50.00 ms" in budget["reason"]

    (rate,) = records["thr"]["budgets"]
    assert rate["kind"] == "throughput"
    assert (rate["min_per_s"], rate["batch_size"], rate["outcome"]) == (10, 1, "pass")
    assert rate["lower_per_s"] > 10
    assert rate["measured_per_s"] >= rate["lower_per_s"]

    assert records["free"]["budgets"] == []
    assert records["free"]["outcome"] is None


# --- user_properties and JUnit XML ------------------------------------------------------

PROPERTY_TEST = """
import time
import pytest

@pytest.mark.latency(ms=50)
def test_props(hwperf):
    hwperf(time.sleep, 0.001, name="nap")
"""


def test_figures_are_in_the_call_reports_user_properties(pytester: pytest.Pytester):
    pytester.makepyfile(test_props=PROPERTY_TEST)
    reprec = pytester.inline_run("--hwperf", *FAST_RUN)
    reprec.assertoutcome(passed=1)
    (call,) = [r for r in reprec.getreports("pytest_runtest_logreport") if r.when == "call"]
    props = dict(call.user_properties)
    assert props["hwperf[nap].device"] == "cpu"
    assert props["hwperf[nap].n"] > 1
    assert props["hwperf[nap].mean_ms"] >= 1
    assert props["hwperf[nap].p95_ms"] >= 1
    assert props["hwperf[nap].outcome"] == "pass"


def test_figures_are_in_junit_xml(pytester: pytest.Pytester):
    pytester.makepyfile(test_props=PROPERTY_TEST)
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--junitxml=junit.xml")
    result.assert_outcomes(passed=1)
    case = ET.parse(pytester.path / "junit.xml").getroot().find(".//testcase")
    assert case is not None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props.get("hwperf[nap].device") == "cpu"
    assert props.get("hwperf[nap].outcome") == "pass"
    assert int(props.get("hwperf[nap].n") or 0) > 1


# --- pytest-xdist ---------------------------------------------------------------------


def test_xdist_measurements_reach_the_controller(pytester: pytest.Pytester):
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    pytester.makepyfile(
        test_spread="""
        import time
        import pytest

        @pytest.mark.parametrize("i", range(4))
        @pytest.mark.latency(ms=50)
        def test_ok(hwperf, i):
            hwperf(time.sleep, 0.001, name=f"ok{i}")

        @pytest.mark.latency(ms=5)
        def test_breach(hwperf):
            hwperf(time.sleep, 0.02, name="breach")
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", "--hwperf", *FAST_RUN, "--hwperf-json=out.json", "-rf"
    )
    assert_no_traceback(result)
    result.assert_outcomes(passed=4, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["PERF test_spread.py::test_breach - hwperf: 'breach' on cpu: *"])
    summary = result.outlines[result.outlines.index(_sep_line(result, "hwperf")) :]
    rows = {line.split()[1] for line in summary if line.startswith("test_spread.py::")}
    assert rows == {"ok0", "ok1", "ok2", "ok3", "breach"}
    document = load_json(pytester.path / "out.json")
    records = {r["name"]: r for r in document["measurements"]}
    assert set(records) == {"ok0", "ok1", "ok2", "ok3", "breach"}
    assert records["breach"]["outcome"] == "fail"
    assert records["breach"]["test_id"] == "test_spread.py::test_breach"
    assert all(len(r["samples_ns"]) == r["stats"]["n"] > 1 for r in records.values())
    assert document["summary"]["fail"] == 1


# --- errors ---------------------------------------------------------------------------


def test_unwritable_json_path_is_a_clear_error(pytester: pytest.Pytester):
    pytester.makepyfile(test_props=PROPERTY_TEST)
    pytester.makefile(".txt", blocker="a regular file, not a folder")
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--hwperf-json=blocker.txt/out.json")
    assert_no_traceback(result)
    result.assert_outcomes(passed=1)
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["hwperf: error: cannot write the JSON report blocker.txt/out.json*"]
    )
    result.stdout.no_fnmatch_line("hwperf: JSON report written*")


MISUSE = """
import pytest

def test_not_callable(hwperf):
    hwperf(42)

def test_name_twice(hwperf):
    hwperf(abs, -1, name="x")
    hwperf(abs, -2, name="x")

def test_fine(hwperf):
    assert hwperf(abs, -3, name="x") == 3
"""


@pytest.mark.parametrize("measuring", [True, False], ids=["hwperf", "no-hwperf"])
def test_misuse_of_the_fixture_fails_the_test_with_one_line(pytester: pytest.Pytester, measuring):
    pytester.makepyfile(test_misuse=MISUSE)
    args = ["--hwperf", *FAST_RUN] if measuring else []
    result = pytester.runpytest(*args)
    assert_no_traceback(result)
    result.assert_outcomes(passed=1, failed=2)
    expected = {
        "test_not_callable": "hwperf(): the first argument must be callable, got 42",
        "test_name_twice": "hwperf(name='x'): this test already has a measurement of that name",
    }
    for test, line in expected.items():
        result.stdout.fnmatch_lines([f"_* {test} _*", line, "[_=-]*"], consecutive=True)


DEVICE_MISUSE = """
def test_unknown_device(hwperf):
    hwperf(abs, -1, device="tpu")

def test_fine(hwperf):
    assert hwperf(abs, -3) == 3
"""
DEVICE_LINE = (
    "hwperf(name='abs'): unknown device 'tpu': expected 'cpu', 'cuda', 'cuda:N', 'mps' or 'xpu'"
)


@pytest.mark.parametrize("measuring", [True, False], ids=["hwperf", "no-hwperf"])
def test_unknown_device_fails_the_test_naming_the_device(pytester: pytest.Pytester, measuring):
    pytester.makepyfile(test_device=DEVICE_MISUSE)
    args = ["--hwperf", *FAST_RUN] if measuring else []
    result = pytester.runpytest(*args)
    assert_no_traceback(result)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([DEVICE_LINE])


def test_unknown_device_failure_is_one_line(pytester: pytest.Pytester):
    pytester.makepyfile(test_device=DEVICE_MISUSE)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.no_fnmatch_line("*During handling of the above exception*")
    result.stdout.fnmatch_lines(
        ["_* test_unknown_device _*", DEVICE_LINE, "[_=-]*"], consecutive=True
    )


def test_json_without_hwperf_warns_that_nothing_is_written(pytester: pytest.Pytester):
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest("--hwperf-json=out.json", "-W", "default")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["*HwperfWarning: --hwperf-json=out.json is ignored without --hwperf*"]
    )
    assert not (pytester.path / "out.json").exists()


def test_own_failure_is_not_marked_perf(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import time, pytest

        @pytest.mark.latency(ms=5)
        def test_slow_and_wrong(hwperf):
            hwperf(time.sleep, 0.02)
            assert False, "wrong answer"
        """
    )
    result = pytester.runpytest("--hwperf", *FAST_RUN, "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*test_own_failure_is_not_marked_perf.py F*", "FAILED *test_slow_and_wrong*"]
    )
    result.stdout.no_fnmatch_line("PERF *")
