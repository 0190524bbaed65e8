"""The terminal summary: one row per measurement.

Every string that came from the user or from a file (test ids, names, devices, reasons)
goes through `visible` before it reaches a terminal: a control character is shown as
its escape (`\\x1b`), so a name cannot clear the screen, set the window title or hide
text. Figures beyond `units.PLAIN_LIMIT` are written in scientific notation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_hwperf.judge.budgets import fmt_rate
from pytest_hwperf.judge.paired import deciding
from pytest_hwperf.units import fmt_change, is_plain

if TYPE_CHECKING:
    from pytest_hwperf.records.types import MeasurementRecord

__all__ = [
    "budget_text",
    "mb_text",
    "memory_budget_parts",
    "ms_text",
    "summary_lines",
    "visible",
]

# C0 and C1 controls and DEL, the Unicode line and paragraph separators, and the
# bidirectional controls (which reorder what a terminal or an editor shows).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object) -> str:
    """`text` with every control character shown as its escape (ESC as `\\x1b`, a
    newline as `\\x0a`, a right-to-left override as `\\u202e`): printable on a
    terminal, on one line, as it is."""
    return _CONTROL.sub(_escape, str(text))


def _figure(value: object) -> float | None:
    """A number to format, or None; an integer too large for a float is infinite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


_HEADERS = ("test", "name", "device", "n", "p50", "p95", "p99", "budget", "verdict")
_NUMERIC = frozenset({"n", "p50", "p95", "p99", "rss", "min", "baseline", "base"})  # right-aligned


def ms_text(value: object) -> str:
    """A time in ms: 12.34ms, 150ms, 850.0us; "-" when there is none; scientific beyond
    `units.PLAIN_LIMIT` ("1e+308ms")."""
    number = _figure(value)
    if number is None:
        return "-"
    if not is_plain(number):
        return f"{number:.3g}ms"
    if number >= 100:
        return f"{number:.0f}ms"
    if number >= 1:
        return f"{number:.2f}ms"
    return f"{number * 1000:.1f}us"


def mb_text(value: object) -> str:
    """A memory figure in MiB: 312MB, 45.2MB; "-" when there is none; scientific beyond
    `units.PLAIN_LIMIT`."""
    number = _figure(value)
    if number is None:
        return "-"
    if not is_plain(number):
        return f"{number:.3g}MB"
    return f"{number:.0f}MB" if number >= 100 else f"{number:.1f}MB"


def _rss_peak(record: MeasurementRecord) -> float | None:
    return None if record.memory is None else record.memory.rss_peak_mb


def memory_budget_parts(record: MeasurementRecord) -> list[str]:
    """The memory budgets, as every report writes them: `rss<=1500MB`, `rss+<=100MB`."""
    memory = record.memory
    if memory is None:
        return []
    return [
        f"{label}<={mb_text(value)}"
        for value, label in (
            (memory.rss_budget_mb, "rss"),
            (memory.gpu_budget_mb, "gpu"),
            (memory.rss_added_budget_mb, "rss+"),
            (memory.gpu_added_budget_mb, "gpu+"),
        )
        if value is not None
    ]


def budget_text(record: MeasurementRecord) -> str:
    """The budgets as every table writes them: `p95<=10.00ms`, `>=2,000/s`; a budget
    judged on the best of several rounds (--hwperf-confirm) says so: `p95<=10.00ms
    (best of 6 rounds)`."""
    parts: list[str] = []
    for budget in record.budgets:
        rounds = f" (best of {budget.rounds} rounds)" if budget.rounds > 1 else ""
        if budget.kind == "latency" and budget.percentile is not None:
            parts.append(f"p{budget.percentile:g}<={ms_text(budget.budget_ms)}{rounds}")
        elif budget.kind == "throughput" and budget.min_per_s is not None:
            parts.append(f">={fmt_rate(budget.min_per_s)}/s{rounds}")
    parts += memory_budget_parts(record)
    return ",".join(parts) or "-"


def _row(record: MeasurementRecord) -> tuple[str, ...]:
    stats = record.stats
    block = record.timing.block_size
    n = str(stats.n) if block == 1 else f"{stats.n}x{block}"
    verdict = record.verdict  # "fail" whatever failed the test, a regression included
    if block != 1:
        # Block means: no per-call percentiles; show the mean where p50 would be.
        p50, p95, p99 = f"mean {ms_text(stats.mean_ms)}", "-", "-"
    else:
        p50, p95, p99 = ms_text(stats.p50_ms), ms_text(stats.p95_ms), ms_text(stats.p99_ms)
    return (
        visible(record.test_id),
        visible(record.name),
        visible(record.device),
        n,
        p50,
        p95,
        p99,
        budget_text(record),
        visible(verdict.upper() if verdict == "fail" else verdict),
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
    shown = deciding(comparison)  # same-run A/B: the tail's (p95) when it decided
    change = shown.change_pct
    text = "-" if change is None else fmt_change(change)
    if shown is not comparison:
        text = f"{visible(shown.statistic)} {text}"
    word = "REGRESSION" if comparison.outcome == "regression" else visible(comparison.outcome)
    if change is None and comparison.mode == "ab":
        return current, "-", word  # "not compared": the reason line says why
    low, high = shown.ci_low_pct, shown.ci_high_pct
    if comparison.outcome == "not significant" and low is not None and high is not None:
        word += f" ({fmt_change(low)} to {fmt_change(high)})"  # why it could not tell
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

    # Same-run A/B compares with the REF measured in the same run: its column is "base".
    base = (
        "base" if any(r.comparison and r.comparison.mode == "ab" for r in records) else "baseline"
    )
    headers = joined(_HEADERS, "rss", ("min", base, "change") if compared else ())
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
