"""What the stored-baseline gate can detect: `regression.compare` itself, by simulation.

For each number of saved runs k and run-to-run spread sigma, SESSIONS sessions draw k
saved runs' and one current run's fastest call lognormal with spread sigma (the current
one times 1 + effect), each run measured in six rounds at the machine's quiet speed
(1.000 to 1.010 times its fastest: their bootstrap spread is far under the floor, so
the spread the gate uses comes from its floor, the saved runs' MAD and, below 3 saves,
the spread assumed between runs). Prints the share of sessions judged a
regression, as the table in docs/statistics.md ("What it can detect").

    python benchmarks/detection_power.py [--sessions 20000] [--seed 2026]

With `--ab`, the same for the same-run A/B gate (`paired.compare_paired`, the fastest
call): 18 pairs a run, their log differences normal around the change plus the run's
offset between its two processes (normal, standard deviation `offset`) with spread `s`,
judged at 0.0025 (alpha 0.01 split between the fastest call and the tail, and over one
test's two sides), as the A/B table in docs/statistics.md ("Same-run A/B").

    python benchmarks/detection_power.py --ab [--sessions 4000]

Pure computation: no timing, so it may run beside anything.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from pytest_hwperf.judge.paired import compare_paired
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
AB_PAIRS = 18
AB_ALPHA = 0.0025
AB_CELLS: tuple[tuple[float, float], ...] = (
    (0.01, 0.0),
    (0.01, 0.01),
    (0.03, 0.0),
    (0.03, 0.01),
    (0.05, 0.0),
    (0.05, 0.01),
)
# (change, threshold %) a column of the A/B table
AB_COLUMNS: tuple[tuple[float, float], ...] = (
    (0.0, 5),
    (0.0, 10),
    (0.05, 5),
    (0.05, 10),
    (0.10, 10),
)


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


def ab_regression_rate(
    spread: float, offset: float, effect: float, threshold: float, sessions: int, seed: int
) -> float:
    """The share of `sessions` simulated A/B runs that `compare_paired` calls a regression."""
    rng = np.random.default_rng(seed)
    shifts = np.log1p(effect) + rng.normal(0.0, offset, size=sessions)
    found = 0
    for shift in shifts:
        diffs = shift + rng.normal(0.0, spread, size=AB_PAIRS)
        result = compare_paired(
            np.exp(diffs).tolist(), [1.0] * AB_PAIRS, threshold_pct=threshold, alpha=AB_ALPHA
        )
        found += result.outcome == REGRESSION
    return found / sessions


def ab_table(sessions: int, seed: int) -> None:
    heads = " | ".join(
        f"{'unchanged' if e == 0 else f'+{e:.0%}'}, threshold {t:g}%" for e, t in AB_COLUMNS
    )
    print(f"| spread of the pairs `s` | offset between the processes | {heads} |")
    print("| --- | --- |" + " --- |" * len(AB_COLUMNS))
    for spread, offset in AB_CELLS:
        rates = []
        for effect, threshold in AB_COLUMNS:
            rates.append(ab_regression_rate(spread, offset, effect, threshold, sessions, seed))
            seed += 1
        cells = " | ".join(_fmt(r) for r in rates)
        print(f"| {spread:.0%} | {offset:.0%} | {cells} |", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20_000, help="sessions a cell (20000)")
    parser.add_argument("--seed", type=int, default=2026, help="the first cell's seed (2026)")
    parser.add_argument("--ab", action="store_true", help="the same-run A/B gate's table")
    args = parser.parse_args(argv)
    if args.sessions < 1:
        parser.error("--sessions: 1 or more")
    if args.ab:
        ab_table(args.sessions, args.seed)
        return 0
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
