"""The terminal summary: one row per measurement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_hwperf.judge.budgets import fmt_rate

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


def _rss_peak(record: Mapping[str, Any]) -> object:
    return (record.get("memory") or {}).get("rss_peak_mb")


def budget_text(record: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for budget in record.get("budgets", []):
        if budget.get("kind") == "latency":
            parts.append(f"p{budget['percentile']:g}<={ms_text(budget['budget_ms'])}")
        elif budget.get("kind") == "throughput":
            parts.append(f">={fmt_rate(budget['min_per_s'])}/s")
    memory = record.get("memory") or {}
    for key, label in (("rss_budget_mb", "rss"), ("gpu_budget_mb", "gpu")):
        if isinstance(memory.get(key), (int, float)):
            parts.append(f"{label}<={mb_text(memory[key])}")
    return ",".join(parts) or "-"


def _row(record: Mapping[str, Any]) -> tuple[str, ...]:
    stats = record.get("stats", {})
    block = record.get("timing", {}).get("block_size", 1)
    n = str(stats.get("n", "-")) if block == 1 else f"{stats.get('n', '-')}x{block}"
    verdict = record.get("outcome") or "no budget"
    if block != 1:
        # Block means: no per-call percentiles; show the mean where p50 would be.
        p50, p95, p99 = f"mean {ms_text(stats.get('mean_ms'))}", "-", "-"
    else:
        p50, p95, p99 = (
            ms_text(stats.get("p50_ms")),
            ms_text(stats.get("p95_ms")),
            ms_text(stats.get("p99_ms")),
        )
    return (
        str(record.get("test_id", "?")),
        str(record.get("name", "?")),
        str(record.get("device", "?")),
        n,
        p50,
        p95,
        p99,
        budget_text(record),
        str(verdict).upper() if verdict == "fail" else str(verdict),
    )


def _versus(record: Mapping[str, Any]) -> tuple[str, str, str]:
    """(this run's figure, the baseline's, change and verdict) cells: the figure is the
    regression gate's statistic, the fastest call (over every round measured)."""
    comparison = record.get("comparison") or {}
    outcome = comparison.get("outcome")
    current = ms_text(comparison.get("current_ms"))
    if outcome in (None, "no baseline"):
        return current, "-", "no baseline" if outcome else "-"
    change = comparison.get("change_pct")
    text = f"{change:+.1f}%" if isinstance(change, (int, float)) else "-"
    word = "REGRESSION" if outcome == "regression" else str(outcome)
    return current, ms_text(comparison.get("baseline_ms")), f"{text} {word}"


def summary_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """A plain-text table of the measurements, one row each; with the peak RSS when any
    measurement has one, and the gate's columns (this run's fastest call, the baseline's,
    the change) when any measurement was compared with a baseline."""
    compared = any(r.get("comparison") for r in records)
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
