"""--hwperf-profile seen from the command line: a failing measurement leaves a profile
whose path and top functions are in its failure; nothing else changes (issue 6, part 2)."""

from __future__ import annotations

import json
import os
import pstats
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from _output import FAST_RUN, assert_clean
from _typed_records import typed

from pytest_hwperf.judge.verdict import breaches_of
from pytest_hwperf.plugin.judging import policy_of
from pytest_hwperf.plugin.options import Settings

QUICK = (
    "--hwperf",
    *FAST_RUN,
    "--hwperf-reference=off",
    "--hwperf-json=out.json",
    "-p",
    "no:randomly",
)

# A ~2 ms busy loop under a 1 us budget (fails at the first look), the same loop under
# a budget it meets, and a check that the kept targets leave the item after the call.
PROJECT = """
import time

import pytest

from pytest_hwperf.plugin.fixtures import PROFILE_TARGETS_KEY


def busy_loop():
    end = time.perf_counter() + 0.002
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


@pytest.mark.latency(ms=0.001)
def test_slow(hwperf):
    hwperf(busy_loop)


@pytest.mark.latency(ms=1000)
def test_fine(hwperf):
    hwperf(busy_loop)


@pytest.fixture(autouse=True)
def targets_released(request):
    yield
    with open("kept.txt", "a") as fh:
        fh.write(f"{request.node.name} {PROFILE_TARGETS_KEY in request.node.stash}\\n")
"""


def records(pytester: pytest.Pytester) -> dict[str, dict[str, Any]]:
    document = json.loads((pytester.path / "out.json").read_text(encoding="utf-8"))
    return {r["test_id"].split("::")[-1]: r for r in document["measurements"]}


def profiles(pytester: pytest.Pytester) -> list[Path]:
    folder = pytester.path / ".hwperf" / "profiles"
    return sorted(folder.iterdir()) if folder.exists() else []


def failure_line(result: pytest.RunResult) -> str:
    (line,) = [ln for ln in result.outlines if ln.startswith("hwperf: 'busy_loop' on cpu:")]
    return line


def test_cprofile_keeps_the_failing_measurements_profile_and_names_it(pytester):
    pytester.makepyfile(test_busy=PROJECT)
    result = pytester.runpytest(*QUICK, "--hwperf-profile=cprofile")
    assert_clean(result)
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED

    (artifact,) = profiles(pytester)  # the passing test left none
    assert artifact.suffix == ".prof"
    assert artifact.name.startswith("test_busy.py_test_slow-busy_loop-")
    # The failure stays one line, the budget's; the profile is in the section.
    line = failure_line(result)
    # (confirmed in --hwperf-confirm's rounds: every round breached it)
    assert "breaches budget 1.0 us in all 6 rounds (best round " in line
    assert line.endswith(": 8/8 calls over budget)")
    # The report section names the artifact and the top functions by own time.
    result.stdout.fnmatch_lines(
        [
            f"busy_loop: profile (cprofile): {artifact}",
            "busy_loop: profile:   test_busy.py:*(busy_loop)  own * ms (*%)",
        ]
    )
    shown = [ln for ln in result.outlines if ln.startswith("busy_loop: profile:   ")]
    assert 1 <= len(shown) <= 5
    for shown_line in shown:
        assert re.fullmatch(r"busy_loop: profile:   \S.* {2}own \d+\.\d ms \(\d+%\)", shown_line)

    slow, fine = records(pytester)["test_slow"], records(pytester)["test_fine"]
    assert "profile" not in fine
    profile = slow["profile"]
    assert profile["tool"] == "cprofile"
    assert profile["path"] == str(artifact)
    assert profile["error"] is None
    assert profile["calls"] >= 1
    functions = [t["function"] for t in profile["top"]]
    assert any(f.startswith("test_busy.py:") and f.endswith("(busy_loop)") for f in functions)
    assert all(t["own_ms"] >= 0 and 0 <= t["share"] <= 1 for t in profile["top"])
    assert json.loads((pytester.path / "out.json").read_text())["settings"]["profile"] == (
        "cprofile"
    )
    # A pstats file (python -m pstats, snakeviz) with the target's calls in it.
    stats = pstats.Stats(str(artifact))
    assert any(name == "busy_loop" for (_f, _l, name) in stats.stats)
    # The targets were released by makereport, before teardown.
    assert (pytester.path / "kept.txt").read_text().split("\n")[:2] == [
        "test_slow False",
        "test_fine False",
    ]


def test_off_leaves_no_profile_and_the_same_outcome(pytester):
    pytester.makepyfile(test_busy=PROJECT)
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nhwperf_profile = "off"\n')
    result = pytester.runpytest(*QUICK)
    assert_clean(result)
    result.assert_outcomes(passed=1, failed=1)
    assert profiles(pytester) == []
    assert "(profile:" not in failure_line(result)
    result.stdout.no_fnmatch_line("*: profile*")
    assert "profile" not in records(pytester)["test_slow"]

    # The command line wins over the ini file; auto is cProfile on the CPU.
    result = pytester.runpytest(*QUICK, "--hwperf-profile=auto")
    result.assert_outcomes(passed=1, failed=1)
    (artifact,) = profiles(pytester)
    assert records(pytester)["test_slow"]["profile"]["tool"] == "cprofile"
    result.stdout.fnmatch_lines([f"busy_loop: profile (cprofile): {artifact}"])


def test_a_profiler_that_cannot_run_is_a_note_and_changes_nothing(pytester, monkeypatch):
    pytester.makepyfile(test_busy=PROJECT)
    empty = pytester.mkdir("empty-bin")
    monkeypatch.setenv("PATH", str(empty))  # no py-spy on PATH
    result = pytester.runpytest(*QUICK, "--hwperf-profile=py-spy")
    assert_clean(result)
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert failure_line(result).endswith(": 8/8 calls over budget)")  # no profile to name
    result.stdout.fnmatch_lines(
        ["busy_loop: profile (py-spy): not taken: py-spy is not on PATH: pip install py-spy"]
    )
    assert profiles(pytester) == []
    assert records(pytester)["test_slow"]["profile"] == {
        "tool": "py-spy",
        "path": None,
        "top": [],
        "error": "py-spy is not on PATH: pip install py-spy",
        "calls": 0,
    }


def test_a_target_that_raises_under_the_profiler_is_noted(pytester):
    """The measurement succeeded; the second run of the target, under the profiler,
    raises: the test keeps its PERF failure, the exception is a note."""
    pytester.makepyfile(
        test_flaky="""
        import time
        import pytest

        state = {"measured": False}

        def fragile():
            if state["measured"]:
                raise RuntimeError("connection closed")
            time.sleep(0.002)

        @pytest.mark.latency(ms=0.001)
        def test_flaky(hwperf):
            hwperf(fragile)
            state["measured"] = True
        """
    )
    result = pytester.runpytest(*QUICK, "--hwperf-profile=cprofile")
    assert_clean(result)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["PERF test_flaky.py::test_flaky - hwperf: 'fragile' on cpu: *"])
    result.stdout.fnmatch_lines(
        [
            "fragile: profile (cprofile): *.prof",
            "fragile: profile: note: the target raised RuntimeError: connection closed after"
            " 0 calls under the profiler",
        ]
    )
    profile = records(pytester)["test_flaky"]["profile"]
    assert profile["calls"] == 0
    assert profile["error"].startswith("the target raised RuntimeError")


def test_a_pass_is_never_profiled_and_stays_a_pass(pytester):
    pytester.makepyfile(
        test_ok="""
        import pytest

        @pytest.mark.latency(ms=1000)
        def test_ok(hwperf):
            hwperf(sum, range(100))
        """
    )
    result = pytester.runpytest(*QUICK, "--hwperf-profile=cprofile")
    assert_clean(result)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    assert profiles(pytester) == []
    assert "profile" not in records(pytester)["test_ok"]


def test_under_scalene_the_failing_target_is_profiled_by_scalene(pytester):
    """A real scalene run (scalene 2.x): `scalene run --off` starts pytest with profiling
    off; the plugin switches it on around the failing target only."""
    scalene = shutil.which(
        "scalene", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    )
    if scalene is None:
        pytest.skip("scalene is not installed (pip install -e '.[profilers]' installs it)")
    pytester.makepyfile(test_busy=PROJECT)
    result = pytester.run(
        scalene,
        *("run", "--off", "--cpu-only", "--profile-all", "-m", "pytest", "---"),
        *QUICK,
        "-p",
        "no:cacheprovider",
        "--hwperf-profile=scalene",
        timeout=300,
    )
    result.stdout.fnmatch_lines(
        [
            "busy_loop: profile (scalene): * calls profiled; scalene writes its profile"
            " (scalene-profile.json, or its --outfile) when pytest exits",
            "*1 failed, 1 passed*",
        ]
    )
    profile = records(pytester)["test_slow"]["profile"]
    assert profile["error"] is None
    assert profile["calls"] >= 1
    written = json.loads((pytester.path / "scalene-profile.json").read_text(encoding="utf-8"))
    assert any(name.endswith("test_busy.py") for name in written["files"])


# -- which breaches are profiled ----------------------------------------------------------


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "m",
        "device": "cpu",
        "budgets": [{"outcome": "pass", "reason": "ok"}],
        "comparison": None,
        "oversubscription": None,
        "memory": None,
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("fields", "settings", "profiled"),
    [
        pytest.param({}, Settings(), False, id="pass"),
        pytest.param({"budgets": [{"outcome": "fail"}]}, Settings(), True, id="budget-fail"),
        pytest.param(
            {"budgets": [{"outcome": "inconclusive"}]}, Settings(), False, id="inconclusive-pass"
        ),
        pytest.param(
            {"budgets": [{"outcome": "inconclusive"}]},
            Settings(inconclusive="fail"),
            True,
            id="inconclusive-fail",
        ),
        pytest.param({"comparison": {"outcome": "regression"}}, Settings(), True, id="regression"),
        pytest.param(
            {"comparison": {"outcome": "improvement"}},
            Settings(fail_on_improvement=True),
            False,
            id="improvement",
        ),
        pytest.param(
            {"oversubscription": "9 busy threads > 2 usable cores"},
            Settings(),
            False,
            id="oversubscription-only",
        ),
        pytest.param(
            {"memory": {"outcome": "fail", "reason": "rss"}}, Settings(), False, id="memory-only"
        ),
    ],
)
def test_only_budget_and_regression_breaches_are_profiled(fields, settings, profiled):
    breaches = breaches_of(typed(record(**fields)), policy_of(settings, perf_items=1))
    assert any(b.profiled for b in breaches) is profiled


def test_a_target_measured_in_inference_mode_is_profiled_in_it():
    import torch

    from pytest_hwperf.plugin.fixtures import _in_same_torch_mode

    def mode() -> tuple[bool, bool]:
        return torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    with torch.inference_mode():
        again = _in_same_torch_mode(mode)
    assert mode() == (False, True)  # the block is left, as at makereport time
    assert again() == (True, False)
    # Under torch's defaults the target is kept as it is: no frames added to a profile.
    assert _in_same_torch_mode(mode) is mode


def test_a_tail_regression_across_a_version_change_names_the_change():
    """A test failed by its tail alone says what the comparison was made across, as one
    failed by its fastest call does (`benchmarks/dependency_change.py` met this case)."""
    tail = {"outcome": "regression", "statistic": "p95", "current_ms": 3.0, "reason": "p95 x"}
    comparison = {
        "outcome": "not significant",
        "statistic": "min",
        "current_ms": 1.9,
        "reason": "min y",
        "versions_changed": ["numpy 2.3 -> 2.4", "torch 2.13 -> 2.14"],
        "tail": tail,
    }
    (breach,) = breaches_of(typed(record(comparison=comparison)), policy_of(Settings(), 1))
    assert breach.reason == "tail regression: p95 x; across numpy 2.3 -> 2.4, torch 2.13 -> 2.14"
    comparison["versions_changed"] = []
    (breach,) = breaches_of(typed(record(comparison=comparison)), policy_of(Settings(), 1))
    assert breach.reason == "tail regression: p95 x"
