"""What the reports write the same way about a measurement: its throughput with its
unit, a rate, and a count with its noun.

The throughput is `MeasurementRecord.items_per_s`: in items per second when a throughput
budget counts items, so it stands next to that budget in the same unit. (The verdict
every report shows is `MeasurementRecord.verdict`, and the counts by it
`judge.verdict.count_verdicts`; the memory budgets are written by
`terminal.memory_budget_parts`.)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_hwperf.records.types import MeasurementRecord

__all__ = [
    "plural",
    "rate_text",
    "throughput_figure",
    "throughput_unit",
]


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` with its noun, singular for one: "1 baseline run", "3 baseline runs"."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"


def rate_text(value: float | None, unit: str = "/s") -> str:
    """A rate: "2,050/s", "18.3/s", or with a unit ("2,050 items/s"); "-" when none."""
    if value is None or not math.isfinite(value):
        return "-"
    number = float(value)
    return f"{number:,.0f}{unit}" if number >= 100 else f"{number:.3g}{unit}"


def throughput_unit(record: MeasurementRecord) -> str:
    """The unit of `record.items_per_s`: "items/s" when a throughput budget measured it
    (items: calls times the batch size), "requests/s" for a worker pool, else
    "calls/s"."""
    if any(b.kind == "throughput" and b.measured_per_s is not None for b in record.budgets):
        return "items/s"
    if record.served_per_s is not None:
        return "requests/s"
    return "calls/s"


def throughput_figure(record: MeasurementRecord) -> str:
    """The measured throughput with its unit: "2,050 items/s", "18.3 calls/s"."""
    return rate_text(record.items_per_s, f" {throughput_unit(record)}")
