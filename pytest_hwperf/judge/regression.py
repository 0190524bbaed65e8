"""Regression verdicts: is this run's target slower than the baseline's, on this machine?

The statistic is a measurement's fastest call (`min`; for targets timed in blocks, the
fastest block mean), compared on the log scale against the k saved baseline runs of the
same measurement on the same hardware fingerprint:

    d = ln(current min) - lower median(ln(baseline mins))

On a shared machine every interruption (a co-tenant on the host's other hyperthread, an
interrupt, a context switch) only ever adds time to a call, so the fastest calls are the
ones the machine left alone: they move with the code and hardly with the noise, where
the median moves with both (measured: docs/statistics.md). A run whose every call was
slowed (a co-tenant busy for seconds) is the remaining risk; the plugin re-measures a
suspected regression (`--hwperf-confirm`), and saved runs slower than the rest by far
more than their spread are left out as disturbed (`disturbed_runs`).

The spread that judges d is the run-to-run spread of the statistic, never the spread of
the samples inside one run: those samples share the machine's state during that run, so
they say nothing about how far the next run's figure will move, and treating them as
independent draws is what makes pytest-benchmark's gate cry wolf. It is the largest of
the robust estimates there are (judge/spread.py): the bootstrap spread of the fastest of
each run's confirmation rounds, and with k >= 3 saved runs their MAD; a conservative
prior when neither exists; with fewer than 3 saves never below the spread measured
between runs (`PROCESS_SIGMA_PCT`: the rounds of one run, one process within seconds,
cannot show how far the next run moves); never below a floor, so a baseline that happened to repeat
perfectly does not turn a 0.1% change into a significant one. The bounds use the normal
distribution: the sample standard deviation of 2 or 3 saves with Student's t at 1 or 2
degrees of freedom is what made the gate blind after a few saves.

A slowdown is a regression only when it is significant (lower bound above 0) and a
slowdown as large as the threshold is not ruled out (upper bound at or beyond it): a
change shown to be smaller than the threshold is tolerated. Improvements mirror this.
"unchanged" is said only when the interval lies within the threshold both ways; an
interval too wide for that is "not significant".
docs/statistics.md ("Regressions against the baseline") gives the reasoning and the
session-wide correction (`bonferroni_alpha`).

Pure Python: Student's t distribution is computed here (regularized incomplete beta
function by continued fraction) for the same-run A/B gate's paired rounds
(judge/paired.py), so scipy is not a runtime dependency. Nothing here knows about pytest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from pytest_hwperf.judge.budgets import (
    fmt_ms,
    parse_threshold,
)
from pytest_hwperf.judge.drift import DRIFT_UNCERTAINTY, drift_adjusted
from pytest_hwperf.judge.spread import between_runs_spread, lower_median, rounds_spread
from pytest_hwperf.records.types import ComparisonRecord
from pytest_hwperf.units import fmt_change

__all__ = [
    "IMPROVEMENT",
    "MIN_RUNS_FOR_SPREAD",
    "NOT_SIGNIFICANT",
    "NO_BASELINE",
    "OUTCOMES",
    "PROCESS_SIGMA_PCT",
    "REGRESSION",
    "STATISTIC",
    "UNCHANGED",
    "Comparison",
    "bonferroni_alpha",
    "compare",
    "decide",
    "disturbed_runs",
    "drift_adjusted",
    "parse_threshold",
    "student_t_cdf",
    "student_t_isf",
    "student_t_sf",
]

REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
NOT_SIGNIFICANT = "not significant"
NO_BASELINE = "no baseline"
OUTCOMES = (REGRESSION, IMPROVEMENT, UNCHANGED, NOT_SIGNIFICANT, NO_BASELINE)

STATISTIC = "min"
"""The statistic the gate compares: the fastest call of a measurement (see the module's
docstring), over every round it was measured in."""

MIN_RUNS_FOR_SPREAD = 3
"""Baseline runs needed before their robust run-to-run spread is used: one run has no
spread, and the MAD of two is half their difference, too unsteady to lean on."""

SIGMA_FLOOR_PCT = 2.0
"""The least run-to-run spread the stored-baseline gate assumes, in percent: what the
rounds of one process cannot show (another process's memory layout, its core, the
machine's state between runs). Measured here: the fastest call of 10 saves of the same
model spread by 0.7-1.7% on a quiet runner (docs/benchmarks.md)."""

PROCESS_SIGMA_PCT = 3.0
"""The least run-to-run spread assumed while fewer than `MIN_RUNS_FOR_SPREAD` saves
measure it, in percent: the rounds of one run (one process, within seconds) cannot show
how far the next run moves with the machine's state. Measured here: the fastest call of
20 separate runs of one unchanged model against one baseline spread by 2.2-3.5% (log
standard deviation, seven series, quiet and with a co-tenant), and single saves read
3-6% off the series judged against them (docs/statistics.md, "The spread")."""


# --- Student's t distribution, exact, in pure Python ----------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (Numerical Recipes' betacf,
    modified Lentz), converging fast for x < (a + 1) / (a + b + 2)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = tiny if abs(d) < tiny else d
    d = 1.0 / d
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            return h
    raise ArithmeticError(f"incomplete beta did not converge (a={a}, b={b}, x={x})")


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """Regularized incomplete beta I_x(a, b), with y = 1 - x given separately (computed
    by the caller without cancellation: near t = 0, x is within 1e-12 of 1). The
    continued fraction is evaluated on whichever side converges; the result is only
    subtracted from 1 on the far side, where it is near 1, so small tail probabilities
    keep their relative precision."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, y) / b


def _check_dof(dof: float) -> None:
    if not (dof > 0 and math.isfinite(dof)):
        raise ValueError(f"degrees of freedom must be positive and finite, got {dof}")


def student_t_sf(t: float, dof: float) -> float:
    """P(T > t) for Student's t with `dof` degrees of freedom, exactly.

    The tail P(|T| > |t|) = I_{dof/(dof+t^2)}(dof/2, 1/2) is computed directly, so a
    p-value of 1e-12 is as precise as one of 0.3.
    """
    _check_dof(dof)
    if math.isnan(t):
        raise ValueError("t is NaN")
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    if t == 0.0:
        return 0.5
    t2 = t * t
    x, y = dof / (dof + t2), t2 / (dof + t2)
    half_tail = 0.5 * _betainc(0.5 * dof, 0.5, x, y)  # P(T > |t|)
    return half_tail if t > 0 else 1.0 - half_tail


def student_t_cdf(t: float, dof: float) -> float:
    """P(T <= t) for Student's t with `dof` degrees of freedom, exactly."""
    return student_t_sf(-t, dof)


def student_t_isf(prob: float, dof: float) -> float:
    """The t with P(T > t) = prob (the upper-tail quantile), by bisection on the exact
    tail, so it stays accurate for the small probabilities a session-wide correction
    asks for (alpha / number of tests)."""
    _check_dof(dof)
    if not 0.0 < prob < 1.0:
        raise ValueError(f"probability must be within (0, 1), got {prob}")
    if prob == 0.5:
        return 0.0
    if prob > 0.5:
        return -student_t_isf(1.0 - prob, dof)
    lo, hi = 0.0, 1.0
    while student_t_sf(hi, dof) > prob:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_sf(mid, dof) > prob:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return 0.5 * (lo + hi)


def _normal_sf(z: float) -> float:
    """P(Z > z), via erfc so small tails keep their precision."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


# --- The comparison --------------------------------------------------------------------


def _pct(log_ratio: float) -> float:
    # Clamped so that an absurd bound (a t quantile with 2 degrees of freedom at a tiny
    # Bonferroni level, times a wild spread) stays a finite, JSON-safe number.
    return 100.0 * math.expm1(min(log_ratio, 700.0))


def _fmt_pct(pct: float) -> str:
    return fmt_change(pct)  # never "-0.0%"; scientific beyond 1e12


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.0001 else f"{p:.1e}"


def _fmt_threshold(pct: float) -> str:
    return f"{pct:g}%"


@dataclass(frozen=True)
class Comparison:
    """One measurement's statistic (`statistic`: the fastest call, "min") against its
    baseline on this fingerprint.

    `baseline_ms` is the lower median of the baseline runs' statistic (judge/spread.py).
    `change_pct` is the relative change of the current
    statistic against it; `ci_low_pct`/`ci_high_pct` are the one-sided (1 - alpha) lower
    and upper bounds the verdict was decided on, which together form a two-sided
    (1 - 2 alpha) interval (`ci_confidence_pct`). `p_value` is one-sided, in the
    direction of the change: of "no slowdown" when the statistic went up, of "no speedup"
    when it went down. `sigma_pct` is the run-to-run spread used (log scale, in percent)
    and `sigma_source` says where it came from. All None (and `baseline_runs` 0) for
    "no baseline".
    """

    outcome: str
    statistic: str
    current_ms: float
    baseline_ms: float | None
    change_pct: float | None
    ci_low_pct: float | None
    ci_high_pct: float | None
    p_value: float | None
    sigma_pct: float | None
    sigma_source: str
    baseline_runs: int
    threshold_pct: float
    alpha: float

    @property
    def ci_confidence_pct(self) -> float:
        """Confidence of the interval [ci_low_pct, ci_high_pct]: each bound holds at
        1 - alpha on its own side, so both together at 1 - 2 alpha."""
        return 100.0 * (1.0 - 2.0 * self.alpha)

    def reason(self, fingerprint: str | None = None, *, versus: str | None = None) -> str:
        """One line: statistic, current and baseline, change with its interval,
        threshold, p-value and fingerprint; what a failing test shows. `versus` names
        what the baseline figure is (default "baseline"; same-run A/B: "at REF ...")."""
        where = f"; fingerprint {fingerprint}" if fingerprint else ""
        current = f"{self.statistic} {fmt_ms(self.current_ms)}"
        if (
            self.outcome == NO_BASELINE
            or self.baseline_ms is None
            or self.change_pct is None
            or self.ci_low_pct is None
            or self.ci_high_pct is None
            or self.p_value is None
        ):
            return f"{current}: no baseline{where}"
        threshold = _fmt_threshold(self.threshold_pct)
        change = (
            f"{_fmt_pct(self.change_pct)} ({self.ci_confidence_pct:.4g}% CI "
            f"{_fmt_pct(self.ci_low_pct)} to {_fmt_pct(self.ci_high_pct)})"
        )
        if self.outcome == REGRESSION:
            if self.change_pct >= self.threshold_pct:
                verdict = f"beyond the {threshold} threshold"
            else:
                verdict = f"significantly slower, not shown within the {threshold} threshold"
        elif self.outcome == IMPROVEMENT:
            if self.change_pct <= _pct(-math.log1p(self.threshold_pct / 100.0)):
                verdict = f"faster beyond the {threshold} threshold"
            else:
                verdict = f"significantly faster, not shown within the {threshold} threshold"
        elif self.outcome == NOT_SIGNIFICANT:
            verdict = (
                f"not significant, and too uncertain to rule out a change of the {threshold}"
                " threshold"
            )
        elif self.ci_low_pct > 0.0:
            verdict = f"slower, but shown within the {threshold} threshold"
        elif self.ci_high_pct < 0.0:
            verdict = f"faster, but shown within the {threshold} threshold"
        else:
            verdict = f"unchanged: shown within the {threshold} threshold"
        return (
            f"{current} vs {_versus(self.baseline_ms, versus)}: {change}, {verdict}, "
            f"p={_fmt_p(self.p_value)}{where}"
        )

    def as_record(self, reason: str, **extra: Any) -> ComparisonRecord:
        """This comparison as the record reports carry, with its one line (`reason`) and
        what the caller adds (`key`, `rounds`, `outcome` overridden, A/B fields...)."""
        fields: dict[str, Any] = {
            "outcome": self.outcome,
            "statistic": self.statistic,
            "current_ms": self.current_ms,
            "reason": reason,
            "baseline_ms": self.baseline_ms,
            "change_pct": self.change_pct,
            "ci_low_pct": self.ci_low_pct,
            "ci_high_pct": self.ci_high_pct,
            "ci_confidence_pct": self.ci_confidence_pct,
            "p_value": self.p_value,
            "sigma_pct": self.sigma_pct,
            "sigma_source": self.sigma_source,
            "baseline_runs": self.baseline_runs,
            "threshold_pct": self.threshold_pct,
            "alpha": self.alpha,
        }
        fields.update(extra)
        return ComparisonRecord(**fields)


def _versus(baseline_ms: float, versus: str | None) -> str:
    """The baseline figure as the line names it: `baseline 1.00 ms`, or with `versus`
    given `1.00 ms at REF main (abc1234)`."""
    if versus is None:
        return f"baseline {fmt_ms(baseline_ms)}"
    return f"{fmt_ms(baseline_ms)} {versus}"


def _runs(count: int, what: str = "run") -> str:
    return f"1 {what}" if count == 1 else f"{count} {what}s"


def _positive_finite(name: str, value: float) -> float:
    number = float(value)
    if not (number > 0.0 and math.isfinite(number)):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return number


def non_negative_pct(name: str, value: float) -> float:
    """A spread given in percent (>= 0 and finite, else ValueError), as a fraction."""
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")
    return value / 100.0


# A saved run counts as disturbed when its log statistic exceeds the median of the
# saved runs' by more than this many robust standard deviations (1.4826 MAD)...
DISTURBED_MADS = 3.0
# ...and by more than this ratio at least (runs agreeing to 0.1% have a tiny MAD).
DISTURBED_MIN_RATIO = 1.03
# Saved runs needed before any is left out: among 3 or 4, a run unlike the others is as
# likely a second state of the target (a slower code path some processes take) as a
# disturbance, and leaving it out would leave too few runs to measure the spread.
DISTURBED_MIN_RUNS = 5


def disturbed_runs(values_ms: Sequence[float]) -> list[bool]:
    """Which saved runs were disturbed: slower than the others by far more than their
    spread (one-sided: interference only ever adds time, so a run far *faster* than the
    rest is not noise). Needs `DISTURBED_MIN_RUNS` runs; fewer are all kept.

    The cut is `median(ln v) + max(3 * 1.4826 * MAD, ln 1.03)`: the median and the MAD
    are not moved by the disturbed runs themselves, as a mean and a standard deviation
    would be (one run at twice the time among ten raises their sd from 2% to 20%).
    """
    if len(values_ms) < DISTURBED_MIN_RUNS:
        return [False] * len(values_ms)
    logs = [math.log(_positive_finite("baseline value", v)) for v in values_ms]
    centre = _median(logs)
    mad = 1.4826 * _median([abs(x - centre) for x in logs])
    cut = centre + max(DISTURBED_MADS * mad, math.log(DISTURBED_MIN_RATIO))
    return [x > cut for x in logs]


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def compare(
    current_ms: float,
    baseline_ms: Sequence[float],
    *,
    threshold_pct: float = 10.0,
    alpha: float = 0.01,
    prior_sigma_pct: float = 5.0,
    sigma_floor_pct: float = SIGMA_FLOOR_PCT,
    process_sigma_pct: float = PROCESS_SIGMA_PCT,
    drift_factor: float | None = None,
    statistic: str = STATISTIC,
    baseline_rounds: Sequence[Sequence[float]] = (),
    current_rounds: Sequence[float] = (),
) -> Comparison:
    """Judge the current run's statistic against the baseline runs' (oldest first).

    `baseline_rounds`: for each saved run (aligned with `baseline_ms`; empty or shorter
    when not recorded), the fastest call of each of its rounds; `current_rounds` the
    same for this run. With `spread.ROUNDS_FOR_SPREAD` rounds or more they give the
    spread a single save can already be judged with (judge/spread.py). The baseline's
    figure is the lower median of the saved runs' (robust to a save in a busy stretch),
    the spread the largest of the rounds' and (with 3 saved runs or more) the saved
    runs' robust spread, else the prior; never below the floor, nor with fewer than 3
    saved runs below `process_sigma_pct` (what the rounds of one process cannot show);
    the bounds use the
    normal distribution (docs/statistics.md says why not Student's t with 1 or 2
    degrees of freedom).

    Saved runs that `disturbed_runs` marks are left out first (the result says how
    many, and `baseline_runs` counts those kept).

    `drift_factor`: how much the reference workload rescaled the baseline (the
    geometric mean of this run's reference time over the saved runs'), when it did.
    The rescaling is trusted only in part (judge/drift.py): `DRIFT_UNCERTAINTY` times
    the log of the factor is added to the standard error, so the further the machine is
    from the state the baseline was saved in, the more cautious the verdict.

    `alpha` is the one-sided level of each direction for this one comparison; pass
    `bonferroni_alpha(session_alpha, comparisons)` to hold the session's false-alarm
    rate. An empty baseline gives outcome "no baseline"; a non-positive or non-finite
    value is a ValueError (a call of 0 ms is a measuring bug, not a speedup).
    """
    current = _positive_finite(f"current {statistic}", current_ms)
    threshold = _positive_finite("threshold_pct", threshold_pct)
    prior = _positive_finite("prior_sigma_pct", prior_sigma_pct) / 100.0
    floor = non_negative_pct("sigma_floor_pct", sigma_floor_pct)
    process = non_negative_pct("process_sigma_pct", process_sigma_pct)
    if not 0.0 < alpha <= 0.5:
        raise ValueError(f"alpha must be within (0, 0.5], got {alpha!r}")
    saved = [_positive_finite(f"baseline {statistic}", b) for b in baseline_ms]
    rounds: list[tuple[float, ...]] = [
        tuple(baseline_rounds[i]) if i < len(baseline_rounds) else () for i in range(len(saved))
    ]
    flags = disturbed_runs(saved)
    baseline = [b for b, bad in zip(saved, flags, strict=True) if not bad]
    left_out = len(saved) - len(baseline)
    k = len(baseline)
    if k == 0:
        return Comparison(
            outcome=NO_BASELINE,
            statistic=statistic,
            current_ms=current,
            baseline_ms=None,
            change_pct=None,
            ci_low_pct=None,
            ci_high_pct=None,
            p_value=None,
            sigma_pct=None,
            sigma_source="no baseline runs",
            baseline_runs=0,
            threshold_pct=threshold,
            alpha=alpha,
        )

    logs = [math.log(b) for b in baseline]
    centre = lower_median(logs)
    d = math.log(current) - centre

    # The spread: the largest of the robust estimates there are (judge/spread.py), the
    # prior when there is none, never below the floor.
    kept_rounds = [r for r, bad in zip(rounds, flags, strict=True) if not bad]
    if current_rounds:
        kept_rounds.append(tuple(current_rounds))
    estimates: list[tuple[float, str]] = []
    within = rounds_spread(kept_rounds)
    if within is not None:
        estimates.append((within[0], f"the rounds of {_runs(within[1])}"))
    if k >= MIN_RUNS_FOR_SPREAD:
        estimates.append(
            (between_runs_spread(logs), f"run-to-run spread of {k} baseline runs (MAD)")
        )
    if estimates:
        spread, source = max(estimates)
    else:
        spread = prior
        source = f"prior {prior_sigma_pct:g}% ({_runs(k, 'baseline run')}, no rounds recorded)"
    if left_out:
        source += (
            f" ({left_out} of {len(saved)} saved runs left out as disturbed: slower than"
            " the rest by far more than their spread)"
        )
    if k < MIN_RUNS_FOR_SPREAD and spread < process and process > floor:
        # The rounds show one run's noise; too few saves to measure how far the next run
        # moves: the spread measured between runs is assumed.
        spread = process
        source += f", raised to {process_sigma_pct:g}% between runs ({_runs(k, 'baseline run')})"
    elif spread < floor:
        spread = floor
        source += f", raised to the {sigma_floor_pct:g}% floor"

    # The current run is one more draw (variance s^2); the baseline's centre has about
    # s^2 / k; and the machine-speed correction has its own error, growing with its size.
    correction = 0.0
    if drift_factor is not None:
        correction = DRIFT_UNCERTAINTY * abs(math.log(_positive_finite("drift", drift_factor)))
        if correction >= 0.0005:
            source += f", plus {100 * correction:.1f}% for the machine-speed correction"
    se = math.sqrt(spread**2 * (1.0 + 1.0 / k) + correction**2)
    quantile = NormalDist().inv_cdf(1.0 - alpha)
    z = d / se
    p_up, p_down = _normal_sf(z), _normal_sf(-z)
    lower, upper = d - quantile * se, d + quantile * se
    outcome = decide(lower, upper, threshold)
    return Comparison(
        outcome=outcome,
        statistic=statistic,
        current_ms=current,
        baseline_ms=math.exp(centre),
        change_pct=_pct(d),
        ci_low_pct=_pct(lower),
        ci_high_pct=_pct(upper),
        p_value=p_up if d >= 0.0 else p_down,
        sigma_pct=100.0 * spread,
        sigma_source=source,
        baseline_runs=k,
        threshold_pct=threshold,
        alpha=alpha,
    )


def decide(lower: float, upper: float, threshold_pct: float) -> str:
    """The outcome from the bounds of a log change (`lower`, `upper`) and the threshold:
    a regression when the slowdown is significant and one as large as the threshold is
    not ruled out; an improvement mirrors it; unchanged when the interval shows the
    change within the threshold either way; otherwise not significant (the interval is
    too wide to tell: "unchanged" would claim what was not shown). The stored-baseline
    gate (`compare`) and the same-run A/B gate (`judge/paired.py`) both decide here."""
    limit = math.log1p(threshold_pct / 100.0)
    if lower > 0.0 and upper >= limit:
        return REGRESSION
    if upper < 0.0 and lower <= -limit:
        return IMPROVEMENT
    if -limit < lower and upper < limit:
        return UNCHANGED
    return NOT_SIGNIFICANT


def bonferroni_alpha(alpha: float, comparisons: int) -> float:
    """The level for each of `comparisons` comparisons that keeps the chance of any
    false alarm in the session at most `alpha`.

    Bonferroni rather than Holm or Benjamini-Hochberg: a test's verdict must be given
    with its own report, before the other tests have run, and a step-down or step-up
    procedure needs every p-value first. `hwperf compare` uses it too, with the same
    count, so both reach the same verdict on the same results.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be within (0, 1), got {alpha!r}")
    return alpha / max(1, int(comparisons))
