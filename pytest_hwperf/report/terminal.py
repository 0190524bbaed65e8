"""The terminal summary: one row per measurement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_hwperf.judge.budgets import fmt_rate

if TYPE_CHECKING:
    from pytest_hwperf.records.types import MeasurementRecord

__all__ = ["budget_text", "mb_text", "ms_text", "summary_lines"]

_HEADERS = ("test", "name", "device", "n", "p50", "p95", "p99", "budget", "verdict")
_NUMERIC = frozenset({"n", "p50", "p95", "p99", "rss", "min", "baseline"})  # right-aligned


def ms_text(value: object) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    if value >= 100:
        return f"{value:.0f}ms"
    if value >= 1:
        return f"{value:.2f}ms"
    return f"{value * 1000:.1f}us"


def mb_text(value: object) -> str:
    """A memory figure in MiB: 312MB, 45.2MB; "-" when there is none."""
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:.0f}MB" if value >= 100 else f"{value:.1f}MB"


def _rss_peak(record: MeasurementRecord) -> float | None:
    return None if record.memory is None else record.memory.rss_peak_mb


def budget_text(record: MeasurementRecord) -> str:
    parts: list[str] = []
    for budget in record.budgets:
        if budget.kind == "latency" and budget.percentile is not None:
            parts.append(f"p{budget.percentile:g}<={ms_text(budget.budget_ms)}")
        elif budget.kind == "throughput" and budget.min_per_s is not None:
            parts.append(f">={fmt_rate(budget.min_per_s)}/s")
    memory = record.memory
    if memory is not None:
        for value, label in ((memory.rss_budget_mb, "rss"), (memory.gpu_budget_mb, "gpu")):
            if value is not None:
                parts.append(f"{label}<={mb_text(value)}")
    return ",".join(parts) or "-"


def _row(record: MeasurementRecord) -> tuple[str, ...]:
    stats = record.stats
    block = record.timing.block_size
    n = str(stats.n) if block == 1 else f"{stats.n}x{block}"
    verdict = record.outcome or "no budget"
    if block != 1:
        # Block means: no per-call percentiles; show the mean where p50 would be.
        p50, p95, p99 = f"mean {ms_text(stats.mean_ms)}", "-", "-"
    else:
        p50, p95, p99 = ms_text(stats.p50_ms), ms_text(stats.p95_ms), ms_text(stats.p99_ms)
    return (
        record.test_id,
        record.name,
        record.device,
        n,
        p50,
        p95,
        p99,
        budget_text(record),
        verdict.upper() if verdict == "fail" else verdict,
    )


def _versus(record: MeasurementRecord) -> tuple[str, str, str]:
    """(this run's figure, the baseline's, change and verdict) cells: the figure is the
    regression gate's statistic, the fastest call (over every round measured)."""
    comparison = record.comparison
    if comparison is None:
        return "-", "-", "-"
    current = ms_text(comparison.current_ms)
    if comparison.outcome == "no baseline":
        return current, "-", "no baseline"
    change = comparison.change_pct
    text = "-" if change is None else f"{change:+.1f}%"
    word = "REGRESSION" if comparison.outcome == "regression" else comparison.outcome
    return current, ms_text(comparison.baseline_ms), f"{text} {word}"


def summary_lines(records: Sequence[MeasurementRecord]) -> list[str]:
    """A plain-text table of the measurements, one row each; with the peak RSS when any
    measurement has one, and the gate's columns (this run's fastest call, the baseline's,
    the change) when any measurement was compared with a baseline."""
    compared = any(r.comparison is not None for r in records)
    with_rss = any(_rss_peak(r) is not None for r in records)

    def joined(head: tuple[str, ...], rss: str, tail: tuple[str, ...]) -> tuple[str, ...]:
        # The peak RSS goes after p99, with the other measured figures.
        return head[:7] + ((rss,) if with_rss else ()) + head[7:] + tail

    headers = joined(_HEADERS, "rss", ("min", "baseline", "change") if compared else ())
    rows = [
        headers,
        *(joined(_row(r), mb_text(_rss_peak(r)), _versus(r) if compared else ()) for r in records),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(headers))]
    numeric = {i for i, name in enumerate(headers) if name in _NUMERIC}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines
