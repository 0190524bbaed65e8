"""Typed measurement records from the few fields a unit test cares about.

The report functions take `MeasurementRecord`s; a test writes only the JSON fields it
checks, and `typed` fills in the rest with neutral values before reading the record
through the same codec as the JSON report (`measurement_from_json`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_hwperf.records.codec import measurement_from_json
from pytest_hwperf.records.types import MeasurementRecord

STATS = {"n": 1, "n_calls": 1, "mean_ms": 1.0, "stdev_ms": 0.0, "min_ms": 1.0, "max_ms": 1.0}
TIMING = {
    "clock": "perf_counter_ns",
    "sync": "none",
    "block_size": 1,
    "warmup_calls": 0,
    "warmup_ms": 0.0,
    "per_call_estimate_ms": 1.0,
    "gc": "enabled",
    "stop_reason": "max_time",
    "alpha": 0.01,
    "looks": 1,
}
BUDGET = {"kind": "latency", "outcome": "pass", "n": 1, "alpha": 0.01, "reason": ""}
COMPARISON = {"outcome": "unchanged", "statistic": "min", "current_ms": 1.0, "reason": ""}
GPU_UTILIZATION = {"mean_pct": 0.0, "max_pct": 0.0, "samples": 0, "method": "none"}
RECORD = {"test_id": "t.py::test", "name": "m", "device": "cpu", "mode": "measured"}


def _filled(defaults: Mapping[str, Any], given: object) -> object:
    return {**defaults, **given} if isinstance(given, Mapping) else given


def typed(record: Mapping[str, Any]) -> MeasurementRecord:
    """The typed record of `record`, its missing required fields filled in."""
    data: dict[str, Any] = {**RECORD, **record}
    data["stats"] = _filled(STATS, data.get("stats", {}))
    data["timing"] = _filled(TIMING, data.get("timing", {}))
    data["budgets"] = [_filled(BUDGET, b) for b in data.get("budgets") or []]
    for key, defaults in (("comparison", COMPARISON), ("gpu_utilization", GPU_UTILIZATION)):
        if data.get(key) is not None:
            data[key] = _filled(defaults, data[key])
    return measurement_from_json(data)


def typed_all(records: list[Mapping[str, Any]]) -> list[MeasurementRecord]:
    return [typed(r) for r in records]
