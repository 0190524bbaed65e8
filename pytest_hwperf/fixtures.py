"""The `hwperf` fixture: the measuring handle."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_hwperf.markers import TestSpec
from pytest_hwperf.options import Settings
from pytest_hwperf.state import MEASUREMENTS_KEY, SETTINGS_KEY, SPEC_KEY

if TYPE_CHECKING:
    from pytest_hwperf.measure import DeviceSync, Measurement, SamplingPolicy

# The measuring modules (numpy, threadpoolctl) are imported on the first measurement,
# so that a test run that never measures pays nothing for them at start-up.

__all__ = ["Hwperf", "hwperf"]

T = TypeVar("T")


class Hwperf:
    """The measuring handle given by the `hwperf` fixture.

    `hwperf(fn, *args, name=None, device=None, **kwargs)` calls `fn(*args, **kwargs)`
    and returns its result. Under `--hwperf` it first warms `fn` up, then samples one
    call at a time and judges the test's budgets; without `--hwperf` it calls `fn`
    exactly once. `name` and `device` are the handle's own keywords: to pass arguments
    with those names to `fn`, wrap it (`functools.partial` or a lambda).

    Results are readable afterwards: `hwperf.results[name]` (or `hwperf.last`) is a
    `Measurement` with `p50_ms`, `p95_ms`, `p99_ms`, `mean_ms`, `n`,
    `throughput_per_s`, `samples_ns` and the budget `verdicts`.
    """

    def __init__(
        self,
        settings: Settings,
        spec: TestSpec,
        sink: list[Measurement],
        *,
        default_device: str | None = None,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self._settings = settings
        self._spec = spec
        self._sink = sink
        self._default_device = default_device
        self._clock = clock
        self.results: dict[str, Measurement] = {}

    @property
    def enabled(self) -> bool:
        """True under --hwperf: calls are measured and budgets judged."""
        return self._settings.enabled

    @property
    def last(self) -> Measurement:
        """The most recent measurement of this test."""
        if not self._sink:
            pytest.fail("hwperf.last: no measurement has been taken in this test", pytrace=False)
        return self._sink[-1]

    def __getitem__(self, name: str) -> Measurement:
        return self.results[name]

    def __iter__(self) -> Iterator[Measurement]:
        return iter(list(self._sink))

    def _policy(self) -> SamplingPolicy:
        from pytest_hwperf.measure import SamplingPolicy

        s = self._settings
        return SamplingPolicy(max_time_s=s.max_time_s, warmup_s=s.warmup_s, alpha=s.alpha, gc=s.gc)

    def _name_for(self, fn: Callable[..., object], name: str | None) -> str:
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                pytest.fail(
                    f"hwperf(name={name!r}): a name must be a non-empty string", pytrace=False
                )
            if name in self.results:
                pytest.fail(
                    f"hwperf(name={name!r}): this test already has a measurement of that name",
                    pytrace=False,
                )
            return name
        base = getattr(fn, "__name__", None) or type(fn).__name__
        base = "lambda" if base == "<lambda>" else base
        candidate, counter = base, 1
        while candidate in self.results:
            counter += 1
            candidate = f"{base}#{counter}"
        return candidate

    def __call__(
        self,
        fn: Callable[..., T],
        /,
        *args: Any,
        name: str | None = None,
        device: object | None = None,
        **kwargs: Any,
    ) -> T:
        if not callable(fn):
            pytest.fail(f"hwperf(): the first argument must be callable, got {fn!r}", pytrace=False)
        from pytest_hwperf.measure import DeviceError, device_sync

        label = self._name_for(fn, name)
        problem: str | None = None
        try:
            sync = device_sync(device if device is not None else self._default_device)
        except DeviceError as exc:
            problem = str(exc)
        if problem is not None:
            # Outside the except block, so the failure is one line, not a chained pair.
            pytest.fail(f"hwperf(name={label!r}): {problem}", pytrace=False)

        def target() -> T:
            return fn(*args, **kwargs)

        if self.enabled:
            from pytest_hwperf.hardware import thread_settings
            from pytest_hwperf.measure import measure

            result, measurement = measure(
                target,
                name=label,
                budgets=self._spec.budgets,
                policy=self._policy(),
                sync=sync,
                clock=self._clock,
            )
            measurement.threads = thread_settings()
        else:
            result, measurement = self._call_once(target, label, sync)
        self.results[label] = measurement
        self._sink.append(measurement)
        return result

    def _call_once(
        self,
        target: Callable[[], T],
        label: str,
        sync: DeviceSync,
    ) -> tuple[T, Measurement]:
        """Without --hwperf: one plain call, timed for information only."""
        import numpy as np

        from pytest_hwperf.measure import Measurement

        synchronize = sync.synchronize
        t0 = self._clock()
        result = target()
        if synchronize is not None:
            synchronize()
        elapsed = self._clock() - t0
        measurement = Measurement(
            name=label,
            device=sync.device,
            mode="functional",
            timing_method="perf_counter_ns",
            sync_method=sync.method,
            block_size=1,
            samples_ns=np.asarray([elapsed], dtype=np.int64),
            warmup_calls=0,
            warmup_ns=0,
            per_call_estimate_ns=float(elapsed),
            gc_policy="untouched",
            stop_reason="functional",
            alpha=self._settings.alpha,
            looks=0,
        )
        return result, measurement


@pytest.fixture
def hwperf(request: pytest.FixtureRequest) -> Hwperf:
    """Measure a target: `hwperf(fn, *args, name=None, device=None, **kwargs)` returns
    fn's result; under --hwperf the calls are sampled and the test's budgets judged."""
    settings = request.config.stash.get(SETTINGS_KEY, Settings())
    node = request.node
    spec = node.stash.get(SPEC_KEY, TestSpec())
    sink = node.stash.setdefault(MEASUREMENTS_KEY, [])
    return Hwperf(settings, spec, sink)
