"""One saved run of one measurement, as baselines keep it, and how a run is made from a
measurement (`run_of_record`) and read back (`RunSummary.from_record`, which validates
every field: a baseline file may be hostile)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from pytest_hwperf.records.types import JSONValue, MeasurementRecord

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "SAMPLE_CAP",
    "RunSummary",
    "gate_runs",
    "measurement_key",
    "run_of_record",
    "thin_samples",
]

SAMPLE_CAP = 2000  # raw samples kept per run: enough for tail quantiles; ~28 kB of JSON

Samples: TypeAlias = "Sequence[int] | np.ndarray"  # nanoseconds, any integer dtype

_T = TypeVar("_T")


def measurement_key(test_id: str, name: str, device: str) -> str:
    """The key of one measurement in baselines and history: ``test_id::name@device``."""
    return f"{test_id}::{name}@{device}"


def thin_samples(samples_ns: Samples, cap: int = SAMPLE_CAP) -> tuple[int, ...]:
    """At most ``cap`` samples that keep the shape of the distribution.

    With more than ``cap`` samples, the kept ones sit at ``cap`` evenly spaced positions
    of the sorted order (ranks ``round(i * (n - 1) / (cap - 1))``): the minimum and
    maximum are always kept and every quantile of the kept set is within one rank step
    of the full set's. The kept samples stay in the order they were measured, so drift
    over a run is still visible. Up to ``cap`` samples come back unchanged.
    """
    import numpy as np  # lazily: importing the plugin must not import numpy

    if cap < 2:
        raise ValueError(f"cap must be at least 2, got {cap}")
    values = np.asarray(samples_ns, dtype=np.int64).reshape(-1)
    n = int(values.size)
    if n <= cap:
        return tuple(int(v) for v in values.tolist())
    order = np.argsort(values, kind="stable")  # ties keep their measured order
    ranks = np.rint(np.arange(cap) * ((n - 1) / (cap - 1))).astype(np.int64)
    chosen = np.sort(order[ranks])  # step > 1, so the ranks are distinct
    return tuple(int(v) for v in values[chosen].tolist())


# ------------------------------------------------------------------ validation


def _require(record: Mapping[str, object], key: str) -> object:
    if key not in record:
        raise ValueError(f"missing {key!r}")
    return record[key]


def _int(record: Mapping[str, object], key: str, minimum: int) -> int:
    value = _require(record, key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def _float(record: Mapping[str, object], key: str) -> float:
    value = _require(record, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key!r} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float (10**400)
        raise ValueError(f"{key!r} must be finite and >= 0, got an integer too large") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{key!r} must be finite and >= 0, got {value!r}")
    return number


def _str(record: Mapping[str, object], key: str) -> str:
    value = _require(record, key)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {value!r}")
    return value


def _optional(
    record: Mapping[str, object], key: str, check: Callable[[Mapping[str, object], str], _T]
) -> _T | None:
    return None if _require(record, key) is None else check(record, key)


@dataclass(frozen=True)
class RunSummary:
    """One run of one measurement as a baseline keeps it.

    ``n`` counts every sample taken; ``samples_ns`` holds at most ``SAMPLE_CAP`` of them
    (see ``thin_samples``), and the statistics were computed from all ``n``. When the
    target was timed in blocks (``block_size`` > 1) a sample is a block mean, whose
    percentiles are not per-call ones, so ``p95_ms`` is None.
    """

    run_id: str
    created: str  # ISO-8601, UTC
    commit: str | None
    n: int
    block_size: int
    median_ms: float
    mean_ms: float
    p95_ms: float | None
    samples_ns: tuple[int, ...]
    reference_ms: float | None = None  # the reference workload's time in that run
    reference_kind: str | None = None  # which reference workload ("torch-mm/2")
    # The regression gate's statistic: the fastest call, over every round of that run.
    # None in runs saved before the gate compared it (they are not compared).
    min_ms: float | None = None
    # The software the run depended on (fingerprint.run_versions: python, torch, numpy,
    # and the GPU driver and CUDA with a GPU); empty in runs saved before it was kept.
    versions: Mapping[str, str] = field(default_factory=dict)
    # The fastest call of each round the run was measured in (--hwperf-confirm), and
    # each round's p95 (per-call samples only): the gate's spread from a few saves
    # (judge/spread.py) and the tail's comparison. Empty in runs saved before.
    round_min_ms: tuple[float, ...] = ()
    round_p95_ms: tuple[float, ...] = ()

    @classmethod
    def from_samples(
        cls,
        run_id: str,
        created: str,
        commit: str | None,
        samples_ns: Samples,
        block_size: int,
        reference_ms: float | None = None,
        reference_kind: str | None = None,
        min_ms: float | None = None,
        versions: Mapping[str, str] | None = None,
        round_min_ms: Sequence[float] = (),
        round_p95_ms: Sequence[float] = (),
    ) -> RunSummary:
        """Summarise a run from all its samples, keeping at most ``SAMPLE_CAP`` of them.

        Median, mean and p95 are computed exactly as the measurement's own statistics
        are (``stats.percentile``), so a baseline's median equals the run's p50.
        ``min_ms``: the gate's statistic when the run was measured in more rounds than
        these samples hold (``--hwperf-confirm``); by default their fastest.
        """
        import numpy as np  # lazily: importing the plugin must not import numpy

        from pytest_hwperf.judge import stats

        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        raw = np.asarray(samples_ns)
        if raw.size == 0:
            raise ValueError("no samples")
        if raw.ndim != 1 or raw.dtype.kind not in "iu":
            raise ValueError("samples_ns must be a flat sequence of integer nanoseconds")
        if int(raw.min()) < 0:
            raise ValueError("samples_ns must not be negative")
        ms = np.sort(raw.astype(np.float64)) / 1e6
        return cls(
            run_id=run_id,
            created=created,
            commit=commit,
            n=int(raw.size),
            block_size=block_size,
            median_ms=stats.percentile(ms, 50),
            mean_ms=float(ms.mean()),
            p95_ms=stats.percentile(ms, 95) if block_size == 1 else None,
            samples_ns=thin_samples(raw),
            reference_ms=reference_ms,
            reference_kind=reference_kind,
            min_ms=float(ms[0]) if min_ms is None else float(min_ms),
            versions=dict(versions or {}),
            round_min_ms=tuple(float(v) for v in round_min_ms),
            round_p95_ms=tuple(float(v) for v in round_p95_ms) if block_size == 1 else (),
        )

    def to_record(self) -> dict[str, JSONValue]:
        """A JSON-ready dict (the form stored in a baseline file)."""
        return {
            "run_id": self.run_id,
            "created": self.created,
            "commit": self.commit,
            "n": self.n,
            "block_size": self.block_size,
            "median_ms": self.median_ms,
            "min_ms": self.min_ms,
            "mean_ms": self.mean_ms,
            "p95_ms": self.p95_ms,
            "samples_ns": list(self.samples_ns),
            "reference_ms": self.reference_ms,
            "reference_kind": self.reference_kind,
            "versions": dict(self.versions),
            "round_min_ms": list(self.round_min_ms),
            "round_p95_ms": list(self.round_p95_ms),
        }

    @classmethod
    def from_record(cls, record: object) -> RunSummary:
        """The inverse of ``to_record``; ValueError names the first bad field."""
        if not isinstance(record, Mapping):
            raise ValueError(f"a run must be an object, got {type(record).__name__}")
        n = _int(record, "n", 1)
        samples = _require(record, "samples_ns")
        if not isinstance(samples, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in samples
        ):
            raise ValueError("'samples_ns' must be a list of integers >= 0")
        if len(samples) > min(n, SAMPLE_CAP):
            raise ValueError(f"'samples_ns' holds {len(samples)} samples, more than n or the cap")
        return cls(
            run_id=_str(record, "run_id"),
            created=_str(record, "created"),
            commit=_optional(record, "commit", _str),
            n=n,
            block_size=_int(record, "block_size", 1),
            median_ms=_float(record, "median_ms"),
            mean_ms=_float(record, "mean_ms"),
            p95_ms=_optional(record, "p95_ms", _float),
            samples_ns=tuple(int(v) for v in samples),
            reference_ms=_optional(record, "reference_ms", _float),
            reference_kind=_optional(record, "reference_kind", _str),
            # Absent from runs saved before the gate compared the fastest call.
            min_ms=_optional(record, "min_ms", _float) if "min_ms" in record else None,
            versions=_versions(record.get("versions", {})),
            round_min_ms=_figures(record, "round_min_ms"),
            round_p95_ms=_figures(record, "round_p95_ms"),
        )


_MAX_ROUNDS = 1000  # far beyond any --hwperf-confirm; a longer list is not ours


def _figures(record: Mapping[str, object], key: str) -> tuple[float, ...]:
    """An optional list of positive finite figures (absent in older runs: empty)."""
    value = record.get(key, [])
    if not isinstance(value, list) or len(value) > _MAX_ROUNDS:
        raise ValueError(f"{key!r} must be a list of at most {_MAX_ROUNDS} numbers")
    figures = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ValueError(f"{key!r} must hold numbers, got {item!r}")
        try:
            number = float(item)
        except OverflowError:
            raise ValueError(f"{key!r} holds an integer too large") from None
        if not (number > 0 and math.isfinite(number)):
            raise ValueError(f"{key!r} must hold positive finite numbers, got {item!r}")
        figures.append(number)
    return tuple(figures)


def _versions(value: object) -> dict[str, str]:
    """A run's versions: names to version strings, each at most 200 characters."""
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= 200 and len(v) <= 200
        for k, v in value.items()
    ):
        raise ValueError("'versions' must map names to version strings")
    return dict(value)


def run_of_record(
    record: MeasurementRecord, run_id: str, created: str, commit: str | None
) -> RunSummary:
    """One measurement of a session or a JSON report as a saved run: its samples, the
    gate's figure (the fastest call over its rounds), each round's fastest call and p95,
    the reference workload's time, and the versions its fingerprint recorded. The one
    way a run is made, for `--hwperf-save` and `hwperf baseline accept` alike."""
    return RunSummary.from_samples(
        run_id,
        created,
        commit,
        list(record.samples_ns),
        record.timing.block_size,
        min_ms=record.gate_ms,
        reference_ms=record.reference_ms,
        reference_kind=record.reference_kind,
        versions=None if record.fingerprint is None else record.fingerprint.versions,
        round_min_ms=list(record.round_mins),
        round_p95_ms=[r.p95_ms for r in record.quiet_rounds if r.p95_ms],
    )


def gate_runs(runs: Sequence[RunSummary]) -> list[tuple[RunSummary, float]]:
    """The saved runs the regression gate can compare, each with its figure (the fastest
    call): runs saved before the gate compared it have none and are passed over."""
    return [(run, run.min_ms) for run in runs if run.min_ms is not None and run.min_ms > 0]
