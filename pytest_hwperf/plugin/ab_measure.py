"""Measuring under same-run A/B (`--hwperf-against`): the `Pairing` each test's `hwperf`
handle hands its measurements to (ab/pairing.py), on the head's side and the base's.

Head, at `hwperf(fn)`:
1. meet the base at this measurement (it has warmed up and waits, blocked), or learn
   why it will not come (new at head, failed at REF, the REF run failed);
2. take the handle's usual measurement (warm-up, the samples of record, budgets judged,
   confirmation rounds) while the base waits;
3. take R rounds a side (`round_plan`), alternating, the base measuring only at its
   turn.
The pairs are judged at the test's report (`judge_pairs`, as the stored-baseline gate
judges there), when the number of measurements of the test is known.

Base, at `hwperf(fn)`: warm up, wait for the head, measure the rounds it asks for with
the policy it sends; nothing else is measured or judged.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from pytest_hwperf.ab.client import PeerClient
from pytest_hwperf.ab.coordinator import Coordinator, Unpaired
from pytest_hwperf.ab.protocol import Key
from pytest_hwperf.judge.budgets import LatencyBudget
from pytest_hwperf.judge.gate import comparison_alpha, threshold_for
from pytest_hwperf.judge.paired import MIN_PAIRS, ab_comparison, not_compared, quiet_pair
from pytest_hwperf.measure.quiet import until_quiet
from pytest_hwperf.measure.rounds import ROUND_PAUSES_S
from pytest_hwperf.records.types import JSONValue, RoundRecord

if TYPE_CHECKING:
    from pytest_hwperf.measure import DeviceSync, Measurement, SamplingPolicy
    from pytest_hwperf.plugin.markers import TestSpec
    from pytest_hwperf.plugin.options import Settings

__all__ = [
    "BasePairing",
    "HeadPairing",
    "MorePairs",
    "Paired",
    "judge_pairs",
    "round_plan",
    "round_policy",
    "tail_percentile",
    "typical_call_s",
]

T = TypeVar("T")

# A round's warm-up: enough to bring the caches back after the other side's round.
ROUND_WARMUP_S = 0.005
# The shortest a round may be given, in seconds, and the fewest calls it should hold.
MIN_ROUND_S = 0.03
MIN_ROUND_CALLS = 10
# Rounds a side per round of --hwperf-confirm (1 + N): 18 by default.
ROUNDS_PER_CONFIRM = 3
# The least time the rounds of both sides take together: 18 rounds a side of ~0.033 s.
MIN_AB_S = 1.2
# The most a measurement's pairs wait for a quiet machine, in all (`MorePairs`).
PAUSES_S = sum(ROUND_PAUSES_S)
# Calls a base takes to warm up before it says it is ready, beyond the warm-up itself.
BASE_WARM_SAMPLES = 10


def tail_percentile(spec: TestSpec) -> float:
    """The tail A/B compares: the highest percentile of the test's latency budgets,
    else 95."""
    return max((b.percentile for b in spec.budgets if isinstance(b, LatencyBudget)), default=95.0)


def round_plan(
    settings: Settings, percentile: float, per_call_s: float = 0.0, measured_s: float = 0.0
) -> tuple[int, dict[str, JSONValue]]:
    """How many rounds a side, and the round policy both sides measure with.

    The rounds of both sides together take about twice the head's own measurement
    (`measured_s`: its warm-up and sampling), at least `MIN_AB_S` and at most
    `--hwperf-max-time`, so that an A/B run costs about three times a plain `--hwperf`
    run. They are cut into `ROUNDS_PER_CONFIRM x (1 + --hwperf-confirm)` rounds a side
    (18 by default), fewer when a round would be shorter than `MIN_ROUND_S` or could not
    hold `MIN_ROUND_CALLS` calls of the target (`per_call_s`), never fewer than
    `MIN_PAIRS`. Many short pairs rather than a few long ones: a burst on the machine
    spoils the pair it begins or ends in, whatever the length of the rounds, and the
    pairs left judge the change with more degrees of freedom (docs/statistics.md). Each
    round aims at enough calls for a few above the tail percentile (100 for p95, 500 at
    most)."""
    budget_s = min(settings.max_time_s, max(MIN_AB_S, 2.0 * measured_s))
    wanted = max(MIN_PAIRS, ROUNDS_PER_CONFIRM * (1 + settings.confirm))
    shortest = max(MIN_ROUND_S, MIN_ROUND_CALLS * per_call_s)
    rounds = max(MIN_PAIRS, min(wanted, int(budget_s / (2 * shortest))))
    round_s = max(MIN_ROUND_S, budget_s / (2 * rounds))
    above = 1.0 - min(percentile, 99.9) / 100.0
    samples = min(500, max(50, math.ceil(5.0 / above)))
    return rounds, {
        "max_time_s": round_s,
        "warmup_s": min(settings.warmup_s, ROUND_WARMUP_S),
        "target_samples": samples,
        "min_time_s": min(0.02, round_s),
        "percentile": percentile,
    }


@dataclass
class MorePairs:
    """When the head measures pairs beyond the planned `count` (`Meeting.rounds`), and
    when it waits between pairs.

    More pairs: while fewer than half of the pairs are quiet on both sides
    (judge/paired.py leaves the others out), up to `count` more, so that a co-tenant's
    burst through the planned rounds does not leave the comparison to the few pairs
    around it.

    Waits (`pause`, before every pair after a disturbed one, and before the first when
    the head's own measurement was disturbed): `wait` (measure/quiet.py `until_quiet`)
    lasts until the machine is quiet again, `longest_pause_s` at most
    (`--hwperf-confirm-pause`), and the waits of a measurement add up to at most
    `PAUSES_S` (3.1 s, what confirmation rounds may spend too). A pair measured inside
    a burst is left out and costs the most (a 0.9 ms model took ~120 ms a call there):
    waiting for the burst to end is both cheaper and the way to a usable pair."""

    count: int
    longest_pause_s: float
    wait: Callable[[float], float]
    waited_s: float = 0.0

    @property
    def most(self) -> int:
        return 2 * self.count

    @property
    def wanted(self) -> int:
        return max(MIN_PAIRS, self.count // 2)

    def more(self, head: Sequence[RoundRecord], base: Sequence[RoundRecord]) -> bool:
        return sum(quiet_pair(h, b) for h, b in zip(head, base, strict=False)) < self.wanted

    def pause(self, head: Sequence[RoundRecord], base: Sequence[RoundRecord]) -> None:
        if head and base and quiet_pair(head[-1], base[-1]):
            return
        longest = min(self.longest_pause_s, PAUSES_S - self.waited_s)
        if longest > 0:
            self.waited_s += max(0.0, self.wait(longest))


def typical_call_s(first: Measurement) -> float:
    """How long a call of the target takes, for the round plan: the median call of the
    samples of record, or the warm-up's estimate when that is shorter. The warm-up's
    alone is one stretch of the machine's state: taken inside a co-tenant's burst, it
    read 50-100x the call, and the plan made 3 rounds of a second instead of 18 short
    ones. When the samples of record were disturbed too (measure/contention.py), their
    fastest call: a whole first round inside a burst read a 0.85 ms model at 115 ms a
    call, and the plan's 3 long rounds left 1 usable pair. And when the measurement went
    on in confirmation rounds, the fastest call of any of them: a first round whose every
    call took 137 ms (a 1 ms model, the co-tenant on both cores) planned 3 rounds a side
    though its next rounds found 1.1 ms calls, and +10% read "not significant"."""
    estimate = first.per_call_estimate_ns
    if first.samples_ns.size:
        if first.disturbed:
            rounds = (r.min_ms * 1e6 for r in first.rounds if r.min_ms)
            typical = min([float(np.min(first.samples_ns)), *rounds])
        else:
            typical = float(np.median(first.samples_ns))
        estimate = min(estimate, typical / max(1, first.block_size))
    return max(0.0, estimate) / 1e9


def _number(fields: Mapping[str, JSONValue], name: str, default: float) -> float:
    value = fields.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)


def round_policy(policy: SamplingPolicy, fields: Mapping[str, JSONValue]) -> SamplingPolicy:
    """`policy` (the side's own: gc, call limit) with the round's time and calls."""
    return dataclasses.replace(
        policy,
        max_time_s=max(0.001, _number(fields, "max_time_s", policy.max_time_s)),
        warmup_s=max(0.0, _number(fields, "warmup_s", ROUND_WARMUP_S)),
        target_samples=max(1, int(_number(fields, "target_samples", policy.target_samples))),
        min_time_s=max(0.0, _number(fields, "min_time_s", policy.min_time_s)),
        min_warmup_calls=1,  # a round's warm-up brings the caches back; one call may do
        collect=False,  # a collection would cost as long as the round
    )


def measure_round(
    handle: Any,
    target: Callable[[], object],
    name: str,
    sync: DeviceSync,
    policy: SamplingPolicy,
    percentile: float,
) -> RoundRecord:
    """One round: the target measured without budgets, as a `RoundRecord` with its
    fastest call and the latency at `percentile` (not for a target timed in blocks)."""
    from pytest_hwperf.measure import measure

    _, found = measure(
        target,
        name=name,
        budgets=(),
        policy=policy,
        sync=sync,
        clock=handle.clock,
        **handle._hang(),
    )
    tail = (LatencyBudget(math.inf, percentile),) if found.block_size == 1 else ()
    return found.round_record(tail)


@dataclass(frozen=True)
class Paired:
    """A measurement's rounds on both sides: `head[i]` was measured beside `base[i]`."""

    head: tuple[RoundRecord, ...]
    base: tuple[RoundRecord, ...]


class HeadPairing:
    """One test's measurements paired with the base session (the head's side)."""

    def __init__(
        self,
        coordinator: Coordinator | None,
        test_id: str,
        settings: Settings,
        spec: TestSpec,
        *,
        unavailable: str | None = None,
    ) -> None:
        self._coordinator = coordinator
        self._unavailable = unavailable  # why nothing can be paired in this session
        self.test_id = test_id
        self._settings = settings
        self.percentile = tail_percentile(spec)
        self.results: dict[str, Paired | str] = {}  # by measurement name
        self._inside: set[str] = set()

    def takes(self, name: str) -> bool:
        return name not in self._inside

    def measure(
        self, handle: Any, target: Callable[[], T], name: str, sync: DeviceSync
    ) -> tuple[T, Measurement]:
        key = Key(self.test_id, name, sync.device)
        why = self._unavailable or "not compared"
        meeting = None
        if self._coordinator is not None:
            try:
                meeting = self._coordinator.meet(key)
            except Unpaired as exc:
                why = exc.why
        self._inside.add(name)
        try:
            # The usual measurement, the base waiting: the samples of record.
            result, first = handle._measure(target, name, sync)
        except BaseException:
            if meeting is not None:
                meeting.release()
            raise
        finally:
            self._inside.discard(name)
        if meeting is None:
            self.results[name] = why
            return result, first
        count, fields = round_plan(
            self._settings,
            self.percentile,
            per_call_s=typical_call_s(first),
            measured_s=(first.warmup_ns + first.sampling_ns) / 1e9,
        )
        policy = round_policy(handle._policy(), fields)

        def head_round(number: int) -> RoundRecord:
            return measure_round(handle, target, name, sync, policy, self.percentile)

        extra = MorePairs(count, self._settings.confirm_pause_s, until_quiet)
        if first.disturbed:  # a burst now would spoil the first pairs too
            extra.pause((), ())
        try:
            head, base = meeting.rounds(
                count, head_round, fields, more=extra.more, most=extra.most, pause=extra.pause
            )
        except Unpaired as exc:
            self.results[name] = exc.why
        else:
            self.results[name] = Paired(tuple(head), tuple(base))
        return result, first


class BasePairing:
    """One test's measurements on the base's side: warm up, wait, measure the rounds."""

    def __init__(self, client: PeerClient, test_id: str) -> None:
        self._client = client
        self.test_id = test_id

    def takes(self, name: str) -> bool:
        return True

    def measure(
        self, handle: Any, target: Callable[[], T], name: str, sync: DeviceSync
    ) -> tuple[T, Measurement]:
        from pytest_hwperf.measure import measure

        own: SamplingPolicy = handle._policy()
        # Warmed up (and a few calls) before saying it is ready: lazy initialisation and
        # autotuning happen now, not in the head's time.
        result, warm = measure(
            target,
            name=name,
            budgets=(),
            policy=dataclasses.replace(own, target_samples=BASE_WARM_SAMPLES, min_time_s=0.0),
            sync=sync,
            clock=handle.clock,
            **handle._hang(),
        )

        def base_round(number: int, fields: Mapping[str, JSONValue]) -> RoundRecord:
            percentile = _number(fields, "percentile", 95.0)
            policy = round_policy(own, fields)
            return measure_round(handle, target, name, sync, policy, percentile)

        self._client.measure(Key(self.test_id, name, sync.device), base_round)
        return result, warm


def judge_pairs(
    measurements: Sequence[Measurement],
    pairing: HeadPairing,
    *,
    settings: Settings,
    spec: TestSpec,
    perf_items: int,
    ref: str,
) -> None:
    """Give each measurement of a test its A/B comparison (`Measurement.comparison`):
    its pairs judged at this session's level for the test (Bonferroni over the perf
    tests and the test's measurements), or the line saying why it was not compared."""
    measured = [m for m in measurements if m.mode == "measured" and m.samples_ns.size]
    threshold = threshold_for(spec.regression_pct, settings.regression_pct)
    alpha = comparison_alpha(settings.alpha, perf_items, len(measured))
    for measurement in measured:
        key = f"{pairing.test_id}::{measurement.name}@{measurement.device}"
        found = pairing.results.get(measurement.name)
        if isinstance(found, Paired):
            measurement.comparison = ab_comparison(
                found.head,
                found.base,
                ref=ref,
                key=key,
                threshold_pct=threshold,
                alpha=alpha,
                percentile=pairing.percentile,
            )
        else:
            measurement.comparison = not_compared(
                measurement.stats.min_ms,
                found or "not compared: only hwperf(...) measurements are paired",
                ref=ref,
                key=key,
                threshold_pct=threshold,
                alpha=alpha,
            )
