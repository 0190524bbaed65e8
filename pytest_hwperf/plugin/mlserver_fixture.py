"""The `mlserver` fixture: a real MLServer for a model folder, driven and timed.

`server = mlserver("path/to/model_dir")` starts MLServer (a subprocess, see
:mod:`pytest_hwperf.serving.process`) with `parallel_workers` = the test's workers and
the threads per worker in its workers' environment, taken from the test's
`worker_config` (its `workers` marker or grid case) unless given, and waits until the
model is ready. `server.infer(inputs)` sends one V2 request (`hwperf(server.infer, x)`
times it); `server.load(inputs, ...)` drives a closed loop (or an open loop at `rate`
requests/s) and records the run as a measurement of the test, judged by its budgets
under --hwperf. Every server and every worker is stopped at teardown, whatever
happened; a reaper process stops them if pytest itself is killed.

Every failure is one line: the server could not start (the model folder's settings, an
import error in the runtime: with what the server's log says), a request failed or
timed out, a worker died. Without MLServer installed the test is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from pytest_hwperf.measure.window import opened
from pytest_hwperf.plugin.fixtures import (
    AFFINITY_KEY,
    MEASUREMENTS_KEY,
    WORKER_CONFIG_KEY,
    Hwperf,
    declared_config,
)
from pytest_hwperf.plugin.markers import SPEC_KEY
from pytest_hwperf.plugin.options import SETTINGS_KEY

if TYPE_CHECKING:
    import numpy as np

    from pytest_hwperf.measure.window import Window
    from pytest_hwperf.serving.load import ServerRun
    from pytest_hwperf.serving.process import MLServerProcess
    from pytest_hwperf.serving.v2 import V2Client
    from pytest_hwperf.workers.config import WorkerConfig

__all__ = ["MISSING", "MLServerHandle", "MLServers", "mlserver"]

MISSING = "mlserver: MLServer is not installed (pip install 'pytest-hwperf[mlserver]')"
FUNCTIONAL_OPEN_S = 1.0  # without --hwperf, the longest open-loop run


class _TimeoutNamed:
    """A V2Client whose timeouts say "timed out after N s (request_timeout_s)"."""

    def __init__(self, client: V2Client, timeout_s: float) -> None:
        self._client = client
        self._timeout_s = timeout_s

    def post_infer(self, body: bytes) -> bytes:
        from pytest_hwperf.serving.v2 import RequestError, RequestTimeout

        try:
            return self._client.post_infer(body)
        except RequestTimeout:
            raise RequestError(None, _timed_out(self._timeout_s)) from None

    def close(self) -> None:
        self._client.close()


def _timed_out(timeout_s: float) -> str:
    return f"timed out after {timeout_s:g} s (request_timeout_s)"


class MLServerHandle:
    """A started server of the test: `infer(...)`, `load(...)`; stopped at teardown.

    `url`, `model` (its name), `pid` (the server process), `worker_pids` (MLServer's
    parallel workers), `pids` (every process of its tree seen), `config` (workers x
    threads) and `log_tail(lines)` (what the server wrote) describe it."""

    def __init__(
        self,
        process: MLServerProcess,
        owner: MLServers,
        config: WorkerConfig,
        request_timeout_s: float,
    ) -> None:
        self.process = process
        self.config = config
        self.request_timeout_s = request_timeout_s
        self._owner = owner
        self._client: V2Client | None = None

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def model(self) -> str:
        return self.process.model

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def hwperf_server_pid(self) -> int:
        """Read by `hwperf(server.infer, x)`: the measurement's observed gate counts the
        busy threads of this server's workers only, as `load` does (the test process is
        the client, the server's main process its HTTP front)."""
        return self.process.pid

    @property
    def worker_pids(self) -> tuple[int, ...]:
        return self.process.worker_pids

    @property
    def pids(self) -> tuple[int, ...]:
        return self.process.pids()

    def log_tail(self, lines: int = 20) -> str:
        return self.process.log_tail(lines)

    def new_client(self) -> V2Client:
        """A V2 client of this server's model (one keep-alive connection; not
        thread-safe: one per thread)."""
        from pytest_hwperf.serving.v2 import V2Client

        process = self.process
        return V2Client(
            process.host, process.http_port, process.model, timeout_s=self.request_timeout_s
        )

    def infer(self, inputs: Any) -> np.ndarray | dict[str, np.ndarray]:
        """One V2 inference request: `inputs` an array, a sequence of arrays (named
        input-0, input-1...) or a mapping name -> array; the output array, or name ->
        array for several. A failed or timed-out request, or a dead worker, fails the
        test with one line."""
        from pytest_hwperf.serving.v2 import RequestError, RequestTimeout

        if not self.process.workers_alive():
            self._owner.fail_if_dead(self)
        if self._client is None:
            self._client = self.new_client()
        problem: str
        try:
            return self._client.infer(inputs)
        except RequestTimeout:
            timeout = _timed_out(self.request_timeout_s)
            problem = f"mlserver: request to model {self.model!r}: {timeout}"
        except RequestError as exc:
            problem = f"mlserver: request to model {self.model!r} failed: {exc}"
        except (ValueError, TypeError) as exc:
            problem = f"mlserver: infer: {exc}"
        # Outside the except blocks, so the failure is one line, not a chained pair; a
        # dead worker (the likely cause of an HTTP 500) is named first.
        self._owner.fail_if_dead(self)
        pytest.fail(problem, pytrace=False)

    def load(
        self,
        inputs: Any,
        *,
        concurrency: int | None = None,
        rate: float | None = None,
        seconds: float | None = None,
        name: str = "load",
    ) -> ServerRun:
        """Drive the server with `inputs` (encoded once) and record the run.

        A closed loop when `rate` is None: `concurrency` clients (default: 2 per worker)
        each send the next request as soon as the last is answered. An open loop at
        `rate` requests/s otherwise, up to `concurrency` in flight (same default),
        latency counted from each request's due time. Under --hwperf it runs for
        `seconds` (default: --hwperf-max-time) after warm-up requests, watched by the
        observed oversubscription gate (the busy threads of the server's worker
        processes) and the peak memory of the server's processes, and the test's
        budgets are judged on it; without --hwperf it is a short functional run (one
        request per client, or at most a second of the open loop)."""
        return self._owner.load(self, inputs, concurrency, rate, seconds, name)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


class MLServers:
    """What the fixture gives: call it to start a server."""

    def __init__(self, request: pytest.FixtureRequest, hwperf: Hwperf) -> None:
        self._request = request
        self._hwperf = hwperf
        self._handles: list[MLServerHandle] = []

    def __call__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        workers: int | None = None,
        threads: int | None = None,
        pin: bool = False,
        settings: Mapping[str, object] | None = None,
        env: Mapping[str, str] | None = None,
        start_timeout_s: float = 60.0,
        request_timeout_s: float = 30.0,
    ) -> MLServerHandle:
        """Start MLServer for the model folder `model_dir` (its model-settings.json, and
        its settings.json merged with ours) and wait until the model is ready.

        `workers`/`threads` default to the test's worker_config; `pin` puts each worker
        on its own share of the usable CPUs; `settings` are extra server settings (not
        the host, ports, parallel_workers or metrics_dir, which the fixture sets);
        `env` extra environment variables of the server."""
        from pytest_hwperf.serving.process import MLServerProcess, ServerError, ServerSpec
        from pytest_hwperf.workers.config import WorkerConfig

        declared = declared_config(self._request.node) or WorkerConfig(1, 1)
        config = WorkerConfig(
            declared.workers if workers is None else workers,
            declared.threads if threads is None else threads,
        )
        problem: str | None = None
        try:
            if not (isinstance(request_timeout_s, int | float) and request_timeout_s > 0):
                raise ValueError(f"request_timeout_s must be positive, got {request_timeout_s!r}")
            process = MLServerProcess(
                ServerSpec(
                    model_dir=Path(model_dir),
                    workers=config.workers,
                    threads=config.threads,
                    pin=pin,
                    cpus=self._request.config.stash.get(AFFINITY_KEY, None),
                    settings=dict(settings or {}),
                    env=dict(env or {}),
                    start_timeout_s=start_timeout_s,
                )
            )
            process.start()
        except (ServerError, TypeError, ValueError) as exc:
            problem = str(exc) if isinstance(exc, ServerError) else f"mlserver: {exc}"
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        handle = MLServerHandle(process, self, config, float(request_timeout_s))
        self._handles.append(handle)
        self._request.node.stash.setdefault(WORKER_CONFIG_KEY, config)
        return handle

    def fail_if_dead(self, handle: MLServerHandle) -> None:
        """Fail the test with one line when the server or one of its workers died."""
        from pytest_hwperf.serving.process import ServerError

        problem: str | None = None
        try:
            handle.process.check()
        except ServerError as exc:
            problem = str(exc)
        if problem is not None:
            pytest.fail(problem, pytrace=False)

    def load(
        self,
        handle: MLServerHandle,
        inputs: Any,
        concurrency: int | None,
        rate: float | None,
        seconds: float | None,
        name: str,
    ) -> ServerRun:
        from pytest_hwperf.serving.load import (
            closed_loop,
            measurement_from_server_run,
            open_loop,
        )
        from pytest_hwperf.serving.v2 import encode_request

        settings = self._request.config.stash[SETTINGS_KEY]
        node = self._request.node
        sink = node.stash.setdefault(MEASUREMENTS_KEY, [])
        if not isinstance(name, str) or not name.strip():
            _fail(f"mlserver: load(name={name!r}): a name must be a non-empty string")
        if any(m.name == name for m in sink):
            _fail(
                f"mlserver: load(name={name!r}): this test already has a measurement of that name"
            )
        config = handle.config
        clients = 2 * config.workers if concurrency is None else concurrency
        problem: str | None = None
        try:
            body = encode_request(inputs)
        except (ValueError, TypeError) as exc:
            problem = f"mlserver: load(name={name!r}): {exc}"
        if problem is not None:
            _fail(problem)
        self.fail_if_dead(handle)

        def new_client() -> _TimeoutNamed:
            return _TimeoutNamed(handle.new_client(), handle.request_timeout_s)

        windows = self._windows(handle) if settings.enabled else []
        try:
            with opened(windows):
                if rate is None:
                    run = closed_loop(
                        new_client,
                        body,
                        concurrency=clients,
                        seconds=(settings.max_time_s if seconds is None else seconds)
                        if settings.enabled
                        else None,
                        requests=None if settings.enabled else clients,
                        warmup_requests=2 * clients if settings.enabled else 0,
                    )
                else:
                    wanted = settings.max_time_s if seconds is None else seconds
                    if not settings.enabled and isinstance(rate, int | float) and rate > 0:
                        wanted = min(wanted, FUNCTIONAL_OPEN_S, max(1.0, clients) / rate)
                    run = open_loop(
                        new_client,
                        body,
                        rate=rate,
                        seconds=wanted,
                        max_in_flight=clients,
                        warmup_requests=2 * clients if settings.enabled else 0,
                    )
        except (ValueError, TypeError) as exc:  # bad arguments
            problem = f"mlserver: load(name={name!r}): {exc}"
        if problem is not None:
            _fail(problem)
        if run.errors:
            self.fail_if_dead(handle)
            _fail(
                f"mlserver: load(name={name!r}): request to model {handle.model!r} failed"
                f" after {run.requests} answered: {run.first_error}"
            )
        self.fail_if_dead(handle)
        spec = node.stash.get(SPEC_KEY, None)
        measurement = measurement_from_server_run(
            run,
            name=name,
            budgets=spec.budgets if (spec is not None and settings.enabled) else (),
            alpha=settings.alpha,
            workers=config.workers,
            threads=config.threads,
            url=handle.url,
        )
        measurement.served_per_s = run.throughput_per_s
        for window in windows:  # here, so that a warning points where it did
            window.apply(measurement)
        if not settings.enabled:
            measurement.mode = "functional"
        sink.append(measurement)
        return run

    def _windows(self, handle: MLServerHandle) -> list[Window]:
        """What watches a load run under --hwperf (measure/window.py), outermost first."""
        from pytest_hwperf.measure.memory import MemoryTracker

        windows: list[Window] = []
        # The busy threads of the server's workers: not the test process (the clients,
        # which run elsewhere in production), not the server's main process (its HTTP
        # front, mostly waiting on the workers).
        observer = self._hwperf.thread_observer(pid=handle.pid, workers_only=True)
        if observer is not None:
            windows.append(observer)
        # The server's processes' peak memory while serving (the workers included).
        windows.append(MemoryTracker(pid=handle.pid, gpu=False))
        return windows

    def close(self) -> str | None:
        """Stop every server; the first problem's line, if any."""
        from pytest_hwperf.serving.process import ServerError

        problem: str | None = None
        for handle in self._handles:
            handle.close()
            try:
                handle.process.stop()
            except ServerError as exc:
                problem = problem or str(exc)
        return problem


def _fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


@pytest.fixture
def mlserver(request: pytest.FixtureRequest, hwperf: Hwperf) -> Iterator[MLServers]:
    """Start a real MLServer for a model folder: `mlserver(model_dir, *, workers=None,
    threads=None, pin=False, settings=None, env=None, start_timeout_s=60.0,
    request_timeout_s=30.0)`; `.infer(x)` and `.load(x, ...)` on what it returns. No
    server or worker outlives the test. Skipped when MLServer is not installed."""
    from pytest_hwperf.serving.process import mlserver_available

    if not mlserver_available():
        pytest.skip(MISSING)
    servers = MLServers(request, hwperf)
    problem: str | None = None
    try:
        yield servers
    finally:
        problem = servers.close()
    if problem is not None:
        pytest.fail(problem, pytrace=False)
