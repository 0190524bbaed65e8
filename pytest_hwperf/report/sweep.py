"""Worker/thread sweeps: one test measured under several serving configs, side by side.

A test parametrized by `worker_config` (the grid --hwperf-workers x --hwperf-threads)
yields one record per config. For each test, measurement name and device with two or
more configs, the sweep lists throughput and p95 per config and recommends the config
with the highest throughput among those that met the latency budget and were not
oversubscribed. Configs that did not fit the cores never measured: the gate failed them
at setup, so they do not appear.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["sweep_lines", "sweeps"]

_PARAMS = re.compile(r"\[[^\]]*\]$")


def _throughput(record: Mapping[str, Any]) -> float | None:
    served = record.get("served_per_s")
    if isinstance(served, (int, float)):
        return float(served)
    value = record.get("stats", {}).get("throughput_per_s")
    return float(value) if isinstance(value, (int, float)) else None


def _meets_latency(record: Mapping[str, Any]) -> bool:
    return all(
        b.get("outcome") != "fail" for b in record.get("budgets", []) if b.get("kind") == "latency"
    )


def sweeps(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Group records by (test without parameters, name, device) over worker configs."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for record in records:
        if not record.get("worker_config"):
            continue
        test = _PARAMS.sub("", str(record.get("test_id", "")))
        key = (test, str(record.get("name")), str(record.get("device")))
        groups.setdefault(key, []).append(record)
    result: list[dict[str, Any]] = []
    for (test, name, device), members in groups.items():
        configs = {(r["worker_config"]["workers"], r["worker_config"]["threads"]) for r in members}
        if len(configs) < 2:
            continue
        rows = []
        for r in sorted(
            members, key=lambda r: (r["worker_config"]["workers"], r["worker_config"]["threads"])
        ):
            rows.append(
                {
                    "workers": r["worker_config"]["workers"],
                    "threads": r["worker_config"]["threads"],
                    "throughput_per_s": _throughput(r),
                    "p95_ms": r.get("stats", {}).get("p95_ms"),
                    "outcome": r.get("outcome"),
                    "meets_latency": _meets_latency(r),
                    "oversubscribed": bool(r.get("oversubscription")),
                }
            )
        eligible = [
            row
            for row in rows
            if row["meets_latency"]
            and not row["oversubscribed"]
            and row["throughput_per_s"] is not None
        ]
        best = max(eligible, key=lambda row: row["throughput_per_s"], default=None)
        result.append(
            {
                "test": test,
                "name": name,
                "device": device,
                "configs": rows,
                "recommended": None
                if best is None
                else {"workers": best["workers"], "threads": best["threads"]},
            }
        )
    return result


def _rate(value: object) -> str:
    return f"{value:,.0f}/s" if isinstance(value, (int, float)) else "-"


def _ms(value: object) -> str:
    return f"{value:.2f}ms" if isinstance(value, (int, float)) else "-"


def _config(workers: int, threads: int) -> str:
    w = "worker" if workers == 1 else "workers"
    t = "thread" if threads == 1 else "threads"
    return f"{workers} {w} x {threads} {t}"


def sweep_lines(found: Sequence[Mapping[str, Any]]) -> list[str]:
    """Readable lines: one block per sweep, one line per config, then the recommendation."""
    lines: list[str] = []
    for sweep in found:
        lines.append(f"{sweep['test']} [{sweep['name']} on {sweep['device']}]")
        for row in sweep["configs"]:
            flags = []
            if not row["meets_latency"]:
                flags.append("over the latency budget")
            if row["oversubscribed"]:
                flags.append("oversubscribed")
            note = f"  ({', '.join(flags)})" if flags else ""
            lines.append(
                f"  {_config(row['workers'], row['threads'])}: "
                f"{_rate(row['throughput_per_s'])}, p95 {_ms(row['p95_ms'])}{note}"
            )
        best = sweep["recommended"]
        if best is None:
            lines.append("  recommended: none (no config met the latency budget)")
        else:
            lines.append(
                f"  recommended: {_config(best['workers'], best['threads'])}"
                " (highest throughput within the latency budget)"
            )
    return lines
