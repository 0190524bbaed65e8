"""The regression gate: one measurement against its saved runs, as one decision.

The plugin (at each test's report) and `hwperf compare` (offline, on files) both call
`compare_with_runs`; the threshold rule (`threshold_for`) and the Bonferroni family
(`comparison_alpha`) are decided here and nowhere else, so the two reach the same
verdict and the same line by construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pytest_hwperf.hardware.fingerprint import version_changes
from pytest_hwperf.judge.drift import drift_adjusted
from pytest_hwperf.judge.regression import (
    NO_BASELINE,
    REGRESSION,
    STATISTIC,
    bonferroni_alpha,
    compare,
)
from pytest_hwperf.judge.tail import SavedTail, compare_tail
from pytest_hwperf.records.types import ComparisonRecord

__all__ = [
    "SavedRun",
    "compare_with_runs",
    "comparison_alpha",
    "drift_text",
    "suspected",
    "threshold_for",
]


@dataclass(frozen=True)
class SavedRun:
    """What the gate needs of one saved run: its fastest call and the reference workload's
    time around it (when one was measured)."""

    fastest_ms: float
    reference_ms: float | None = None
    reference_kind: str | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    round_min_ms: tuple[float, ...] = ()  # the fastest call of each of its rounds
    tail: SavedTail | None = None  # its p95s (judge/tail.py)


def threshold_for(marker_pct: float | None, session_pct: float) -> float:
    """The tolerated slowdown of one test: its `latency(regression=...)` marker argument
    when given, else the session's `--hwperf-regression`."""
    return marker_pct if marker_pct is not None else session_pct


def comparison_alpha(session_alpha: float, perf_items: int, in_test: int) -> float:
    """The level of one comparison: the session's alpha split (Bonferroni) over every
    perf test of the session times the measurements of this test, so that the chance of
    any false alarm in the session stays within the session's alpha."""
    return bonferroni_alpha(session_alpha, max(1, perf_items) * max(1, in_test))


def drift_text(factor: float | None) -> str:
    """How the reference workload rescaled the baseline, when it moved noticeably."""
    if factor is None or abs(factor - 1.0) < 0.02:
        return ""
    return f" (baseline x{factor:.2f} for machine speed, from the reference workload)"


def compare_with_runs(
    current_ms: float,
    runs: Sequence[SavedRun],
    *,
    key: str,
    threshold_pct: float,
    alpha: float,
    rounds: int = 1,
    reference_ms: float | None = None,
    reference_kind: str | None = None,
    fingerprint: str | None = None,
    versions: Mapping[str, str] | None = None,
    no_baseline_note: str | None = None,
    current_rounds: Sequence[float] = (),
    current_p95_ms: Sequence[float] = (),
    every_round_p95_ms: Sequence[float] = (),
) -> ComparisonRecord:
    """This run's fastest call (over its `rounds`) against the saved runs of `key`.

    The saved runs are rescaled to this run's machine speed when both sides measured the
    same reference workload; the verdict, its interval and its one line come from
    `regression.compare`, with the rescaling and the rounds measured named in the line.
    ``versions``: this run's (``fingerprint.run_versions``); when the newest saved run
    recorded others, the comparison is still made and its line names the change
    ("across torch 2.13 -> 2.14"). ``no_baseline_note``: what a "no baseline" line adds
    (which other hardware has a baseline). ``current_rounds``: the fastest call of each
    round this run was measured in (with the saved runs' own, the spread of a few saves;
    `judge/spread.py`). ``current_p95_ms``: this run's p95 per round, for the tail's
    comparison (`judge/tail.py`), kept as the record's ``tail``, with
    ``every_round_p95_ms``, every round's, the disturbed ones too. Raises ValueError for
    a figure that is not positive and finite.
    """
    values, drift = drift_adjusted(
        [run.fastest_ms for run in runs],
        [run.reference_ms for run in runs],
        reference_ms,
        baseline_kinds=[run.reference_kind for run in runs],
        current_kind=reference_kind,
    )
    found = compare(
        current_ms,
        values,
        threshold_pct=threshold_pct,
        alpha=alpha,
        drift_factor=drift,
        baseline_rounds=[run.round_min_ms for run in runs],
        current_rounds=current_rounds,
    )
    confirmed = f" (the fastest of {rounds} rounds)" if rounds > 1 else ""
    reason = found.reason(fingerprint)
    changed: tuple[str, ...] = ()
    if found.outcome != NO_BASELINE:
        reason += drift_text(drift) + confirmed
        if versions and runs:
            changed = tuple(version_changes(runs[-1].versions, versions))
        if changed:
            reason += f"; across {', '.join(changed)}"
    elif no_baseline_note:
        reason += f"; {no_baseline_note}"
    return found.as_record(
        reason,
        statistic=found.statistic or STATISTIC,
        key=key,
        drift_factor=drift,
        rounds=max(1, rounds),
        versions_changed=changed,
        tail=None
        if found.outcome == NO_BASELINE
        else compare_tail(
            current_p95_ms,
            [run.tail for run in runs if run.tail is not None],
            threshold_pct=threshold_pct,
            alpha=alpha,
            fingerprint=fingerprint,
            every_round_p95_ms=every_round_p95_ms,
        ),
    )


def suspected(
    value_ms: float,
    runs: Sequence[SavedRun],
    *,
    key: str,
    threshold_pct: float,
    alpha: float,
    p95_ms: float | None = None,
    reference_ms: float | None = None,
    reference_kind: str | None = None,
) -> bool:
    """Would a first round's fastest call (and p95) be a regression against `runs`? Then
    it is measured again before its verdict (measure/rounds.py).

    With a reference workload the change is asked both rescaled for machine speed and as
    measured: a first round's gauge is the fastest of one round, slower than a saved
    run's fastest of many, so its rescaling can hide a real slowdown that the rounds,
    and the gauge's fastest over them, then show. A tail that looks slower is suspected
    too: it is failed only in the best of the rounds (judge/tail.py).
    """
    # The tail does not depend on the gauge: it is judged in the first pass only.
    gauges: list[tuple[float | None, str | None, tuple[float, ...]]] = [
        (reference_ms, reference_kind, () if p95_ms is None else (p95_ms,))
    ]
    if reference_ms is not None:
        gauges.append((None, None, ()))  # as measured, too
    for gauge_ms, kind, p95s in gauges:
        found = compare_with_runs(
            value_ms,
            runs,
            key=key,
            threshold_pct=threshold_pct,
            alpha=alpha,
            current_p95_ms=p95s,
            reference_ms=gauge_ms,
            reference_kind=kind,
        )
        tail = found.tail
        tail_suspect = (
            tail is not None
            and tail.change_pct is not None
            and tail.ci_low_pct is not None
            and tail.ci_low_pct > 0
            and tail.change_pct >= found.threshold_pct
        )
        if found.outcome == REGRESSION or tail_suspect:
            return True
    return False
