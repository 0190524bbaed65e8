"""The reference workload in rounds (issue 12, machine drift): timed after every round of
a measurement measured in rounds, the run's figure is the fastest over its rounds, as
the target's own figure is, and the suspicion that asks for those rounds already
rescales the baseline by it.

Rounds, CPU waits and reference times are injected; the one test that times the real
gauge asserts only that it gives a positive time of the kind it was settled on."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from _output import FAST_RUN, assert_clean
from _rounds import MS, round_of, samples_of

from pytest_hwperf.judge.drift import DRIFT_SHARE
from pytest_hwperf.judge.gate import SavedRun, compare_with_runs, suspected
from pytest_hwperf.measure.reference import ReferenceGauge, reference
from pytest_hwperf.measure.result import Measurement
from pytest_hwperf.measure.rounds import confirm

BUSY, QUIET = 1.0, 0.01


def _measured(ms: float, wait: float, reference_ms: float) -> Measurement:
    measurement = round_of(samples_of(ms), wait=wait)
    measurement.reference_ns = reference_ms * MS
    measurement.reference_kind = "numpy-dot/1"
    return measurement


class Rounds:
    """The rounds after the first: (ms, CPU wait, reference ms) each, in turn."""

    def __init__(self, *rounds: tuple[float, float, float]) -> None:
        self._rounds: Iterator[tuple[float, float, float]] = iter(rounds)

    def __call__(self, budgets: object) -> Measurement:
        return _measured(*next(self._rounds))


def test_the_reference_of_a_run_in_rounds_is_its_fastest_over_every_round():
    first = _measured(1.0, QUIET, 0.030)
    more = Rounds(
        (1.0, BUSY, 0.500),  # a burst stalled the gauge in this round
        (1.0, QUIET, 0.028),
        (1.0, BUSY, 0.026),  # busy, but the gauge's fastest call ran undisturbed
        (1.0, QUIET, 0.029),
    )
    assert confirm(first, more, rounds=2, every_round=True) == 5
    assert [r.reference_ms for r in first.rounds] == pytest.approx(
        [0.030, 0.500, 0.028, 0.026, 0.029]
    )
    assert first.reference_ns == pytest.approx(0.026 * MS)
    assert first.reference_kind == "numpy-dot/1"


def test_a_run_measured_once_keeps_its_one_reference():
    first = _measured(1.0, QUIET, 0.030)
    assert confirm(first, Rounds(), rounds=5, every_round=False) == 1
    assert first.reference_ns == pytest.approx(0.030 * MS)


def test_without_the_gauge_no_reference_appears():
    first = _measured(1.0, QUIET, 0.030)
    first.reference_ns = None
    assert confirm(first, Rounds((1.0, QUIET, 0.020)), rounds=1, every_round=True) == 2
    assert first.reference_ns is None


def test_the_gauge_times_the_kind_it_settled_on_again():
    gauge = ReferenceGauge()
    gauge.start()
    gauge.stop()
    kind = gauge.finish().kind
    again = gauge.again()
    assert again > 0
    assert gauge.finish().kind == kind  # settled once: the rounds are of one kind
    assert reference(parallel=False, budget_s=0.001).kind == "numpy-dot/1"


def _runs(fastest_ms: float, reference_ms: float) -> list[SavedRun]:
    return [
        SavedRun(
            fastest_ms=fastest_ms * (1 + i / 200),
            reference_ms=reference_ms,
            reference_kind="numpy-dot/1",
            round_min_ms=tuple(fastest_ms * (1 + j / 100) for j in range(6)),
        )
        for i in range(3)
    ]


def test_a_machine_faster_as_a_whole_rescales_the_baseline_by_the_reference():
    # Saved on a machine 15% slower than today's, by the reference's fastest calls.
    runs = _runs(1.00, 0.0300)
    kwargs = {"key": "t::work@cpu", "threshold_pct": 10.0, "alpha": 0.01}
    plain = compare_with_runs(0.935, runs, **kwargs)
    scaled = compare_with_runs(
        0.935, runs, reference_ms=0.0255, reference_kind="numpy-dot/1", **kwargs
    )
    assert plain.drift_factor is None
    assert scaled.drift_factor == pytest.approx(0.85**DRIFT_SHARE)
    assert scaled.baseline_ms == pytest.approx(0.85**DRIFT_SHARE * (plain.baseline_ms or 0))
    assert (plain.change_pct or 0) < 0  # reads faster
    assert (scaled.change_pct or 0) > 2  # the share of the machine's speed a model follows
    assert "for machine speed" in scaled.reason
    # The correction's own error widens the interval (DRIFT_UNCERTAINTY).
    assert "machine-speed correction" in scaled.sigma_source
    # A reference of another kind is not a gauge of the same thing: no rescaling.
    other = compare_with_runs(
        0.935, runs, reference_ms=0.0255, reference_kind="torch-mm/2", **kwargs
    )
    assert other.drift_factor is None
    assert other.outcome == plain.outcome


def test_a_slowdown_a_one_round_gauge_hides_is_still_suspected():
    # Saved with the gauge's fastest of many rounds; this run's first round gauged the
    # machine 15% slower (the fastest of one round), which rescales the baseline up and
    # hides most of a real +12%. Asked as measured too, it is suspected, so the rounds
    # (and the gauge's fastest over them) decide.
    runs = _runs(1.00, 0.0260)
    kwargs = {"key": "t::work@cpu", "threshold_pct": 10.0, "alpha": 0.01}
    gauge = {"reference_ms": 0.0300, "reference_kind": "numpy-dot/1"}
    hidden = compare_with_runs(1.12, runs, **kwargs, **gauge)  # type: ignore[arg-type]
    assert hidden.outcome != "regression"
    assert compare_with_runs(1.12, runs, **kwargs).outcome == "regression"  # type: ignore[arg-type]
    assert suspected(1.12, runs, **kwargs, **gauge)  # type: ignore[arg-type]
    # Unchanged code on that slower first round is not suspected either way.
    assert not suspected(1.00, runs, **kwargs, **gauge)  # type: ignore[arg-type]
    # Without a gauge it is the plain question.
    assert suspected(1.12, runs, **kwargs)  # type: ignore[arg-type]
    assert not suspected(1.00, runs, **kwargs)  # type: ignore[arg-type]


def test_the_suspicion_is_given_the_first_rounds_reference(pytester: pytest.Pytester):
    # The fixture hands the first round's reference to the session's "would this be a
    # regression?" (replaced here by one that records what it was asked), so that the
    # suspicion rescales the baseline as the verdict will.
    pytester.makeconftest(
        """
import pytest
from pytest_hwperf.plugin.suspects import REGRESSION_CHECK_KEY

SEEN = []

@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    def check(*args):
        SEEN.append(args)
        return False
    session.config.stash[REGRESSION_CHECK_KEY] = check

def pytest_sessionfinish(session):
    import json, pathlib
    pathlib.Path("seen.json").write_text(json.dumps([[a[3], a[6], a[7]] for a in SEEN]))
"""
    )
    pytester.makepyfile(test_spin=PROJECT)
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--hwperf-reference=on", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    (call,) = json.loads((pytester.path / "seen.json").read_text())
    value_ms, reference_ms, kind = call
    assert value_ms > 0
    assert reference_ms > 0
    assert kind == "numpy-dot/1"


PROJECT = """
def spin():
    total = 0
    for i in range(3_000):
        total += i
    return total


def test_spin(hwperf):
    hwperf(spin, name="spin")
"""


def test_a_saved_run_records_the_reference_of_each_round(pytester: pytest.Pytester):
    pytester.makepyfile(test_spin=PROJECT)
    result = pytester.runpytest(
        "--hwperf",
        *FAST_RUN,
        "--hwperf-save",
        "--hwperf-reference=on",
        "--hwperf-json=out.json",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=1)
    assert_clean(result)
    (record,) = json.loads((pytester.path / "out.json").read_text())["measurements"]
    rounds = record["rounds"]
    assert len(rounds) > 1
    assert all(r["reference_ms"] > 0 for r in rounds)
    assert record["reference_ms"] == pytest.approx(min(r["reference_ms"] for r in rounds))
    assert record["reference_kind"] == "numpy-dot/1"


SLEEPER = """
import time


def test_sleep(hwperf):
    hwperf(time.sleep, 0.002, name="sleep")
"""


def test_by_default_a_computing_target_is_gauged_and_a_waiting_one_is_not(
    pytester: pytest.Pytester,
):
    # The gauge is on by default (--hwperf-reference): a target that keeps a thread
    # busy gets the reference workload's time; one that only waits (a sleep, I/O, a
    # server in another process) does not follow the CPU's speed and gets none. In a
    # process of its own, as a user runs it: no other test's threads are busy there.
    pytester.makepyfile(test_spin=PROJECT, test_sleeper=SLEEPER)
    result = pytester.runpytest_subprocess(
        "--hwperf", *FAST_RUN, "--hwperf-json=out.json", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=2)
    assert_clean(result)
    records = json.loads((pytester.path / "out.json").read_text())["measurements"]
    found = {r["name"]: r for r in records}
    assert found["spin"]["reference_ms"] > 0
    assert found["spin"]["reference_kind"] == "numpy-dot/1"
    assert found["sleep"]["reference_ms"] is None
    assert found["sleep"]["reference_kind"] is None
    # Turned off, nothing is gauged.
    off = pytester.runpytest(
        "--hwperf", *FAST_RUN, "--hwperf-reference=off", "--hwperf-json=off.json"
    )
    off.assert_outcomes(passed=2)
    records = json.loads((pytester.path / "off.json").read_text())["measurements"]
    assert all(r["reference_ms"] is None for r in records)


def test_a_measurement_is_gauged_with_the_kind_its_saved_runs_were(pytester: pytest.Pytester):
    # The kind is settled by the threads the target kept busy, which a co-tenant can
    # change from run to run; then no saved run compares. Saved runs that share a kind
    # decide it: here a waiting target (never gauged on its own) whose baseline file
    # says it was gauged on one BLAS thread.
    pytester.makepyfile(test_sleeper=SLEEPER)
    run = ("--hwperf", *FAST_RUN, "-p", "no:randomly")
    assert pytester.runpytest_subprocess(*run, "--hwperf-save").ret == pytest.ExitCode.OK
    (path,) = (pytester.path / ".hwperf" / "baselines").glob("*.json")
    document = json.loads(path.read_text())
    for runs in document["measurements"].values():
        for saved in runs:
            assert saved["reference_kind"] is None  # saved without a gauge
            saved["reference_ms"], saved["reference_kind"] = 0.05, "numpy-dot/1"
    path.write_text(json.dumps(document))
    result = pytester.runpytest_subprocess(*run, "--hwperf-json=out.json")
    result.assert_outcomes(passed=1)
    assert_clean(result)
    (record,) = json.loads((pytester.path / "out.json").read_text())["measurements"]
    assert record["reference_kind"] == "numpy-dot/1"
    assert record["reference_ms"] > 0
    assert record["comparison"]["drift_factor"] is not None  # compared as gauged alike
