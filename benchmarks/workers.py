"""What oversubscription costs: one CPU torch model served by worker pools of several
workers x threads configs, side by side in one run.

Each config: N spawned workers with T threads each (pytest-hwperf's WorkerPool), a
closed loop with 2 requests in flight per worker, for a fixed time; per-request latency
is timed in the parent (queueing included). The configs whose workers x threads exceed
the usable cores are the ones the oversubscription gate fails.

Usage: python benchmarks/workers.py [--seconds S] [--configs 1x1,2x1,4x1,2x2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _models


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--configs", default="1x1,2x1,4x1,2x2")
    args = parser.parse_args()

    import torch

    from pytest_hwperf.hardware.cpu import detect_cpu
    from pytest_hwperf.workers.pool import PoolConfig, WorkerPool

    cpu = detect_cpu()
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    batch = torch.randn(32, 512)
    print(f"usable cores: {cpu.usable_cores} ({cpu.usable_source}); {args.seconds:g} s per config")
    header = f"{'workers x threads':>18} {'total':>6} {'requests/s':>11} {'p50 ms':>8}"
    print(f"{header} {'p95 ms':>8}  gate")
    for workers, threads in configs:
        total = workers * threads
        with WorkerPool(_models.make_mlp, PoolConfig(workers=workers, threads=threads)) as pool:
            run = pool.run([batch], concurrency=2 * workers, duration_s=args.seconds)
        gate = "fails" if total > cpu.usable_cores else "fits"
        print(
            f"{workers:>8} x {threads:<8} {total:>6} {run.throughput_per_s:>11.0f}"
            f" {run.p50_ms:>8.2f} {run.p95_ms:>8.2f}  {gate}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
