"""How closely the machine-speed gauge follows a model's fastest call, round by round.

In one process, for `--seconds`, each step measures the benchmark model of
`verdict_quality.py` (20 x Linear(256, 256) + ReLU, batch 64, torch's thread count in
force) for one round (its fastest call over `--round-s`), then, in a seeded random
order, candidate gauges, each its fastest call:

- `mm 20ms`: the plugin's gauge (measure/reference.py): one 64x256x256 matrix
  product, the fastest over 20 ms;
- `mm 100ms`: the same over 100 ms;
- `chain`: 20 such products in one call (~0.5 ms, a call as long as the model's half);
- `cycle`: 20 products through 20 different weight matrices (5 MB, the model's size).

It prints, for each gauge, the least-squares slope of the model's log fastest call on
the gauge's, the residual spread, and how much each series moves from one step to the
next beyond its slow moves (the standard deviation of successive differences over
sqrt(2)), then the spread of a 6-round figure (the fastest of 6 rounds, the gauge's
too, as the plugin takes them) over disjoint 6-step blocks, with and without the
gauge's correction at 0.6. `--cotenant` runs it beside the benchmark's co-tenant.

Usage: python benchmarks/gauge_tracking.py [--seconds 240] [--cotenant] [--seed 1]
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cotenant import CoTenant

SHARE = 0.6  # judge/drift.py DRIFT_SHARE
BLOCK = 6  # rounds of a save (1 + --hwperf-confirm)


def fastest(call: Callable[[], object], budget_s: float) -> float:
    call()
    best = math.inf
    count = 0
    deadline = time.perf_counter_ns() + int(budget_s * 1e9)
    while count < 5 or time.perf_counter_ns() < deadline:
        t0 = time.perf_counter_ns()
        call()
        best = min(best, time.perf_counter_ns() - t0)
        count += 1
    return best


def measure(seconds: float, round_s: float, seed: int) -> dict[str, list[float]]:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        *[m for _ in range(20) for m in (torch.nn.Linear(256, 256), torch.nn.ReLU())]
    ).eval()
    x = torch.randn(64, 256)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 256, generator=gen), torch.randn(256, 256, generator=gen)
    weights = [torch.randn(256, 256, generator=gen) for _ in range(20)]

    def chain() -> None:
        for _ in range(20):
            torch.mm(a, b)

    def cycle() -> None:
        for w in weights:
            torch.mm(a, w)

    gauges: dict[str, tuple[Callable[[], object], float]] = {
        "mm 20ms": (lambda: torch.mm(a, b), 0.02),
        "mm 100ms": (lambda: torch.mm(a, b), 0.1),
        "chain": (chain, 0.1),
        "cycle": (cycle, 0.1),
    }
    series: dict[str, list[float]] = {"model": [], **{name: [] for name in gauges}}
    rng = random.Random(seed)
    end = time.monotonic() + seconds
    with torch.inference_mode():
        while time.monotonic() < end:
            series["model"].append(fastest(lambda: model(x), round_s))
            names = list(gauges)
            rng.shuffle(names)
            for name in names:
                call, budget = gauges[name]
                series[name].append(fastest(call, budget))
    return series


def _sd(values: list[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def report(series: dict[str, list[float]]) -> None:
    y = [math.log(v) for v in series["model"]]
    steps = len(y)
    median_ms = sorted(series["model"])[steps // 2] / 1e6
    print(f"# {steps} steps; the model's fastest call, median {median_ms:.3f} ms")
    jump = _sd([b - a for a, b in itertools.pairwise(y)]) / math.sqrt(2)
    print(f"# the model moves {100 * jump:.2f}% from one step to the next (white part)")
    print(" gauge      slope  residual  gauge's step-to-step")
    for name in (k for k in series if k != "model"):
        x = [math.log(v) for v in series[name]]
        mx, my = math.fsum(x) / steps, math.fsum(y) / steps
        sxx = math.fsum((xi - mx) ** 2 for xi in x)
        slope = math.fsum((xi - mx) * (yi - my) for xi, yi in zip(x, y, strict=True)) / sxx
        residual = _sd([yi - slope * xi for xi, yi in zip(x, y, strict=True)])
        step = _sd([b - a for a, b in itertools.pairwise(x)]) / math.sqrt(2)
        print(f" {name:9} {slope:6.2f}  {100 * residual:7.2f}%  {100 * step:7.2f}%")
    blocks = range(0, steps - BLOCK + 1, BLOCK)
    raw = [min(y[i : i + BLOCK]) for i in blocks]
    gauge = [math.log(v) for v in series["mm 20ms"]]
    gauged = [min(y[i : i + BLOCK]) - SHARE * min(gauge[i : i + BLOCK]) for i in blocks]
    print(
        f"# the fastest of {BLOCK} rounds over {len(raw)} blocks: spread {100 * _sd(raw):.2f}%,"
        f" {100 * _sd(gauged):.2f}% corrected by the gauge at {SHARE}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--round-s", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cotenant", action="store_true")
    args = parser.parse_args()
    if not (args.seconds > 0 and args.round_s > 0):
        parser.error("--seconds and --round-s must be positive")
    with tempfile.TemporaryDirectory() as tmp:
        cotenant: CoTenant | nullcontext[None] = nullcontext()
        if args.cotenant:
            cotenant = CoTenant(
                procs=2, seed=args.seed, busy_mean_s=1.5, idle_mean_s=1.5, stats_dir=Path(tmp)
            )
        with cotenant:
            series = measure(args.seconds, args.round_s, args.seed)
    print(f"$ python benchmarks/gauge_tracking.py {' '.join(sys.argv[1:])}")
    report(series)
    return 0


if __name__ == "__main__":
    sys.exit(main())
