"""The pool's worker processes: spawning them, talking to them, and stopping them.

:class:`WorkerProcesses` holds the processes, their pipes and what shutdown needs, apart
from the :class:`~pytest_hwperf.workers.pool.WorkerPool` so that a finalizer can hold
it without keeping the pool alive. :func:`shutdown` stops every worker: a stop message
to the idle ones, a short join, then terminate and finally kill what is left. A worker
that dies, or that answers with an error, becomes a :class:`WorkerError` carrying its
traceback (or, for a crash in native code, what ``faulthandler`` wrote).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from multiprocessing import connection as mp_connection
from typing import TYPE_CHECKING

from pytest_hwperf.workers.wire import ERROR, OK, READY, REQUEST, RESPONSE, START_ERROR
from pytest_hwperf.workers.worker import worker_environment, worker_main

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.context import SpawnProcess

    from pytest_hwperf.workers.worker import WorkerInfo

__all__ = ["STOP_GRACE_S", "WorkerError", "WorkerProcesses", "shutdown"]

STOP_GRACE_S = 1.0  # how long close() waits for workers to stop before terminating them

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


class WorkerProcesses:
    """The worker processes and their pipes, indexed by worker."""

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

    # ------------------------------------------------------------------ starting

    def spawn(
        self, factory_blob: bytes, cpu_sets: Sequence[tuple[int, ...] | None], threads: int
    ) -> None:
        """Start one worker per entry of ``cpu_sets`` (its pinned set, or None)."""
        self.tmpdir = tempfile.mkdtemp(prefix="hwperf-pool-")
        context = multiprocessing.get_context("spawn")
        # Linux's parent-death signal follows the thread that starts a worker: used only
        # when that thread is the main thread, which lives as long as the process.
        death_signal = threading.current_thread() is threading.main_thread()
        for index, cpus in enumerate(cpu_sets):
            parent_end, child_end = context.Pipe(duplex=True)
            self.conns.append(parent_end)
            env = worker_environment(threads, cpus)
            process = context.Process(
                target=worker_main,
                args=(
                    index,
                    child_end,
                    factory_blob,
                    threads,
                    cpus,
                    env,
                    self._fault_path(index),
                    os.getpid(),
                    death_signal,
                ),
                name=f"hwperf-worker-{index}",
                daemon=True,
            )
            self.processes.append(process)
            try:
                # Native runtimes read their thread variables when they load, which
                # may happen before the worker's own code runs: the worker gets them
                # in its environment at exec.
                with _environment(env):
                    process.start()
                if process.pid is not None:
                    self.pids.append(process.pid)
            finally:
                child_end.close()

    def wait_ready(self, start_timeout_s: float, factory: object) -> tuple[WorkerInfo, ...]:
        """Wait until every worker has built its model; what each reported."""
        n = len(self.processes)
        infos: list[WorkerInfo | None] = [None] * n
        deadline = time.monotonic() + start_timeout_s
        while any(info is None for info in infos):
            waiting = [i for i in range(n) if infos[i] is None]
            remaining = deadline - time.monotonic()
            ready = self.wait(waiting, remaining) if remaining > 0 else []
            if not ready:
                names = ", ".join(str(i) for i in waiting)
                raise WorkerError(
                    f"worker{'s' if len(waiting) > 1 else ''} {names} not ready within"
                    f" start_timeout_s={start_timeout_s:g} s (building the model"
                    " took too long)",
                    worker=waiting[0],
                    pid=self.processes[waiting[0]].pid,
                )
            for index in ready:
                _, kind, payload = self.receive(index, during="starting")
                if kind == READY:
                    infos[index] = pickle.loads(payload)
                elif kind == START_ERROR:
                    pid = self.processes[index].pid
                    raise WorkerError(
                        f"worker {index} (pid {pid}) failed to start: building the model"
                        f" with {factory!r} raised:",
                        worker=index,
                        pid=pid,
                        worker_traceback=payload.decode(errors="replace"),
                    )
                else:  # pragma: no cover - protocol violation
                    raise WorkerError(f"worker {index} sent an unexpected message", worker=index)
        return tuple(info for info in infos if info is not None)

    def alive_pids(self) -> tuple[int, ...]:
        """The workers still alive."""
        return tuple(
            pid
            for process, pid in zip(self.processes, self.pids, strict=False)
            if _running(process)
        )

    # ------------------------------------------------------------------ talking

    def conn(self, index: int) -> Connection:
        conn = self.conns[index]
        if conn is None:
            raise RuntimeError("this WorkerPool is closed")
        return conn

    def wait(self, indices: Sequence[int], timeout: float | None) -> list[int]:
        """Workers among ``indices`` with a message (or that died), or any worker that died."""
        watched: dict[object, int] = {}
        for index, process in enumerate(self.processes):
            watched[process.sentinel] = index
        for index in indices:
            watched[self.conn(index)] = index
        ready = mp_connection.wait(list(watched), timeout)  # type: ignore[arg-type]
        return sorted({watched[obj] for obj in ready})

    def send(self, index: int, request_id: int, blob: bytes) -> None:
        try:
            self.conn(index).send_bytes(REQUEST.pack(request_id) + blob)
        except OSError:
            raise self.death(index, f"receiving request {request_id}") from None

    def receive(self, index: int, *, during: str) -> tuple[int, int, bytes]:
        """Read one message from worker ``index``; a dead worker raises WorkerError."""
        conn = self.conn(index)
        data: bytes | None = None
        if conn.poll():
            with suppress(EOFError, OSError):
                data = conn.recv_bytes()
        if data is None:
            raise self.death(index, during)
        request_id, kind = RESPONSE.unpack_from(data)
        return request_id, kind, data[RESPONSE.size :]

    def check_response(
        self,
        worker: int,
        expected_id: int,
        request_id: int,
        kind: int,
        payload: bytes,
        input_index: int | None,
    ) -> None:
        """Raise WorkerError unless this is the answer to request ``expected_id``."""
        pid = self.processes[worker].pid
        which = f"request {expected_id}" + (
            "" if input_index is None else f" (input {input_index})"
        )
        if kind == ERROR:
            raise WorkerError(
                f"worker {worker} (pid {pid}) raised while serving {which}:",
                worker=worker,
                pid=pid,
                worker_traceback=payload.decode(errors="replace"),
            )
        if kind != OK or request_id != expected_id:  # pragma: no cover - protocol violation
            raise WorkerError(
                f"worker {worker} (pid {pid}) answered request {request_id} (kind {kind})"
                f" while serving {which}",
                worker=worker,
                pid=pid,
            )

    def death(self, index: int, during: str) -> WorkerError:
        """The error for worker ``index`` gone while ``during``, with its fault output."""
        process = self.processes[index]
        process.join(STOP_GRACE_S)
        fault_text: str | None = None
        if self.tmpdir is not None:
            with suppress(OSError), open(self._fault_path(index), errors="replace") as handle:
                fault_text = handle.read().strip() or None
        if fault_text:
            fault_text = f"faulthandler output of the worker:\n{fault_text}"
        return WorkerError(
            f"worker {index} (pid {process.pid}) {_describe_exit(process.exitcode)} while {during}",
            worker=index,
            pid=process.pid,
            worker_traceback=fault_text,
        )

    def timeout(
        self, worker: int, request_id: int, input_index: int | None, timeout_s: float
    ) -> WorkerError:
        """The error for a request that took longer than ``timeout_s``."""
        pid = self.processes[worker].pid
        which = f"request {request_id}" + ("" if input_index is None else f" (input {input_index})")
        return WorkerError(
            f"worker {worker} (pid {pid}) timed out: {which} took longer than"
            f" request_timeout_s={timeout_s:g} s",
            worker=worker,
            pid=pid,
        )

    def _fault_path(self, index: int) -> str:
        assert self.tmpdir is not None
        return os.path.join(self.tmpdir, f"worker-{index}.fault")


# ------------------------------------------------------------------------ stopping


def shutdown(state: WorkerProcesses) -> None:
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
