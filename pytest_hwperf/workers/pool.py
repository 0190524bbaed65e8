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
"""

from __future__ import annotations

import atexit
import faulthandler
import multiprocessing
import os
import pickle
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing import connection as mp_connection
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from pytest_hwperf.workers.placement import split_cpus

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.context import SpawnProcess

    import numpy as np

    from pytest_hwperf.judge.budgets import Budget
    from pytest_hwperf.measure.result import Measurement

__all__ = [
    "PoolConfig",
    "PoolRun",
    "WorkerError",
    "WorkerInfo",
    "WorkerPool",
    "measurement_from_run",
    "split_cpus",
    "worker_environment",
]

TIMING_METHOD = "perf_counter_ns per request (parent, queueing included)"
STOP_GRACE_S = 1.0  # how long close() waits for workers to stop before terminating them

# Wire format. Parent -> worker: an empty message means stop; otherwise a request id
# followed by the pickled input. Worker -> parent: request id and kind, then a payload
# (pickled result, traceback text, or pickled worker facts).
_REQUEST = struct.Struct("<q")
_RESPONSE = struct.Struct("<qB")
_OK, _ERROR, _READY, _START_ERROR = 0, 1, 2, 3
_NO_REQUEST = -1

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_BINDING_VARS = ("OMP_PROC_BIND", "OMP_PLACES", "KMP_AFFINITY", "GOMP_CPU_AFFINITY")

_ENV_LOCK = threading.Lock()


class WorkerError(RuntimeError):
    """A worker failed: its factory or model raised, it died, or it timed out.

    The message names the worker (index and pid) and, where there is one, ends with the
    worker's formatted traceback, which is also kept in ``worker_traceback``.
    """

    def __init__(
        self,
        message: str,
        *,
        worker: int | None = None,
        pid: int | None = None,
        worker_traceback: str | None = None,
    ) -> None:
        text = message
        if worker_traceback:
            text = f"{message}\n{worker_traceback.rstrip()}"
        super().__init__(text)
        self.worker = worker
        self.pid = pid
        self.worker_traceback = worker_traceback


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


def worker_environment(threads: int, cpus: Sequence[int] | None) -> dict[str, str | None]:
    """The environment changes for one worker; None removes a variable.

    ``cpus`` is the worker's pinned set, or None when it is not pinned.
    """
    env: dict[str, str | None] = dict.fromkeys(_THREAD_VARS, str(threads))
    if cpus is None:
        env.update(dict.fromkeys(_BINDING_VARS))
        env["OMP_PROC_BIND"] = "false"
    else:
        env["OMP_PROC_BIND"] = "close"
        env["OMP_PLACES"] = ",".join(f"{{{cpu}}}" for cpu in cpus)
        env["KMP_AFFINITY"] = "granularity=fine,compact"
        env["GOMP_CPU_AFFINITY"] = None
    return env


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker reported once its model was built."""

    index: int
    pid: int
    cpus: tuple[int, ...]  # its affinity as it saw it
    pinned: tuple[int, ...] | None  # the set it was pinned to, None when not pinned
    threads: dict[str, object] = field(compare=False, hash=False)  # thread_settings() there


@dataclass(frozen=True, eq=False)
class PoolRun:
    """One closed-loop run: per-request latency samples and the throughput it reached."""

    samples_ns: np.ndarray  # int64, one per measured request, in completion order
    requests: int
    elapsed_ns: int  # first measured request issued -> last result received
    throughput_per_s: float  # requests / elapsed
    per_worker_counts: tuple[int, ...]  # measured requests served by each worker
    config: PoolConfig
    concurrency: int
    warmup_requests: int
    warmup_ns: int
    stop_reason: str  # "requests" or "duration"
    workers: tuple[WorkerInfo, ...] = ()

    @property
    def mean_ms(self) -> float:
        return float(self.samples_ns.mean()) / 1e6

    def percentile_ms(self, pct: float) -> float:
        from pytest_hwperf.judge import stats

        return stats.percentile(self.samples_ns, pct) / 1e6

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p95_ms(self) -> float:
        return self.percentile_ms(95)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)


# ------------------------------------------------------------------------ the worker


def _worker_main(
    index: int,
    conn: Connection,
    factory_blob: bytes,
    threads: int,
    cpus: tuple[int, ...] | None,
    env: dict[str, str | None],
    fault_path: str,
) -> NoReturn:
    """A worker's life: limits and affinity first, then the model, then requests."""
    # The environment was set when this process was executed; set it again in case
    # something between exec and here changed it. Ctrl-C is the parent's to handle.
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with suppress(OSError):
        fault_file = open(fault_path, "w")  # noqa: SIM115 - kept open for faulthandler
        faulthandler.enable(file=fault_file, all_threads=True)

    try:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        _limit_threads(threads)
        factory = pickle.loads(factory_blob)
        model = factory()
        if not callable(model):
            raise TypeError(f"the factory returned {model!r}, which is not callable")
        _limit_threads(threads)  # again: the factory may have loaded torch or a BLAS
        info = _worker_facts(index, cpus)
    except Exception:
        with suppress(OSError):
            conn.send_bytes(
                _RESPONSE.pack(_NO_REQUEST, _START_ERROR) + traceback.format_exc().encode()
            )
        _quick_exit()
    try:
        conn.send_bytes(_RESPONSE.pack(_NO_REQUEST, _READY) + info)
    except OSError:
        _quick_exit()

    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            _quick_exit()
        if not message:
            _quick_exit()
        (request_id,) = _REQUEST.unpack_from(message)
        try:
            value = pickle.loads(memoryview(message)[_REQUEST.size :])
            result = model(value)
            payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            kind = _OK
        except Exception:
            payload = traceback.format_exc().encode()
            kind = _ERROR
        try:
            conn.send_bytes(_RESPONSE.pack(request_id, kind) + payload)
        except OSError:
            _quick_exit()


def _quick_exit() -> NoReturn:
    """Leave without tearing the interpreter down (with torch loaded that takes ~0.5 s).

    atexit handlers still run (coverage, profilers and the like save their data there).
    """
    with suppress(Exception):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    os._exit(0)


def _limit_threads(threads: int) -> None:
    """torch's intra-op threads (when torch is loaded) and threadpoolctl's limits.

    The limits stay in force: threadpoolctl restores them only when asked to.
    """
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a declared dependency
        return
    threadpool_limits(limits=threads)


def _worker_facts(index: int, pinned: tuple[int, ...] | None) -> bytes:
    try:
        from pytest_hwperf.hardware.threads import thread_settings

        threads: dict[str, object] = thread_settings()
    except Exception as exc:  # facts are informative; never fail a worker over them
        threads = {"error": repr(exc)}
    getaffinity = getattr(os, "sched_getaffinity", None)
    cpus = tuple(sorted(getaffinity(0))) if getaffinity is not None else ()
    info = WorkerInfo(index=index, pid=os.getpid(), cpus=cpus, pinned=pinned, threads=threads)
    return pickle.dumps(info, protocol=pickle.HIGHEST_PROTOCOL)


# ------------------------------------------------------------------------ shutdown


class _PoolState:
    """What shutdown needs, kept apart from the pool so a finalizer can hold it."""

    def __init__(self) -> None:
        self.owner_pid = os.getpid()
        self.processes: list[SpawnProcess] = []
        self.pids: list[int] = []
        self.conns: list[Connection | None] = []
        self.busy: set[int] = set()
        # A request may be under way (a message half written, an answer unread): a
        # shutdown then sends no stop messages and relies on closing the pipes.
        self.dirty = False
        self.tmpdir: str | None = None
        self.done = False


def _shutdown(state: _PoolState) -> None:
    """Stop every worker: stop message, short join, terminate, kill. Re-entrant.

    Safe to call again after an interruption part-way: each step looks at what is left.
    """
    if state.done or os.getpid() != state.owner_pid:
        return
    for index, conn in enumerate(state.conns):
        if conn is None:
            continue
        if not state.dirty and index not in state.busy:
            with suppress(OSError, ValueError):
                conn.send_bytes(b"")
        with suppress(OSError):
            conn.close()
        state.conns[index] = None
    started = [p for p in state.processes if _running(p)]
    deadline = time.monotonic() + STOP_GRACE_S
    for process in started:
        process.join(max(0.0, deadline - time.monotonic()))
    for stop in ("terminate", "kill"):
        alive = [p for p in started if p.exitcode is None]
        if not alive:
            break
        for process in alive:
            with suppress(OSError):
                getattr(process, stop)()
        deadline = time.monotonic() + STOP_GRACE_S
        for process in alive:
            process.join(max(0.0, deadline - time.monotonic()))
    if any(p.exitcode is None for p in started):
        return  # something survived even SIGKILL for now; a later call tries again
    for process in state.processes:
        with suppress(ValueError):
            process.close()
    if state.tmpdir is not None:
        shutil.rmtree(state.tmpdir, ignore_errors=True)
        state.tmpdir = None
    state.done = True


def _running(process: SpawnProcess) -> bool:
    """Started and not yet reaped."""
    try:
        return process.pid is not None and process.exitcode is None
    except ValueError:  # already closed
        return False


@contextmanager
def _environment(changes: Mapping[str, str | None]) -> Iterator[None]:
    """Apply ``changes`` to os.environ for the block (spawned children inherit it)."""
    with _ENV_LOCK:
        saved = {key: os.environ.get(key) for key in changes}
        try:
            for key, value in changes.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            yield
        finally:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "stopped responding"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}"
    return f"died with exit code {exitcode}"


# ------------------------------------------------------------------------ the pool


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
        self._state = _PoolState()
        self._finalizer = weakref.finalize(self, _shutdown, self._state)
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
        return tuple(
            pid
            for process, pid in zip(self._state.processes, self._state.pids, strict=False)
            if _running(process)
        )

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
            self._spawn(factory_blob)
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _spawn(self, factory_blob: bytes) -> None:
        state = self._state
        state.tmpdir = tempfile.mkdtemp(prefix="hwperf-pool-")
        context = multiprocessing.get_context("spawn")
        for index, cpus in enumerate(self._cpu_sets):
            parent_end, child_end = context.Pipe(duplex=True)
            state.conns.append(parent_end)
            env = worker_environment(self.config.threads, cpus)
            process = context.Process(
                target=_worker_main,
                args=(
                    index,
                    child_end,
                    factory_blob,
                    self.config.threads,
                    cpus,
                    env,
                    os.path.join(state.tmpdir, f"worker-{index}.fault"),
                ),
                name=f"hwperf-worker-{index}",
                daemon=True,
            )
            state.processes.append(process)
            try:
                # Native runtimes read their thread variables when they load, which
                # may happen before the worker's own code runs: the worker gets them
                # in its environment at exec.
                with _environment(env):
                    process.start()
                if process.pid is not None:
                    state.pids.append(process.pid)
            finally:
                child_end.close()

    def _wait_ready(self) -> None:
        state = self._state
        n = self.config.workers
        infos: list[WorkerInfo | None] = [None] * n
        deadline = time.monotonic() + self.config.start_timeout_s
        while any(info is None for info in infos):
            waiting = [i for i in range(n) if infos[i] is None]
            remaining = deadline - time.monotonic()
            ready = self._wait(waiting, remaining) if remaining > 0 else []
            if not ready:
                names = ", ".join(str(i) for i in waiting)
                raise WorkerError(
                    f"worker{'s' if len(waiting) > 1 else ''} {names} not ready within"
                    f" start_timeout_s={self.config.start_timeout_s:g} s (building the model"
                    " took too long)",
                    worker=waiting[0],
                    pid=state.processes[waiting[0]].pid,
                )
            for index in ready:
                _, kind, payload = self._receive(index, during="starting")
                if kind == _READY:
                    infos[index] = pickle.loads(payload)
                elif kind == _START_ERROR:
                    pid = state.processes[index].pid
                    raise WorkerError(
                        f"worker {index} (pid {pid}) failed to start: building the model"
                        f" with {self.factory!r} raised:",
                        worker=index,
                        pid=pid,
                        worker_traceback=payload.decode(errors="replace"),
                    )
                else:  # pragma: no cover - protocol violation
                    raise WorkerError(f"worker {index} sent an unexpected message", worker=index)
        self._workers = tuple(info for info in infos if info is not None)

    def close(self) -> None:
        """Stop every worker (idempotent; safe to call again after an interruption)."""
        self._closed = True
        _shutdown(self._state)
        if self._state.done:
            self._finalizer.detach()

    # ------------------------------------------------------------------ plumbing

    def _conn(self, index: int) -> Connection:
        conn = self._state.conns[index]
        if conn is None:
            raise RuntimeError("this WorkerPool is closed")
        return conn

    def _wait(self, indices: Sequence[int], timeout: float | None) -> list[int]:
        """Workers among ``indices`` with a message (or that died), or any worker that died."""
        watched: dict[object, int] = {}
        for index, process in enumerate(self._state.processes):
            watched[process.sentinel] = index
        for index in indices:
            watched[self._conn(index)] = index
        ready = mp_connection.wait(list(watched), timeout)  # type: ignore[arg-type]
        return sorted({watched[obj] for obj in ready})

    def _receive(self, index: int, *, during: str) -> tuple[int, int, bytes]:
        """Read one message from worker ``index``; a dead worker raises WorkerError."""
        conn = self._conn(index)
        data: bytes | None = None
        if conn.poll():
            with suppress(EOFError, OSError):
                data = conn.recv_bytes()
        if data is None:
            raise self._death(index, during)
        request_id, kind = _RESPONSE.unpack_from(data)
        return request_id, kind, data[_RESPONSE.size :]

    def _death(self, index: int, during: str) -> WorkerError:
        process = self._state.processes[index]
        process.join(STOP_GRACE_S)
        fault_text: str | None = None
        if self._state.tmpdir is not None:
            path = os.path.join(self._state.tmpdir, f"worker-{index}.fault")
            with suppress(OSError), open(path, errors="replace") as handle:
                fault_text = handle.read().strip() or None
        if fault_text:
            fault_text = f"faulthandler output of the worker:\n{fault_text}"
        return WorkerError(
            f"worker {index} (pid {process.pid}) {_describe_exit(process.exitcode)} while {during}",
            worker=index,
            pid=process.pid,
            worker_traceback=fault_text,
        )

    def _send(self, index: int, request_id: int, blob: bytes) -> None:
        try:
            self._conn(index).send_bytes(_REQUEST.pack(request_id) + blob)
        except OSError:
            raise self._death(index, f"receiving request {request_id}") from None

    # ------------------------------------------------------------------ requests

    def call(self, value: Any, *, worker: int = 0) -> Any:
        """Send one request to worker ``worker`` and return its result (not timed)."""
        self._check_usable()
        if not 0 <= worker < self.config.workers:
            raise ValueError(f"worker must be in 0..{self.config.workers - 1}, got {worker}")
        blob = _pickle_input(value, 0)
        request_id = self._new_id()
        state = self._state
        try:
            state.dirty = True
            state.busy.add(worker)
            self._send(worker, request_id, blob)
            if not self._wait([worker], self.config.request_timeout_s):
                raise self._timeout(worker, request_id, None)
            got_id, kind, payload = self._receive(worker, during=f"serving request {request_id}")
            state.busy.discard(worker)
            self._check_response(worker, request_id, got_id, kind, payload, None)
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
        blobs = [_pickle_input(value, k) for k, value in enumerate(inputs)]
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

        import numpy as np

        array = np.asarray(samples, dtype=np.int64)
        return PoolRun(
            samples_ns=array,
            requests=int(array.size),
            elapsed_ns=elapsed_ns,
            throughput_per_s=array.size / (elapsed_ns / 1e9) if elapsed_ns > 0 else float("inf"),
            per_worker_counts=tuple(counts),
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
                self._send(worker, request_id, blobs[input_index])
                in_flight[worker] = _InFlight(request_id, input_index, issued_ns, clock())
            oldest = min(in_flight.values(), key=lambda f: f.dispatched_ns)
            wait_s = max(0.0, (oldest.dispatched_ns + timeout_ns - clock()) / 1e9)
            ready = self._wait(list(in_flight), wait_s)
            if not ready:
                worker = next(i for i, f in in_flight.items() if f is oldest)
                raise self._timeout(worker, oldest.request_id, oldest.input_index)
            for worker in ready:
                flight = in_flight.get(worker)
                during = (
                    "idle"
                    if flight is None
                    else f"serving request {flight.request_id} (input {flight.input_index})"
                )
                if flight is None:
                    raise self._death(worker, during)
                request_id, kind, payload = self._receive(worker, during=during)
                now = clock()
                self._check_response(
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

    def _check_response(
        self,
        worker: int,
        expected_id: int,
        request_id: int,
        kind: int,
        payload: bytes,
        input_index: int | None,
    ) -> None:
        pid = self._state.processes[worker].pid
        which = f"request {expected_id}" + (
            "" if input_index is None else f" (input {input_index})"
        )
        if kind == _ERROR:
            raise WorkerError(
                f"worker {worker} (pid {pid}) raised while serving {which}:",
                worker=worker,
                pid=pid,
                worker_traceback=payload.decode(errors="replace"),
            )
        if kind != _OK or request_id != expected_id:  # pragma: no cover - protocol violation
            raise WorkerError(
                f"worker {worker} (pid {pid}) answered request {request_id} (kind {kind})"
                f" while serving {which}",
                worker=worker,
                pid=pid,
            )

    def _timeout(self, worker: int, request_id: int, input_index: int | None) -> WorkerError:
        pid = self._state.processes[worker].pid
        which = f"request {request_id}" + ("" if input_index is None else f" (input {input_index})")
        return WorkerError(
            f"worker {worker} (pid {pid}) timed out: {which} took longer than"
            f" request_timeout_s={self.config.request_timeout_s:g} s",
            worker=worker,
            pid=pid,
        )

    def _check_usable(self) -> None:
        if self._closed:
            raise RuntimeError("this WorkerPool is closed; create a new one")
        if not self._started:
            raise RuntimeError("this WorkerPool is not started; call start() or use `with`")

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id


def _pickle_input(value: Any, index: int) -> bytes:
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(f"input {index} ({type(value).__name__}) cannot be pickled: {exc}") from exc


# ------------------------------------------------------------------ as a measurement


def measurement_from_run(
    run: PoolRun,
    *,
    name: str,
    budgets: Sequence[Budget] = (),
    alpha: float = 0.01,
    device: str = "cpu",
) -> Measurement:
    """The run as a :class:`Measurement`, with its budgets judged at level ``alpha``.

    Latency budgets are judged on the per-request latencies (queueing included).
    Throughput budgets are judged on what the pool delivered, requests / elapsed, not on
    one request's latency: with ``concurrency`` requests in flight a request's latency
    is not the pool's time per request. By Little's law throughput = in-flight / mean
    latency, so the latencies are divided by the mean number in flight (throughput x
    mean latency) and judged as usual; the measured rate is then the pool's. A budget
    still undecided on these samples is inconclusive.
    """
    import numpy as np

    from pytest_hwperf.hardware.cpu import format_cpu_list
    from pytest_hwperf.judge.budgets import ThroughputBudget
    from pytest_hwperf.judge.compliance import BudgetVerdict, Outcome, judge
    from pytest_hwperf.measure.result import Measurement

    if run.samples_ns.size == 0:
        raise ValueError("the run has no samples")
    config = run.config
    samples = np.asarray(run.samples_ns, dtype=np.int64)
    mean_ns = float(samples.mean())
    in_flight = run.throughput_per_s * mean_ns / 1e9
    verdicts: list[BudgetVerdict] = []
    for budget in dict.fromkeys(budgets):
        if isinstance(budget, ThroughputBudget) and in_flight > 0 and np.isfinite(in_flight):
            verdict = judge(budget, samples.astype(np.float64) / in_flight, alpha)
        else:
            verdict = judge(budget, samples, alpha)
        if verdict.outcome is Outcome.UNDECIDED:
            verdict = verdict.with_outcome(Outcome.INCONCLUSIVE)
        verdicts.append(verdict)

    sets = [w.pinned for w in run.workers] or [None] * config.workers
    if config.pin and all(s is not None for s in sets):
        placement = "pinned: " + "; ".join(
            f"worker {i} on CPU {format_cpu_list(s or ())}" for i, s in enumerate(sets)
        )
    else:
        seen = sorted({cpu for w in run.workers for cpu in w.cpus})
        where = f" (each may run on CPUs {format_cpu_list(seen)})" if seen else ""
        placement = f"not pinned{where}"
    threads_word = "thread" if config.threads == 1 else "threads"
    notes = [
        f"{config.workers} worker process{'es' if config.workers != 1 else ''} x"
        f" {config.threads} {threads_word} each, closed loop at concurrency"
        f" {run.concurrency}; {placement}",
        f"pool throughput {run.throughput_per_s:.4g} requests/s ({run.requests} requests in"
        f" {run.elapsed_ns / 1e9:.3g} s); per-call figures are per request, queueing"
        " included",
        "requests served per worker: "
        + ", ".join(f"worker {i}: {c}" for i, c in enumerate(run.per_worker_counts)),
    ]
    if any(isinstance(b, ThroughputBudget) for b in budgets):
        notes.append(
            f"throughput budgets judged on the pool's rate: latencies divided by the mean"
            f" number in flight ({in_flight:.3g}, Little's law)"
        )
    threads: dict[str, object] = {
        "workers": config.workers,
        "threads_per_worker": config.threads,
        "pinned": config.pin,
        "concurrency": run.concurrency,
        "per_worker": [
            {"index": w.index, "pid": w.pid, "cpus": list(w.cpus), **w.threads} for w in run.workers
        ],
    }
    return Measurement(
        name=name,
        device=device,
        mode="measured",
        timing_method=TIMING_METHOD,
        sync_method="none",
        block_size=1,
        samples_ns=samples,
        warmup_calls=run.warmup_requests,
        warmup_ns=run.warmup_ns,
        per_call_estimate_ns=mean_ns,
        gc_policy="worker processes (not managed)",
        stop_reason=run.stop_reason,
        alpha=alpha,
        looks=1,
        sampling_ns=run.elapsed_ns,
        verdicts=verdicts,
        notes=notes,
        threads=threads,
    )
