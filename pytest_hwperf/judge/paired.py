"""Same-run A/B verdicts (`--hwperf-against`): the working tree (head) against a REF
(base), measured on the same machine in alternating rounds, judged on the pairs.

Round i of a measurement gives the head's figure h_i and the base's b_i, taken one right
after the other (the fastest call of the round; and the latency at the test's budget
percentile, p95 by default). The statistic is the paired log-difference

    d_i = ln(h_i) - ln(b_i),   i = 1 .. R

whose mean is the change and whose spread between rounds is its noise: a frequency
change or a drift that slows round i slows both sides of it alike, so it cancels in d_i
instead of landing in one side's figure. A co-tenant's burst does not cancel: it slows
the two rounds of a pair by different amounts, so a pair with a round that waited for a
CPU (`RoundRecord.disturbed`) is left out whenever `MIN_PAIRS` quiet pairs remain, and
the head measures more pairs, up to as many again, while fewer than half its pairs are
quiet (plugin/ab_measure.py). A round far slower than the other rounds of its side
leaves its pair out too (`regression.disturbed_runs`, per side, from 5 rounds). The
bounds use Student's t on `sqrt(s^2 / R + p^2)`, `s` the sample standard deviation of
the d_i (floored, so rounds that happened to agree to 0.01% do not make a 0.1% change
significant) and `p` the spread between the two processes (`AB_PROCESS_SIGMA_PCT`,
`AB_TAIL_PROCESS_SIGMA_PCT`: the pairs are all measured by the same two processes, so
what differs between those two is in every pair alike and no number of pairs averages
it away), with R - 1 degrees of freedom raised by Welch-Satterthwaite as the known `p`
makes more of the standard error; the decision is `regression.decide`'s, so a change
counts as it does against a stored baseline: it must be significant and not shown to be
within the threshold. docs/statistics.md ("Same-run A/B") gives the reasoning.

Pure: nothing here knows about pytest, git or processes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from pytest_hwperf.judge.budgets import fmt_ms
from pytest_hwperf.judge.regression import (
    IMPROVEMENT,
    NOT_SIGNIFICANT,
    REGRESSION,
    STATISTIC,
    UNCHANGED,
    Comparison,
    decide,
    disturbed_runs,
    non_negative_pct,
    student_t_cdf,
    student_t_isf,
    student_t_sf,
)
from pytest_hwperf.records.types import ComparisonRecord, RoundRecord

__all__ = [
    "AB_MODE",
    "AB_PROCESS_SIGMA_PCT",
    "AB_TAIL_PROCESS_SIGMA_PCT",
    "MIN_PAIRS",
    "NOT_COMPARED",
    "SIGMA_FLOOR_PCT",
    "ab_comparison",
    "compare_fastest",
    "compare_paired",
    "deciding",
    "left_out",
    "not_compared",
    "quiet_pair",
    "quiet_pairs",
    "tail_name",
    "tail_of",
]

AB_MODE = "ab"
"""`ComparisonRecord.mode` of a same-run A/B comparison."""

NOT_COMPARED = "not compared"
"""The outcome of a measurement A/B could not pair: new at head, failed at REF, the REF
run failed. It passes, and its line says why."""

MIN_PAIRS = 3
"""Rounds needed on each side: two pairs give a t with one degree of freedom (Cauchy),
whose quantiles would make the gate blind."""

SIGMA_FLOOR_PCT = 0.5
"""The least spread of the d_i assumed, in percent: no machine repeats a timing better
(the stored-baseline gate's floor)."""

AB_PROCESS_SIGMA_PCT = 1.0
"""How far the fastest call of two processes measured side by side differs, in percent,
added to the standard error of the paired mean: every pair is measured by the same two
processes, so their difference is in each pair alike. Measured here: the A/B change of
the unchanged model spread by 0.8-1.3% over 20 runs (three series, quiet and with a
co-tenant), the head reading 0.4-0.6% slower on average (docs/statistics.md)."""

AB_TAIL_PROCESS_SIGMA_PCT = 2.0
"""The same for the tail (the latency at the budget percentile), which differs more:
the unchanged model's A/B p95 change spread by 1.5-2.3%, the head 0.4-1.8% slower on
average; without it 2 of 7 unchanged runs under a co-tenant failed on p95 changes of
+2.9% and +4.0% whose pairs agreed closely (docs/benchmarks.md)."""


MAX_DOF = 1000.0  # beyond it Student's t is the normal distribution to 0.2%


def _positive(values: Sequence[float | None]) -> list[float | None]:
    return [v if v is not None and v > 0.0 and math.isfinite(v) else None for v in values]


def compare_paired(
    head_ms: Sequence[float | None],
    base_ms: Sequence[float | None],
    *,
    threshold_pct: float,
    alpha: float,
    statistic: str = STATISTIC,
    sigma_floor_pct: float = SIGMA_FLOOR_PCT,
    process_sigma_pct: float = AB_PROCESS_SIGMA_PCT,
) -> Comparison:
    """Judge paired rounds: `head_ms[i]` and `base_ms[i]` are the two sides' figures of
    round i (a figure that is missing, zero or not finite drops its pair).
    `process_sigma_pct` is the spread between the two processes, added in quadrature to
    the standard error of the mean difference (not divided by the pairs).

    `current_ms` and `baseline_ms` of the result are the geometric means of the head's
    and the base's figures over the pairs, so their ratio is the change shown;
    `baseline_runs` is the number of pairs. Raises ValueError with fewer than
    `MIN_PAIRS` usable pairs or a bad threshold or alpha."""
    if len(head_ms) != len(base_ms):
        raise ValueError(f"{len(head_ms)} head rounds against {len(base_ms)} base rounds")
    if not (threshold_pct > 0.0 and math.isfinite(threshold_pct)):
        raise ValueError(f"threshold_pct must be positive and finite, got {threshold_pct!r}")
    if not 0.0 < alpha <= 0.5:
        raise ValueError(f"alpha must be within (0, 0.5], got {alpha!r}")
    process = non_negative_pct("process_sigma_pct", process_sigma_pct)
    pairs = [
        (h, b)
        for h, b in zip(_positive(head_ms), _positive(base_ms), strict=True)
        if h is not None and b is not None
    ]
    rounds = len(pairs)
    if rounds < MIN_PAIRS:
        raise ValueError(f"{rounds} usable paired rounds, fewer than the {MIN_PAIRS} needed")
    diffs = [math.log(h) - math.log(b) for h, b in pairs]
    mean = math.fsum(diffs) / rounds
    spread = math.sqrt(math.fsum((x - mean) ** 2 for x in diffs) / (rounds - 1))
    source = f"spread of {rounds} paired rounds"
    floor = sigma_floor_pct / 100.0
    if spread < floor:
        spread = floor
        source += f", raised to the {sigma_floor_pct:g}% floor"
    estimated = spread**2 / rounds
    se = math.sqrt(estimated + process**2)
    if process > 0.0:
        source += f", plus {process_sigma_pct:g}% between the two processes"
    # Welch-Satterthwaite: only the pairs' part is estimated (R - 1 degrees of freedom);
    # the part between the processes is a known constant, so the more of the standard
    # error it makes, the nearer the t quantile comes to the normal one.
    dof = min(MAX_DOF, (rounds - 1) * (se**2 / estimated) ** 2)
    quantile = student_t_isf(alpha, dof)
    t = mean / se
    lower, upper = mean - quantile * se, mean + quantile * se
    head_mean = math.fsum(math.log(h) for h, _ in pairs) / rounds
    base_mean = math.fsum(math.log(b) for _, b in pairs) / rounds
    return Comparison(
        outcome=decide(lower, upper, threshold_pct),
        statistic=statistic,
        current_ms=math.exp(head_mean),
        baseline_ms=math.exp(base_mean),
        change_pct=_pct(mean),
        ci_low_pct=_pct(lower),
        ci_high_pct=_pct(upper),
        p_value=student_t_sf(t, dof) if mean >= 0.0 else student_t_cdf(t, dof),
        sigma_pct=100.0 * spread,
        sigma_source=source,
        baseline_runs=rounds,
        threshold_pct=threshold_pct,
        alpha=alpha,
    )


def compare_fastest(
    head_ms: Sequence[float | None],
    base_ms: Sequence[float | None],
    *,
    threshold_pct: float,
    alpha: float,
    statistic: str = STATISTIC,
    sigma_floor_pct: float = SIGMA_FLOOR_PCT,
    process_sigma_pct: float = AB_PROCESS_SIGMA_PCT,
) -> Comparison:
    """Judge the fastest call of each side over all its rounds: the A/B comparison of a
    machine busy through most of the rounds (fewer than `MIN_PAIRS` quiet pairs). The
    tail is judged the same way then (`statistic`: its name): each side's lowest tail
    over its rounds, that of the round the burst touched least.

    A co-tenant's burst only ever slows a call, so each side's fastest call over its
    rounds is a figure the burst did not touch, where the paired differences of busy
    rounds are not (measured: -99% to +15,000% apart). The rounds alternate, so a drift
    of the machine reaches both sides' fastest calls alike. The standard error of each
    side's fastest of its m rounds is the exact bootstrap over its rounds
    (`spread.fastest_of_rounds_se`), the two combined as independent; it is floored at
    `sigma_floor_pct`, the spread between the two processes (`process_sigma_pct`) is
    added in quadrature, and the bounds are normal at `alpha` each. `baseline_runs` is
    the rounds a side. Raises ValueError with fewer than `MIN_PAIRS` usable rounds a
    side."""
    from statistics import NormalDist

    from pytest_hwperf.judge.spread import fastest_of_rounds_se

    process = non_negative_pct("process_sigma_pct", process_sigma_pct)
    heads = [math.log(v) for v in _positive(head_ms) if v is not None]
    bases = [math.log(v) for v in _positive(base_ms) if v is not None]
    rounds = min(len(heads), len(bases))
    if rounds < MIN_PAIRS:
        raise ValueError(f"{rounds} usable rounds a side, fewer than the {MIN_PAIRS} needed")
    change = min(heads) - min(bases)
    se = math.hypot(fastest_of_rounds_se(heads), fastest_of_rounds_se(bases))
    source = f"bootstrap of each side's fastest of {len(heads)} and {len(bases)} rounds"
    floor = sigma_floor_pct / 100.0
    if se < floor:
        se = floor
        source += f", raised to the {sigma_floor_pct:g}% floor"
    if process > 0.0:
        se = math.hypot(se, process)
        source += f", plus {process_sigma_pct:g}% between the two processes"
    quantile = NormalDist().inv_cdf(1.0 - alpha)
    lower, upper = change - quantile * se, change + quantile * se
    z = change / se
    return Comparison(
        outcome=decide(lower, upper, threshold_pct),
        statistic=statistic,
        current_ms=math.exp(min(heads)),
        baseline_ms=math.exp(min(bases)),
        change_pct=_pct(change),
        ci_low_pct=_pct(lower),
        ci_high_pct=_pct(upper),
        p_value=NormalDist().cdf(-abs(z)),
        sigma_pct=100.0 * se,
        sigma_source=source,
        baseline_runs=rounds,
        threshold_pct=threshold_pct,
        alpha=alpha,
    )


def _pct(log_ratio: float) -> float:
    return 100.0 * math.expm1(min(log_ratio, 700.0))


def tail_of(round_: RoundRecord, percentile: float) -> float | None:
    """One round's latency at `percentile` in ms: the round's figure for a latency
    budget at that percentile, else its p95 or p99; None when the round has none (a
    target timed in blocks has no per-call percentiles)."""
    for budget in round_.budgets:
        if budget.kind == "latency" and budget.percentile == percentile:
            return budget.measured_ms
    if percentile == 95.0:
        return round_.p95_ms
    if percentile == 99.0:
        return round_.p99_ms
    return None


def tail_name(percentile: float) -> str:
    """The tail statistic's name: `p95`."""
    return f"p{percentile:g}"


def _record(
    found: Comparison,
    *,
    reason: str,
    ref: str,
    key: str,
    rounds: int,
    outcome: str | None = None,
    tail: ComparisonRecord | None = None,
    head: Sequence[RoundRecord] = (),
    base: Sequence[RoundRecord] = (),
) -> ComparisonRecord:
    return found.as_record(
        reason,
        outcome=found.outcome if outcome is None else outcome,
        key=key,
        rounds=rounds,
        mode=AB_MODE,
        ref=ref,
        tail=tail,
        head_rounds=tuple(head),
        base_rounds=tuple(base),
    )


def _disturbed(values: Sequence[float | None]) -> list[bool]:
    """Which of one side's rounds were disturbed (`regression.disturbed_runs`: slower
    than that side's other rounds by far more than their spread); a missing figure
    counts as disturbed."""
    present = [(i, v) for i, v in enumerate(_positive(values)) if v is not None]
    flags = [True] * len(values)
    for (i, _), bad in zip(present, disturbed_runs([v for _, v in present]), strict=True):
        flags[i] = bad
    return flags


def _kept(
    head: Sequence[float | None], base: Sequence[float | None], drop: Sequence[bool]
) -> tuple[list[float | None], list[float | None]]:
    return (
        [None if bad else v for v, bad in zip(head, drop, strict=True)],
        [None if bad else v for v, bad in zip(base, drop, strict=True)],
    )


def quiet_pair(head: RoundRecord, base: RoundRecord) -> bool:
    """Neither round of the pair kept its threads waiting for a CPU (`disturbed`,
    measure/contention.py)."""
    return not head.disturbed and not base.disturbed


def _outliers(head: Sequence[RoundRecord], base: Sequence[RoundRecord]) -> list[bool]:
    """Which pairs have a round slower than its side's others by far more than their
    spread (`regression.disturbed_runs`)."""
    rounds = min(len(head), len(base))
    return [
        h or b
        for h, b in zip(
            _disturbed([r.min_ms for r in head[:rounds]]),
            _disturbed([r.min_ms for r in base[:rounds]]),
            strict=True,
        )
    ]


def quiet_pairs(head: Sequence[RoundRecord], base: Sequence[RoundRecord]) -> int:
    """How many pairs are quiet on both sides and not a slow outlier of either side."""
    rounds = min(len(head), len(base))
    outliers = _outliers(head, base)
    return sum(
        quiet_pair(h, b) and not o
        for h, b, o in zip(head[:rounds], base[:rounds], outliers, strict=True)
    )


def left_out(head: Sequence[RoundRecord], base: Sequence[RoundRecord]) -> list[bool]:
    """Which pairs the fastest call's comparison leaves out.

    A pair is left out when either round was slower than its side's others by far more
    than their spread (`regression.disturbed_runs`: a burst that began or ended between
    the two). When at least `MIN_PAIRS` of the others are quiet on both sides, every
    pair with a disturbed round is left out too: under a co-tenant the two rounds of a
    pair that both waited for a CPU were slowed by different amounts (measured: from -99%
    to +15,000% apart, where quiet pairs of the same runs agree within 2%), so such pairs
    add noise instead of cancelling it. With fewer quiet pairs (a co-tenant busy through
    the whole measurement, or the wait unknown) the pairs disturbed on both sides stay,
    and only those disturbed on one side are left out."""
    rounds = min(len(head), len(base))
    outliers = _outliers(head, base)
    quiet = [quiet_pair(h, b) for h, b in zip(head[:rounds], base[:rounds], strict=True)]
    if quiet_pairs(head, base) >= MIN_PAIRS:
        return [o or not q for o, q in zip(outliers, quiet, strict=True)]
    return [
        o or (h.disturbed != b.disturbed)
        for o, h, b in zip(outliers, head[:rounds], base[:rounds], strict=True)
    ]


# The A/B outcome of a measurement from its two comparisons: the first of these either
# one has (a regression of the fastest call or of the tail fails the test).
_PRIORITY = (REGRESSION, IMPROVEMENT, NOT_SIGNIFICANT, UNCHANGED)


def ab_comparison(
    head: Sequence[RoundRecord],
    base: Sequence[RoundRecord],
    *,
    ref: str,
    key: str,
    threshold_pct: float,
    alpha: float,
    percentile: float = 95.0,
) -> ComparisonRecord:
    """One measurement's A/B verdict from its paired rounds (`head[i]` against
    `base[i]`): the fastest call's paired comparison, and the tail's (the latency at
    `percentile`) in `tail` when the rounds have one. `alpha` is this measurement's
    level; with the tail compared too, each comparison gets half of it (Bonferroni).

    The pairs `left_out` names are left out (disturbed rounds, and slow outliers); the
    tail's pairs also leave out rounds whose tail was an outlier of its side. The
    outcome is a regression when either regressed, else an improvement when either
    improved, else not significant when either could not tell, else unchanged; the line
    names the deciding statistic first. Fewer than `MIN_PAIRS` usable pairs give "not
    compared"."""
    rounds = min(len(head), len(base))
    head, base = head[:rounds], base[:rounds]
    versus = f"at REF {ref}"
    head_min, base_min = [r.min_ms for r in head], [r.min_ms for r in base]
    drop = left_out(head, base)
    head_tail = [tail_of(r, percentile) for r in head]
    base_tail = [tail_of(r, percentile) for r in base]
    with_tail = rounds >= MIN_PAIRS and all(v is not None for v in head_tail + base_tail)
    each = alpha / 2.0 if with_tail else alpha
    busy = quiet_pairs(head, base) < MIN_PAIRS
    try:
        if not busy:
            fastest = _left_out(
                compare_paired(
                    *_kept(head_min, base_min, drop), threshold_pct=threshold_pct, alpha=each
                ),
                sum(drop),
                rounds,
            )
        else:  # busy through most rounds: each side's fastest call over all of them
            fastest = compare_fastest(head_min, base_min, threshold_pct=threshold_pct, alpha=each)
        tail: Comparison | None = None
        if with_tail and busy:  # each side's lowest tail over all rounds, likewise
            tail = compare_fastest(
                head_tail,
                base_tail,
                threshold_pct=threshold_pct,
                alpha=each,
                statistic=tail_name(percentile),
                process_sigma_pct=AB_TAIL_PROCESS_SIGMA_PCT,
            )
        elif with_tail:
            tail_drop = [
                d or h or b
                for d, h, b in zip(drop, _disturbed(head_tail), _disturbed(base_tail), strict=True)
            ]
            tail = _left_out(
                compare_paired(
                    *_kept(head_tail, base_tail, tail_drop),
                    threshold_pct=threshold_pct,
                    alpha=each,
                    statistic=tail_name(percentile),
                    process_sigma_pct=AB_TAIL_PROCESS_SIGMA_PCT,
                ),
                sum(tail_drop),
                rounds,
            )
    except ValueError as exc:
        return not_compared(
            min((r.min_ms for r in head if r.min_ms), default=0.0),
            f"not compared: {exc}",
            ref=ref,
            key=key,
            threshold_pct=threshold_pct,
            alpha=alpha,
        )
    found = [fastest] if tail is None else [fastest, tail]
    outcome = next(o for o in _PRIORITY if any(c.outcome == o for c in found))
    deciding = next(c for c in found if c.outcome == outcome)
    lines = [deciding.reason(versus=versus)]
    lines += [c.reason(versus="at REF") for c in found if c is not deciding]
    return _record(
        fastest,
        reason="; ".join(lines) + f" ({rounds} rounds each, interleaved)",
        ref=ref,
        key=key,
        rounds=rounds,
        outcome=outcome,
        tail=(
            None
            if tail is None
            else _record(tail, reason=tail.reason(versus=versus), ref=ref, key=key, rounds=rounds)
        ),
        head=head,
        base=base,
    )


def _left_out(found: Comparison, dropped: int, rounds: int) -> Comparison:
    if not dropped:
        return found
    return dataclasses.replace(
        found,
        sigma_source=f"{found.sigma_source} ({dropped} of {rounds} pairs left out as disturbed)",
    )


def deciding(comparison: ComparisonRecord) -> ComparisonRecord:
    """The comparison that decided an A/B record's outcome: its tail's when the fastest
    call's own verdict differs (a regression, or an uncertainty, of the tail alone),
    else the record itself. The tables show its change and interval."""
    tail = comparison.tail
    low, high = comparison.ci_low_pct, comparison.ci_high_pct
    if tail is None or tail.outcome != comparison.outcome or low is None or high is None:
        return comparison
    own = decide(math.log1p(low / 100.0), math.log1p(high / 100.0), comparison.threshold_pct)
    return comparison if own == comparison.outcome else tail


def not_compared(
    current_ms: float,
    why: str,
    *,
    ref: str,
    key: str,
    threshold_pct: float,
    alpha: float,
) -> ComparisonRecord:
    """A measurement A/B could not pair, with why: `new at head, not compared`, `failed
    at REF: ...`, `REF run failed: ...`. It passes."""
    return ComparisonRecord(
        outcome=NOT_COMPARED,
        statistic=STATISTIC,
        current_ms=current_ms,
        reason=f"{STATISTIC} {fmt_ms(current_ms)}: {why} (REF {ref})",
        threshold_pct=threshold_pct,
        alpha=alpha,
        key=key,
        mode=AB_MODE,
        ref=ref,
    )
