"""The budget markers: each one frozen dataclass that binds, validates and documents
its arguments.

A marker is read at collection. Bad arguments never raise out of the plugin: the
test that carries them fails with one line naming the test, the marker, the argument
and what is allowed, and every other test runs.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, TypeVar

import pytest

from pytest_hwperf.hardware.requirements import HardwareRequirements
from pytest_hwperf.judge.budgets import Budget, LatencyBudget, ThroughputBudget, parse_threshold

__all__ = [
    "MARKERS",
    "MAX_COUNT",
    "HardwareMarker",
    "LatencyMarker",
    "MarkerError",
    "MemoryMarker",
    "TestSpec",
    "ThroughputMarker",
    "WorkersMarker",
    "marker_help",
    "read_spec",
]


class MarkerError(ValueError):
    """A marker's arguments are invalid; the message is one line for the user."""


MAX_COUNT = 2**53
"""The largest integer argument: beyond it an integer is not exact as a float, and the
arithmetic on it (items per second, say) would overflow or round."""


def _shown(value: object) -> str:
    """`repr(value)`, cut short when it is long (10**400 has 401 digits)."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's digit limit for str()
        return "an integer too large to show"
    except Exception as exc:  # a user object whose __repr__ raises
        return f"a {type(value).__name__} whose repr raises {type(exc).__name__}"
    # One line whatever the object: a repr spanning lines (a numpy array) is joined.
    text = " ".join(text.split()) if ("\n" in text or "\r" in text) else text
    if len(text) > 40:
        what = "digits" if isinstance(value, int) else "characters"
        return f"{text[:20]}... ({len(text)} {what})"
    return text


def _error(marker: str, arg: str, what: str, value: object) -> MarkerError:
    return MarkerError(
        f"@pytest.mark.{marker}: argument '{arg}' must be {what}, got {_shown(value)}"
    )


def _number(marker: str, arg: str, value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _error(marker, arg, what, value)
    try:
        number = float(value)
    except (OverflowError, ValueError):  # 10**400 is a Real that no float holds
        raise _error(marker, arg, what, value) from None
    if not math.isfinite(number):
        raise _error(marker, arg, what, value)
    return number


def _positive(marker: str, arg: str, value: object, what: str) -> float:
    number = _number(marker, arg, value, what)
    if number <= 0:
        raise _error(marker, arg, what, value)
    return number


def _count(marker: str, arg: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise _error(marker, arg, f"an integer >= {minimum}", value)
    if int(value) > MAX_COUNT:
        raise _error(marker, arg, f"an integer from {minimum} to 2**53", value)
    return int(value)


def _percent(marker: str, arg: str, value: object) -> float | None:
    """A tolerated slowdown in percent (`parse_threshold`): 5, 5.0 or "5%" all mean 5%."""
    if value is None:
        return None
    try:
        return parse_threshold(value)  # type: ignore[arg-type]  # it rejects what is not
    except ValueError:
        raise _error(marker, arg, 'a positive percentage such as 5 or "5%"', value) from None


def _compute_capability(marker: str, value: object) -> tuple[int, int] | None:
    """8.6, "8.6" and (8, 6) all mean compute capability 8.6."""
    if value is None:
        return None
    error = _error(
        marker,
        "min_compute_capability",
        'a compute capability such as 8.0, "8.6" or (9, 0)',
        value,
    )
    if isinstance(value, tuple):
        parts: tuple[object, ...] = value
        if len(parts) != 2 or not all(type(v) is int and 0 <= v <= MAX_COUNT for v in parts):
            raise error
        return int(str(parts[0])), int(str(parts[1]))
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Real)):
        raise error
    try:
        text = str(value)
    except ValueError:  # an int beyond Python's digit limit for str()
        raise error from None
    major, _, minor = text.strip().partition(".")
    # At most 6 digits: a compute capability is 8.6, never 10**400.
    if not major.isdigit() or (minor and not minor.isdigit()) or len(major + minor) > 6:
        raise error
    return int(major), int(minor or 0)


def _bind(
    signature: inspect.Signature, marker: str, args: tuple[Any, ...], kwargs: Mapping[str, object]
) -> dict[str, object]:
    """Bind a marker's arguments to its signature, with messages that name the argument."""
    allowed = ", ".join(signature.parameters)
    for key in kwargs:
        if key not in signature.parameters:
            raise MarkerError(
                f"@pytest.mark.{marker}: unknown argument {_shown(key)} (allowed: {allowed})"
            )
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        missing = [
            name
            for name, p in signature.parameters.items()
            if p.default is inspect.Parameter.empty and name not in kwargs
        ]
        if missing and len(args) < len(missing):
            name = missing[len(args)]
            raise MarkerError(
                f"@pytest.mark.{marker}: missing required argument '{name}'"
                f" (signature: {marker}{signature})"
            ) from None
        raise MarkerError(
            f"@pytest.mark.{marker}: {exc} (signature: {marker}{signature})"
        ) from None
    bound.apply_defaults()
    return dict(bound.arguments)


M = TypeVar("M")


def _marker(cls: type[M]) -> type[M]:
    """Give a marker dataclass its user-facing `SIGNATURE`, read off its fields.

    The fields are the marker's arguments, by name and default; an argument without a
    default is positional-or-keyword, one with a default keyword-only:
    `latency(ms, *, percentile=95, regression=None)`.
    """
    parameters = [
        inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if f.default is MISSING
        else inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default)
        for f in fields(cls)  # type: ignore[arg-type]  # a dataclass, by construction
    ]
    cls.SIGNATURE = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return cls


@_marker
@dataclass(frozen=True)
class LatencyMarker:
    """Per-call latency at `percentile` (default p95) must be within `ms` milliseconds;
    `regression` (percent, e.g. 5 or "5%") overrides the session's tolerated slowdown
    against the baseline for this test."""

    NAME: ClassVar[str] = "latency"
    SIGNATURE: ClassVar[inspect.Signature]

    ms: float
    percentile: float = 95
    regression: float | None = None  # percent

    @classmethod
    def from_args(cls, args: tuple[Any, ...], kwargs: Mapping[str, object]) -> LatencyMarker:
        bound = _bind(cls.SIGNATURE, cls.NAME, args, kwargs)
        ms = _positive(cls.NAME, "ms", bound["ms"], "a positive number of milliseconds")
        what = "a number between 0 and 100 (exclusive)"
        percentile = _number(cls.NAME, "percentile", bound["percentile"], what)
        if not 0 < percentile < 100:
            raise _error(cls.NAME, "percentile", what, bound["percentile"])
        return cls(ms, percentile, _percent(cls.NAME, "regression", bound["regression"]))

    def budget(self) -> LatencyBudget:
        return LatencyBudget(self.ms, self.percentile)


@_marker
@dataclass(frozen=True)
class ThroughputMarker:
    """Items per second (`batch_size` items per call) must reach `min_per_s`."""

    NAME: ClassVar[str] = "throughput"
    SIGNATURE: ClassVar[inspect.Signature]

    min_per_s: float
    batch_size: int = 1

    @classmethod
    def from_args(cls, args: tuple[Any, ...], kwargs: Mapping[str, object]) -> ThroughputMarker:
        bound = _bind(cls.SIGNATURE, cls.NAME, args, kwargs)
        rate = _positive(
            cls.NAME, "min_per_s", bound["min_per_s"], "a positive number of items per second"
        )
        batch = bound["batch_size"]
        if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
            raise _error(cls.NAME, "batch_size", "a positive integer", batch)
        return cls(rate, _count(cls.NAME, "batch_size", batch, 1))

    def budget(self) -> ThroughputBudget:
        return ThroughputBudget(self.min_per_s, self.batch_size)


@_marker
@dataclass(frozen=True)
class HardwareMarker(HardwareRequirements):
    """What the test needs from the machine: a GPU (`gpu`, `min_gpus`, `gpu_name`,
    `min_gpu_memory_gb`, `min_compute_capability`), usable cores (`min_cores`) or memory
    (`min_memory_gb`). An unmet need skips the test naming it and this machine's value
    (fails it under --hwperf-strict-hardware)."""

    # The arguments are the fields of HardwareRequirements, declared there once.
    NAME: ClassVar[str] = "hardware"
    SIGNATURE: ClassVar[inspect.Signature]

    @classmethod
    def from_args(cls, args: tuple[Any, ...], kwargs: Mapping[str, object]) -> HardwareMarker:
        bound = _bind(cls.SIGNATURE, cls.NAME, args, kwargs)
        gpu = bound["gpu"]
        if not isinstance(gpu, bool):
            raise _error(cls.NAME, "gpu", "True or False", gpu)
        min_cores = bound["min_cores"]
        min_memory = bound["min_memory_gb"]
        gpu_memory = bound["min_gpu_memory_gb"]
        name = bound["gpu_name"]
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise _error(
                cls.NAME,
                "gpu_name",
                "a non-empty string (matched case-insensitively within the GPU's name)",
                name,
            )
        gb = "a positive number of GB"
        return cls(
            gpu=gpu,
            min_gpus=_count(cls.NAME, "min_gpus", bound["min_gpus"], 0),
            min_cores=None if min_cores is None else _count(cls.NAME, "min_cores", min_cores, 1),
            min_memory_gb=None
            if min_memory is None
            else _positive(cls.NAME, "min_memory_gb", min_memory, gb),
            gpu_name=name,
            min_gpu_memory_gb=None
            if gpu_memory is None
            else _positive(cls.NAME, "min_gpu_memory_gb", gpu_memory, gb),
            min_compute_capability=_compute_capability(cls.NAME, bound["min_compute_capability"]),
        )

    @property
    def requirements(self) -> HardwareRequirements:
        return HardwareRequirements(
            **{f.name: getattr(self, f.name) for f in fields(HardwareRequirements)}
        )


@_marker
@dataclass(frozen=True)
class WorkersMarker:
    """The serving config this test stands for: `n` worker processes with `threads` threads
    each. More than the usable cores fails the test before it measures (see
    --hwperf-oversubscription); the `worker_config` fixture applies it."""

    NAME: ClassVar[str] = "workers"
    SIGNATURE: ClassVar[inspect.Signature]

    n: int
    threads: int = 1

    @classmethod
    def from_args(cls, args: tuple[Any, ...], kwargs: Mapping[str, object]) -> WorkersMarker:
        bound = _bind(cls.SIGNATURE, cls.NAME, args, kwargs)
        return cls(
            _count(cls.NAME, "n", bound["n"], 1),
            _count(cls.NAME, "threads", bound["threads"], 1),
        )


@_marker
@dataclass(frozen=True)
class MemoryMarker:
    """Peak memory while the test measures: `rss_mb` caps the resident memory of the test
    process and its children (kernel high-water marks on Linux), `gpu_mb` the torch
    allocator's peak on the CUDA device measured; `rss_added_mb` and `gpu_added_mb` cap
    what the measurement adds over the memory held when it started (the model's own
    share, whatever the interpreter and libraries hold); in MiB."""

    NAME: ClassVar[str] = "memory"
    SIGNATURE: ClassVar[inspect.Signature]

    rss_mb: float | None = None
    gpu_mb: float | None = None
    rss_added_mb: float | None = None
    gpu_added_mb: float | None = None

    @classmethod
    def from_args(cls, args: tuple[Any, ...], kwargs: Mapping[str, object]) -> MemoryMarker:
        bound = _bind(cls.SIGNATURE, cls.NAME, args, kwargs)
        values = {
            arg: None
            if bound[arg] is None
            else _positive(cls.NAME, arg, bound[arg], "a positive number of MB (MiB)")
            for arg in ("rss_mb", "gpu_mb", "rss_added_mb", "gpu_added_mb")
        }
        if all(value is None for value in values.values()):
            raise MarkerError(
                f"@pytest.mark.{cls.NAME}: give a budget, 'rss_mb', 'gpu_mb',"
                f" 'rss_added_mb' or 'gpu_added_mb'"
                f" (signature: {cls.NAME}{cls.SIGNATURE})"
            )
        return cls(**values)

    def describe(self) -> str:
        parts = [] if self.rss_mb is None else [f"peak RSS <= {self.rss_mb:g} MB"]
        if self.gpu_mb is not None:
            parts.append(f"peak GPU memory <= {self.gpu_mb:g} MB")
        if self.rss_added_mb is not None:
            parts.append(f"RSS added <= {self.rss_added_mb:g} MB")
        if self.gpu_added_mb is not None:
            parts.append(f"GPU memory added <= {self.gpu_added_mb:g} MB")
        return ", ".join(parts)


AnyMarker = (
    type[LatencyMarker]
    | type[ThroughputMarker]
    | type[HardwareMarker]
    | type[WorkersMarker]
    | type[MemoryMarker]
)

MARKERS: tuple[AnyMarker, ...] = (
    LatencyMarker,
    ThroughputMarker,
    HardwareMarker,
    WorkersMarker,
    MemoryMarker,
)


def marker_help(marker: AnyMarker) -> str:
    """The `pytest --markers` line, read off the class: its name, its signature (from its
    fields) and its docstring."""
    doc = " ".join((marker.__doc__ or "").split())
    return f"{marker.NAME}{marker.SIGNATURE}: {doc}"


@dataclass(frozen=True)
class TestSpec:
    """What a test's markers declare."""

    __test__ = False  # not a test class, whatever pytest's name rules say

    latency: tuple[LatencyMarker, ...] = ()
    throughput: ThroughputMarker | None = None
    hardware: tuple[HardwareRequirements, ...] = ()
    workers: WorkersMarker | None = None
    memory: MemoryMarker | None = None

    @property
    def budgets(self) -> tuple[Budget, ...]:
        budgets: list[Budget] = [m.budget() for m in self.latency]
        if self.throughput is not None:
            budgets.append(self.throughput.budget())
        return tuple(budgets)

    @property
    def regression_pct(self) -> float | None:
        for marker in self.latency:
            if marker.regression is not None:
                return marker.regression
        return None


def read_spec(marks: Iterable[pytest.Mark]) -> TestSpec:
    """Build a test's spec from its marks, closest first (as `item.iter_markers` yields them).

    Several `latency` marks declare several budgets (p50 and p99, say); for one
    percentile the closest mark wins, so a function's mark overrides its class's.
    For `throughput`, `workers` and `memory` the closest mark wins. Every `hardware` mark
    must hold.
    """
    latency: dict[float, LatencyMarker] = {}
    throughput: ThroughputMarker | None = None
    hardware: list[HardwareRequirements] = []
    workers: WorkersMarker | None = None
    memory: MemoryMarker | None = None
    for mark in marks:
        if mark.name == MemoryMarker.NAME:
            parsed_m = MemoryMarker.from_args(mark.args, mark.kwargs)
            memory = memory or parsed_m
        if mark.name == WorkersMarker.NAME:
            parsed_w = WorkersMarker.from_args(mark.args, mark.kwargs)
            workers = workers or parsed_w
        if mark.name == HardwareMarker.NAME:
            # Every hardware mark must hold: a module's gpu=True and a test's min_cores=4.
            hardware.append(HardwareMarker.from_args(mark.args, mark.kwargs).requirements)
        if mark.name == LatencyMarker.NAME:
            parsed = LatencyMarker.from_args(mark.args, mark.kwargs)
            latency.setdefault(parsed.percentile, parsed)
        elif mark.name == ThroughputMarker.NAME:
            parsed_t = ThroughputMarker.from_args(mark.args, mark.kwargs)
            if throughput is None:
                throughput = parsed_t
    return TestSpec(tuple(latency.values()), throughput, tuple(hardware), workers, memory)


# On each item with one of the markers, from collection on: its spec, or the one-line
# error that fails it at call when the markers' arguments are invalid.
SPEC_KEY: pytest.StashKey[TestSpec] = pytest.StashKey()
MARKER_ERROR_KEY: pytest.StashKey[str] = pytest.StashKey()
__all__ += ["MARKER_ERROR_KEY", "SPEC_KEY"]

# Under --hwperf, from the `workers` marker or grid: a declared serving config above the
# usable cores (the gate's line), set at setup; the test is not run, and fails as a
# performance failure (status `P`).
DECLARED_OVERSUBSCRIPTION_KEY: pytest.StashKey[str] = pytest.StashKey()
# The same line under --hwperf-oversubscription=warn: the test runs and is measured, and
# its measurements carry the line as their `oversubscription`, so that a sweep does not
# recommend a config that does not fit the cores.
DECLARED_WARNED_KEY: pytest.StashKey[str] = pytest.StashKey()
__all__ += ["DECLARED_OVERSUBSCRIPTION_KEY", "DECLARED_WARNED_KEY"]
