"""The workers x threads table that benchmarks/workers.py and benchmarks/serving.py
print: the configs parsed from `--configs`, the header, and one row per config."""

from __future__ import annotations

from typing import Protocol


class _Run(Protocol):
    @property
    def throughput_per_s(self) -> float: ...

    @property
    def p50_ms(self) -> float: ...

    @property
    def p95_ms(self) -> float: ...


HEADER = (
    f"{'workers x threads':>18} {'total':>6} {'requests/s':>11} {'p50 ms':>8} {'p95 ms':>8}  gate"
)


def parse_configs(text: str) -> list[tuple[int, int]]:
    """`1x1,2x1` -> [(1, 1), (2, 1)]."""
    configs = []
    for config in text.split(","):
        workers, threads = (int(v) for v in config.split("x"))
        configs.append((workers, threads))
    return configs


def row(workers: int, threads: int, run: _Run, usable_cores: int) -> str:
    """One config's row: its requests/s, p50 and p95, and whether the oversubscription
    gate fails it (workers x threads above the usable cores)."""
    total = workers * threads
    gate = "fails" if total > usable_cores else "fits"
    return (
        f"{workers:>8} x {threads:<8} {total:>6} {run.throughput_per_s:>11.0f}"
        f" {run.p50_ms:>8.2f} {run.p95_ms:>8.2f}  {gate}"
    )
