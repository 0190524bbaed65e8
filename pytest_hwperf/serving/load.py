"""Load on a served model: closed and open loops of V2 requests, and the run as a judged
:class:`~pytest_hwperf.measure.result.Measurement`.

Both loops send one pre-encoded request body (JSON encoding is not measured) from
client threads, each with its own :class:`~pytest_hwperf.serving.v2.V2Client` and so
its own keep-alive connection, and time every request in the test process with
``time.perf_counter_ns``. A latency therefore includes the HTTP exchange, the network
stack, the server's queueing and the model, and the client's own work (the GIL shared
by the client threads included); the response is read but not decoded.

- Closed loop (:func:`closed_loop`): ``concurrency`` clients each send a request, wait
  for its answer and send the next at once, so ``concurrency`` requests are in flight
  at all times. Latency is send to full answer. The rate is what the server sustains at
  that concurrency.
- Open loop (:func:`open_loop`): request ``k`` is due at ``t0 + k / rate`` whatever
  became of the earlier ones, the way independent users arrive. A dispatcher hands due
  requests to a pool of ``max_in_flight`` clients; when all are busy, due requests
  wait. Latency runs from the request's due time to its answer, so a server that falls
  behind shows it in every later request instead of slowing the arrivals (what a
  closed loop would do: "coordinated omission").

Warm-up requests come first, shared out evenly over the clients, and are not samples:
give at least as many as there are clients so that no sample pays for a connection.
The first failed request (an error answer, a timeout, a lost connection) ends the loop:
it is counted in ``errors`` and ``first_error`` says what it was. numpy and the
statistics are imported only when a run is gathered or judged.
"""

from __future__ import annotations

import functools
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pytest_hwperf.serving.v2 import RequestError
from pytest_hwperf.workers.results import LatencySamples

if TYPE_CHECKING:
    import numpy as np

    from pytest_hwperf.judge.budgets import Budget
    from pytest_hwperf.measure.result import Measurement

__all__ = [
    "OPEN_LOOP_TIMING_METHOD",
    "TIMING_METHOD",
    "LoadClient",
    "ServerRun",
    "closed_loop",
    "measurement_from_server_run",
    "open_loop",
]

TIMING_METHOD = "perf_counter_ns per HTTP request (test process, send to full answer)"
OPEN_LOOP_TIMING_METHOD = (
    "perf_counter_ns per HTTP request (test process, due time to full answer, waiting"
    " for a free client included)"
)


class LoadClient(Protocol):
    """What the loops need of a client (:class:`~pytest_hwperf.serving.v2.V2Client`)."""

    def post_infer(self, body: bytes) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True, eq=False)
class ServerRun(LatencySamples):
    """One load run against a server: latencies of the requests answered and the rate.

    ``samples_ns`` (int64) holds one latency per answered measured request, in
    completion order for a closed loop and in due order for an open loop. ``requests``
    is their number; ``errors`` counts failed requests (the loop stops at the first)
    and ``first_error`` is its one-line message. ``elapsed_ns`` runs from the first
    measured request (its due time in an open loop) to the last answer, and
    ``throughput_per_s`` is requests / elapsed. ``concurrency`` is the number of client
    connections. ``stop_reason``: "requests", "duration", "error", or "overloaded" (an
    open loop whose due requests were still waiting ``drain_s`` after its last one was
    due; ``unsent`` counts them).
    """

    samples_ns: np.ndarray
    requests: int
    errors: int
    first_error: str | None
    elapsed_ns: int
    throughput_per_s: float
    mode: str  # "closed" or "open"
    concurrency: int
    rate_per_s: float | None
    seconds: float | None
    warmup_requests: int
    stop_reason: str
    warmup_ns: int = 0
    unsent: int = 0  # open loop: due requests never sent (an error or the drain limit)


@dataclass
class _Phase:
    """What the threads of one phase share, under ``lock``."""

    total: int | None
    deadline_ns: int | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event = field(default_factory=threading.Event)  # set on stop
    issued: int = 0
    samples: list[tuple[int, int]] = field(default_factory=list)  # (order key, latency)
    first_ns: int | None = None
    last_ns: int | None = None
    errors: int = 0
    first_error: str | None = None
    failure: BaseException | None = None  # not a RequestError: re-raised by the caller
    stop_reason: str | None = None
    unsent: int = 0

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.wake.set()

    def take(self, now: int) -> bool:
        """Whether one more closed-loop request may go (and count it)."""
        with self.lock:
            if self.stop_reason is not None:
                return False
            if self.total is not None and self.issued >= self.total:
                self.stop("requests")
                return False
            if self.deadline_ns is not None and now >= self.deadline_ns:
                self.stop("duration")
                return False
            self.issued += 1
            return True

    def answered(self, key: int | None, start_ns: int, end_ns: int) -> None:
        with self.lock:
            self.samples.append((end_ns if key is None else key, end_ns - start_ns))
            if self.first_ns is None or start_ns < self.first_ns:
                self.first_ns = start_ns
            if self.last_ns is None or end_ns > self.last_ns:
                self.last_ns = end_ns

    def failed(self, exc: BaseException) -> None:
        with self.lock:
            if isinstance(exc, RequestError):
                self.errors += 1
                if self.first_error is None:
                    self.first_error = str(exc)
            elif self.failure is None:
                self.failure = exc
            self.stop("error")


def _send(client: LoadClient, body: bytes, phase: _Phase, key: int | None, start_ns: int) -> bool:
    """One request timed from ``start_ns``, its sample ordered by ``key`` (None: by
    completion); False when it failed (the phase stops)."""
    try:
        client.post_infer(body)
    except BaseException as exc:  # handed to the caller's thread
        phase.failed(exc)
        return False
    phase.answered(key, start_ns, time.perf_counter_ns())
    return True


def _closed_client(client: LoadClient, body: bytes, phase: _Phase) -> None:
    clock = time.perf_counter_ns
    while phase.take(clock()):
        if not _send(client, body, phase, None, clock()):
            return


def _run_threads(targets: Sequence[Callable[[], None]], phase: _Phase) -> None:
    """Run each target in a thread and wait for all; an interrupt stops the phase
    first (requests in flight end within the clients' timeout)."""
    threads = [
        threading.Thread(target=t, name=f"hwperf-load-{i}", daemon=True)
        for i, t in enumerate(targets)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except BaseException:
        phase.stop("interrupted")
        for thread in threads:
            if thread.ident is not None:
                thread.join()
        raise


def _warm_up(clients: Sequence[LoadClient], body: bytes, requests: int) -> _Phase:
    """Warm-up requests (not samples), shared out evenly: with at least as many
    requests as clients, every client's connection is open before the samples."""
    phase = _Phase(total=requests, deadline_ns=None)
    if requests > 0:
        base, extra = divmod(requests, len(clients))
        quotas = [base + (1 if i < extra else 0) for i in range(len(clients))]
        targets = [
            functools.partial(_quota_client, c, body, phase, q)
            for c, q in zip(clients, quotas, strict=True)
            if q
        ]
        _run_threads(targets, phase)
    return phase


def _quota_client(client: LoadClient, body: bytes, phase: _Phase, quota: int) -> None:
    clock = time.perf_counter_ns
    for _ in range(quota):
        if phase.stop_reason is not None or not _send(client, body, phase, None, clock()):
            return


def _open_clients(new_client: Callable[[], LoadClient], n: int) -> list[LoadClient]:
    clients: list[LoadClient] = []
    try:
        for _ in range(n):
            clients.append(new_client())
    except BaseException:
        _close_all(clients)
        raise
    return clients


def _close_all(clients: Sequence[LoadClient]) -> None:
    for client in clients:
        client.close()


def _check_count(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_seconds(name: str, value: float | None) -> None:
    if value is not None and not (isinstance(value, int | float) and 0 < value < math.inf):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


def closed_loop(
    new_client: Callable[[], LoadClient],
    body: bytes,
    *,
    concurrency: int,
    seconds: float | None,
    requests: int | None,
    warmup_requests: int,
) -> ServerRun:
    """``concurrency`` clients sending ``body`` back to back.

    After ``warmup_requests`` (not samples), stops issuing after ``requests`` measured
    requests or ``seconds``, whichever comes first (give at least one), or at the first
    failed request, and waits for those in flight. ``new_client`` makes one client per
    thread; all are closed at the end. Raises ValueError for bad arguments; a failure
    that is not a RequestError (a bug) is re-raised here.
    """
    _check_count("concurrency", concurrency, 1)
    _check_count("warmup_requests", warmup_requests, 0)
    if requests is not None:
        _check_count("requests", requests, 1)
    _check_seconds("seconds", seconds)
    if seconds is None and requests is None:
        raise ValueError("give requests=, seconds= or both")
    clients = _open_clients(new_client, concurrency)
    try:
        start = time.perf_counter_ns()
        warm = _warm_up(clients, body, warmup_requests)
        warmup_ns = time.perf_counter_ns() - start
        if warm.stop_reason == "error":
            return _gather(warm, "closed", concurrency, None, seconds, warmup_requests, 0)
        deadline = None if seconds is None else time.perf_counter_ns() + int(seconds * 1e9)
        phase = _Phase(total=requests, deadline_ns=deadline)
        _run_threads([functools.partial(_closed_client, c, body, phase) for c in clients], phase)
        return _gather(phase, "closed", concurrency, None, seconds, warmup_requests, warmup_ns)
    finally:
        _close_all(clients)


def open_loop(
    new_client: Callable[[], LoadClient],
    body: bytes,
    *,
    rate: float,
    seconds: float,
    max_in_flight: int,
    warmup_requests: int,
    drain_s: float | None = None,
) -> ServerRun:
    """Requests of ``body`` due at ``rate`` per second for ``seconds``.

    Request ``k`` is due at ``t0 + k / rate`` for every ``k / rate < seconds``; up to
    ``max_in_flight`` are in flight, the others wait in due order. Each latency runs
    from the due time to the answer. After the last is due, the loop waits for those
    waiting and in flight; any still waiting ``drain_s`` (default: ``seconds``) later
    are not sent (``unsent``, stop reason "overloaded"), so a server far slower than
    the rate cannot make the run last unboundedly. A failed request stops the loop.
    Warm-up requests go first as a closed loop over the clients.
    """
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < math.inf:
        raise ValueError(f"rate must be a positive number of requests/s, got {rate!r}")
    _check_seconds("seconds", seconds)
    _check_seconds("drain_s", drain_s)
    _check_count("max_in_flight", max_in_flight, 1)
    _check_count("warmup_requests", warmup_requests, 0)
    due_count = max(1, math.ceil(seconds * rate))
    drain_ns = int((seconds if drain_s is None else drain_s) * 1e9)
    clients = _open_clients(new_client, max_in_flight)
    try:
        start = time.perf_counter_ns()
        warm = _warm_up(clients, body, warmup_requests)
        warmup_ns = time.perf_counter_ns() - start
        if warm.stop_reason == "error":
            return _gather(warm, "open", max_in_flight, rate, seconds, warmup_requests, 0)
        phase = _Phase(total=due_count, deadline_ns=None)
        pending: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()

        def dispatch() -> None:
            clock = time.perf_counter_ns
            t0 = clock()
            with phase.lock:
                phase.first_ns = t0
                # Set before the first request is queued, so every client sees it.
                phase.deadline_ns = t0 + int((due_count - 1) * 1e9 / rate) + drain_ns
            try:
                for k in range(due_count):
                    due = t0 + int(k * 1e9 / rate)
                    wait_ns = due - clock()
                    if wait_ns > 0:
                        phase.wake.wait(wait_ns / 1e9)  # set early when the loop stops
                    if phase.stop_reason is not None:
                        break
                    pending.put((k, due))
            finally:
                for _ in clients:  # one end marker per client, after the due requests
                    pending.put(None)

        def serve(client: LoadClient) -> None:
            clock = time.perf_counter_ns
            while (item := pending.get()) is not None:
                k, due = item
                deadline = phase.deadline_ns
                if phase.stop_reason is not None or (deadline is not None and clock() > deadline):
                    with phase.lock:
                        phase.unsent += 1
                    continue
                _send(client, body, phase, k, due)

        targets: list[Callable[[], None]] = [dispatch]
        targets += [functools.partial(serve, c) for c in clients]
        _run_threads(targets, phase)
        if phase.stop_reason is None:
            phase.stop("overloaded" if phase.unsent else "duration")
        return _gather(phase, "open", max_in_flight, rate, seconds, warmup_requests, warmup_ns)
    finally:
        _close_all(clients)


def _gather(
    phase: _Phase,
    mode: str,
    concurrency: int,
    rate: float | None,
    seconds: float | None,
    warmup_requests: int,
    warmup_ns: int,
) -> ServerRun:
    """The run from a finished phase; a failure that is not a RequestError is raised."""
    import numpy as np

    if phase.failure is not None:
        raise phase.failure
    ordered = sorted(phase.samples, key=lambda pair: pair[0])
    samples = np.array([latency for _, latency in ordered], dtype=np.int64)
    elapsed = 0
    if phase.first_ns is not None and phase.last_ns is not None:
        elapsed = max(0, phase.last_ns - phase.first_ns)
    if elapsed > 0:
        throughput = samples.size / (elapsed / 1e9)
    else:
        throughput = math.inf if samples.size else 0.0
    return ServerRun(
        samples_ns=samples,
        requests=int(samples.size),
        errors=phase.errors,
        first_error=phase.first_error,
        elapsed_ns=elapsed,
        throughput_per_s=throughput,
        mode=mode,
        concurrency=concurrency,
        rate_per_s=None if rate is None else float(rate),
        seconds=None if seconds is None else float(seconds),
        warmup_requests=warmup_requests,
        stop_reason=phase.stop_reason or "requests",
        warmup_ns=warmup_ns,
        unsent=phase.unsent,
    )


def measurement_from_server_run(
    run: ServerRun,
    *,
    name: str,
    budgets: Sequence[Budget] = (),
    alpha: float = 0.01,
    workers: int,
    threads: int,
    url: str,
    device: str = "cpu",
) -> Measurement:
    """The run as a :class:`Measurement`, with its budgets judged at level ``alpha``.

    Latency budgets are judged on the per-request latencies as the client saw them.
    Throughput budgets are judged on the rate the server delivered (requests /
    elapsed), not on one request's latency: by Little's law the mean number in flight
    is rate x mean latency (in an open loop, counting those waiting for a client), so
    the latencies divided by it have mean 1 / rate and are judged as usual. In an open
    loop the served rate cannot exceed the offered one. ``measurement.served_per_s`` is
    the served rate. Raises ValueError for a run without samples.
    """
    import numpy as np

    from pytest_hwperf.judge.budgets import ThroughputBudget
    from pytest_hwperf.judge.compliance import BudgetVerdict, judge, settle
    from pytest_hwperf.measure.result import Measurement

    if run.samples_ns.size == 0:
        raise ValueError("the run has no samples")
    samples = np.asarray(run.samples_ns, dtype=np.int64)
    mean_ns = float(samples.mean())
    in_flight = run.throughput_per_s * mean_ns / 1e9
    verdicts: list[BudgetVerdict] = []
    for budget in dict.fromkeys(budgets):
        if isinstance(budget, ThroughputBudget) and in_flight > 0 and math.isfinite(in_flight):
            verdicts.append(judge(budget, samples.astype(np.float64) / in_flight, alpha))
        else:
            verdicts.append(judge(budget, samples, alpha))

    processes = f"{workers} worker process{'es' if workers != 1 else ''}"
    per_worker = f"{threads} {'thread' if threads == 1 else 'threads'} each"
    if run.mode == "open":
        load = (
            f"open loop: requests due at {run.rate_per_s or 0:.4g}/s for {run.seconds or 0:g} s,"
            f" up to {run.concurrency} in flight"
        )
        latency = (
            "latency per request from its due time to its full answer, in the test"
            " process: waiting for a free client, HTTP, the server's JSON handling and the"
            " network stack included"
        )
    else:
        load = f"closed loop at concurrency {run.concurrency}"
        latency = (
            "latency per request from send to full answer, in the test process: HTTP, the"
            " server's JSON handling and the network stack included"
        )
    notes = [
        f"MLServer at {url}, {processes} x {per_worker}; {load}",
        f"served {run.throughput_per_s:.4g} requests/s ({run.requests} requests in"
        f" {run.elapsed_ns / 1e9:.3g} s); {latency}",
    ]
    if run.unsent:
        notes.append(
            f"{run.unsent} due requests were never sent: the server fell behind the rate"
            " and they were still waiting at the drain limit"
        )
    if any(isinstance(b, ThroughputBudget) for b in budgets):
        capped = " (at most the offered rate in an open loop)" if run.mode == "open" else ""
        notes.append(
            f"throughput budgets judged on the served rate{capped}: latencies divided by"
            f" the mean number in flight ({in_flight:.3g}, Little's law)"
        )
    facts: dict[str, object] = {
        "workers": workers,
        "threads_per_worker": threads,
        "load": run.mode,
        "concurrency": run.concurrency,
        "rate_per_s": run.rate_per_s,
        "url": url,
    }
    measurement = Measurement.from_samples(
        name=name,
        device=device,
        samples_ns=samples,
        timing_method=OPEN_LOOP_TIMING_METHOD if run.mode == "open" else TIMING_METHOD,
        warmup_calls=run.warmup_requests,
        warmup_ns=run.warmup_ns,
        per_call_estimate_ns=mean_ns,
        gc_policy="server processes (not managed)",
        stop_reason=run.stop_reason,
        alpha=alpha,
        sampling_ns=run.elapsed_ns,
        verdicts=settle(verdicts),
        notes=notes,
        threads=facts,
    )
    measurement.served_per_s = run.throughput_per_s
    return measurement
