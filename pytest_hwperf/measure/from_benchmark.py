"""pytest-benchmark interop: judge hwperf budgets on a `benchmark` fixture's rounds, and
the `hwperf` block that goes into pytest-benchmark's `machine_info`.

pytest-benchmark is never imported here: the fixture is read by duck typing, so this
module costs nothing where pytest-benchmark is absent, and numpy (with the statistics)
is imported only when a measurement is built.

What a pytest-benchmark sample is: the fixture times *rounds*, each of `iterations`
calls in a loop, and stores round time / iterations (`Metadata.update`). With more than
one iteration per round a sample is a round mean, not a per-call latency, so tails are
averaged away; the measurement then carries `block_size = iterations`, and its
statistics give only mean-based figures, as for hwperf's own block timing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_hwperf.judge.budgets import Budget

if TYPE_CHECKING:
    from pytest_hwperf.measure.result import Measurement

__all__ = ["machine_info_block", "measurement_from_benchmark"]

STOP_REASON = "pytest-benchmark"


def measurement_from_benchmark(
    fixture: object,
    *,
    name: str,
    budgets: Sequence[Budget],
    alpha: float,
    device: str = "cpu",
) -> Measurement | None:
    """A Measurement built from a pytest-benchmark `BenchmarkFixture` that ran, with each
    budget judged once on its rounds; None when it did not run (benchmarks disabled, the
    fixture unused, the test skipped, the benchmarked function raised, or no rounds).

    There is no further sampling, so a budget the rounds cannot decide is INCONCLUSIVE.
    `device` is recorded only: pytest-benchmark's timer never synchronizes a device.
    """
    rounds = _rounds(fixture)
    if rounds is None:
        return None
    data, iterations, metadata = rounds

    import numpy as np

    from pytest_hwperf.judge.compliance import Outcome, judge, settle
    from pytest_hwperf.measure.result import Measurement

    seconds = np.asarray(data, dtype=np.float64)
    samples_ns = np.rint(np.clip(seconds, 0.0, None) * 1e9).astype(np.int64)
    n = int(samples_ns.size)

    # A budget given twice is judged once; one these rounds cannot decide is inconclusive.
    verdicts = settle(judge(budget, samples_ns, alpha) for budget in dict.fromkeys(budgets))

    notes = [
        f"judged on pytest-benchmark's rounds: each sample is a round mean over {iterations}"
        " iterations, not a per-call latency"
        if iterations > 1
        else "judged on pytest-benchmark's rounds: one call per round"
    ]
    undecided = [v.budget for v in verdicts if v.outcome is Outcome.INCONCLUSIVE]
    if undecided:
        required = max(b.min_samples(alpha) for b in undecided)
        if n < required:
            notes.append(
                f"no decision on {n} pytest-benchmark rounds: a pass needs at least"
                f" {required} at alpha {alpha:.2g}; raise the rounds"
                " (benchmark.pedantic(rounds=...) or --benchmark-min-rounds)"
            )
        else:
            notes.append(
                f"no decision on {n} pytest-benchmark rounds: the budget sits too close to"
                " the measured value for this many rounds"
            )
    if device != "cpu":
        notes.append(
            f"pytest-benchmark's timer does not synchronize {device}: asynchronous device"
            " work may be timed when it is enqueued, not when it completes"
        )

    timer = _timer_name(fixture, metadata)
    method = f"pytest-benchmark rounds (timer {timer}"
    method += f", {iterations} iterations per round)" if iterations > 1 else ")"
    return Measurement.from_samples(
        name=name,
        device=device,
        samples_ns=samples_ns,
        timing_method=method,
        block_size=iterations,
        warmup_calls=0,  # pytest-benchmark's warm-up rounds are not recorded
        per_call_estimate_ns=float(seconds.mean() * 1e9),
        gc_policy=_gc_policy(fixture, metadata),
        stop_reason=STOP_REASON,
        alpha=alpha,
        sampling_ns=round(float(seconds.sum()) * iterations * 1e9),
        verdicts=verdicts,
        notes=notes,
    )


def _rounds(fixture: object) -> tuple[list[float], int, object] | None:
    """(per-round seconds per call, iterations per round, the Metadata) or None.

    BenchmarkFixture: `disabled`, `skipped`, `has_error`, and `stats` (None until the
    fixture runs; then a Metadata with `iterations` and `stats`, a Stats whose `data`
    holds one entry per round, already divided by the iterations).
    """
    if _flag(fixture, "disabled") or _flag(fixture, "skipped") or _flag(fixture, "has_error"):
        return None
    metadata = getattr(fixture, "stats", None)
    if metadata is None:
        return None
    data = getattr(getattr(metadata, "stats", None), "data", None)
    iterations = getattr(metadata, "iterations", None)
    if not isinstance(data, list) or not data:
        return None
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        return None
    values: list[float] = []
    for x in data:
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            return None
        values.append(float(x))
    return values, iterations, metadata


def _flag(obj: object, name: str) -> bool:
    return getattr(obj, name, False) is True


def _options(metadata: object) -> Mapping[str, object]:
    options = getattr(metadata, "options", None)
    return options if isinstance(options, Mapping) else {}


def _gc_policy(fixture: object, metadata: object) -> str:
    options = _options(metadata)
    disable_gc = options.get("disable_gc", getattr(fixture, "_disable_gc", None))
    if disable_gc is None:
        return "unknown"
    return "disabled-during-rounds" if disable_gc else "enabled"


def _timer_name(fixture: object, metadata: object) -> str:
    """The timer as pytest-benchmark names it (`NameWrapper`: module.name)."""
    timer = _options(metadata).get("timer", getattr(fixture, "_timer", None))
    if timer is None:
        return "unknown"
    target = getattr(timer, "target", timer)  # a NameWrapper holds the callable
    name = getattr(target, "__name__", None)
    if not isinstance(name, str):
        return repr(target)
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if isinstance(module, str) else name


def machine_info_block(
    *,
    usable_cores: int,
    usable_source: str,
    gpus: list[dict[str, object]],
    thread_pools: list[dict[str, object]],
    torch_threads: dict[str, object],
    fingerprint: str,
    fingerprint_label: str,
) -> dict[str, object]:
    """The `hwperf` block for pytest-benchmark's `machine_info`.

    A pure function of its arguments: the result shares nothing with them, its top-level
    keys come in a fixed order and nested mappings in sorted key order, and every value
    is JSON-ready (tuples become lists, non-finite floats None, other objects strings).
    pytest-benchmark warns when a compared run's machine_info differs, so only stable
    hardware-class facts belong here.
    """
    return {
        "usable_cores": int(usable_cores),
        "usable_source": str(usable_source),
        "gpus": [_jsonable(g) for g in gpus],
        "thread_pools": [_jsonable(p) for p in thread_pools],
        "torch_threads": _jsonable(torch_threads),
        "fingerprint": str(fingerprint),
        "fingerprint_label": str(fingerprint_label),
    }


def _jsonable(value: object) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        items = {str(k): _jsonable(v) for k, v in value.items()}
        return {k: items[k] for k in sorted(items)}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_jsonable(v) for v in value), key=repr)
    return str(value)
