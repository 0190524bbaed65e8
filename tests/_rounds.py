"""Rounds as the sampler gives them, for the tests of confirmation rounds: samples of
about a given time, and a measurement of them with its budgets' settled verdicts and,
when given, the round's CPU wait (and so whether it was disturbed)."""

from __future__ import annotations

import numpy as np

from pytest_hwperf.busy import is_disturbed
from pytest_hwperf.judge.compliance import Budget, judge, settle
from pytest_hwperf.measure.result import Measurement

MS = 1_000_000
ALPHA = 0.001  # the level each round's budgets are judged at


def samples_of(ms: float, n: int = 300) -> np.ndarray:
    """n calls of about `ms` each, with a little spread (1% steps)."""
    return np.asarray([int(ms * MS * (1 + (i % 5) / 100)) for i in range(n)], dtype=np.int64)


def round_of(
    samples: np.ndarray, budgets: tuple[Budget, ...] = (), *, wait: float | None = None
) -> Measurement:
    """A round of `samples`, its budgets judged and settled, with CPU wait `wait`."""
    measurement = Measurement.from_samples(
        name="work",
        device="cpu",
        samples_ns=samples,
        timing_method="perf_counter_ns",
        gc_policy="collect-then-enabled",
        stop_reason="decided",
        alpha=0.01,
        verdicts=settle([judge(b, samples, ALPHA) for b in budgets]),
    )
    measurement.cpu_wait = wait
    measurement.disturbed = is_disturbed(wait)
    return measurement
