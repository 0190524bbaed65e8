"""A hard limit on one call of a measured target (`--hwperf-call-timeout`).

Python cannot safely interrupt an arbitrary call from another thread, so the limit is
kept the way pytest-timeout keeps its own:

- **signal** (POSIX, measuring on the main thread, SIGALRM free): a real-time interval
  timer (`setitimer(ITIMER_REAL)`) ticks a quarter of the limit apart; its handler runs
  on the main thread and raises :class:`CallTimeout` inside the call that hung. The test
  fails and the process goes on.
- **thread** (Windows, a measurement off the main thread, or SIGALRM already in use, by
  pytest-timeout's own signal method for one): a watchdog thread ticks instead. It cannot
  interrupt the call, so it hands a one-line message to ``on_hang``, which by default
  writes it and every thread's stack to stderr and ends the process (exit code 1).

A call counts as hung when no call has returned for the whole limit. Progress is read
from the sampler's own sample lists (their lengths), so the hot loop pays nothing; a
tick that sees progress notes the time, and the limit counts from the last tick that
did. A call is therefore never stopped before it has run the full limit, and a hang is
caught within 1.25 times the limit.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import NoReturn

__all__ = ["CallTimeout", "call_limit", "end_process", "signal_method_available"]

TICKS_PER_LIMIT = 4


class CallTimeout(BaseException):
    """A measured call did not return within the limit (the signal method).

    A BaseException, as pytest's own outcomes are: a target's `except Exception` must
    not swallow it and go on hanging.
    """

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"a call did not return within {limit_s:g} s")
        self.limit_s = limit_s


def end_process(message: str) -> NoReturn:
    """The thread method's last resort: the message and every thread's stack on stderr,
    then exit code 1 (the hung call cannot be interrupted)."""
    with suppress(Exception):
        sys.stderr.write(
            f"\n{message}; it cannot be interrupted here (not the main thread, or no"
            " SIGALRM): the stack of every thread follows and the process ends\n"
        )
        sys.stderr.flush()
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
    os._exit(1)


class _Stall:
    """Whether `progress()` has stood still for `limit_s`, judged at each tick."""

    def __init__(self, limit_s: float, progress: Callable[[], int]) -> None:
        self.limit_s = limit_s
        self._progress = progress
        self._seen = progress()
        self._since = time.monotonic()

    def stalled(self) -> bool:
        now = time.monotonic()
        current = self._progress()
        if current != self._seen:
            self._seen, self._since = current, now
            return False
        return now - self._since >= self.limit_s


def signal_method_available() -> bool:
    """The signal method can be used here and now: POSIX, the main thread, and neither a
    SIGALRM handler nor a real-time timer of someone else's in place."""
    if not hasattr(signal, "setitimer") or not hasattr(signal, "SIGALRM"):
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, None):
        return False
    return signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@contextmanager
def call_limit(
    limit_s: float | None,
    progress: Callable[[], int],
    *,
    on_hang: Callable[[str], object] = end_process,
    describe: str = "a call",
) -> Iterator[None]:
    """Bound every call made in the block to `limit_s` (None: no limit).

    `progress()` is a count that grows whenever a call returns. With the signal method
    a hung call raises :class:`CallTimeout`; with the thread method `on_hang` is called
    on the watchdog thread with a one-line message (by default it ends the process).
    """
    if limit_s is None:
        yield
        return
    stall = _Stall(limit_s, progress)
    period_s = limit_s / TICKS_PER_LIMIT
    if signal_method_available():
        with _alarm(stall, period_s):
            yield
        return
    with _watchdog(stall, period_s, on_hang, describe):
        yield


@contextmanager
def _alarm(stall: _Stall, period_s: float) -> Iterator[None]:
    active = True

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        nonlocal active
        if active and stall.stalled():
            active = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            raise CallTimeout(stall.limit_s)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, period_s, period_s)
    try:
        yield
    finally:
        active = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def _watchdog(
    stall: _Stall, period_s: float, on_hang: Callable[[str], object], describe: str
) -> Iterator[None]:
    done = threading.Event()

    def watch() -> None:
        while not done.wait(period_s):
            if stall.stalled():
                on_hang(f"{describe} did not return within {stall.limit_s:g} s")
                return

    thread = threading.Thread(target=watch, name="hwperf-call-timeout", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
