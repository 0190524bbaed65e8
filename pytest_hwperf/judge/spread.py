"""How far one run's fastest call may move from run to run, from what few saves hold.

The stored-baseline gate (`regression.compare`) needs the run-to-run spread of its
statistic, the fastest call of a run over its rounds. Three saved runs give a sample
standard deviation with 2 degrees of freedom, which one save caught in a busy stretch
inflates for every later comparison (the gate then goes blind), and one save gives none.
So the spread is taken from two robust sources and the largest is used:

- Within each run, its rounds (`--hwperf-confirm`: a save is measured in 1 + 5 rounds).
  The standard error of "the fastest of m rounds" is estimated by the bootstrap, computed
  exactly over the order statistics (no random draws): resampling m rounds with
  replacement, the fastest of the resample is the j-th fastest round with probability
  ((m - j + 1)^m - (m - j)^m) / m^m. Rounds at the machine's quiet speed make it small;
  a run whose quiet speed was seen once among busy rounds makes it large, as it should:
  another run might not see a quiet moment at all. Runs are pooled by their mean variance.
- Between the saved runs (three or more): 1.4826 times the median absolute deviation of
  their logs from their median, which one disturbed save does not move (the standard
  deviation it replaces grew from 2% to 20% with one save at twice the time among ten).

`lower_median` is the baseline's centre: one-sided interference only ever slows a save,
so the lower of the two middle values is taken, and with two saves the faster one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "ROUNDS_FOR_SPREAD",
    "between_runs_spread",
    "fastest_of_rounds_se",
    "lower_median",
    "rounds_spread",
]

ROUNDS_FOR_SPREAD = 3
"""Rounds a run needs before its rounds say anything about the spread of their fastest."""


def lower_median(values: Sequence[float]) -> float:
    """The median of an odd count; of an even count, the lower of the two middle values."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def between_runs_spread(logs: Sequence[float]) -> float:
    """1.4826 x the median absolute deviation of `logs` from their median: the standard
    deviation of a normal sample, unmoved by a minority of disturbed runs."""
    if len(logs) < 2:
        raise ValueError("need at least two runs")
    ordered = sorted(logs)
    mid = len(ordered) // 2
    centre = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0
    deviations = sorted(abs(x - centre) for x in logs)
    half = len(deviations) // 2
    mad = (
        deviations[half] if len(deviations) % 2 else (deviations[half - 1] + deviations[half]) / 2.0
    )
    return 1.4826 * mad


def fastest_of_rounds_se(round_logs: Sequence[float]) -> float:
    """The exact bootstrap standard error of the fastest of `round_logs` (see module)."""
    m = len(round_logs)
    if m < 2:
        raise ValueError("need at least two rounds")
    ordered = sorted(round_logs)
    probs = [((m - j) ** m - (m - j - 1) ** m) / m**m for j in range(m)]
    mean = math.fsum(p * x for p, x in zip(probs, ordered, strict=True))
    var = math.fsum(p * (x - mean) ** 2 for p, x in zip(probs, ordered, strict=True))
    return math.sqrt(max(var, 0.0))


def rounds_spread(runs_rounds_ms: Sequence[Sequence[float]]) -> tuple[float, int] | None:
    """The pooled within-run spread (log scale) of the fastest of each run's rounds, and
    how many runs gave it; None when no run has `ROUNDS_FOR_SPREAD` rounds or more.
    Rounds that are not positive and finite are left out."""
    variances: list[float] = []
    for rounds in runs_rounds_ms:
        logs = [math.log(v) for v in rounds if v > 0.0 and math.isfinite(v)]
        if len(logs) >= ROUNDS_FOR_SPREAD:
            variances.append(fastest_of_rounds_se(logs) ** 2)
    if not variances:
        return None
    return math.sqrt(math.fsum(variances) / len(variances)), len(variances)
