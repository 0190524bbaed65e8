"""One worker process of the pool: its environment, its start-up and its request loop.

A worker is a fresh "spawn" process. Its thread variables and OpenMP binding are in its
environment from exec (:func:`worker_environment`); it then moves itself onto its CPU
set when pinned, limits the thread pools loaded so far, builds its model with the
pickled factory, limits them again (the factory may have loaded torch or a BLAS),
reports :class:`WorkerInfo` and serves requests until told to stop or its pipe closes.
It dies with its parent, whatever kills the parent (SIGKILL included) and even while a
request hangs: on Linux the kernel sends it SIGKILL when the parent goes (the
parent-death signal, set first thing, when the pool was started on the parent's main
thread: the signal follows the thread that started the worker, not the process), and
everywhere a watcher thread ends it once the parent's process sentinel closes or, on
POSIX, its parent pid changes (re-parented). It ignores SIGINT (Ctrl-C is the parent's
to handle), writes native crashes through ``faulthandler`` to a file the parent reads,
and leaves with ``os._exit`` after running its atexit handlers. This module imports only
the standard library and the wire format, so a worker starts without loading what the
parent's pool modules use.
"""

from __future__ import annotations

import atexit
import faulthandler
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from pytest_hwperf.workers.wire import ERROR, NO_REQUEST, OK, READY, REQUEST, RESPONSE, START_ERROR

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["PARENT_POLL_S", "WorkerInfo", "worker_environment", "worker_main"]

PARENT_POLL_S = 0.5  # how often the watcher thread looks at the parent pid
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_BINDING_VARS = ("OMP_PROC_BIND", "OMP_PLACES", "KMP_AFFINITY", "GOMP_CPU_AFFINITY")


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


def worker_main(
    index: int,
    conn: Connection,
    factory_blob: bytes,
    threads: int,
    cpus: tuple[int, ...] | None,
    env: dict[str, str | None],
    fault_path: str,
    parent_pid: int | None = None,
    death_signal: bool = False,
) -> NoReturn:
    """A worker's life: limits and affinity first, then the model, then requests.

    ``parent_pid``: the pool's process, which the worker must not outlive (None: not
    watched); ``death_signal``: whether the Linux parent-death signal may be used (the
    pool was started on the parent's main thread).
    """
    if parent_pid is not None:
        _die_with_parent(parent_pid, death_signal=death_signal)
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
                RESPONSE.pack(NO_REQUEST, START_ERROR) + traceback.format_exc().encode()
            )
        _quick_exit()
    try:
        conn.send_bytes(RESPONSE.pack(NO_REQUEST, READY) + info)
    except OSError:
        _quick_exit()

    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            _quick_exit()
        if not message:
            _quick_exit()
        (request_id,) = REQUEST.unpack_from(message)
        try:
            value = pickle.loads(memoryview(message)[REQUEST.size :])
            result = model(value)
            payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            kind = OK
        except Exception:
            payload = traceback.format_exc().encode()
            kind = ERROR
        try:
            conn.send_bytes(RESPONSE.pack(request_id, kind) + payload)
        except OSError:
            _quick_exit()


def _die_with_parent(parent_pid: int, *, death_signal: bool) -> None:
    """End this worker when the parent goes, even if the main thread is stuck in a request."""
    if death_signal and sys.platform.startswith("linux"):
        _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the signal was set
        os._exit(1)
    watcher = threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="hwperf-parent-watch", daemon=True
    )
    watcher.start()


def _set_parent_death_signal() -> None:
    """prctl(PR_SET_PDEATHSIG, SIGKILL): the kernel kills this process when the thread
    that started it exits. Best effort: without it the watcher thread still acts."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl in this libc
        pass


def _watch_parent(parent_pid: int) -> None:
    """Leave (exit code 1, no clean-up: the main thread may be stuck) once the parent is
    gone: its process sentinel (a pipe the parent holds, or its process handle on
    Windows) becomes ready, or on POSIX this process was re-parented."""
    import multiprocessing
    from multiprocessing import connection

    parent = multiprocessing.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    while True:
        if sentinel is not None:
            try:
                if connection.wait([sentinel], timeout=PARENT_POLL_S):
                    break
            except (OSError, ValueError):
                sentinel = None
        else:
            threading.Event().wait(PARENT_POLL_S)
        if os.name == "posix" and os.getppid() != parent_pid:
            break
    os._exit(1)


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
