"""What the stored-baseline gate can detect: `regression.compare` itself, by simulation.

For each number of saved runs k and run-to-run spread sigma, SESSIONS sessions draw k
saved runs' and one current run's fastest call lognormal with spread sigma (the current
one times 1 + effect), each run measured in six rounds at the machine's quiet speed
(1.000 to 1.010 times its fastest: their bootstrap spread is far under the floor, so
the spread the gate uses comes from its floor, the saved runs' MAD and, below 3 saves,
the spread assumed between runs). Prints the share of sessions judged a
regression, as the table in docs/statistics.md ("What it can detect").

    python benchmarks/detection_power.py [--sessions 20000] [--seed 2026]

Pure computation: no timing, so it may run beside anything.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from pytest_hwperf.judge.regression import REGRESSION, compare

QUIET_ROUNDS = np.array([1.000, 1.002, 1.004, 1.006, 1.008, 1.010])
CELLS: tuple[tuple[int, float], ...] = (
    (1, 0.01),
    (1, 0.02),
    (1, 0.03),
    (2, 0.02),
    (2, 0.03),
    (3, 0.01),
    (3, 0.02),
    (3, 0.03),
    (5, 0.02),
    (5, 0.03),
    (20, 0.02),
    (20, 0.03),
)
EFFECTS = (0.0, 0.05, 0.10, 0.20)


def regression_rate(k: int, sigma: float, effect: float, sessions: int, seed: int) -> float:
    """The share of `sessions` simulated sessions that `compare` calls a regression."""
    rng = np.random.default_rng(seed)
    saved = np.exp(rng.normal(0.0, sigma, size=(sessions, k)))
    current = (1.0 + effect) * np.exp(rng.normal(0.0, sigma, size=sessions))
    found = 0
    for now, runs in zip(current, saved, strict=True):
        result = compare(
            float(now),
            runs.tolist(),
            baseline_rounds=[(b * QUIET_ROUNDS).tolist() for b in runs],
            current_rounds=(now * QUIET_ROUNDS).tolist(),
        )
        found += result.outcome == REGRESSION
    return found / sessions


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20_000, help="sessions a cell (20000)")
    parser.add_argument("--seed", type=int, default=2026, help="the first cell's seed (2026)")
    args = parser.parse_args(argv)
    if args.sessions < 1:
        parser.error("--sessions: 1 or more")
    heads = " | ".join("unchanged" if e == 0 else f"+{e:.0%}" for e in EFFECTS)
    print(f"| saved runs | `sigma` | {heads} |")
    print("| --- | --- |" + " --- |" * len(EFFECTS))
    seed = args.seed
    for k, sigma in CELLS:
        rates = []
        for effect in EFFECTS:
            rates.append(regression_rate(k, sigma, effect, args.sessions, seed))
            seed += 1
        cells = " | ".join(_fmt(r) for r in rates)
        print(f"| {k} | {sigma:.0%} | {cells} |", flush=True)
    return 0


def _fmt(rate: float) -> str:
    pct = 100.0 * rate
    if 99.9 < pct < 100.0:
        return ">99.9%"
    if 99.5 <= pct < 100.0:
        return f"{pct:.1f}%"
    return f"{pct:.0f}%" if pct >= 10 else f"{pct:.1f}%"


if __name__ == "__main__":
    sys.exit(main())
