"""The report's charts, built from typed records: the latency distribution against the
budgets, the median against the baseline, the median over past runs, and the worker x
thread sweeps (docs/reference.md, "HTML report", says what each shows).

Each returns one inline `<svg>` string (see `svg.py`), or None when the record has
nothing to draw. Records read from a file were checked by `records.codec.from_json`
(types, finite numbers); a figure that is absent (None) leaves its mark out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from pytest_hwperf.records.types import BudgetRecord, ComparisonRecord, MeasurementRecord
from pytest_hwperf.report.cells import rate_text
from pytest_hwperf.report.svg import Chart, Dot, Scale, histogram, thin_steps
from pytest_hwperf.report.sweep import Sweep, SweepConfig
from pytest_hwperf.store import TrendRow

__all__ = [
    "comparison_chart",
    "distribution_chart",
    "duration",
    "duration_ticks",
    "history_chart",
    "percentile_label",
    "rate_text",
    "sweep_charts",
]

PASS, FAIL, WARN, NEUTRAL, ACCENT = "#1a7f37", "#cf222e", "#9a6700", "#6e7781", "#0969da"
OUTCOME_COLORS = {"pass": PASS, "fail": FAIL, "inconclusive": WARN}
COMPARISON_COLORS = {
    "regression": FAIL,
    "improvement": PASS,
    "unchanged": ACCENT,
    "not significant": ACCENT,
}
SERIES = ("#0969da", "#e16f24", "#1a7f37", "#8250df", "#bf3989", "#1b7c83")


def duration(ms: float | None, digits: int = 3) -> str:
    """A time in milliseconds in the unit that reads best: 850 ns, 127 µs, 12.8 ms, 1.5 s."""
    if ms is None:
        return "-"
    if ms == 0:
        return "0"
    for scale, unit in ((1000.0, "s"), (1.0, "ms"), (1e-3, "µs")):
        if abs(ms) >= scale:
            return f"{ms / scale:.{digits}g} {unit}"
    return f"{ms * 1e6:.{digits}g} ns"


def duration_ticks(values: Sequence[float]) -> list[tuple[float, str]]:
    """Tick values with `duration` labels, with as many digits as it takes to tell
    neighbours apart (13.75 and 13.8 µs must not both read "13.8 µs")."""
    for digits in range(3, 8):
        labels = [duration(v, digits) for v in values]
        if len(set(labels)) == len(labels):
            break
    return list(zip(values, labels, strict=True))


def percentile_label(budget: BudgetRecord) -> str:
    return f"p{budget.percentile or 0:g}"


def distribution_chart(record: MeasurementRecord) -> str | None:
    """The empirical CDF of the per-call samples over a histogram of them, with each
    latency budget as a vertical rule and the measured percentile, with its confidence
    interval, as a dot: a dot left of its rule is a budget met."""
    samples = sorted(v / 1e6 for v in record.samples_ns)
    if not samples:
        return None
    budgets = [b for b in record.budgets if b.kind == "latency"]
    # The axis is the samples' range. A budget (or a confidence bound) more than 10x
    # beyond it would leave the distribution a sliver at one edge: such a budget is named
    # at that edge with an arrow ("lots of headroom") and a bound is cut with an arrowhead.
    least = next((v for v in samples if v > 0), samples[-1])
    near_lo, near_hi = least / 10, samples[-1] * 10
    xs = [samples[0], least, samples[-1]]
    for budget in budgets:
        xs += [
            v
            for v in (budget.budget_ms, budget.measured_ms, budget.lower_ms, budget.upper_ms)
            if v and near_lo <= v <= near_hi
        ]
    positive = [v for v in xs if v > 0]
    # Latency is right-skewed: past a factor of 8 a linear axis crushes the body into a
    # few pixels to show the tail.
    log = bool(positive) and max(positive) / min(positive) >= 8
    name = f"{record.name} on {record.device}"
    chart = Chart.create(
        f"latency distribution of {name}",
        xs,
        [0.0, 100.0],
        width=680,
        height=280 + 13 * len(budgets),
        left=58,
        top=30 + 13 * len(budgets),
        x_log=log,
    )
    chart.y = Scale(0.0, 100.0, chart.plot_bottom, chart.plot_top)
    block = record.timing.block_size or 1
    chart.axes(
        x_label="time per call"
        + (f" (block means, blocks of {block})" if block > 1 else "")
        + (" — log scale" if log else ""),
        y_label="calls at or below (%)",
        x_ticks=duration_ticks(chart.x.ticks()),
        y_ticks=[(v, f"{v:g}%") for v in (0.0, 25.0, 50.0, 75.0, 100.0)],
    )
    # A log axis has no place for 0 ns samples (a clock too coarse for the target): they
    # stay in the CDF, at the axis' left end, but out of the histogram.
    binned = [v for v in samples if v > 0] if log else samples
    if len(binned) > 1 and binned[-1] > binned[0]:
        count = max(8, min(48, int(2 * math.sqrt(len(binned)))))
        bins = histogram(binned, binned[0], binned[-1], count, log=log)
        tallest = max((n for _, _, n in bins), default=0) or 1
        chart.bars([(a, b, 45.0 * n / tallest) for a, b, n in bins], "#54aeff", 0.35)
    chart.line(thin_steps(samples), ACCENT, width=2, step=True)
    dots = []
    ruled = False
    for row, budget in enumerate(budgets):
        color = OUTCOME_COLORS.get(budget.outcome, NEUTRAL)
        limit, level = budget.budget_ms, budget.percentile
        if limit is None or level is None:
            continue
        label = f"{percentile_label(budget)} budget {duration(limit)}"
        if near_lo <= limit <= near_hi:
            chart.vline(limit, color, label, row=len(budgets) - 1 - row)
            ruled = True
        else:
            chart.edge_label(limit > near_hi, label, color, row=len(budgets) - 1 - row)
        measured = budget.measured_ms
        if measured is not None:
            chart.hline(level, "#afb8c1", dash="2 3")
            dots.append(
                Dot(
                    measured,
                    level,
                    color,
                    low=budget.lower_ms,
                    high=budget.upper_ms,
                    tip=budget.reason,
                )
            )
    chart.dots(dots)
    legend: list[tuple[str, str, str | None]] = [
        ("share of calls (CDF)", ACCENT, None),
        ("histogram", "#54aeff", None),
    ]
    if ruled:
        legend.append(("budget", NEUTRAL, "5 4"))
    chart.legend(legend)
    return chart.render()


def comparison_chart(record: MeasurementRecord, comparison: ComparisonRecord) -> str:
    """The baseline's figure and this run's (the gate's statistic: the fastest call), the
    latter with the confidence interval of the change; the band is the tolerated change
    (within the threshold both ways)."""
    statistic = comparison.statistic or "median"
    what = {"min": "fastest call", "median": "median"}.get(statistic, statistic)
    base = comparison.baseline_ms or 0.0
    current = comparison.current_ms or 0.0
    low_pct, high_pct = comparison.ci_low_pct, comparison.ci_high_pct
    threshold = comparison.threshold_pct or 10.0
    slower, faster = base * (1 + threshold / 100), base / (1 + threshold / 100)
    low = None if low_pct is None else base * (1 + low_pct / 100)
    high = None if high_pct is None else base * (1 + high_pct / 100)
    core = [base, current, slower, faster]
    # A bound more than 3x beyond the medians (few, noisy baseline runs give intervals of
    # +1000% and more) would squash the medians into one pixel: it is cut at the edge,
    # with an arrowhead, and the caption states it.
    xs = core + [v for v in (low, high) if v is not None and min(core) / 3 <= v <= max(core) * 3]
    chart = Chart.create(
        f"{record.name}: {what} against the baseline",
        xs,
        [0.0, 1.0],
        width=440,
        height=160,
        left=70,
        top=26,
        bottom=38,
    )
    chart.y = Scale(-0.6, 1.6, chart.plot_bottom, chart.plot_top)
    chart.band(faster, slower, NEUTRAL, 0.1)
    chart.axes(
        x_label=f"{what} (time per call)",
        y_label="",
        x_ticks=duration_ticks(chart.x.ticks()),
        y_ticks=[(1.0, "baseline"), (0.0, "this run")],
    )
    chart.vline(slower, FAIL, f"+{threshold:g}%", dash="4 3")
    color = COMPARISON_COLORS.get(comparison.outcome, NEUTRAL)
    chart.dots(
        [
            Dot(base, 1.0, NEUTRAL, tip=f"baseline {what} {duration(base, 4)}"),
            Dot(current, 0.0, color, low=low, high=high, tip=comparison.reason),
        ]
    )
    return chart.render()


def _run_labels(created: Sequence[str]) -> list[str]:
    """Short run times for axis ticks: "11-28 14:18" from "2026-11-28T14:18:39+00:00",
    with the seconds when the minutes alone would repeat a label."""
    texts = [str(c) for c in created]
    labels = [f"{c[5:10]} {c[11:16]}" if len(c) >= 16 else c for c in texts]
    if len(set(labels)) < len(labels):
        labels = [f"{c[5:10]} {c[11:19]}" if len(c) >= 19 else c for c in texts]
    return labels


def _finite(value: object) -> float | None:
    """`value` as a finite float, or None: what a history row read from a database that
    someone edited may hold instead (text, NaN, an infinity, a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def history_chart(record: MeasurementRecord, rows: Sequence[TrendRow]) -> str | None:
    """The median of this measurement in each recorded run on this fingerprint, oldest
    first; the last point is the latest run (this one, when the plugin wrote the report).
    A row whose median is not a finite number is left out."""
    points = [(row, m) for row in rows if (m := _finite(row.median_ms)) is not None]
    if not points:
        return None
    comparison = record.comparison
    # The baseline line only where the gate compared medians too (reports written before
    # it compared the fastest call): a line of another statistic would mislead.
    baseline = (
        comparison.baseline_ms
        if comparison is not None and comparison.statistic == "median"
        else None
    )
    ys = [m for _, m in points] + ([baseline] if baseline is not None else [])
    n = len(points)
    chart = Chart.create(
        f"{record.name}: median per run",
        [0.0, max(1.0, n - 1.0)],
        ys,
        width=440,
        height=190,
        left=62,
        top=26,
        bottom=38,
    )
    chart.x = Scale(-0.5, n - 0.5, chart.plot_left, chart.plot_right)
    marks = sorted({0, n - 1, *([round((n - 1) / 2)] if n > 4 else [])})
    chart.axes(
        x_label=f"last {n} run{'s' if n != 1 else ''} on this fingerprint",
        y_label="median",
        y_ticks=duration_ticks(chart.y.ticks()),
        x_ticks=list(
            zip(
                (float(i) for i in marks),
                _run_labels([points[i][0].created for i in marks]),
                strict=True,
            )
        ),
    )
    if comparison is not None and baseline is not None:
        drift = comparison.drift_factor
        rescaled = drift is not None and abs(drift - 1.0) >= 0.02
        chart.hline(
            baseline, NEUTRAL, f"baseline (x{drift:.2f} for speed)" if rescaled else "baseline"
        )
    chart.line([(float(i), m) for i, (_, m) in enumerate(points)], ACCENT, width=2)
    chart.dots(
        [
            Dot(
                float(i),
                m,
                ACCENT,
                radius=4.5 if i == n - 1 else 3,
                hollow=i != n - 1,
                tip=f"{row.created}{' ' + str(row.commit) if row.commit else ''}: median"
                f" {duration(m, 4)}, n {row.n if row.n is not None else '-'}",
            )
            for i, (row, m) in enumerate(points)
        ]
    )
    return chart.render()


def _throughput(config: SweepConfig) -> float | None:
    return config.throughput_per_s


def _p95(config: SweepConfig) -> float | None:
    return config.p95_ms


def sweep_charts(sweep: Sweep, *, p95_budget_ms: float | None = None) -> list[str]:
    """Throughput and p95 latency against the worker count, one line per thread count;
    hollow points missed the latency budget or were oversubscribed, the ringed one is
    the recommended config; `p95_budget_ms`, the tests' p95 budget, is a rule on the
    latency panel."""
    configs = sweep.configs
    workers = sorted({c.workers for c in configs})
    threads = sorted({c.threads for c in configs})
    position = {w: float(i) for i, w in enumerate(workers)}
    recommended = sweep.recommended
    charts = []
    panels: tuple[
        tuple[Callable[[SweepConfig], float | None], str, Callable[[float], str]], ...
    ] = (
        (_throughput, "throughput", rate_text),
        (_p95, "p95 latency", duration),
    )
    for figure, label, fmt in panels:
        latency = figure is _p95
        values = [v for c in configs if (v := figure(c)) is not None]
        if not values:
            continue
        rule = p95_budget_ms if latency else None
        chart = Chart.create(
            f"{label} per workers x threads of {sweep.name}",
            [0.0, 1.0],
            values + ([rule] if rule is not None else []),
            width=440,
            height=210,
            left=70,
            top=30,
            y_zero=True,
        )
        chart.x = Scale(-0.5, len(workers) - 0.5, chart.plot_left, chart.plot_right)
        chart.axes(
            x_label="workers",
            y_label=label,
            y_format=fmt,
            y_ticks=duration_ticks(chart.y.ticks()) if latency else None,
            x_ticks=[(position[w], str(w)) for w in workers],
        )
        if rule is not None:
            chart.hline(rule, FAIL, f"p95 budget {duration(rule)}")
        legend: list[tuple[str, str, str | None]] = []
        for i, t in enumerate(threads):
            color = SERIES[i % len(SERIES)]
            series = sorted((c for c in configs if c.threads == t), key=lambda c: c.workers)
            points = [(position[c.workers], v) for c in series if (v := figure(c)) is not None]
            chart.line(points, color)
            dots = []
            for c in series:
                value = figure(c)
                if value is None:
                    continue
                best = (
                    recommended is not None
                    and c.workers == recommended.workers
                    and c.threads == recommended.threads
                )
                dots.append(
                    Dot(
                        position[c.workers],
                        value,
                        color,
                        radius=6.5 if best else 4,
                        hollow=not c.meets_latency or c.oversubscribed,
                        tip=f"{c.workers} workers x {t} threads: {fmt(value)}"
                        + (" (recommended)" if best else "")
                        + (" (over the latency budget)" if not c.meets_latency else "")
                        + (" (oversubscribed)" if c.oversubscribed else ""),
                    )
                )
            chart.dots(dots)
            legend.append((f"{t} thread{'s' if t != 1 else ''}", color, None))
        chart.legend(legend)
        charts.append(chart.render())
    return charts
