"""Baselines and the regression gate, seen from the command line (issue 5)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from _output import load_json

# Sleeping targets do not follow the CPU's speed: no reference rescaling for them.
QUICK = (
    "--hwperf",
    # Not FAST_RUN's limit: the targets have no budget, so a measurement lasts its whole
    # time limit, and FLIPPER's rounds are counted in calls of 0.3 s.
    "--hwperf-max-time=0.3",
    # One confirmation round rather than 5: these tests are not about how many.
    "--hwperf-confirm=1",
    "--hwperf-warmup=0.01",
    "--hwperf-reference=off",
    "-p",
    "no:randomly",
)

SLEEPER = """
import os
import time

import pytest


def work():
    time.sleep(0.002 * float(os.environ.get("SLOW", "1")))


def test_work(hwperf):
    hwperf(work)


@pytest.mark.latency(ms=1000, regression={override})
def test_tolerant(hwperf):
    hwperf(work)
"""


def _project(pytester: pytest.Pytester, override: str = "200") -> None:
    pytester.makepyfile(test_sleep=SLEEPER.format(override=override))


def _save(pytester: pytest.Pytester, times: int = 3) -> Path:
    for _ in range(times):
        result = pytester.runpytest(*QUICK, "--hwperf-save")
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    (path,) = (pytester.path / ".hwperf" / "baselines").glob("*.json")
    return path


def test_unchanged_passes_slower_fails_its_test_other_hardware_has_no_baseline(
    pytester, monkeypatch
):
    _project(pytester)
    path = _save(pytester)
    saved = json.loads(path.read_text())
    assert saved["schema_version"] == 1
    assert len(saved["measurements"]) == 2
    runs = next(iter(saved["measurements"].values()))
    assert len(runs) == 3

    unchanged = pytester.runpytest(*QUICK)
    assert unchanged.ret == pytest.ExitCode.OK, unchanged.stdout.str()
    unchanged.stdout.fnmatch_lines(["*test_work*unchanged*"])

    monkeypatch.setenv("SLOW", "1.5")
    slower = pytester.runpytest(*QUICK, "--junitxml=junit.xml")
    assert slower.ret == pytest.ExitCode.TESTS_FAILED
    slower.assert_outcomes(passed=1, failed=1)  # test_tolerant's 200% threshold holds
    slower.stdout.fnmatch_lines(
        [
            "hwperf: 'work' on cpu: regression: min * ms vs baseline * ms: +*% (*% CI +*%"
            " to +*%), beyond the 10% threshold, p=*; fingerprint * (the fastest of 2 rounds)"
        ]
    )
    suite = ET.parse(pytester.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "1"

    # Another fingerprint (a smaller affinity set): no baseline, exit 0.
    if shutil.which("taskset") is None:
        pytest.skip("needs the taskset binary to change the fingerprint")
    proc = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-m", "pytest", *QUICK, "-p", "no:cacheprovider"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "SLOW": "1.5"},
    )
    assert proc.returncode == 0, proc.stdout
    assert "no baseline" in proc.stdout


def test_the_marker_threshold_overrides_the_session_one(pytester, monkeypatch):
    _project(pytester, override='"5%"')
    _save(pytester)
    monkeypatch.setenv("SLOW", "1.5")
    result = pytester.runpytest(*QUICK, "--hwperf-regression=200")
    # The session tolerates 200%: test_work passes; test_tolerant's own 5% fails it.
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_tolerant*", "*beyond the 5% threshold*"])


def test_an_improvement_is_reported_and_fails_only_under_the_option(pytester, monkeypatch):
    _project(pytester)
    monkeypatch.setenv("SLOW", "2")
    _save(pytester)
    monkeypatch.setenv("SLOW", "1")
    reported = pytester.runpytest(*QUICK)
    assert reported.ret == pytest.ExitCode.OK
    reported.stdout.fnmatch_lines(["*test_work*improvement*"])
    strict = pytester.runpytest(*QUICK, "--hwperf-fail-on-improvement")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(["*improvement (--hwperf-fail-on-improvement*"])


def test_a_truncated_baseline_is_reported_left_unchanged_and_fails_the_session(pytester):
    _project(pytester)
    path = _save(pytester, times=1)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    before = path.read_bytes()
    result = pytester.runpytest(*QUICK)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2)  # the tests themselves ran and passed
    result.stdout.fnmatch_lines([f"hwperf: error: baseline file {path} is not valid JSON*"])
    assert "Traceback" not in result.stdout.str()
    # Saving over it is refused too, and the file is never overwritten.
    again = pytester.runpytest(*QUICK, "--hwperf-save")
    assert again.ret == pytest.ExitCode.TESTS_FAILED
    again.stdout.fnmatch_lines(["*baseline not saved*"])
    assert path.read_bytes() == before


def test_history_and_markdown_with_the_github_step_summary(pytester, monkeypatch):
    _project(pytester)
    summary = pytester.path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest(*QUICK, "--hwperf-markdown=perf.md")
    assert result.ret == pytest.ExitCode.OK
    markdown = (pytester.path / "perf.md").read_text()
    assert markdown.startswith("## pytest-hwperf")
    assert "| `test_sleep.py::test_work` | work | cpu |" in markdown
    assert "no baseline" in markdown
    assert summary.read_text() == "earlier step\n" + markdown  # appended, not replaced
    assert (pytester.path / ".hwperf" / "history.sqlite").exists()


# Measured on a virtual clock that only the target's calls advance, so no timing of the
# machine enters: the first SLOW_CALLS calls of the process take 3 ms, the rest 2 ms. At
# 0.3 s (--hwperf-max-time) and 0.01 s of warm-up, the first round is 4 warm-up calls
# and 100 samples, all slow; a second round starts slow (calls 105 to 130) and turns
# fast within it.
FLIPPER = """
import os

import pytest

CALLS = [0]
NOW = [0]  # the virtual clock, in ns


def work():
    CALLS[0] += 1
    slow = CALLS[0] <= int(os.environ.get("SLOW_CALLS", "0"))
    NOW[0] += 3_000_000 if slow else 2_000_000


@pytest.fixture
def hwperf(hwperf):
    hwperf.clock = lambda: NOW[0]  # the clock the handle measures with (injectable)
    return hwperf


def test_work(hwperf):
    hwperf(work)
"""


def _rounds_of(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest(*QUICK, "--hwperf-json=out.json", *args)
    (record,) = load_json(pytester.path / "out.json")["measurements"]
    return result, record


def test_a_slow_first_round_is_measured_again_and_cleared(pytester, monkeypatch):
    pytester.makepyfile(test_flip=FLIPPER)
    _save(pytester)
    monkeypatch.setenv("SLOW_CALLS", "130")
    result, record = _rounds_of(pytester, "--hwperf-confirm=3")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    rounds = record["rounds"]
    assert len(rounds) == 4  # the first round was suspected: 3 more, as a save measures
    assert rounds[0]["min_ms"] >= 2.9  # every call of the first round slept 3 ms
    fastest = min(r["min_ms"] for r in rounds)
    assert fastest < rounds[0]["min_ms"] / 1.3
    comparison = record["comparison"]
    assert comparison["outcome"] == "unchanged"
    assert comparison["rounds"] == 4
    assert comparison["current_ms"] == pytest.approx(fastest)
    assert "(the fastest of 4 rounds)" in comparison["reason"]
    # Budgets and the tables keep the first round's samples.
    assert record["stats"]["min_ms"] == pytest.approx(rounds[0]["min_ms"])


def test_an_unsuspected_run_is_measured_once_and_a_saved_run_in_every_round(pytester):
    pytester.makepyfile(test_flip=FLIPPER)
    saved, record = _rounds_of(pytester, "--hwperf-save", "--hwperf-confirm=2")
    assert saved.ret == pytest.ExitCode.OK
    assert len(record["rounds"]) == 3
    (path,) = (pytester.path / ".hwperf" / "baselines").glob("*.json")
    (runs,) = json.loads(path.read_text())["measurements"].values()
    assert runs[-1]["min_ms"] == pytest.approx(min(r["min_ms"] for r in record["rounds"]))
    again, record = _rounds_of(pytester, "--hwperf-confirm=2")
    assert again.ret == pytest.ExitCode.OK
    assert record["rounds"] == []  # not suspected: one round
    assert record["comparison"]["rounds"] == 1


def test_without_confirmation_the_slow_first_round_fails(pytester, monkeypatch):
    pytester.makepyfile(test_flip=FLIPPER)
    _save(pytester)
    monkeypatch.setenv("SLOW_CALLS", "130")
    result, record = _rounds_of(pytester, "--hwperf-confirm=0")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert record["rounds"] == []
    assert record["comparison"]["outcome"] == "regression"
    assert record["comparison"]["rounds"] == 1
    result.stdout.fnmatch_lines(["*regression: min * ms vs baseline *; fingerprint *"])
    result.stdout.no_fnmatch_line("*the fastest of*")


def test_a_slower_build_fails_after_every_round(pytester, monkeypatch):
    pytester.makepyfile(test_flip=FLIPPER)
    _save(pytester)
    monkeypatch.setenv("SLOW_CALLS", str(10**9))
    result, record = _rounds_of(pytester, "--hwperf-confirm=2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert len(record["rounds"]) == 3
    assert all(r["min_ms"] >= 2.9 for r in record["rounds"])
    assert record["comparison"]["outcome"] == "regression"
    result.stdout.fnmatch_lines(["*(the fastest of 3 rounds)*"])


def test_runs_saved_without_the_gate_figure_are_not_compared(pytester, monkeypatch):
    """A baseline saved before the gate compared the fastest call has no figure for it:
    its runs are passed over ("no baseline"), never compared on another statistic."""
    _project(pytester)
    path = _save(pytester)
    document = json.loads(path.read_text())
    for runs in document["measurements"].values():
        for run in runs:
            del run["min_ms"]
    path.write_text(json.dumps(document, indent=2, sort_keys=True))
    monkeypatch.setenv("SLOW", "1.5")
    result = pytester.runpytest(*QUICK)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_work*no baseline*"])
