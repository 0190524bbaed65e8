"""How wrong GPU timing is without a device sync, and how hwperf's per-call samples
compare with CUDA events.

For each workload: (a) a naive per-call timer with no synchronisation (what a
CPU-only timer such as pytest-benchmark's sees: the enqueue), (b) hwperf's samples
(per-call perf_counter_ns closed by torch.cuda.synchronize), (c) CUDA events around
each call (GPU time only). Needs CUDA; exits 2 without it.

Usage: python benchmarks/gpu_sync.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable


def main() -> int:
    try:
        import torch
    except ImportError:
        print("gpu_sync: torch is not installed", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("gpu_sync: no CUDA device on this machine", file=sys.stderr)
        return 2
    from pytest_hwperf.measure import SamplingPolicy, device_sync, measure

    dev = torch.device("cuda:0")
    a = torch.randn(4096, 4096, device=dev)
    b = torch.randn(4096, 4096, device=dev)
    mlp = (
        torch.nn.Sequential(
            torch.nn.Linear(1024, 4096), torch.nn.GELU(), torch.nn.Linear(4096, 1024)
        )
        .to(dev)
        .eval()
    )
    x = torch.randn(256, 1024, device=dev)

    def matmul() -> object:
        return a @ b

    def mlp_call() -> object:
        with torch.inference_mode():
            return mlp(x)

    workloads: dict[str, Callable[[], object]] = {
        "matmul 4096x4096 fp32": matmul,
        "MLP 1024-4096-1024, batch 256": mlp_call,
        "spin 10M cycles (torch.cuda._sleep)": lambda: torch.cuda._sleep(10_000_000),
    }
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    print(
        f"{'workload':38} {'no sync p50':>12} {'hwperf p50':>11} {'hwperf p95':>11}"
        f" {'events p50':>11} {'under-report':>13}"
    )
    for name, fn in workloads.items():
        for _ in range(20):
            fn()
        torch.cuda.synchronize()
        naive = []
        for _ in range(200):
            t0 = time.perf_counter_ns()
            fn()
            naive.append(time.perf_counter_ns() - t0)
        torch.cuda.synchronize()
        _, m = measure(
            fn, name=name, policy=SamplingPolicy(max_time_s=3.0), sync=device_sync("cuda:0")
        )
        events = []
        for _ in range(200):
            s = torch.cuda.Event(enable_timing=True)
            e = torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            e.synchronize()
            events.append(s.elapsed_time(e))
        naive_ms = statistics.median(naive) / 1e6
        hw = m.stats
        ev_ms = statistics.median(events)
        print(
            f"{name:38} {naive_ms:11.3f}ms {hw.p50_ms or 0:10.3f}ms {hw.p95_ms or 0:10.3f}ms"
            f" {ev_ms:10.3f}ms {(hw.p50_ms or 0) / naive_ms:12.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
