"""An exclusive lock around a file's read-modify-write, across processes.

Two ``pytest --hwperf --hwperf-save`` runs in one rootdir each read a baseline, add their
runs and write it back; ``os.replace`` makes each write atomic, but without a lock the
second write drops what the first added. ``exclusive(path)`` serialises them: the
caller reads, merges and writes while holding it.

- POSIX: ``fcntl.flock`` on ``.<name>.lock`` beside the file. The kernel drops the lock
  when its holder dies (even by SIGKILL), so a killed save never blocks the next one.
  The lock file is deleted by its holder before it lets go, so no lock file stays in a
  committed folder; a waiter that then gets the lock of a deleted file notices (its
  inode is no longer the one at the path) and tries again.
- Elsewhere (no ``fcntl``): the lock is the existence of ``.<name>.lck``, created with
  ``O_CREAT | O_EXCL`` and deleted on release; one older than ``STALE_LOCK_S`` belongs
  to a process that died holding it and is broken.

Either way a lock not had within ``timeout`` seconds raises ``LockTimeout`` (an
OSError) naming the lock file.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

__all__ = ["LOCK_TIMEOUT_S", "STALE_LOCK_S", "LockTimeout", "exclusive", "lock_path"]

LOCK_TIMEOUT_S = 120.0  # a save takes well under a second; this much means a stuck holder
STALE_LOCK_S = 600.0  # an O_EXCL lock file this old belongs to a dead process
_POLL_S = 0.01
_POLL_MAX_S = 0.1

try:  # POSIX
    import fcntl as _fcntl_module

    _fcntl: ModuleType | None = _fcntl_module
except ImportError:  # pragma: no cover - Windows
    _fcntl = None


class LockTimeout(OSError):
    """The lock could not be had in time; the message names the lock file."""


def lock_path(path: Path) -> Path:
    """The lock file guarding ``path`` (hidden, so no loader ever lists it)."""
    suffix = ".lock" if _fcntl is not None else ".lck"
    return path.with_name(f".{path.name}{suffix}")


def _timeout_error(lock: Path, timeout: float) -> LockTimeout:
    return LockTimeout(
        f"another process held the lock {lock} for over {timeout:g} s; if no pytest-hwperf"
        " run is saving, delete the lock file"
    )


@contextlib.contextmanager
def exclusive(path: Path, *, timeout: float | None = None) -> Iterator[None]:
    """Hold the exclusive lock guarding ``path`` for the ``with`` block, waiting at most
    ``timeout`` seconds (default ``LOCK_TIMEOUT_S``) for it. Creates the parent folder
    when missing. Raises ``LockTimeout`` or another OSError."""
    if timeout is None:
        timeout = LOCK_TIMEOUT_S
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_path(path)
    if _fcntl is not None:
        with _flocked(_fcntl, lock, timeout):
            yield
    else:  # pragma: no cover - exercised by monkeypatching _fcntl in the tests
        with _exclusive_file(lock, timeout):
            yield


def _sleep(attempt: int) -> None:
    time.sleep(min(_POLL_MAX_S, _POLL_S * (1 + attempt)))


@contextlib.contextmanager
def _flocked(fcntl: ModuleType, lock: Path, timeout: float) -> Iterator[None]:
    deadline = time.monotonic() + timeout
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    attempt = 0
    while True:
        fd = os.open(lock, flags, 0o666)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise _timeout_error(lock, timeout) from None
                    _sleep(attempt)
                    attempt += 1
            # The previous holder may have deleted the file between our open and our
            # flock: then we hold the lock of a file nobody else will ever look at.
            try:
                current = os.stat(lock, follow_symlinks=False)
            except FileNotFoundError:
                current = None
            mine = os.fstat(fd)
            if current is None or (current.st_ino, current.st_dev) != (
                mine.st_ino,
                mine.st_dev,
            ):
                continue  # the finally below closes fd (releasing it); try again
            try:
                yield
            finally:
                # Delete while still holding it, so a waiter sees the inode change.
                with contextlib.suppress(OSError):
                    os.unlink(lock)
            return
        finally:
            os.close(fd)


@contextlib.contextmanager
def _exclusive_file(lock: Path, timeout: float) -> Iterator[None]:
    deadline = time.monotonic() + timeout
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    attempt = 0
    while True:
        try:
            fd = os.open(lock, flags, 0o666)
        except FileExistsError:
            with contextlib.suppress(OSError):
                if time.time() - os.stat(lock).st_mtime > STALE_LOCK_S:
                    os.unlink(lock)  # its holder died without releasing it
                    continue
            if time.monotonic() >= deadline:
                raise _timeout_error(lock, timeout) from None
            _sleep(attempt)
            attempt += 1
            continue
        try:
            with contextlib.suppress(OSError):
                os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)
        break
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
