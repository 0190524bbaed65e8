"""The `worker_pool` fixture: worker processes as model servers run them, driven and timed.

`worker_pool(factory, *, workers=None, threads=None, pin=False)` starts the pool (spawned
processes, each building its model from the picklable `factory` under its thread limit)
and returns a handle whose `run(inputs, ...)` drives a closed-loop load and records the
run as a measurement of the test, judged by its budgets under --hwperf. The config
defaults to the test's `worker_config` (its `workers` marker or grid case). Every pool
is closed at teardown, whatever happened; a worker that fails becomes the test's
failure with the worker's traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_hwperf.measure.window import opened
from pytest_hwperf.plugin.fixtures import AFFINITY_KEY, MEASUREMENTS_KEY, Hwperf, declared_config
from pytest_hwperf.plugin.markers import SPEC_KEY
from pytest_hwperf.plugin.options import SETTINGS_KEY

if TYPE_CHECKING:
    from pytest_hwperf.measure.window import Window
    from pytest_hwperf.workers.pool import PoolRun, WorkerPool

__all__ = ["PoolHandle", "WorkerPools", "worker_pool"]


class PoolHandle:
    """A started pool of the test: `run(...)` it, read `pids`; closed at teardown."""

    def __init__(self, pool: WorkerPool, owner: WorkerPools) -> None:
        self.pool = pool
        self._owner = owner

    @property
    def pids(self) -> list[int]:
        return list(self.pool.pids)

    def run(
        self,
        inputs: Sequence[Any],
        *,
        concurrency: int | None = None,
        requests: int | None = None,
        duration_s: float | None = None,
        name: str = "pool",
    ) -> PoolRun:
        """Drive the pool (`concurrency` requests in flight, default one per worker) and
        record the run. Under --hwperf it runs `requests` requests, or for `duration_s`
        (default: --hwperf-max-time); without it, one request per worker."""
        return self._owner.run(self, inputs, concurrency, requests, duration_s, name)


class WorkerPools:
    """What the fixture gives: call it to start a pool."""

    def __init__(self, request: pytest.FixtureRequest, hwperf: Hwperf) -> None:
        self._request = request
        self._hwperf = hwperf
        self._pools: list[WorkerPool] = []

    def __call__(
        self,
        factory: Callable[[], Callable[[Any], Any]],
        *,
        workers: int | None = None,
        threads: int | None = None,
        pin: bool = False,
    ) -> PoolHandle:
        from pytest_hwperf.workers.config import WorkerConfig
        from pytest_hwperf.workers.pool import PoolConfig, WorkerError, WorkerPool

        declared = declared_config(self._request.node) or WorkerConfig(1, 1)
        problem: str | None = None
        try:
            config = PoolConfig(
                workers=declared.workers if workers is None else workers,
                threads=declared.threads if threads is None else threads,
                pin=pin,
                cpus=self._request.config.stash.get(AFFINITY_KEY, None),
            )
            pool = WorkerPool(factory, config)
            self._pools.append(pool)
            pool.start()
        except (TypeError, ValueError, WorkerError) as exc:
            problem = f"worker_pool: {exc}"
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        return PoolHandle(pool, self)

    def run(
        self,
        handle: PoolHandle,
        inputs: Sequence[Any],
        concurrency: int | None,
        requests: int | None,
        duration_s: float | None,
        name: str,
    ) -> PoolRun:
        from pytest_hwperf.workers.pool import WorkerError, measurement_from_run

        settings = self._request.config.stash[SETTINGS_KEY]
        node = self._request.node
        spec = node.stash.get(SPEC_KEY, None)
        if not settings.enabled:
            requests, duration_s = handle.pool.config.workers, None
        elif requests is None and duration_s is None:
            duration_s = settings.max_time_s
        problem: str | None = None
        windows = self._windows() if settings.enabled else []
        with opened(windows):
            try:
                run = handle.pool.run(
                    inputs, concurrency=concurrency, requests=requests, duration_s=duration_s
                )
            except (WorkerError, ValueError) as exc:
                problem = f"worker_pool: {exc}"
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        measurement = measurement_from_run(
            run,
            name=name,
            budgets=spec.budgets if (spec is not None and settings.enabled) else (),
            alpha=settings.alpha,
        )
        measurement.served_per_s = run.throughput_per_s
        for window in windows:  # here, so that a warning points where it did
            window.apply(measurement)
        if not settings.enabled:
            measurement.mode = "functional"
        node.stash.setdefault(MEASUREMENTS_KEY, []).append(measurement)
        return run

    def _windows(self) -> list[Window]:
        """What watches a pool's run under --hwperf (measure/window.py), outermost first."""
        from pytest_hwperf.measure.memory import MemoryTracker

        windows: list[Window] = []
        # The workers' busy threads, the test process (the clients) left out.
        observer = self._hwperf.thread_observer(workers_only=True)
        if observer is not None:
            windows.append(observer)
        # The workers' memory with the test process's: their peaks while serving (the
        # device figure is a worker's, not this process's, and is not read).
        windows.append(MemoryTracker(gpu=False))
        return windows

    def close(self) -> None:
        for pool in self._pools:
            pool.close()


@pytest.fixture
def worker_pool(request: pytest.FixtureRequest, hwperf: Hwperf) -> Iterator[WorkerPools]:
    """Start N worker processes serving a model from a picklable factory:
    `worker_pool(factory, *, workers=None, threads=None, pin=False).run(inputs, ...)`.
    No worker outlives the test."""
    pools = WorkerPools(request, hwperf)
    try:
        yield pools
    finally:
        pools.close()
