"""The regression decision: Student's t against scipy (the same-run A/B gate uses it),
the stored-baseline verdict on constructed baselines (bounds computed here from the
documented method: lower median, robust spread, normal quantile), and its error rates by
simulation."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest
from _typed_records import typed
from scipy import stats as sps

from pytest_hwperf.judge.gate import SavedRun, compare_with_runs
from pytest_hwperf.judge.regression import (
    IMPROVEMENT,
    NO_BASELINE,
    NOT_SIGNIFICANT,
    REGRESSION,
    SIGMA_FLOOR_PCT,
    UNCHANGED,
    Comparison,
    bonferroni_alpha,
    compare,
    disturbed_runs,
    parse_threshold,
    student_t_cdf,
    student_t_isf,
    student_t_sf,
)
from pytest_hwperf.records.codec import to_json_object
from pytest_hwperf.records.types import JSONValue

LIMIT = math.log(1.10)  # the default threshold on the log scale
Z99 = NormalDist().inv_cdf(0.99)
FLOOR = 0.02  # the documented spread floor, 2% on the log scale
PRIOR = 0.05  # the documented prior, used with fewer than 3 saved runs and no rounds


def log_spread(values):
    """The sample standard deviation of the logs: what the old gate used."""
    return float(np.std(np.log(values), ddof=1))


def lower_median(values):
    """The median of an odd count, the lower middle value of an even one."""
    ordered = np.sort(np.asarray(values, dtype=float))
    return float(ordered[(len(ordered) - 1) // 2])


def mad_spread(values):
    """1.4826 times the median absolute deviation of the logs from their median."""
    logs = np.log(values)
    return 1.4826 * float(np.median(np.abs(logs - np.median(logs))))


def expected_spread(baseline, floor=FLOOR, prior=PRIOR):
    """The spread `compare` uses when no rounds are given: the saved runs' MAD from 3
    runs on, else the prior; never below the floor."""
    spread = mad_spread(baseline) if len(baseline) >= 3 else prior
    return max(spread, floor)


def expected_bounds(current, baseline, alpha=0.01, **spread_args):
    """(d, se, L, U) by the documented method: d against the lower median,
    se = s sqrt(1 + 1/k), bounds at the normal 1 - alpha quantile."""
    k = len(baseline)
    d = math.log(current) - math.log(lower_median(baseline))
    se = expected_spread(baseline, **spread_args) * math.sqrt(1 + 1 / k)
    q = sps.norm.isf(alpha)
    return d, se, d - q * se, d + q * se


def pct(log_ratio):
    return 100 * math.expm1(log_ratio)


def test_the_documented_floor_is_the_codes():
    assert pytest.approx(100 * FLOOR) == SIGMA_FLOOR_PCT


# --- Student's t (the same-run A/B gate, judge/paired.py) --------------------------------

DOFS = [1, 2, 3, 4, 5, 7, 10, 30, 100, 1000, 0.5, 2.5]
TS = [-200.0, -30.0, -8.0, -3.0, -1.5, -0.7, -0.1, 0.0, 1e-6, 0.3, 1.0, 2.0, 3.7, 6.9, 12.0, 50.0]


@pytest.mark.parametrize("dof", DOFS)
def test_t_cdf_and_sf_match_scipy(dof):
    for t in TS:
        assert student_t_cdf(t, dof) == pytest.approx(sps.t.cdf(t, dof), rel=1e-10, abs=1e-300)
        # The upper tail keeps its relative precision far out (p-values of 1e-12).
        assert student_t_sf(t, dof) == pytest.approx(sps.t.sf(t, dof), rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 9, 40, 2.5])
@pytest.mark.parametrize("prob", [0.9, 0.5, 0.3, 0.1, 0.05, 0.01, 0.001, 1e-5, 1e-8])
def test_t_upper_quantile_matches_scipy(dof, prob):
    assert student_t_isf(prob, dof) == pytest.approx(sps.t.isf(prob, dof), rel=1e-9, abs=1e-12)


def test_t_edges_and_bad_arguments():
    assert student_t_sf(math.inf, 3) == 0.0
    assert student_t_cdf(math.inf, 3) == 1.0
    assert student_t_sf(0.0, 3) == 0.5
    for bad_dof in (0, -1, math.inf, math.nan):
        with pytest.raises(ValueError, match="degrees of freedom"):
            student_t_sf(1.0, bad_dof)
    for bad_prob in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="probability"):
            student_t_isf(bad_prob, 3)


# --- The decision on constructed inputs ------------------------------------------------


def test_identical_runs_are_unchanged():
    c = compare(2.0, [2.0] * 5)
    assert c.outcome == UNCHANGED
    assert c.change_pct == 0.0
    assert c.p_value == pytest.approx(0.5)
    assert c.baseline_ms == pytest.approx(2.0)
    assert c.ci_low_pct is not None
    assert c.ci_high_pct is not None
    assert c.ci_low_pct < 0.0 < c.ci_high_pct


def test_fifty_percent_slower_with_a_tight_baseline_is_a_regression():
    baseline = [1.00, 1.01, 0.99, 1.02, 1.00]
    current = 1.5 * lower_median(baseline)
    c = compare(current, baseline)
    assert c.outcome == REGRESSION
    assert c.baseline_ms == pytest.approx(1.00)  # the median of five
    assert c.change_pct == pytest.approx(50.0)
    assert c.ci_low_pct is not None
    assert c.ci_high_pct is not None
    assert c.ci_low_pct < 50.0 < c.ci_high_pct
    # By hand: the MAD of these five is 1.5%, under the floor, so s = 2% and
    # se = 0.02 * sqrt(1 + 1/5); the normal quantile at 99%.
    assert mad_spread(baseline) < FLOOR
    se = FLOOR * math.sqrt(1.2)
    assert c.ci_low_pct == pytest.approx(pct(math.log(1.5) - Z99 * se))
    assert c.ci_high_pct == pytest.approx(pct(math.log(1.5) + Z99 * se))
    assert c.sigma_pct == pytest.approx(100 * FLOOR)
    assert c.sigma_source == ("run-to-run spread of 5 baseline runs (MAD), raised to the 2% floor")
    assert c.baseline_runs == 5


def test_a_spread_above_the_floor_is_the_saved_runs_mad():
    baseline = [1.00, 1.04, 0.97, 1.06, 0.95]
    s = mad_spread(baseline)
    assert s > FLOOR  # 4.4%: the MAD itself is used
    c = compare(1.3, baseline)
    _, se, low, high = expected_bounds(1.3, baseline)
    assert se == pytest.approx(s * math.sqrt(1.2))
    assert c.sigma_pct == pytest.approx(100 * s)
    assert c.sigma_source == "run-to-run spread of 5 baseline runs (MAD)"
    assert c.baseline_ms == pytest.approx(1.00)
    assert c.ci_low_pct == pytest.approx(pct(low))
    assert c.ci_high_pct == pytest.approx(pct(high))
    assert c.outcome == REGRESSION


def test_the_baseline_is_the_lower_median_of_the_saved_runs():
    # Odd count: the median; even count: the lower of the two middle values (a save in a
    # busy stretch only ever makes a figure slower, so the faster middle value is kept).
    assert compare(1.0, [1.3, 1.0, 1.1]).baseline_ms == pytest.approx(1.1)
    assert compare(1.0, [1.3, 1.0, 1.1, 1.2]).baseline_ms == pytest.approx(1.1)
    assert compare(1.0, [1.5, 1.0]).baseline_ms == pytest.approx(1.0)
    assert compare(1.0, [1.5]).baseline_ms == pytest.approx(1.5)
    # Not the geometric mean, which one slow save pulls up.
    slow_save = [1.0, 1.01, 1.6]
    assert compare(1.0, slow_save).baseline_ms == pytest.approx(1.01)
    assert math.exp(np.mean(np.log(slow_save))) > 1.17


def test_small_significant_slowdown_shown_within_the_threshold_is_tolerated():
    """+8% against five identical runs with a 20% threshold: the spread is the 2% floor,
    se = 0.02 * sqrt(1.2) = 0.02191 and z(0.99) = 2.3263 give q se = 0.05097, so
    L = ln 1.08 - 0.05097 = +0.0260 > 0 (significant) and
    U = ln 1.08 + 0.05097 = 0.1279 < ln 1.20 = 0.1823: a 20% slowdown is ruled out."""
    c = compare(1.08, [1.0] * 5, threshold_pct=20)
    se = FLOOR * math.sqrt(1.2)
    low, high = math.log(1.08) - Z99 * se, math.log(1.08) + Z99 * se
    assert Z99 * se == pytest.approx(0.05097, abs=1e-5)
    assert low == pytest.approx(0.0260, abs=1e-4)
    assert high == pytest.approx(0.1279, abs=1e-4)
    assert low > 0.0
    assert high < math.log(1.2)
    assert c.outcome == UNCHANGED
    assert c.ci_low_pct == pytest.approx(pct(low))
    assert c.ci_high_pct == pytest.approx(pct(high))
    assert c.p_value is not None
    assert c.p_value < 0.01
    assert c.p_value == pytest.approx(sps.norm.sf(math.log(1.08) / se), rel=1e-9)
    assert c.sigma_pct == pytest.approx(2.0)
    assert "2% floor" in c.sigma_source
    assert "slower, but shown within the 20% threshold" in c.reason()


def test_slowdown_below_threshold_is_a_regression_while_the_threshold_is_not_ruled_out():
    """The rule is "significant and not shown within the threshold", not "point estimate
    beyond it": +6% against a tight baseline is significant (L > 0) and its upper bound
    reaches past +10%, so it fails."""
    baseline = [1.00, 1.01, 0.99, 1.015, 0.995]
    current = 1.06 * lower_median(baseline)
    d, _, low, high = expected_bounds(current, baseline)
    assert d == pytest.approx(math.log(1.06))
    assert low > 0.0
    assert high >= LIMIT
    c = compare(current, baseline)
    assert c.outcome == REGRESSION
    assert "significantly slower, not shown within the 10% threshold" in c.reason()


def test_thirty_percent_faster_is_an_improvement():
    baseline = [1.00, 1.01, 0.99, 1.02, 1.00]
    c = compare(0.7 * lower_median(baseline), baseline)
    assert c.outcome == IMPROVEMENT
    assert c.change_pct == pytest.approx(-30.0)
    assert c.ci_high_pct is not None
    assert c.ci_high_pct < 0.0
    # p-value in the direction of the change (of "no speedup"): the normal tail of d/se.
    se = expected_spread(baseline) * math.sqrt(1.2)
    assert c.p_value == pytest.approx(sps.norm.cdf(math.log(0.7) / se), rel=1e-9)


def test_speedup_shown_within_the_threshold_is_unchanged():
    # -8% with a 20% threshold: significantly faster, and a 20% speedup is ruled out.
    c = compare(0.92, [1.0] * 5, threshold_pct=20)
    _, _, low, high = expected_bounds(0.92, [1.0] * 5)
    assert high < 0.0
    assert low > -math.log(1.2)
    assert c.outcome == UNCHANGED
    assert c.ci_high_pct == pytest.approx(pct(high))
    assert "faster, but shown within the 20% threshold" in c.reason()


def test_one_baseline_run_without_rounds_uses_the_prior_and_says_so():
    c = compare(1.2, [1.0])
    assert c.sigma_pct == pytest.approx(100 * PRIOR)
    assert c.sigma_source == "prior 5% (1 baseline run, no rounds recorded)"
    assert c.baseline_runs == 1
    # Normal quantile; se = 0.05 * sqrt(2): L = ln 1.2 - 2.3263 * 0.07071 = +0.0178.
    se = PRIOR * math.sqrt(2.0)
    low = math.log(1.2) - Z99 * se
    assert low == pytest.approx(0.0178, abs=1e-4)
    assert c.outcome == REGRESSION
    assert c.ci_low_pct == pytest.approx(pct(low))
    assert c.p_value == pytest.approx(sps.norm.sf(math.log(1.2) / se), rel=1e-9)
    # +15% on one run with the prior: L = 0.1398 - 0.1645 < 0, and U = 0.304 reaches
    # past +10%: the interval cannot tell, so it is "not significant", not "unchanged".
    fifteen = compare(1.15, [1.0])
    assert math.log(1.15) - Z99 * se < 0.0 < LIMIT < math.log(1.15) + Z99 * se
    assert fifteen.outcome == NOT_SIGNIFICANT


def test_two_baseline_runs_without_rounds_use_the_prior_and_the_faster_run():
    c = compare(1.0, [1.0, 1.5])  # a wild spread between the two is not trusted
    assert c.sigma_pct == pytest.approx(100 * PRIOR)
    assert c.sigma_source.startswith("prior 5% (2 baseline runs")
    assert c.baseline_ms == pytest.approx(1.0)
    se = PRIOR * math.sqrt(1.5)
    assert c.ci_low_pct == pytest.approx(pct(-Z99 * se))
    assert c.ci_high_pct == pytest.approx(pct(Z99 * se))


def test_three_baseline_runs_use_their_mad_and_the_normal_quantile():
    """Three saves no longer give Student's t with 2 degrees of freedom (its 99% quantile
    is 6.96, three times the normal's): the spread is their 1.4826 MAD, the bounds
    normal."""
    baseline = [1.00, 1.03, 0.98]
    current = 1.2
    c = compare(current, baseline)
    s = mad_spread(baseline)
    assert s > FLOOR
    se = s * math.sqrt(1 + 1 / 3)
    d = math.log(current / 1.00)  # the median of the three
    assert c.sigma_source == "run-to-run spread of 3 baseline runs (MAD)"
    assert c.sigma_pct == pytest.approx(100 * s)
    assert c.ci_low_pct == pytest.approx(pct(d - Z99 * se))
    assert c.ci_high_pct == pytest.approx(pct(d + Z99 * se))
    assert c.p_value == pytest.approx(sps.norm.sf(d / se), rel=1e-9)
    assert c.outcome == REGRESSION
    # Under the old method (sd of the logs, t with 2 dof) the same +20% was not caught.
    old_se = log_spread(baseline) * math.sqrt(1 + 1 / 3)
    old_d = math.log(current) - float(np.mean(np.log(baseline)))
    assert old_d - sps.t.isf(0.01, 2) * old_se < 0.0


def test_one_disturbed_save_among_three_does_not_blind_the_gate():
    """The issue's case: three saves, one in a busy stretch. Their standard deviation is
    13%; the MAD ignores the odd one out, and the baseline is the median."""
    baseline = [1.00, 1.01, 1.28]
    assert log_spread(baseline) > 0.13
    c = compare(1.12, baseline)
    assert c.sigma_pct == pytest.approx(100 * max(mad_spread(baseline), FLOOR))
    assert c.sigma_pct <= 2.0 + 1e-9
    assert c.baseline_ms == pytest.approx(1.01)
    assert c.outcome == REGRESSION


def test_the_spread_never_falls_below_the_floor():
    baseline = [1.000, 1.001, 0.999, 1.000, 1.0005]  # a 0.07% spread
    assert mad_spread(baseline) < 0.001
    c = compare(1.01, baseline)
    assert c.sigma_pct == pytest.approx(100 * FLOOR)
    assert c.outcome == UNCHANGED  # a 1% change is not significant on a 2% floor
    assert c.ci_low_pct is not None
    assert c.ci_low_pct < 0.0
    # Without the floor the same 1% would have been significant.
    c0 = compare(1.01, baseline, sigma_floor_pct=0.0)
    assert c0.sigma_pct == pytest.approx(100 * mad_spread(baseline))
    assert c0.ci_low_pct is not None
    assert c0.ci_low_pct > 0.0
    # The floor binds the prior too; with one saved run, the 3% between runs does.
    lone = compare(1.0, [1.0], prior_sigma_pct=0.1, process_sigma_pct=0.0)
    assert lone.sigma_pct == pytest.approx(100 * FLOOR)
    assert compare(1.0, [1.0], prior_sigma_pct=0.1).sigma_pct == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("current", "baseline"),
    [
        (1.05, [1.0, 1.02, 0.97, 1.01]),
        (1.20, [1.0, 1.05, 0.94, 1.01, 1.03]),
        (0.95, [1.0, 1.04, 0.97]),
        (1.001, [1.0, 1.02, 0.97, 1.01, 1.0]),
        (1.10, [1.0]),
        (0.90, [1.0, 1.2]),
    ],
)
def test_p_value_is_the_normal_tail_of_d_over_se(current, baseline):
    c = compare(current, baseline)
    d, se, _, _ = expected_bounds(current, baseline)
    expected = sps.norm.sf(d / se) if d >= 0 else sps.norm.cdf(d / se)
    assert c.p_value == pytest.approx(expected, rel=1e-9)


def test_threshold_and_alpha_are_respected():
    baseline = [1.0, 1.01, 0.99, 1.0, 1.005]
    assert compare(1.5, baseline, threshold_pct=60).outcome == UNCHANGED
    strict = compare(1.5, baseline, alpha=1e-6)
    assert strict.ci_low_pct is not None
    assert strict.ci_high_pct is not None
    loose = compare(1.5, baseline)
    assert loose.ci_low_pct is not None
    assert loose.ci_high_pct is not None
    assert strict.ci_low_pct < loose.ci_low_pct
    assert strict.ci_high_pct > loose.ci_high_pct
    _, _, low, high = expected_bounds(1.5, baseline, alpha=1e-6)
    assert strict.ci_low_pct == pytest.approx(pct(low))
    assert strict.ci_high_pct == pytest.approx(pct(high))


def test_empty_baseline_is_no_baseline():
    c = compare(1.0, [])
    assert c.outcome == NO_BASELINE
    assert c.baseline_runs == 0
    assert c.baseline_ms is None
    assert c.change_pct is None
    assert c.p_value is None


@pytest.mark.parametrize(
    ("current", "baseline"),
    [(0.0, [1.0]), (-1.0, [1.0]), (1.0, [1.0, 0.0]), (math.nan, [1.0]), (1.0, [math.inf])],
)
def test_non_positive_medians_are_rejected(current, baseline):
    with pytest.raises(ValueError, match="min must be positive"):
        compare(current, baseline)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="alpha"):
        compare(1.0, [1.0], alpha=0.0)
    with pytest.raises(ValueError, match="threshold_pct"):
        compare(1.0, [1.0], threshold_pct=0.0)
    with pytest.raises(ValueError, match="prior_sigma_pct"):
        compare(1.0, [1.0], prior_sigma_pct=-1.0)
    with pytest.raises(ValueError, match="sigma_floor_pct"):
        compare(1.0, [1.0], sigma_floor_pct=-0.5)


# --- Error rates by simulation ---------------------------------------------------------

SESSIONS = 2000
SIGMA = 0.02
RUNS = 5


def draws(effect, seed, sessions=SESSIONS, runs=RUNS, sigma=SIGMA):
    """Saved runs' and current figures, lognormal with the same run-to-run `sigma`, the
    current one `effect` slower."""
    rng = np.random.default_rng(seed)
    base = np.exp(rng.normal(0.0, sigma, (sessions, runs)))
    current = np.exp(rng.normal(math.log1p(effect), sigma, sessions))
    return base, current


def documented_verdicts(base, current, alpha=0.01):
    """The documented rule, vectorised: saved runs above median + max(3 x 1.4826 MAD,
    ln 1.03) left out (from 5 runs on), then a regression when L > 0 and U >= ln 1.1,
    with the lower median of the kept runs, max(their 1.4826 MAD, 2%) and the normal
    quantile."""
    logs = np.log(base)

    def mad(x):
        return 1.4826 * np.nanmedian(np.abs(x - np.nanmedian(x, axis=1)[:, None]), axis=1)

    if logs.shape[1] >= 5:
        cut = np.nanmedian(logs, axis=1) + np.maximum(3 * mad(logs), math.log(1.03))
        logs = np.where(logs > cut[:, None], np.nan, logs)
    k = np.sum(~np.isnan(logs), axis=1)
    ordered = np.sort(logs, axis=1)  # the left-out runs (NaN) sort last
    centre = np.take_along_axis(ordered, ((k - 1) // 2)[:, None], axis=1)[:, 0]
    spread = np.maximum(np.where(k >= 3, mad(logs), PRIOR), FLOOR)
    se = spread * np.sqrt(1 + 1 / k)
    d = np.log(current) - centre
    q = sps.norm.isf(alpha)
    return (d - q * se > 0) & (d + q * se >= LIMIT)


def simulate(effect, seed):
    """Fraction of SESSIONS sessions `compare` judges a regression; each session's
    verdict is checked against the documented rule."""
    base, current = draws(effect, seed)
    outcomes = [compare(float(c), b.tolist()).outcome for c, b in zip(current, base, strict=True)]
    found = np.array([o == REGRESSION for o in outcomes])
    assert (found == documented_verdicts(base, current)).all()
    return float(found.mean())


def documented_rate(effect, seed=7, sessions=200_000):
    """The rule's regression rate under the simulation's model, from many draws."""
    base, current = draws(effect, seed, sessions=sessions)
    return float(documented_verdicts(base, current).mean())


def test_false_alarms_stay_below_alpha():
    """At a 2% run-to-run spread (the floor), five saves: the median's own error and the
    MAD's are not in se, yet false alarms stay just under alpha (0.96% over 200,000
    sessions; docs/statistics.md gives the rates at other spreads)."""
    rate = simulate(0.0, seed=20260)
    exact = documented_rate(0.0)
    assert exact <= 0.01
    assert abs(rate - exact) <= 4 * math.sqrt(exact * (1 - exact) / SESSIONS)


def test_detection_of_ten_percent():
    """+10% at a 2% spread from five saves: caught 92% of the time (Student's t with
    4 degrees of freedom caught 70%)."""
    rate = simulate(0.10, seed=20261)
    exact = documented_rate(0.10)
    assert exact == pytest.approx(0.92, abs=0.01)
    assert abs(rate - exact) <= 4 * math.sqrt(exact * (1 - exact) / SESSIONS)


def test_twenty_percent_is_almost_always_caught():
    assert simulate(0.20, seed=20262) >= 0.99
    assert documented_rate(0.20) >= 0.999


# --- Session-wide level, thresholds, reasons -------------------------------------------


def test_bonferroni_alpha():
    assert bonferroni_alpha(0.01, 20) == pytest.approx(0.0005)
    assert bonferroni_alpha(0.01, 1) == 0.01
    assert bonferroni_alpha(0.01, 0) == 0.01  # no comparisons: nothing to divide
    with pytest.raises(ValueError, match="alpha"):
        bonferroni_alpha(0.0, 3)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(10, 10.0), (2.5, 2.5), ("10", 10.0), ("10%", 10.0), (" 7.5 % ", 7.5), ("0.5%", 0.5)],
)
def test_parse_threshold_accepts(raw, expected):
    assert parse_threshold(raw) == expected


@pytest.mark.parametrize(
    "raw", [0, -5, "0%", "-3%", "abc", "", "%", "inf", "nan", math.inf, True, None, [10]]
)
def test_parse_threshold_rejects_with_one_line(raw):
    with pytest.raises(ValueError, match="positive percentage") as info:
        parse_threshold(raw)
    assert "\n" not in str(info.value)
    assert repr(raw) in str(info.value)


def test_reason_for_a_regression():
    c = Comparison(
        outcome=REGRESSION,
        statistic="median",
        current_ms=1.52,
        baseline_ms=1.01,
        change_pct=50.2,
        ci_low_pct=44.1,
        ci_high_pct=56.6,
        p_value=0.0001,
        sigma_pct=1.0,
        sigma_source="run-to-run spread of 5 baseline runs",
        baseline_runs=5,
        threshold_pct=10.0,
        alpha=0.01,
    )
    assert c.reason("ab12cd34ef56") == (
        "median 1.52 ms vs baseline 1.01 ms: +50.2% (98% CI +44.1% to +56.6%), "
        "beyond the 10% threshold, p=0.0001; fingerprint ab12cd34ef56"
    )


def test_reason_for_each_outcome():
    baseline = [1.0, 1.01, 0.99, 1.02, 1.0]
    regression = compare(1.5, baseline).reason("ab12cd34ef56")
    assert regression.startswith("min 1.50 ms vs baseline 1.00 ms: +50.0% (98% CI ")
    assert "beyond the 10% threshold" in regression
    assert regression.endswith("; fingerprint ab12cd34ef56")
    assert "\n" not in regression

    improvement = compare(0.7, baseline).reason()
    assert improvement.startswith("min 700.0 us vs baseline 1.00 ms: -30.")
    assert "faster beyond the 10% threshold" in improvement
    assert "fingerprint" not in improvement

    assert (
        compare(1.0, baseline).reason().endswith("unchanged: shown within the 10% threshold, p=0.5")
    )
    slower = compare(1.08, [1.0] * 5, threshold_pct=20).reason()
    assert "slower, but shown within the 20% threshold" in slower
    faster = compare(0.92, [1.0] * 5, threshold_pct=20).reason()
    assert "faster, but shown within the 20% threshold" in faster
    # A 5% threshold with a 2% floor: the interval (-5.0% to +5.2%) reaches past it
    # both ways, so nothing is shown: "not significant", never "unchanged".
    too_wide = compare(1.0, [1.0] * 5, threshold_pct=5)
    assert too_wide.outcome == NOT_SIGNIFICANT
    assert too_wide.reason() == (
        "min 1.00 ms vs baseline 1.00 ms: +0.0% (98% CI -5.0% to +5.2%), not significant,"
        " and too uncertain to rule out a change of the 5% threshold, p=0.5"
    )

    assert compare(1.0, []).reason() == "min 1.00 ms: no baseline"
    assert compare(1.0, []).reason("ab12cd34ef56") == (
        "min 1.00 ms: no baseline; fingerprint ab12cd34ef56"
    )


def test_bonferroni_level_shows_in_the_interval_label():
    c = compare(1.5, [1.0, 1.01, 0.99, 1.02, 1.0], alpha=bonferroni_alpha(0.01, 20))
    assert "(99.9% CI " in c.reason()


def gate_record(
    current: float, baseline: list[float], fingerprint: str | None = None, alpha: float = 0.01
) -> dict[str, JSONValue]:
    """The gate's record of a comparison (what the plugin and `hwperf compare` write)."""
    found = compare_with_runs(
        current,
        [SavedRun(b) for b in baseline],
        key="t.py::test_x::m@cpu",
        threshold_pct=10.0,
        alpha=alpha,
        fingerprint=fingerprint,
    )
    return to_json_object(found)


@pytest.mark.parametrize(
    ("current", "baseline"), [(1.5, [1.0, 1.01, 0.99]), (1.0, [1.0]), (1.0, [])]
)
def test_record_is_json_safe(current, baseline):
    c = compare(current, baseline)
    record = gate_record(current, baseline)
    assert json.loads(json.dumps(record, allow_nan=False)) == record
    assert record["outcome"] == c.outcome
    assert record["reason"] == c.reason()
    assert record["ci_confidence_pct"] == pytest.approx(98.0)
    assert gate_record(current, baseline, "ab12")["reason"] == c.reason("ab12")


def test_record_stays_finite_for_absurd_bounds():
    record = gate_record(1.0, [1.0, 100.0, 0.01], alpha=1e-12)
    assert json.loads(json.dumps(record, allow_nan=False)) == record


def test_drift_adjusted_rescales_the_baseline_by_the_share_of_the_reference_ratio():
    from pytest_hwperf.judge.drift import DRIFT_SHARE, drift_adjusted

    # The machine runs 1.45x slower now than when each baseline run was saved; a model
    # follows DRIFT_SHARE of that move on the log scale (judge/drift.py).
    medians, factor = drift_adjusted([1.0, 1.1], [50.0, 55.0], 72.5)
    assert medians == pytest.approx([1.45**DRIFT_SHARE, 1.1 * (72.5 / 55.0) ** DRIFT_SHARE])
    assert factor == pytest.approx(math.sqrt(1.45 * 72.5 / 55.0) ** DRIFT_SHARE)
    assert 0.5 < DRIFT_SHARE < 1
    # Without a reference on every side nothing is rescaled.
    assert drift_adjusted([1.0, 1.1], [50.0, None], 72.5) == ([1.0, 1.1], None)
    assert drift_adjusted([1.0], [50.0], None) == ([1.0], None)
    assert drift_adjusted([], [], 10.0) == ([], None)


def test_a_slower_machine_is_not_a_regression_once_rescaled():
    from pytest_hwperf.judge.drift import DRIFT_SHARE
    from pytest_hwperf.judge.regression import compare, drift_adjusted

    base = [1.00, 1.01, 0.99, 1.00, 1.02]
    refs = [50.0] * 5
    # The code is unchanged but the whole machine is 40% slower by the reference, and
    # the model slowed by the share of that it follows.
    slower = 1.40**DRIFT_SHARE
    raw = compare(slower, base)
    adjusted, _ = drift_adjusted(base, refs, 70.0)
    fair = compare(slower, adjusted)
    assert raw.outcome == "regression"
    assert fair.outcome == "unchanged"
    # Code 25% slower on that slower machine is still caught.
    assert compare(1.25 * slower, adjusted).outcome == "regression"


def test_drift_adjusted_only_rescales_against_a_reference_of_the_same_kind():
    from pytest_hwperf.judge.drift import DRIFT_SHARE
    from pytest_hwperf.judge.regression import drift_adjusted

    same = drift_adjusted(
        [1.0, 1.0],
        [50.0, 50.0],
        60.0,
        baseline_kinds=["torch-mm/2", "torch-mm/2"],
        current_kind="torch-mm/2",
    )
    assert same[0] == pytest.approx([1.2**DRIFT_SHARE] * 2)
    # A two-thread torch product and a one-thread numpy one gauge different things.
    mixed = drift_adjusted(
        [1.0, 1.0],
        [50.0, 50.0],
        60.0,
        baseline_kinds=["torch-mm/2", "numpy-dot/1"],
        current_kind="torch-mm/2",
    )
    assert mixed == ([1.0, 1.0], None)
    other = drift_adjusted(
        [1.0], [50.0], 60.0, baseline_kinds=["torch-mm/1"], current_kind="torch-mm/2"
    )
    assert other == ([1.0], None)


def test_drift_adjusted_ignores_a_gauge_that_moved_implausibly():
    from pytest_hwperf.judge.drift import DRIFT_SHARE
    from pytest_hwperf.judge.regression import drift_adjusted

    # A 500x slower reference says the gauge stalled, not that the machine did.
    assert drift_adjusted([1.0, 1.0], [0.05, 0.05], 25.0) == ([1.0, 1.0], None)
    assert drift_adjusted([1.0], [0.05], 0.19)[1] == pytest.approx(3.8**DRIFT_SHARE)


def test_the_reference_follows_how_the_target_used_the_cores(monkeypatch):
    import sys

    import torch

    from pytest_hwperf.measure import reference as ref

    parallel = ref.reference(parallel=True, budget_s=0.002)
    assert parallel.kind == f"torch-mm/{torch.get_num_threads()}"
    assert parallel.ns > 0
    single = ref.reference(parallel=False, budget_s=0.002)
    assert single.kind == "numpy-dot/1"
    monkeypatch.delitem(sys.modules, "torch")
    numpy_parallel = ref.reference(parallel=True, budget_s=0.002)
    assert numpy_parallel.kind.startswith("numpy-dot/")
    assert numpy_parallel.ns > 0


def test_busy_threads_counts_threads_over_a_fifth_of_a_core():
    from pytest_hwperf.measure.reference import busy_threads

    before = {1: 10.0, 2: 5.0, 3: 0.0}
    after = {1: 11.0, 2: 5.05, 3: 0.5, 4: 0.3}  # over 1 s: 100%, 5%, 50%, 30% (new)
    assert busy_threads(before, after, 1.0) == 3
    assert busy_threads(before, after, 0.0) == 0


def test_a_large_machine_speed_correction_makes_the_verdict_cautious():
    from pytest_hwperf.judge.drift import DRIFT_SE, DRIFT_SHARE, DRIFT_UNCERTAINTY
    from pytest_hwperf.judge.regression import compare

    base = [1.00, 1.01, 0.99, 1.00, 1.02, 0.99, 1.01, 1.00, 1.00, 0.99]
    # +12% against a tight baseline: a regression when the machine is as it was.
    assert compare(1.12, base, drift_factor=1.0).outcome == "regression"
    assert compare(1.12, base).outcome == "regression"
    # The same +12% after the baseline was rescaled by 2x for machine speed: the
    # correction itself may be off by more than that, so it is not a verdict (and not
    # "unchanged" either: the interval is far too wide to show that).
    cautious = compare(1.12, base, drift_factor=2.0)
    assert cautious.outcome == NOT_SIGNIFICANT
    se = math.sqrt(FLOOR**2 * 1.1 + (DRIFT_UNCERTAINTY * math.log(2.0)) ** 2)
    d = math.log(1.12 / lower_median(base))
    assert cautious.ci_low_pct == pytest.approx(pct(d - Z99 * se))
    assert "machine-speed correction" in cautious.sigma_source
    # The error grows with the size of the correction, either way.
    assert compare(1.12, base, drift_factor=0.5).ci_low_pct == pytest.approx(cautious.ci_low_pct)
    # It is the share's standard error per unit of the gauge's own log move.
    assert math.isclose(DRIFT_UNCERTAINTY * DRIFT_SHARE, DRIFT_SE)
    assert 0 < DRIFT_UNCERTAINTY < 1


# --- disturbed saved runs and the gate's figure --------------------------------------------


def test_a_saved_run_slowed_from_start_to_end_is_left_out():
    saved = [1.00, 1.01, 0.99, 1.00, 1.02, 0.98, 2.1]
    assert disturbed_runs(saved) == [False] * 6 + [True]
    kept = compare(1.0, saved)
    assert kept.baseline_runs == 6
    assert "1 of 7 saved runs left out as disturbed" in kept.sigma_source
    # The spread is that of the six kept (their MAD is 1.5%: the 2% floor).
    assert kept.sigma_pct == pytest.approx(100 * max(mad_spread(saved[:6]), FLOOR))
    assert kept.baseline_ms == pytest.approx(lower_median(saved[:6]))
    # Its standard deviation, which the old gate used, would have blinded it to +20%.
    assert compare(1.2, saved).outcome == REGRESSION
    assert log_spread(saved) > 0.25


def test_disturbed_runs_are_one_sided_and_need_five_runs():
    # Interference only adds time: a run far faster than the rest is not left out.
    assert disturbed_runs([1.0, 1.01, 0.99, 1.0, 0.5]) == [False] * 5
    assert disturbed_runs([1.0, 5.0]) == [False, False]  # too few to tell
    # Among four, a run unlike the others may be a second state of the target.
    assert disturbed_runs([1.0, 1.01, 0.99, 1.35]) == [False] * 4
    assert disturbed_runs([1.0, 1.01, 0.99, 1.0, 1.35]) == [False] * 4 + [True]
    assert disturbed_runs([]) == []


def test_runs_that_agree_closely_keep_a_run_within_three_percent():
    # Runs agreeing to 0.01% have a tiny MAD; 3% above their median is still kept.
    close = [1.0, 1.0001, 0.9999, 1.0, 1.0002]
    assert disturbed_runs([*close, 1.025]) == [False] * 6
    assert disturbed_runs([*close, 1.04]) == [False] * 5 + [True]


def test_gate_ms_is_the_fastest_call_over_every_round():
    record = typed(
        {
            "stats": {"min_ms": 3.0},
            "rounds": [{"n": 100, "min_ms": 3.0}, {"n": 90, "min_ms": 2.0}],
            "samples_ns": [3_000_000, 3_100_000],
        }
    )
    assert record.gate_ms == 2.0
    assert typed({"stats": {"min_ms": 3.0}, "rounds": []}).gate_ms == 3.0
    assert typed({"stats": {"n": 0}, "samples_ns": [4_000_000, 3_500_000]}).gate_ms == 3.5
    assert typed({"stats": {"n": 0}, "samples_ns": []}).gate_ms is None
