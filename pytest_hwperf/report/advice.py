"""Device advice: on which device a test parametrized over devices should be served.

The serving advice of issue 6: light models run fine on CPUs, heavy ones want GPUs, and
a GPU costs more than the CPU it sits in. So when one test ran on several devices (the
`device` fixture), the advice names the devices that met its budget and recommends the
cheapest of them, in the order cpu, mps, cuda:0, cuda:1, ...; without a budget there is
nothing to meet, and it names the fastest instead. A device that could not be measured
(skipped, failed under --hwperf-strict-hardware, or absent from this machine) is listed
with why, so that "serve on cpu" is never read as "cpu beat the GPU" when no GPU was
there to compare. A GPU that stayed mostly idle while measuring is called out: the
model is too small for it.

Pure functions of the session's typed records; the advice itself is JSON objects, as
the JSON report's `advice` array carries them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_hwperf.measure.gpu_util import idle_gpu_line
from pytest_hwperf.report.terminal import ms_text

if TYPE_CHECKING:
    from pytest_hwperf.records.types import JSONValue, MeasurementRecord

__all__ = [
    "advice_lines",
    "device_advice",
    "device_cost_rank",
    "device_group",
    "idle_gpu_line",
]


def device_cost_rank(device: str) -> tuple[int, int, str]:
    """Sort key, cheapest first: cpu, then mps, then CUDA devices by index, then others."""
    kind, _, index = device.partition(":")
    number = int(index) if index.isdigit() else 0
    rank = {"cpu": 0, "mps": 1, "cuda": 2}.get(kind, 3)
    return rank, number, device


def device_group(nodeid: str, device_ids: Sequence[str]) -> str:
    """The test's node id without its device parameter: `test_x[cpu-2w]` -> `test_x[2w]`,
    `test_x[cuda]` -> `test_x`.

    `device_ids` are the ids the device may carry in the node id, tried in order (the
    plugin's `cuda` for cuda:0, the raw parameter, ...). Ids are split on "-", as pytest
    joins them; removing any one part equal to the id gives the same string whichever
    it is. A node id where none is found is returned unchanged.
    """
    if not nodeid.endswith("]") or "[" not in nodeid:
        return nodeid
    base, _, params = nodeid[:-1].partition("[")
    parts = params.split("-")
    for candidate in device_ids:
        if candidate in parts:
            parts.remove(candidate)
            rest = "-".join(parts)
            return f"{base}[{rest}]" if rest else base
    return nodeid


def _median_ms(record: MeasurementRecord) -> float | None:
    value = record.stats.p50_ms
    if value is None:  # timed in blocks: the mean stands in for the median
        value = record.stats.mean_ms
    return value


def _missed_reason(records: Sequence[MeasurementRecord]) -> str:
    """Why a device missed its budget, in a few words."""
    for record in records:
        for budget in record.budgets:
            if budget.outcome != "pass":
                return f"{budget.outcome}: {budget.reason}"
        memory = record.memory
        if memory is not None and memory.outcome == "fail":
            return f"memory: {memory.reason}"
        comparison = record.comparison
        if comparison is not None and comparison.outcome == "regression":
            return f"regression: {comparison.reason}"
        if record.oversubscription:
            return f"oversubscribed: {record.oversubscription}"
    return "breach"


@dataclass(frozen=True)
class _Entry:
    """One device of a test: its status and the time of one pass over its measurements.
    Its fields are the keys of the JSON report's `advice[].devices[]`."""

    device: str
    status: str  # "met", "missed", "no budget", "failed"
    measurements: int
    median_ms: float | None
    reason: str | None

    def as_json(self) -> dict[str, JSONValue]:
        return {
            "device": self.device,
            "status": self.status,
            "measurements": self.measurements,
            "median_ms": self.median_ms,
            "reason": self.reason,
        }


def _device_entry(device: str, records: Sequence[MeasurementRecord], failure: str | None) -> _Entry:
    if failure is not None:
        # The test failed there on its own (an assertion, an error): whatever its timing,
        # that device is not one to serve on.
        return _Entry(device, "failed", len(records), None, failure)
    has_budget = _has_budget(records)
    met = all(r.outcome == "pass" and not r.breach for r in records)
    medians = [_median_ms(r) for r in records]
    status = "no budget" if not has_budget else ("met" if met else "missed")
    return _Entry(
        device,
        status,
        len(records),
        # The time of one pass over the test's measured calls on this device.
        None if None in medians else sum(m for m in medians if m is not None),
        _missed_reason(records) if status == "missed" else None,
    )


def _idle_gpus(records: Sequence[MeasurementRecord]) -> list[JSONValue]:
    idle: list[JSONValue] = []
    for record in records:
        figure = record.gpu_utilization
        if figure is None:
            continue
        if figure.mean_pct < figure.idle_below_pct:
            idle.append(
                {
                    "device": record.device,
                    "name": record.name,
                    "mean_pct": float(figure.mean_pct),
                    "idle_below_pct": float(figure.idle_below_pct),
                }
            )
    return idle


def _has_budget(records: Sequence[MeasurementRecord]) -> bool:
    """A budget of its own (latency, throughput) or one judged onto a record (memory)."""
    return any(r.budgets or r.outcome is not None for r in records)


def _fastest(timed: Sequence[_Entry]) -> str | None:
    best = min(timed, key=lambda e: e.median_ms or 0.0, default=None)
    return None if best is None else best.device


def _summary_text(test: str, entries: Sequence[_Entry], *, budgeted: bool, partial: bool) -> str:
    """The headline: the recommendation, or that none met, or the fastest without budget."""
    timed = [e for e in entries if e.median_ms is not None]
    failed = ", ".join(e.device for e in entries if e.status == "failed")
    failed_text = f"; test failed on: {failed}" if failed else ""
    # Several measurements in the test: their medians add up to one pass over them.
    label = "median" if all(e.measurements == 1 for e in timed) else "sum of medians"
    medians = f"{label}: " + (
        ", ".join(f"{e.device} {ms_text(e.median_ms)}" for e in timed) or "none"
    )
    met = [e.device for e in entries if e.status == "met"]
    missed = ", ".join(
        f"{e.device} ({str(e.reason).split(':')[0]})" for e in entries if e.status == "missed"
    )
    if not budgeted:
        if not timed:
            return f"{test}: no budget{failed_text}"
        return f"{test}: no budget; fastest: {_fastest(timed)} ({medians}{failed_text})"
    missed_text = f"; missed: {missed}" if missed else ""
    if not met:
        return (
            f"{test}: no device met its budget ({missed_text[2:] or 'none measured'}"
            f"{failed_text}; {medians})"
        )
    # With devices left unmeasured, the recommendation holds among those measured only.
    which = "measured device" if partial else "device"
    return (
        f"{test}: recommend {met[0]}, the cheapest {which} that met its budget"
        f" (met: {', '.join(met)}{missed_text}{failed_text}; {medians})"
    )


def device_advice(
    records: Sequence[MeasurementRecord],
    unmeasured: Mapping[str, Mapping[str, str]],
    failed: Mapping[str, Mapping[str, str]] | None = None,
) -> list[dict[str, JSONValue]]:
    """Advice for each test run on several devices, in the order the tests first appear,
    as JSON objects (the JSON report's `advice` array, docs/json-schema.md).

    `records` are the session's measurement records; those with a `device_group` (the
    node id without the device parameter) and a `device_param` (the `device` fixture's
    value) are compared by device. `unmeasured` maps a device group to the devices it
    could not be measured on and why; `failed` maps it to the devices where the test
    failed on its own after measuring (never recommended). A group gets advice when it
    spans two or more devices, measured or not, or when a GPU it ran on stayed mostly
    idle; records without a device group are advised on only for an idle GPU.
    """
    groups: dict[str, dict[str, list[MeasurementRecord]]] = {}
    ungrouped: dict[str, list[MeasurementRecord]] = {}
    for record in records:
        if record.mode != "measured":
            continue
        group, device = record.device_group, record.device_param
        if group is not None and device is not None:
            groups.setdefault(group, {}).setdefault(device, []).append(record)
        else:
            ungrouped.setdefault(record.test_id, []).append(record)
    advice: list[dict[str, JSONValue]] = []
    for test, by_device in groups.items():
        failures = (failed or {}).get(test) or {}
        entries = [
            _device_entry(device, by_device[device], failures.get(device))
            for device in sorted(by_device, key=device_cost_rank)
        ]
        missing = {
            device: reason
            for device, reason in (unmeasured.get(test) or {}).items()
            if device not in by_device
        }
        grouped = [r for rs in by_device.values() for r in rs]
        idle = _idle_gpus(grouped)
        if len(entries) + len(missing) < 2 and not idle:
            continue
        met: list[JSONValue] = [e.device for e in entries if e.status == "met"]
        advice.append(
            {
                "test": test,
                "devices": [e.as_json() for e in entries],
                "met": met,
                "recommended": met[0] if met else None,
                "fastest": _fastest([e for e in entries if e.median_ms is not None]),
                "unmeasured": [
                    {"device": device, "reason": missing[device]}
                    for device in sorted(missing, key=device_cost_rank)
                ],
                "idle_gpus": idle,
                "text": _summary_text(
                    test, entries, budgeted=_has_budget(grouped), partial=bool(missing)
                ),
            }
        )
    for test, group_records in ungrouped.items():
        idle = _idle_gpus(group_records)
        if idle:
            advice.append(
                {
                    "test": test,
                    "devices": [],
                    "met": [],
                    "recommended": None,
                    "fastest": None,
                    "unmeasured": [],
                    "idle_gpus": idle,
                    "text": None,
                }
            )
    return advice


def _objects(value: JSONValue) -> list[dict[str, JSONValue]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def advice_lines(advice: Sequence[Mapping[str, JSONValue]]) -> list[str]:
    """The advice as plain lines, for the terminal and the Markdown summary."""
    lines: list[str] = []
    for entry in advice:
        test = entry.get("test", "?")
        if entry.get("text"):
            lines.append(str(entry["text"]))
        lines.extend(
            f"{test}: {item['device']}: not measured ({item['reason']})"
            for item in _objects(entry.get("unmeasured"))
        )
        for item in _objects(entry.get("idle_gpus")):
            mean, name = item.get("mean_pct"), item.get("name")
            if isinstance(mean, int | float):
                line = idle_gpu_line(str(item["device"]), mean, str(name) if name else None)
                lines.append(f"{test}: {line}")
    return lines
