"""The terminal summary: one row per measurement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_hwperf.budgets import fmt_rate

__all__ = ["summary_lines"]

_HEADERS = ("test", "name", "device", "n", "p50", "p95", "p99", "budget", "verdict")


def _ms(value: object) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    if value >= 100:
        return f"{value:.0f}ms"
    if value >= 1:
        return f"{value:.2f}ms"
    return f"{value * 1000:.1f}us"


def _budget_text(record: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for budget in record.get("budgets", []):
        if budget.get("kind") == "latency":
            parts.append(f"p{budget['percentile']:g}<={_ms(budget['budget_ms'])}")
        elif budget.get("kind") == "throughput":
            parts.append(f">={fmt_rate(budget['min_per_s'])}/s")
    return ",".join(parts) or "-"


def _row(record: Mapping[str, Any]) -> tuple[str, ...]:
    stats = record.get("stats", {})
    block = record.get("timing", {}).get("block_size", 1)
    n = str(stats.get("n", "-")) if block == 1 else f"{stats.get('n', '-')}x{block}"
    verdict = record.get("outcome") or "no budget"
    if block != 1:
        # Block means: no per-call percentiles; show the mean where p50 would be.
        p50, p95, p99 = f"mean {_ms(stats.get('mean_ms'))}", "-", "-"
    else:
        p50, p95, p99 = _ms(stats.get("p50_ms")), _ms(stats.get("p95_ms")), _ms(stats.get("p99_ms"))
    return (
        str(record.get("test_id", "?")),
        str(record.get("name", "?")),
        str(record.get("device", "?")),
        n,
        p50,
        p95,
        p99,
        _budget_text(record),
        str(verdict).upper() if verdict == "fail" else str(verdict),
    )


def summary_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """A plain-text table of the measurements, one row each."""
    rows = [_HEADERS, *(_row(r) for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADERS))]
    numeric = {3, 4, 5, 6}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines
