"""Machine drift: the saved runs rescaled to this run's machine speed, by the reference
workload (measure/reference.py), and how far that rescaling is trusted.

A shared runner is not the same speed from one run to the next, and a stored baseline
saved in its fast minutes makes every later run read slower. The reference workload is
timed beside every CPU measurement; the ratio of this run's reference time to a saved
run's says how much faster or slower the machine is now.

A model does not follow the gauge all the way: measured on this project's 2-core runner,
a torch model's fastest call moved by 0.63 (standard error 0.10) of the gauge's move on
the log scale over 31 runs under a co-tenant (the regression of the one on the other),
and by 0.58 when the gauge slowed 2x under oversubscription (the model 1.5x). So the
baseline is rescaled by `DRIFT_SHARE` of the gauge's move, and the slope's standard
error, times the size of the move, is the correction's own error (`DRIFT_SE`), added to
the verdict's standard error (judge/regression.py). docs/statistics.md gives the figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["DRIFT_SE", "DRIFT_SHARE", "DRIFT_UNCERTAINTY", "MAX_DRIFT", "drift_adjusted"]

# The largest machine-speed change the reference workload is trusted to report.
MAX_DRIFT = 4.0
# How much of the gauge's move (on the log scale) a model's fastest call follows.
DRIFT_SHARE = 0.6
# The standard error of that share: the correction's error per unit of the gauge's log move.
DRIFT_SE = 0.1
# The same error per unit of the applied factor's log, as the verdict sees it.
DRIFT_UNCERTAINTY = DRIFT_SE / DRIFT_SHARE


def drift_adjusted(
    baseline_fastest_ms: Sequence[float],
    baseline_references_ms: Sequence[float | None],
    current_reference_ms: float | None,
    *,
    baseline_kinds: Sequence[str | None] | None = None,
    current_kind: str | None = None,
) -> tuple[list[float], float | None]:
    """The saved runs' fastest calls rescaled to this run's machine speed, and the factor.

    Each saved run's fastest call is multiplied by (this run's reference time / that
    run's) to the power `DRIFT_SHARE`: a machine running 20% slower today makes the
    baseline about 12% slower too (the share a model follows), so mostly the code's own
    change is left to judge. The factor is the geometric mean of the applied ratios.
    Without a reference on every side, or with references of different kinds (a torch
    matrix product on two threads is not a numpy one on one thread), the figures are
    returned as they are, with factor None.
    """
    fastest = list(baseline_fastest_ms)
    refs = list(baseline_references_ms)
    kinds = list(baseline_kinds) if baseline_kinds is not None else [current_kind] * len(refs)
    if (len(kinds) != len(refs) or any(kind != current_kind for kind in kinds)) or (
        current_reference_ms is None
        or current_reference_ms <= 0
        or not fastest
        or len(refs) != len(fastest)
        or any(r is None or r <= 0 for r in refs)
    ):
        return fastest, None
    ratios = [current_reference_ms / float(r) for r in refs if r is not None]
    if any(not 1 / MAX_DRIFT <= ratio <= MAX_DRIFT for ratio in ratios):
        # No machine changes speed by that much: the gauge itself was disturbed (an
        # oversubscribed machine stalls a parallel gauge at random), so it is not used.
        return fastest, None
    applied = [ratio**DRIFT_SHARE for ratio in ratios]
    adjusted = [m * a for m, a in zip(fastest, applied, strict=True)]
    factor = math.exp(math.fsum(math.log(a) for a in applied) / len(applied))
    return adjusted, factor
