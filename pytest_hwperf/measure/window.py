"""What runs around a measurement: one protocol for the helpers that watch it.

A measurement is wrapped in windows: the peak-memory tracker (measure/memory.py), the
thread observer (measure/observe.py), the GPU utilisation sampler (measure/gpu_util.py)
and the reference gauge (measure/reference.py). Each one opens right before the
measurement (`start`), closes right after it (`stop`), and then puts what it found on
the measurement (`apply`); when the measurement raised, it is closed with `abort`
instead, which releases what it holds and may skip its readings. The caller builds a
list of the windows it wants and runs the measurement inside `opened(windows)`; a new
kind of window is one new class.

The first window of the list is opened first and closed last, so the windows that
must hug the measurement (the memory high-water marks) come last. `apply` is called
only after a measurement that returned, in the order of the list.

Nothing here imports pytest or anything heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

if TYPE_CHECKING:
    from pytest_hwperf.measure.result import Measurement

__all__ = ["Window", "WindowContext", "opened"]


class Window(Protocol):
    """A helper that watches one measurement."""

    def start(self) -> None:
        """Open the window, right before the measurement."""

    def stop(self) -> object:
        """Close the window, right after the measurement, and take its readings."""

    def abort(self) -> None:
        """Close the window after the measurement raised: release what it holds (a
        thread, say); its findings will not be applied."""

    def apply(self, measurement: Measurement) -> None:
        """Put what the window found on `measurement` (after `stop`)."""


class WindowContext:
    """Makes a window a context manager: `with window:` is `start()` ... `stop()`, or
    `abort()` when the block raises; `abort()` is `stop()` unless overridden."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    def abort(self) -> None:
        self.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.stop()
        else:
            self.abort()


def _closer(
    window: Window,
) -> Callable[[type[BaseException] | None, BaseException | None, TracebackType | None], bool]:
    def close(
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if exc_type is None:
            window.stop()
        else:
            window.abort()
        return False  # an exception goes on

    return close


@contextmanager
def opened(windows: Iterable[Window]) -> Iterator[None]:
    """Open the windows in order around the block and close them in reverse order.

    Every window that was opened is closed: with `stop()` after the block returned,
    with `abort()` when it raised (or an inner window failed to open or close)."""
    with ExitStack() as stack:
        for window in windows:
            window.start()
            stack.push(_closer(window))
        yield
