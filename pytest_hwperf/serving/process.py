"""One MLServer, run as a subprocess for a test: started, watched and stopped.

:class:`MLServerProcess` starts `mlserver start <folder>` on a temporary folder holding
the server's settings.json and a symlink to the user's model folder (see
:mod:`~pytest_hwperf.serving.settings`), on free ports of 127.0.0.1, with
`parallel_workers` = the spec's workers. The threads per worker go through the
server's environment, which MLServer's workers inherit: `OMP_NUM_THREADS`,
`MKL_NUM_THREADS` and `OPENBLAS_NUM_THREADS` (torch reads the first), with OpenMP
binding off (`OMP_PROC_BIND=false`: N processes each binding to "the first cores" would
pile up). With `pin`, the usable CPUs are split between the workers
(:func:`~pytest_hwperf.workers.placement.split_cpus`) and, once the model is ready,
every thread of each worker is moved onto its share; threads started later inherit it.

`start()` waits until the model answers `GET /v2/models/<name>/ready` with 200 and the
workers are up, and fails with a one-line :class:`ServerError` otherwise: the server
exited (an unknown implementation, an import error in the runtime: the line carries
what the server's log says, such as the `ModuleNotFoundError` line), or the model is
not ready after `start_timeout_s`. MLServer does not exit when a port is taken between
our picking it and its binding (it hangs); the log says so, and the start is retried
once on new ports.

No process outlives the server: it runs in its own process group (its own session, so
a Ctrl-C at the terminal reaches only pytest), and `stop()` sends SIGTERM to the group,
waits `stop_grace_s`, sends SIGKILL, then checks that every process of the tree ever
seen is gone. A reaper (:mod:`~pytest_hwperf.serving.reaper`) stops the group when the
test process dies without stopping it (SIGKILL of pytest included).

MLServer is never imported here; only the standard library and psutil are.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

from pytest_hwperf.serving.settings import ServerError, merged_settings, read_model

__all__ = [
    "SERVER_CODE",
    "MLServerProcess",
    "ServerError",
    "ServerSpec",
    "free_ports",
    "log_digest",
    "mlserver_available",
]

# The `mlserver` console script's entry point, run by this interpreter (its venv).
SERVER_CODE = "import sys; from mlserver.cli import main; sys.exit(main())"
HOST = "127.0.0.1"
POLL_S = 0.1
WORKERS_UP_S = 10.0  # after the model is ready, for the worker processes to be listed
_LOG_TAIL_BYTES = 64 * 1024
_DIGEST_CHARS = 600
_PORT_TAKEN = re.compile(r"address already in use|errno 98\b|eaddrinuse", re.IGNORECASE)
# What says what went wrong in a server's log: an error-level record, an exception's
# last line ("ModuleNotFoundError: No module named 'x'"), a worker's death.
_ERROR_LINE = re.compile(
    r"(\bERROR\b|\bCRITICAL\b|^[A-Za-z_][\w.]*(Error|Exception|Exit)\b(:|$)"
    r"|stopped unexpectedly|Traceback)"
)
_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess)


def mlserver_available() -> bool:
    """True when MLServer can be run by this interpreter (found, not imported)."""
    return importlib.util.find_spec("mlserver") is not None


def free_ports(count: int, host: str = HOST) -> tuple[int, ...]:
    """`count` distinct ports free on `host` now, picked by the kernel (bind to port 0).
    Another process may take one before the server binds it: start() retries once."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return tuple(int(sock.getsockname()[1]) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


def log_digest(text: str, lines: int = 3) -> str:
    """One line from a server log: its last `lines` lines that say what went wrong
    (errors, exceptions, a worker's death), else its last `lines` lines, joined by
    " / " and shortened to a few hundred characters."""
    rows = [row.strip() for row in text.splitlines() if row.strip()]
    picked = [r for r in rows if _ERROR_LINE.search(r) and not r.startswith("Traceback (")]
    chosen = list(dict.fromkeys(picked))[-lines:] or rows[-lines:]
    # "2026-01-01 12:00:00,000 [mlserver] ERROR - x": the time stamp says nothing here.
    chosen = [re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ", "", row) for row in chosen]
    digest = " / ".join(chosen)
    if len(digest) > _DIGEST_CHARS:
        digest = "..." + digest[-(_DIGEST_CHARS - 3) :]
    return digest


@dataclass(frozen=True)
class ServerSpec:
    """How to run the server: the model folder, `workers` (MLServer's
    `parallel_workers`) x `threads` per worker, `pin` each worker to its share of `cpus`
    (default: this process's affinity), extra server `settings`, extra environment
    variables `env` (the thread variables are set after them), and the time limits."""

    model_dir: Path
    workers: int = 1
    threads: int = 1
    pin: bool = False
    cpus: tuple[int, ...] | None = None
    settings: Mapping[str, object] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    start_timeout_s: float = 60.0
    stop_grace_s: float = 5.0


class _PortTaken(Exception):
    """The server could not bind a port we picked (taken meanwhile)."""


class MLServerProcess:
    """A running MLServer for one model folder; see the module's docstring."""

    host: str = HOST

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.model = ""
        self.http_port = 0
        self.grpc_port = 0
        self.metrics_port = 0
        self.pid = 0
        self.worker_pids: tuple[int, ...] = ()
        self.cpu_sets: tuple[tuple[int, ...], ...] | None = None  # each worker's, pinned
        self._process: subprocess.Popen[bytes] | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self._folder: Path | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0
        self._log_carry = ""  # the end of the last look, where a line may be half written
        self._seen: dict[int, psutil.Process] = {}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def log_path(self) -> Path | None:
        return None if self._folder is None else self._folder / "server.log"

    # -- starting -------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and wait until the model is ready; ServerError otherwise.
        Whatever goes wrong (an interrupt included), nothing is left running."""
        spec = self.spec
        for name in ("workers", "threads"):
            value = getattr(spec, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ServerError(f"mlserver: {name} must be a positive integer, got {value!r}")
        if not spec.start_timeout_s > 0:
            timeout = spec.start_timeout_s
            raise ServerError(f"mlserver: start_timeout_s must be positive, got {timeout!r}")
        info, user = read_model(Path(spec.model_dir))
        merged_settings(user, spec.settings, {})  # refuses owned keys before any start
        self.model = info.name
        if spec.pin:
            self.cpu_sets = _cpu_sets(spec)
        try:
            self._start_serving(user)
        except BaseException:
            with contextlib.suppress(ServerError):
                self.stop()
            raise

    def _start_serving(self, user: Mapping[str, object]) -> None:
        try:
            for attempt in (1, 2):
                try:
                    self._launch(user)
                    self._wait_ready()
                    break
                except _PortTaken:
                    self._halt()
                    if attempt == 2:
                        raise ServerError(
                            "mlserver: the server could not bind its ports twice (taken by"
                            f" another process) | server log: {self._digest()}"
                        ) from None
        except OSError as exc:  # the folder, the log or the process could not be made
            raise ServerError(f"mlserver: cannot start the server: {exc}") from None
        self._find_workers()
        if self.cpu_sets is not None:
            self._pin()

    def _launch(self, user: Mapping[str, object]) -> None:
        """Write the folder and start the server and its reaper (a previous attempt's
        processes are gone by now)."""
        spec = self.spec
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="hwperf-mlserver-"))
            models = self._folder / "models"
            models.mkdir()
            model_dir = Path(spec.model_dir).resolve()
            # Named as the folder is: MLServer names a nameless model after it.
            link = models / (model_dir.name or "model")
            link.symlink_to(model_dir, target_is_directory=True)
        folder = self._folder
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        ours: dict[str, object] = {
            "host": self.host,
            "http_port": self.http_port,
            "grpc_port": self.grpc_port,
            "metrics_port": self.metrics_port,
            "parallel_workers": spec.workers,
            "metrics_dir": str(folder / "metrics"),
        }
        if "environments_dir" not in user and "environments_dir" not in spec.settings:
            ours["environments_dir"] = str(folder / "environments")
        settings = merged_settings(user, spec.settings, ours)
        from pytest_hwperf.files import atomic_write

        atomic_write(folder / "settings.json", json.dumps(settings, indent=2))
        if self._log is not None:
            self._log.close()
        self._log = open(folder / "server.log", "ab")  # noqa: SIM115 - the server's output
        self._log_offset = self._log.tell()
        self._log_carry = ""
        self._process = subprocess.Popen(
            [sys.executable, "-c", SERVER_CODE, "start", str(folder)],
            cwd=folder,  # a neutral folder: `mlserver start` puts "." on sys.path
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, out of the terminal's Ctrl-C
        )
        self.pid = self._process.pid
        self._remember(self.pid)
        self._reaper = subprocess.Popen(
            [sys.executable, "-m", "pytest_hwperf.serving.reaper", str(self.pid), str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _environment(self) -> dict[str, str]:
        from pytest_hwperf.workers.worker import worker_environment

        env = dict(os.environ)
        env.update(self.spec.env)
        for key, value in worker_environment(self.spec.threads, None).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        env["PYTHONUNBUFFERED"] = "1"  # the log is read while the server runs
        return env

    def _wait_ready(self) -> None:
        process = self._process
        assert process is not None
        spec = self.spec
        started = time.monotonic()
        deadline = started + spec.start_timeout_s
        path = f"/v2/models/{_quoted(self.model)}/ready"
        while True:
            if _PORT_TAKEN.search(self._new_log()):
                raise _PortTaken
            code = process.poll()
            if code is not None:
                if _PORT_TAKEN.search(self._read_log()):
                    raise _PortTaken
                raise ServerError(
                    f"mlserver: the server exited with code {code} before model"
                    f" {self.model!r} was ready | server log: {self._digest()}"
                )
            if _status(self.host, self.http_port, path) == 200:
                return
            if time.monotonic() >= deadline:
                raise ServerError(
                    f"mlserver: model {self.model!r} not ready after"
                    f" {spec.start_timeout_s:g} s (start_timeout_s) | server log:"
                    f" {self._digest()}"
                )
            time.sleep(POLL_S)

    def _find_workers(self) -> None:
        """The worker processes: the server's children running multiprocessing's spawn."""
        deadline = time.monotonic() + WORKERS_UP_S
        while True:
            workers = [p for p in self._children() if _is_worker(p)]
            if len(workers) >= self.spec.workers or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        # More is possible: a model with its own environment gets a pool of its own.
        self.worker_pids = tuple(sorted(p.pid for p in workers))
        if len(workers) < self.spec.workers:
            raise ServerError(
                f"mlserver: {len(workers)} worker processes running, expected"
                f" {self.spec.workers} (parallel_workers) | server log: {self._digest()}"
            )

    def _pin(self) -> None:
        """Every thread of worker i onto its CPU set (new threads inherit it)."""
        assert self.cpu_sets is not None
        for pid, cpus in zip(self.worker_pids, self.cpu_sets, strict=False):
            try:
                tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
            except OSError:
                tids = [pid]
            for tid in tids:
                with contextlib.suppress(ProcessLookupError):  # a thread that ended
                    os.sched_setaffinity(tid, cpus)

    # -- watching -------------------------------------------------------------------

    def _remember(self, pid: int) -> None:
        if pid not in self._seen:
            with contextlib.suppress(*_GONE):
                self._seen[pid] = psutil.Process(pid)

    def _children(self) -> list[psutil.Process]:
        """The server's descendants now (remembered)."""
        try:
            children: list[psutil.Process] = psutil.Process(self.pid).children(recursive=True)
        except _GONE:
            return []
        for child in children:
            if child.pid not in self._seen:
                self._seen[child.pid] = child
        return children

    def pids(self) -> tuple[int, ...]:
        """Every process of the server's tree seen so far (the server, MLServer's
        resource tracker, the workers, restarted ones), alive or not."""
        if self._process is not None and self._process.poll() is None:
            self._children()
        return tuple(sorted(self._seen))

    def check(self) -> None:
        """ServerError when the server exited or one of its workers died."""
        process = self._process
        if process is None:
            raise ServerError("mlserver: the server is not running (not started, or stopped)")
        code = process.poll()
        if code is not None:
            raise ServerError(
                f"mlserver: the server (pid {self.pid}) exited with code {code} | server log:"
                f" {self._digest()}"
            )
        for pid in self.worker_pids:
            if not _alive(self._seen.get(pid)):
                raise ServerError(
                    f"mlserver: worker pid {pid} died | server log: {self._worker_digest(pid)}"
                )

    def workers_alive(self) -> bool:
        """A cheap look (a signal 0 per worker, no /proc read) for the request path:
        False when the server or a worker is certainly gone; check() says which."""
        if self._process is None or self._process.poll() is not None:
            return False
        for pid in self.worker_pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:  # pragma: no cover - the pid was reused
                return False
        return True

    def log_tail(self, lines: int = 20) -> str:
        """The last `lines` lines the server wrote (stdout and stderr)."""
        text = self._read_log()
        return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""

    def _read_log(self) -> str:
        path = self.log_path
        if path is None:
            return ""
        try:
            with open(path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - _LOG_TAIL_BYTES))
                return handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _new_log(self) -> str:
        """What the server wrote since the last look (for the port check while waiting)."""
        path = self.log_path
        if path is None:
            return ""
        try:
            with open(path, "rb") as handle:
                handle.seek(self._log_offset)
                data = handle.read(_LOG_TAIL_BYTES)
        except OSError:
            return ""
        self._log_offset += len(data)
        text = self._log_carry + data.decode("utf-8", errors="replace")
        self._log_carry = text[-200:]
        return text

    def _digest(self) -> str:
        return log_digest(self._read_log()) or "(empty)"

    def _worker_digest(self, pid: int) -> str:
        rows = [row for row in self._read_log().splitlines() if f"PID {pid} " in row]
        return log_digest("\n".join(rows), lines=1) if rows else self._digest()

    # -- stopping -------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the server and every worker: SIGTERM to the group, `stop_grace_s`, then
        SIGKILL; then check every process ever seen is gone (ServerError naming any
        survivor). Idempotent; safe to call again after an interruption."""
        self._halt()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _halt(self) -> None:
        """Stop the process group and disarm its reaper; ServerError for a survivor
        (the reaper is then left armed: it tries again when this process ends)."""
        survivors = self._kill_group()
        reaper, self._reaper = self._reaper, None
        if survivors:
            if reaper is not None and reaper.stdin is not None:
                with contextlib.suppress(OSError):
                    reaper.stdin.close()  # end of file without "disarm": it kills the group
            raise ServerError(
                "mlserver: processes of the server still running after SIGKILL: pids "
                + ", ".join(str(p) for p in survivors)
            )
        self._process = None
        if reaper is not None:
            _disarm(reaper)

    def _kill_group(self) -> list[int]:
        """Stop the process group; the pids still running afterwards (none, normally)."""
        process = self._process
        if process is None:
            return []
        if process.poll() is None:
            self._children()
        grace = max(0.0, self.spec.stop_grace_s)
        _signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
        # The server's children (the workers, the resource tracker) leave after it.
        psutil.wait_procs(
            [p for p in self._seen.values() if p.pid != self.pid],
            timeout=max(0.0, deadline - time.monotonic()),
        )
        if process.poll() is None or any(_alive(p) for p in self._seen.values()):
            _signal_group(self.pid, signal.SIGKILL)
            for proc in self._seen.values():  # one that left the group, if any
                with contextlib.suppress(*_GONE, psutil.AccessDenied):
                    proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5.0)
        psutil.wait_procs(list(self._seen.values()), timeout=5.0)
        return sorted(pid for pid, proc in self._seen.items() if _alive(proc))


def _cpu_sets(spec: ServerSpec) -> tuple[tuple[int, ...], ...]:
    from pytest_hwperf.workers.placement import split_cpus

    cpus = spec.cpus
    if cpus is None:
        cpus = tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else ()
    try:
        return split_cpus(cpus, spec.workers)
    except ValueError as exc:
        raise ServerError(f"mlserver: pin: {exc}") from None


def _is_worker(process: psutil.Process) -> bool:
    try:
        return "spawn_main" in " ".join(process.cmdline())
    except (*_GONE, psutil.AccessDenied):
        return False


def _alive(process: psutil.Process | None) -> bool:
    """Running and not a zombie (an exited child not yet reaped counts as gone)."""
    if process is None:
        return False
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except _GONE:
        return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _disarm(reaper: subprocess.Popen[bytes]) -> None:
    """Tell the reaper the server was stopped, and let it go."""
    from pytest_hwperf.serving.reaper import DISARM

    try:
        assert reaper.stdin is not None
        reaper.stdin.write(f"{DISARM}\n".encode())
        reaper.stdin.close()
    except (OSError, ValueError):
        pass
    try:
        reaper.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        reaper.kill()
        reaper.wait()


def _quoted(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _status(host: str, port: int, path: str) -> int | None:
    """The status of GET `path`, or None when the server does not answer yet."""
    connection = http.client.HTTPConnection(host, port, timeout=2.0)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
