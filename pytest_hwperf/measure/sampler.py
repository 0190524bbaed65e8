"""The sampling loop: warm up, plan, take one sample per call, decide sequentially.

1. Garbage is collected before timing (and collection optionally disabled while
   sampling); the policy is recorded.
2. Warm-up calls (lazy initialisation, autotuning, caches) are never samples. They
   also estimate the cost of a call, from which the sample count is planned.
3. One sample is one call timed with `perf_counter_ns` (closed by a device
   synchronisation where the device needs one). Targets under ~10 us are timed in
   blocks, since the clock's own cost would otherwise be part of every sample; a
   sample is then a block mean.
4. Budgets are judged at looks scheduled at 8, 16, 32, ... samples and once more at the
   end. Looking repeatedly at accumulating data inflates the error rate, so each look
   tests at alpha / (number of looks) (Bonferroni): over the whole measurement the
   chance of a wrong pass, or of a wrong fail, stays below alpha. A decided budget keeps
   its verdict; sampling ends when every budget is decided, when one has failed, or at
   the time limit, where what is still undecided is "inconclusive".

The clock is injectable so that all of this is tested without real time. A call that
does not return within `SamplingPolicy.call_timeout_s` is ended by `measure/deadline.py`.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict, TypeVar

import numpy as np

from pytest_hwperf.busy import DISTURBED_CPU_WAIT, is_disturbed
from pytest_hwperf.judge.compliance import Budget, BudgetVerdict, Outcome, judge, settle
from pytest_hwperf.measure.contention import WaitClock, cpu_wait, read_wait_ns
from pytest_hwperf.measure.deadline import call_limit, end_process
from pytest_hwperf.measure.device import DeviceSync
from pytest_hwperf.measure.result import Measurement

__all__ = ["Plan", "SamplingPolicy", "measure", "plan_samples"]


class HangOption(TypedDict, total=False):
    """`measure`'s `on_hang`, when a caller has one to pass on (`**options`)."""

    on_hang: Callable[[str], object]


T = TypeVar("T")

# The note of a measurement whose sampling ended at a failed budget, others undecided.
STOPPED_AT_FAILURE = "sampling stopped at the first failed budget; the others were not decided"

GcPolicy = Literal["collect", "disable"]


@dataclass(frozen=True)
class SamplingPolicy:
    """How a measurement is taken. Every field has a safe default."""

    max_time_s: float = 5.0
    warmup_s: float = 0.1
    alpha: float = 0.01
    gc: GcPolicy = "collect"
    # Without a budget: stop once both are reached (or at max_time_s).
    target_samples: int = 200
    min_time_s: float = 0.1
    block_threshold_ns: int = 10_000
    block_target_ns: int = 50_000
    max_samples: int = 1_000_000
    first_look: int = 8
    min_warmup_calls: int = 2
    max_warmup_calls: int = 100_000
    # A hard limit on one call (warm-up or sample) in seconds; None: no limit.
    call_timeout_s: float | None = None
    # Collect garbage before the warm-up and before sampling. The short rounds of a
    # same-run A/B comparison (plugin/ab_measure.py) do not: in a process holding torch a
    # collection takes tens of milliseconds, as long as a round.
    collect: bool = True
    # From this CPU wait (measure/contention.py) the measurement is disturbed: the machine
    # kept its threads waiting (--hwperf-busy-wait); 0: never.
    busy_wait: float = DISTURBED_CPU_WAIT


@dataclass(frozen=True)
class Plan:
    """The sampling plan made from the warm-up's cost estimate."""

    block_size: int
    max_samples: int  # what the time limit allows at the estimated cost
    looks: tuple[int, ...]  # scheduled look points; one more look comes at the end
    alpha_per_look: float
    required_samples: int  # fewest samples that can show every budget is met
    notes: tuple[str, ...]


def plan_samples(per_call_ns: float, budgets: Sequence[Budget], policy: SamplingPolicy) -> Plan:
    """Plan block size, looks and the per-look alpha from the estimated cost of a call."""
    per_call_ns = max(per_call_ns, 1.0)
    block = 1
    if per_call_ns < policy.block_threshold_ns:
        block = min(10_000, max(1, math.ceil(policy.block_target_ns / per_call_ns)))
    per_sample_ns = per_call_ns * block
    affordable = int(policy.max_time_s * 1e9 // per_sample_ns)
    max_samples = max(1, min(policy.max_samples, affordable))
    # The looks are scheduled up to the sample cap, not up to what the warm-up estimate
    # says the time allows: an estimate taken during a stall (or before one) would
    # otherwise leave sampling without looks, or stop it short of a decision. Looks
    # past the deadline are never taken; they only make each look's alpha a little
    # stricter (18 looks at the default cap: p99 at alpha 0.01 needs 745 calls, not 459).
    looks: list[int] = []
    point = policy.first_look
    while point < policy.max_samples:
        looks.append(point)
        point *= 2
    alpha_per_look = policy.alpha / (len(looks) + 1)
    required = max((b.min_samples(alpha_per_look) for b in budgets), default=0)
    notes: list[str] = []
    if block > 1:
        notes.append(
            f"timed in blocks of {block} calls (a call takes ~{per_call_ns:.0f} ns, under"
            f" {policy.block_threshold_ns / 1000:g} us): a sample is a block mean, so only"
            " mean-based figures are given and budgets are judged on block means"
        )
    if required > max_samples:
        needed_s = required * per_sample_ns / 1e9
        notes.append(
            f"the budgets need at least {required} samples to be shown met (alpha"
            f" {alpha_per_look:.2g} per look), but at ~{per_sample_ns / 1e6:.3g} ms per"
            f" sample {policy.max_time_s:g} s allows ~{max_samples}: only a failure can be"
            f" decided; raise --hwperf-max-time to at least {math.ceil(needed_s * 1.1)} s"
        )
    return Plan(block, max_samples, tuple(looks), alpha_per_look, required, tuple(notes))


def _median(values: Sequence[int]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def measure(
    target: Callable[[], T],
    *,
    name: str,
    budgets: Sequence[Budget] = (),
    policy: SamplingPolicy = SamplingPolicy(),
    sync: DeviceSync = DeviceSync("cpu", "none", None),  # noqa: B008 - frozen
    clock: Callable[[], int] = time.perf_counter_ns,
    on_hang: Callable[[str], object] = end_process,
    wait_clock: WaitClock | None = None,
) -> tuple[T, Measurement]:
    """Measure `target` (called with no arguments) and judge `budgets`.

    `wait_clock` reads how long this process's threads have waited for a CPU (default:
    measure/contention.py's `read_wait_ns`); the sampling phase's share of that wait is
    the measurement's `cpu_wait`.

    Returns the target's last result and the measurement. A call that does not return
    within `policy.call_timeout_s` raises `measure.deadline.CallTimeout` where it can be
    interrupted (the main thread, POSIX); elsewhere `on_hang` gets the one-line message
    (by default the process ends, see measure/deadline.py).
    """
    warm: list[int] = []
    samples: list[int] = []  # both grow as calls return: the call limit's progress
    with call_limit(
        policy.call_timeout_s,
        lambda: len(warm) + len(samples),
        on_hang=on_hang,
        describe=f"{name!r} on {sync.device}: a call",
    ):
        return _measure(
            target, name, budgets, policy, sync, clock, warm, samples, wait_clock or read_wait_ns
        )


def _measure(
    target: Callable[[], T],
    name: str,
    budgets: Sequence[Budget],
    policy: SamplingPolicy,
    sync: DeviceSync,
    clock: Callable[[], int],
    warm: list[int],
    samples_list: list[int],
    wait_clock: WaitClock,
) -> tuple[T, Measurement]:
    budgets = tuple(dict.fromkeys(budgets))  # a budget given twice is judged once
    synchronize = sync.synchronize
    gc_was_enabled = gc.isenabled()
    if policy.collect:
        gc.collect()

    # Warm-up: at least `min_warmup_calls`, for at least `warmup_s`.
    warmup_ns = int(policy.warmup_s * 1e9)
    if synchronize is not None:
        synchronize()
    warm_start = clock()
    while True:
        t0 = clock()
        result = target()
        if synchronize is not None:
            synchronize()
        t1 = clock()
        warm.append(t1 - t0)
        if len(warm) >= policy.min_warmup_calls and (
            t1 - warm_start >= warmup_ns or len(warm) >= policy.max_warmup_calls
        ):
            break
    warm_total_ns = clock() - warm_start
    steady = warm[len(warm) // 2 :] if len(warm) > 1 else warm
    per_call_ns = _median(steady)
    plan = plan_samples(per_call_ns, budgets, policy)

    if policy.collect:
        gc.collect()
    if policy.gc == "disable":
        gc.disable()
    # The wait is read against the real clock: `clock` may be a test's.
    waited_before, wall_before = wait_clock(), time.perf_counter_ns()
    sampling_start = clock()
    try:
        result, samples, stop_reason, decided, looks_taken = _sample(
            target, synchronize, clock, budgets, policy, plan, result, samples_list
        )
    finally:
        if gc_was_enabled:
            gc.enable()
    sampling_ns = clock() - sampling_start
    wall_ns, waited_after = time.perf_counter_ns() - wall_before, wait_clock()

    block = plan.block_size
    method = "perf_counter_ns" if block == 1 else f"perf_counter_ns/block-of-{block}"
    notes = list(plan.notes)
    # A budget no look decided is judged once more on all the samples; at the last look
    # it was undecided on these same samples, so it settles as inconclusive.
    verdicts = settle(
        [
            decided[budget] if budget in decided else judge(budget, samples, plan.alpha_per_look)
            for budget in budgets
        ]
    )
    if stop_reason == "failed" and any(v.outcome is Outcome.INCONCLUSIVE for v in verdicts):
        notes.append(STOPPED_AT_FAILURE)
    elif stop_reason in ("max-time", "max-samples") and any(
        v.outcome is Outcome.INCONCLUSIVE for v in verdicts
    ):
        if samples.size < plan.required_samples:
            notes.append(
                f"no decision within {policy.max_time_s:g} s: {samples.size} samples, fewer"
                f" than the {plan.required_samples} a pass needs at alpha"
                f" {plan.alpha_per_look:.2g} per look; raise --hwperf-max-time"
            )
        else:
            notes.append(
                f"no decision within {policy.max_time_s:g} s ({samples.size} samples): the"
                " budget sits too close to the measured percentile for this many samples"
            )
    measurement = Measurement.from_samples(
        name=name,
        device=sync.device,
        samples_ns=samples,
        timing_method=method,
        sync_method=sync.method,
        block_size=block,
        warmup_calls=len(warm),
        warmup_ns=warm_total_ns,
        per_call_estimate_ns=per_call_ns,
        gc_policy="collect-then-disabled" if policy.gc == "disable" else "collect-then-enabled",
        stop_reason=stop_reason,
        alpha=policy.alpha,
        looks=looks_taken,
        sampling_ns=sampling_ns,
        verdicts=verdicts,
        notes=notes,
    )
    measurement.cpu_wait = cpu_wait(waited_before, waited_after, wall_ns)
    measurement.disturbed = is_disturbed(measurement.cpu_wait, policy.busy_wait)
    return result, measurement


def _sample(
    target: Callable[[], T],
    synchronize: Callable[[], None] | None,
    clock: Callable[[], int],
    budgets: Sequence[Budget],
    policy: SamplingPolicy,
    plan: Plan,
    result: T,
    samples: list[int],
) -> tuple[T, np.ndarray, str, dict[Budget, BudgetVerdict], int]:
    block = plan.block_size
    append = samples.append
    decided: dict[Budget, BudgetVerdict] = {}
    looks = list(plan.looks)
    looks_taken = 0
    start = clock()
    deadline = start + int(policy.max_time_s * 1e9)
    min_end = start + int(policy.min_time_s * 1e9)
    stop_reason = "max-time"
    while True:
        next_look = looks.pop(0) if looks else policy.max_samples
        if not budgets and len(samples) < policy.target_samples:
            # Without budgets the only stop short of the time limit is target_samples:
            # end a chunk there, or one past the last look would run to the deadline.
            next_look = min(next_look, policy.target_samples)
        t1 = start
        # The hot loops: kept minimal so the loop adds well under 1 us per sample
        # (benchmarks/overhead.py measures it).
        if block == 1 and synchronize is None:
            for _ in range(next_look - len(samples)):
                t0 = clock()
                result = target()
                t1 = clock()
                append(t1 - t0)
                if t1 >= deadline:
                    break
        elif block == 1:
            for _ in range(next_look - len(samples)):
                t0 = clock()
                result = target()
                synchronize()  # type: ignore[misc]
                t1 = clock()
                append(t1 - t0)
                if t1 >= deadline:
                    break
        else:
            for _ in range(next_look - len(samples)):
                t0 = clock()
                for _ in range(block):
                    result = target()
                if synchronize is not None:
                    synchronize()
                t1 = clock()
                append((t1 - t0) // block)
                if t1 >= deadline:
                    break
        final = t1 >= deadline or len(samples) >= policy.max_samples
        looks_taken += 1
        if not budgets:
            if len(samples) >= policy.target_samples and t1 >= min_end:
                stop_reason = "target-samples"
                break
            if final:
                stop_reason = "max-time" if t1 >= deadline else "max-samples"
                break
            continue
        array = np.asarray(samples, dtype=np.int64)
        for budget in budgets:
            if budget in decided:
                continue
            verdict = judge(budget, array, plan.alpha_per_look)
            if verdict.outcome is not Outcome.UNDECIDED:
                decided[budget] = verdict
        if any(v.outcome is Outcome.FAIL for v in decided.values()):
            stop_reason = "failed"
            break
        if len(decided) == len(budgets):
            stop_reason = "decided"
            break
        if final:
            stop_reason = "max-time" if t1 >= deadline else "max-samples"
            break
    return result, np.asarray(samples, dtype=np.int64), stop_reason, decided, looks_taken
