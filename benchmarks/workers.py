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
from _configs import HEADER, parse_configs, row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--configs", default="1x1,2x1,4x1,2x2")
    args = parser.parse_args()

    import torch

    from pytest_hwperf.hardware.cpu import detect_cpu
    from pytest_hwperf.workers.pool import PoolConfig, WorkerPool

    cpu = detect_cpu()
    configs = parse_configs(args.configs)
    batch = torch.randn(32, 512)
    print(f"usable cores: {cpu.usable_cores} ({cpu.usable_source}); {args.seconds:g} s per config")
    print(HEADER)
    for workers, threads in configs:
        with WorkerPool(_models.make_mlp, PoolConfig(workers=workers, threads=threads)) as pool:
            run = pool.run([batch], concurrency=2 * workers, duration_s=args.seconds)
        print(row(workers, threads, run, cpu.usable_cores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
