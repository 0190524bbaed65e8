"""The regression gate: one measurement against its saved runs, as one decision.

The plugin (at each test's report) and `hwperf compare` (offline, on files) both call
`compare_with_runs`; the threshold rule (`threshold_for`) and the Bonferroni family
(`comparison_alpha`) are decided here and nowhere else, so the two reach the same
verdict and the same line by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_hwperf.judge.regression import (
    NO_BASELINE,
    STATISTIC,
    bonferroni_alpha,
    compare,
    drift_adjusted,
)
from pytest_hwperf.records.types import ComparisonRecord

__all__ = [
    "SavedRun",
    "compare_with_runs",
    "comparison_alpha",
    "drift_text",
    "threshold_for",
]


@dataclass(frozen=True)
class SavedRun:
    """What the gate needs of one saved run: its fastest call and the reference workload's
    time around it (when one was measured)."""

    fastest_ms: float
    reference_ms: float | None = None
    reference_kind: str | None = None


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
) -> ComparisonRecord:
    """This run's fastest call (over its `rounds`) against the saved runs of `key`.

    The saved runs are rescaled to this run's machine speed when both sides measured the
    same reference workload; the verdict, its interval and its one line come from
    `regression.compare`, with the rescaling and the rounds measured named in the line.
    Raises ValueError for a figure that is not positive and finite.
    """
    values, drift = drift_adjusted(
        [run.fastest_ms for run in runs],
        [run.reference_ms for run in runs],
        reference_ms,
        baseline_kinds=[run.reference_kind for run in runs],
        current_kind=reference_kind,
    )
    found = compare(
        current_ms, values, threshold_pct=threshold_pct, alpha=alpha, drift_factor=drift
    )
    confirmed = f" (the fastest of {rounds} rounds)" if rounds > 1 else ""
    reason = found.reason(fingerprint)
    if found.outcome != NO_BASELINE:
        reason += drift_text(drift) + confirmed
    return ComparisonRecord(
        outcome=found.outcome,
        statistic=found.statistic or STATISTIC,
        current_ms=found.current_ms,
        reason=reason,
        baseline_ms=found.baseline_ms,
        change_pct=found.change_pct,
        ci_low_pct=found.ci_low_pct,
        ci_high_pct=found.ci_high_pct,
        ci_confidence_pct=found.ci_confidence_pct,
        p_value=found.p_value,
        sigma_pct=found.sigma_pct,
        sigma_source=found.sigma_source,
        baseline_runs=found.baseline_runs,
        threshold_pct=found.threshold_pct,
        alpha=found.alpha,
        key=key,
        drift_factor=drift,
        rounds=max(1, rounds),
    )
