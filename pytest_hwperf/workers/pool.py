"""A pool of worker processes serving a model, driven by a closed-loop load.

Model servers (TorchServe, MLServer, Triton's Python backend, gunicorn in front of a
Flask app) run N worker processes, each holding its own copy of the model and its own
thread pools. :class:`WorkerPool` starts exactly that, so that a test measures what
serving will see:

- Each worker is a fresh process (``multiprocessing`` "spawn": no state inherited from
  the test process, no forked OpenMP pool). It builds its model by calling a picklable
  ``factory`` (a module-level function, or an instance of a module-level class) that
  returns the callable serving one request.
- Thread limits are in force before the model exists: ``OMP_NUM_THREADS``,
  ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` are in the worker's environment from
  the moment it is executed (native runtimes read them when they load), and once the
  model is built ``torch.set_num_threads`` (when the factory loaded torch) and
  threadpoolctl's ``threadpool_limits`` apply the same limit to what is loaded.
- Pinning (``PoolConfig(pin=True)``): the CPUs (the process's affinity unless given)
  are split into one disjoint, contiguous run per worker, in sorted order, the first
  ``len(cpus) % workers`` workers taking one CPU more: 4 CPUs over 2 workers give
  (0, 1) and (2, 3); 5 CPUs give (0, 1, 2) and (3, 4). Each worker moves itself onto
  its set with ``os.sched_setaffinity`` before it builds the model, and its OpenMP
  threads are bound inside the set: ``OMP_PROC_BIND=close``, ``OMP_PLACES`` listing the
  set (GNU OpenMP, as in torch's CPU wheels) and ``KMP_AFFINITY=granularity=fine,compact``
  (Intel OpenMP). More workers than CPUs cannot be pinned disjointly: ``start`` refuses.
  Unpinned workers get ``OMP_PROC_BIND=false`` and no ``OMP_PLACES``/``KMP_AFFINITY``/
  ``GOMP_CPU_AFFINITY``: N processes each binding its threads to "the first cores"
  would all pile onto the same ones.
- The load is closed-loop: ``concurrency`` requests are in flight at all times; when
  one completes, the next is issued at once. Requests wait in one queue in the parent
  and go to the first idle worker (least loaded; ties to the worker that served fewest),
  the way workers sharing one listening socket take connections. Latency is timed in
  the parent with ``perf_counter_ns`` from issue to receipt of the result, so time spent
  queued is included. Warm-up requests (at least one per worker) are never samples.
- Inputs are pickled once per run, up front, with the standard pickle (not through
  torch's shared-memory reducers); results are pickled by the worker and sent back.
  Both must be picklable.
- A worker that dies, whose model raises, or that takes longer than
  ``request_timeout_s`` on a request ends the run with :class:`WorkerError`, carrying the
  worker's traceback (or, for a crash in native code, what ``faulthandler`` wrote), and
  the pool is closed.
- No worker outlives the pool: :meth:`WorkerPool.close` (also run by ``__exit__``, on
  any error or interrupt inside ``start``/``run``, when the pool is garbage collected and
  at interpreter exit) sends idle workers a stop message, waits briefly, then
  terminates and finally kills what is left. Workers ignore SIGINT, so Ctrl-C reaches
  only the parent, which stops them; a worker whose parent vanished exits when its
  pipe reports end-of-file. A stopping worker runs its atexit handlers and leaves with
  ``os._exit`` (tearing down an interpreter with torch loaded takes ~0.5 s).

Worker processes are daemonic: they cannot start ``multiprocessing`` children of their
own (plain ``subprocess`` works). On POSIX, "spawn" also starts multiprocessing's
resource tracker, a helper child of the parent that lives until the parent exits; it is
not a worker. As with any "spawn" child, a worker first re-imports the parent's main
script (as ``__mp_main__``; its ``if __name__ == "__main__":`` block does not run), so a
script that imports torch at the top loads torch in every worker before the worker's
own code runs; the thread variables and ``OMP_PLACES`` are already in the environment
then, which is why they are set at exec. Nothing here imports pytest, and nothing
beyond the standard library is imported until a run returns its samples.

This module holds the pool's API and its closed loop; the rest is in
:mod:`~pytest_hwperf.workers.worker` (the worker process: its environment, start-up and
request loop), :mod:`~pytest_hwperf.workers.processes` (spawning, talking to and
stopping the processes; :class:`WorkerError`), :mod:`~pytest_hwperf.workers.wire` (the
messages between them) and :mod:`~pytest_hwperf.workers.results` (:class:`PoolRun` and
:func:`measurement_from_run`). Their public names are importable from here.
"""

from __future__ import annotations

import os
import pickle
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pytest_hwperf.workers.placement import split_cpus
from pytest_hwperf.workers.processes import WorkerError, WorkerProcesses, shutdown
from pytest_hwperf.workers.results import TIMING_METHOD, PoolRun, measurement_from_run
from pytest_hwperf.workers.wire import pickle_input
from pytest_hwperf.workers.worker import WorkerInfo, worker_environment

__all__ = [
    "TIMING_METHOD",
    "PoolConfig",
    "PoolRun",
    "WorkerError",
    "WorkerInfo",
    "WorkerPool",
    "measurement_from_run",
    "split_cpus",
    "worker_environment",
]


@dataclass(frozen=True)
class PoolConfig:
    """How many workers, how many threads each, and where they run.

    ``pin`` splits ``cpus`` (default: this process's affinity, read at ``start``) into
    one disjoint contiguous set per worker and pins each worker to its set (see the
    module documentation). Timeouts are in seconds: ``start_timeout_s`` for every worker
    to build its model and report ready, ``request_timeout_s`` for one request on a
    worker.
    """

    workers: int
    threads: int = 1
    pin: bool = False
    cpus: tuple[int, ...] | None = None
    start_timeout_s: float = 60.0
    request_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int):
            raise TypeError(f"workers must be an int, got {self.workers!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int):
            raise TypeError(f"threads must be an int, got {self.threads!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if self.cpus is not None:
            cpus = tuple(self.cpus)
            if not cpus:
                raise ValueError("cpus must not be empty")
            if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in cpus):
                raise ValueError(f"cpus must be CPU ids (ints >= 0), got {cpus!r}")
            object.__setattr__(self, "cpus", tuple(sorted(set(cpus))))
        for name in ("start_timeout_s", "request_timeout_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")

    def describe(self) -> str:
        """Like "2 workers x 1 thread, pinned"."""
        workers = "worker" if self.workers == 1 else "workers"
        threads = "thread" if self.threads == 1 else "threads"
        pinned = "pinned" if self.pin else "not pinned"
        return f"{self.workers} {workers} x {self.threads} {threads}, {pinned}"


@dataclass
class _InFlight:
    request_id: int
    input_index: int
    issued_ns: int
    dispatched_ns: int


class WorkerPool:
    """N worker processes serving ``factory()``'s callable; use as a context manager.

    >>> with WorkerPool(make_model, PoolConfig(workers=2)) as pool:  # doctest: +SKIP
    ...     run = pool.run([x], concurrency=2, requests=200)
    """

    def __init__(self, factory: Callable[[], Callable[[Any], Any]], config: PoolConfig) -> None:
        if not callable(factory):
            raise TypeError(f"factory must be callable, got {factory!r}")
        self.factory = factory
        self.config = config
        self._state = WorkerProcesses()
        self._finalizer = weakref.finalize(self, shutdown, self._state)
        self._cpu_sets: tuple[tuple[int, ...] | None, ...] = ()
        self._workers: tuple[WorkerInfo, ...] = ()
        self._served = [0] * config.workers
        self._next_id = 0
        self._started = False
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> WorkerPool:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def started(self) -> bool:
        return self._started

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pids(self) -> tuple[int, ...]:
        """The workers' process ids (empty before ``start``)."""
        return tuple(self._state.pids)

    @property
    def workers(self) -> tuple[WorkerInfo, ...]:
        """What each worker reported when ready: pid, affinity, thread settings."""
        return self._workers

    @property
    def cpu_sets(self) -> tuple[tuple[int, ...] | None, ...]:
        """Each worker's pinned CPU set (None when not pinned)."""
        return self._cpu_sets

    def alive_pids(self) -> tuple[int, ...]:
        """The workers still alive (empty once closed)."""
        return self._state.alive_pids()

    def start(self) -> WorkerPool:
        """Spawn the workers and wait until each has built its model.

        Raises WorkerError (after stopping every worker) when a factory raises, a
        worker dies, or the workers are not ready within ``start_timeout_s``.
        """
        if self._closed:
            raise RuntimeError("this WorkerPool is closed; create a new one")
        if self._started:
            raise RuntimeError("this WorkerPool is already started")
        self._started = True
        config = self.config
        try:
            factory_blob = pickle.dumps(self.factory, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            self._closed = True
            raise TypeError(
                f"the worker factory {self.factory!r} cannot be pickled ({exc}); spawned"
                " workers need a module-level function or an instance of a module-level"
                " class, importable in a fresh interpreter"
            ) from exc
        if config.pin:
            if not hasattr(os, "sched_setaffinity"):
                self._closed = True
                raise ValueError(
                    "pinning workers needs os.sched_setaffinity, which this platform lacks"
                )
            if config.cpus is not None:
                cpus = config.cpus
            else:
                from pytest_hwperf.hardware.cpu import read_affinity

                cpus = read_affinity()
            try:
                self._cpu_sets = split_cpus(cpus, config.workers)
            except ValueError:
                self._closed = True
                raise
        else:
            self._cpu_sets = (None,) * config.workers
        try:
            self._state.spawn(factory_blob, self._cpu_sets, config.threads)
            self._workers = self._state.wait_ready(config.start_timeout_s, self.factory)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop every worker (idempotent; safe to call again after an interruption)."""
        self._closed = True
        shutdown(self._state)
        if self._state.done:
            self._finalizer.detach()

    # ------------------------------------------------------------------ requests

    def call(self, value: Any, *, worker: int = 0) -> Any:
        """Send one request to worker ``worker`` and return its result (not timed)."""
        self._check_usable()
        if not 0 <= worker < self.config.workers:
            raise ValueError(f"worker must be in 0..{self.config.workers - 1}, got {worker}")
        blob = pickle_input(value, 0)
        request_id = self._new_id()
        state = self._state
        try:
            state.dirty = True
            state.busy.add(worker)
            state.send(worker, request_id, blob)
            if not state.wait([worker], self.config.request_timeout_s):
                raise state.timeout(worker, request_id, None, self.config.request_timeout_s)
            got_id, kind, payload = state.receive(worker, during=f"serving request {request_id}")
            state.busy.discard(worker)
            state.check_response(worker, request_id, got_id, kind, payload, None)
            state.dirty = False
            return pickle.loads(payload)
        except BaseException:
            state.dirty = True
            self.close()
            raise

    def run(
        self,
        inputs: Sequence[Any],
        *,
        concurrency: int | None = None,
        duration_s: float | None = None,
        requests: int | None = None,
        warmup_requests: int | None = None,
    ) -> PoolRun:
        """Drive the workers with a closed-loop load and time every request.

        ``concurrency`` requests are in flight at once (default: one per worker); input
        ``k`` of request ``k`` is ``inputs[k % len(inputs)]``. The run stops issuing
        after ``requests`` measured requests or ``duration_s`` seconds, whichever comes
        first (at least one must be given), and waits for those in flight. Before it,
        ``warmup_requests`` (default: two per worker, at least ``concurrency``; each
        worker gets at least one when there are as many as workers) run the same way
        and are not samples. Starts the pool if needed. Any error or interrupt closes
        the pool before it propagates.
        """
        config = self.config
        if concurrency is None:
            concurrency = config.workers
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if duration_s is None and requests is None:
            raise ValueError("give requests=, duration_s= or both")
        if requests is not None and (
            isinstance(requests, bool) or not isinstance(requests, int) or requests < 1
        ):
            raise ValueError(f"requests must be an int >= 1, got {requests!r}")
        if duration_s is not None and not duration_s > 0:
            raise ValueError(f"duration_s must be positive, got {duration_s!r}")
        if warmup_requests is None:
            warmup_requests = max(2 * config.workers, concurrency)
        if warmup_requests < 0:
            raise ValueError(f"warmup_requests must be >= 0, got {warmup_requests}")
        if not inputs:
            raise ValueError("inputs must not be empty")
        blobs = [pickle_input(value, k) for k, value in enumerate(inputs)]
        if not self._started:
            self.start()
        self._check_usable()

        try:
            self._state.dirty = True
            warmup_ns = 0
            if warmup_requests:
                start = time.perf_counter_ns()
                self._drive(blobs, concurrency, warmup_requests, None)
                warmup_ns = time.perf_counter_ns() - start
            deadline = (
                None if duration_s is None else time.perf_counter_ns() + int(duration_s * 1e9)
            )
            samples, counts, elapsed_ns, stop_reason = self._drive(
                blobs, concurrency, requests, deadline
            )
            self._state.dirty = False  # every request answered: the pipes are clean
        except BaseException:
            self._state.dirty = True
            self.close()
            raise

        return PoolRun.gather(
            samples,
            counts,
            elapsed_ns,
            config=config,
            concurrency=concurrency,
            warmup_requests=warmup_requests,
            warmup_ns=warmup_ns,
            stop_reason=stop_reason,
            workers=self._workers,
        )

    def _drive(
        self,
        blobs: Sequence[bytes],
        concurrency: int,
        total: int | None,
        deadline_ns: int | None,
    ) -> tuple[list[int], list[int], int, str]:
        """The closed loop. Returns samples, per-worker counts, elapsed ns, stop reason."""
        clock = time.perf_counter_ns
        n_workers = self.config.workers
        timeout_ns = int(self.config.request_timeout_s * 1e9)
        state = self._state
        samples: list[int] = []
        counts = [0] * n_workers
        queue: deque[tuple[int, int]] = deque()  # (input index, issued ns)
        in_flight: dict[int, _InFlight] = {}
        idle = set(range(n_workers))
        issued = 0
        stop_reason = "requests"

        def may_issue(now: int) -> bool:
            nonlocal stop_reason
            if total is not None and issued >= total:
                stop_reason = "requests"
                return False
            if deadline_ns is not None and now >= deadline_ns:
                stop_reason = "duration"
                return False
            return True

        first_issue = clock()
        last_receipt = first_issue
        for _ in range(concurrency):
            if not may_issue(first_issue):
                break
            queue.append((issued % len(blobs), first_issue))
            issued += 1

        while queue or in_flight:
            # Dispatch queued requests to idle workers, least loaded first.
            while queue and idle:
                worker = min(idle, key=lambda i: (self._served[i], i))
                idle.discard(worker)
                input_index, issued_ns = queue.popleft()
                request_id = self._new_id()
                state.busy.add(worker)
                state.send(worker, request_id, blobs[input_index])
                in_flight[worker] = _InFlight(request_id, input_index, issued_ns, clock())
            oldest = min(in_flight.values(), key=lambda f: f.dispatched_ns)
            wait_s = max(0.0, (oldest.dispatched_ns + timeout_ns - clock()) / 1e9)
            ready = state.wait(list(in_flight), wait_s)
            if not ready:
                worker = next(i for i, f in in_flight.items() if f is oldest)
                raise state.timeout(
                    worker, oldest.request_id, oldest.input_index, self.config.request_timeout_s
                )
            for worker in ready:
                flight = in_flight.get(worker)
                during = (
                    "idle"
                    if flight is None
                    else f"serving request {flight.request_id} (input {flight.input_index})"
                )
                if flight is None:
                    raise state.death(worker, during)
                request_id, kind, payload = state.receive(worker, during=during)
                now = clock()
                state.check_response(
                    worker, flight.request_id, request_id, kind, payload, flight.input_index
                )
                del in_flight[worker]
                state.busy.discard(worker)
                idle.add(worker)
                self._served[worker] += 1
                counts[worker] += 1
                samples.append(now - flight.issued_ns)
                last_receipt = now
                if may_issue(now):
                    queue.append((issued % len(blobs), now))
                    issued += 1
        return samples, counts, last_receipt - first_issue, stop_reason

    def _check_usable(self) -> None:
        if self._closed:
            raise RuntimeError("this WorkerPool is closed; create a new one")
        if not self._started:
            raise RuntimeError("this WorkerPool is not started; call start() or use `with`")

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id
