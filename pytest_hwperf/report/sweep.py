"""Worker/thread sweeps: one test measured under several serving configs, side by side.

A test parametrized by `worker_config` (the grid --hwperf-workers x --hwperf-threads)
yields one record per config. For each test, measurement name and device with two or
more configs, the sweep lists throughput and p95 per config and recommends the config
with the highest throughput among those that met the latency budget and were not
oversubscribed (observed, or declared and measured anyway under
--hwperf-oversubscription=warn). Configs that did not fit the cores are otherwise never
measured: the gate failed them at setup, so they do not appear.

A sweep is a frozen dataclass whose fields are the keys of the JSON report's `sweeps`
array (docs/json-schema.md); `records.codec.to_json` writes it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_hwperf.records.codec import to_json_object
from pytest_hwperf.records.types import JSONValue, MeasurementRecord
from pytest_hwperf.report.terminal import visible
from pytest_hwperf.units import is_plain

__all__ = ["Sweep", "SweepChoice", "SweepConfig", "sweep_lines", "sweeps"]

_PARAMS = re.compile(r"\[[^\]]*\]$")


@dataclass(frozen=True)
class SweepChoice:
    """A serving config: worker processes and threads per worker."""

    workers: int
    threads: int


@dataclass(frozen=True)
class SweepConfig:
    """One config of a sweep: how fast it served and whether it may be recommended."""

    workers: int
    threads: int
    throughput_per_s: float | None
    p95_ms: float | None
    outcome: str | None
    meets_latency: bool
    oversubscribed: bool


@dataclass(frozen=True)
class Sweep:
    """One test, measurement and device over its worker configs, and the best config."""

    test: str
    name: str
    device: str
    configs: tuple[SweepConfig, ...]
    recommended: SweepChoice | None

    def to_dict(self) -> dict[str, JSONValue]:
        """The sweep as in the JSON report's `sweeps` array."""
        out = to_json_object(self)
        return out


def _throughput(record: MeasurementRecord) -> float | None:
    if record.served_per_s is not None:
        return float(record.served_per_s)
    value = record.stats.throughput_per_s
    return None if value is None else float(value)


def _meets_latency(record: MeasurementRecord) -> bool:
    return all(b.outcome != "fail" for b in record.budgets if b.kind == "latency")


def sweeps(records: Sequence[MeasurementRecord]) -> list[Sweep]:
    """Group records by (test without parameters, name, device) over worker configs."""
    groups: dict[tuple[str, str, str], list[MeasurementRecord]] = {}
    for record in records:
        if record.worker_config is None:
            continue
        test = _PARAMS.sub("", record.test_id)
        groups.setdefault((test, record.name, record.device), []).append(record)
    result: list[Sweep] = []
    for (test, name, device), members in groups.items():
        configs = {_config_of(r) for r in members}
        if len(configs) < 2:
            continue
        rows = tuple(
            SweepConfig(
                workers=_config_of(r)[0],
                threads=_config_of(r)[1],
                throughput_per_s=_throughput(r),
                p95_ms=r.stats.p95_ms,
                outcome=r.outcome,
                meets_latency=_meets_latency(r),
                oversubscribed=bool(r.oversubscription),
            )
            for r in sorted(members, key=_config_of)
        )
        eligible = [
            (row.throughput_per_s, row)
            for row in rows
            if row.meets_latency and not row.oversubscribed and row.throughput_per_s is not None
        ]
        best = max(eligible, key=lambda pair: pair[0], default=None)
        result.append(
            Sweep(
                test=test,
                name=name,
                device=device,
                configs=rows,
                recommended=None
                if best is None
                else SweepChoice(workers=best[1].workers, threads=best[1].threads),
            )
        )
    return result


def _config_of(record: MeasurementRecord) -> tuple[int, int]:
    config = record.worker_config
    assert config is not None
    return config.workers, config.threads


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}/s" if is_plain(value) else f"{value:.3g}/s"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}ms" if is_plain(value) else f"{value:.3g}ms"


def _config(workers: int, threads: int) -> str:
    w = "worker" if workers == 1 else "workers"
    t = "thread" if threads == 1 else "threads"
    return f"{workers} {w} x {threads} {t}"


def sweep_lines(found: Sequence[Sweep]) -> list[str]:
    """Readable lines: one block per sweep, one line per config, then the recommendation."""
    lines: list[str] = []
    for sweep in found:
        lines.append(f"{visible(sweep.test)} [{visible(sweep.name)} on {visible(sweep.device)}]")
        for row in sweep.configs:
            flags = []
            if not row.meets_latency:
                flags.append("over the latency budget")
            if row.oversubscribed:
                flags.append("oversubscribed")
            note = f"  ({', '.join(flags)})" if flags else ""
            lines.append(
                f"  {_config(row.workers, row.threads)}: "
                f"{_rate(row.throughput_per_s)}, p95 {_ms(row.p95_ms)}{note}"
            )
        best = sweep.recommended
        if best is None:
            lines.append("  recommended: none (no config met the latency budget)")
        else:
            lines.append(
                f"  recommended: {_config(best.workers, best.threads)}"
                " (highest throughput within the latency budget)"
            )
    return lines
