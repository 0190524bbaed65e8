"""Model factories for tests/test_worker_pool.py.

They live in an importable module (not in the test file) so that "spawn" workers can
unpickle them: a spawned worker imports this module by name from the parent's sys.path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any


def _total(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return sum(value)
    return value


def sum_factory() -> Callable[[Any], Any]:
    """Identity for a number, the sum for a list or tuple."""
    return _total


def failing_factory() -> Callable[[Any], Any]:
    raise ValueError("boom")


def _report(value: Any) -> dict[str, Any]:
    """What a worker sees of its placement and limits."""
    report: dict[str, Any] = {
        "pid": os.getpid(),
        "cpus": sorted(os.sched_getaffinity(0)),
        "env": {
            key: os.environ.get(key)
            for key in (
                "OMP_NUM_THREADS",
                "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "OMP_PROC_BIND",
                "OMP_PLACES",
                "KMP_AFFINITY",
            )
        },
    }
    torch = __import__("sys").modules.get("torch")
    if torch is not None:
        report["torch_threads"] = torch.get_num_threads()
    return report


class LinearFactory:
    """A small torch Linear model run under inference mode.

    The input "report" returns what the worker sees (affinity, environment, torch
    threads) instead of running the model.
    """

    def __init__(self, features: int = 32) -> None:
        self.features = features

    def __call__(self) -> Callable[[Any], Any]:
        import torch

        torch.manual_seed(0)
        model = torch.nn.Linear(self.features, self.features).eval()

        def serve(x: Any) -> Any:
            if isinstance(x, str) and x == "report":
                return _report(x)
            with torch.inference_mode():
                return model(x)

        return serve


class CrashOn:
    """Echoes its input, except that ``value`` makes the worker process exit (code 3)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self) -> Callable[[Any], Any]:
        crash_value = self.value

        def serve(x: Any) -> Any:
            if x == crash_value:
                os._exit(3)
            return x

        return serve


class RaiseOn:
    """Echoes its input, except that ``value`` makes the model raise KeyError."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self) -> Callable[[Any], Any]:
        bad = self.value

        def serve(x: Any) -> Any:
            if x == bad:
                raise KeyError(f"no such item: {x!r}")
            return x

        return serve


class Sleepy:
    """Sleeps ``seconds`` per request, then echoes the input."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self) -> Callable[[Any], Any]:
        seconds = self.seconds

        def serve(x: Any) -> Any:
            time.sleep(seconds)
            return x

        return serve


class SegfaultOn:
    """Echoes its input, except that ``value`` crashes the worker in native code (SIGSEGV)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self) -> Callable[[Any], Any]:
        bad = self.value

        def serve(x: Any) -> Any:
            if x == bad:
                import faulthandler

                faulthandler._sigsegv()  # type: ignore[attr-defined]
            return x

        return serve


class SlowStart:
    """Takes ``seconds`` to build its model."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self) -> Callable[[Any], Any]:
        time.sleep(self.seconds)
        return _total
