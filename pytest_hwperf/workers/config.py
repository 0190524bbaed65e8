"""A serving config (workers x threads) and applying its thread limit to this process.

For the duration of a test the config's threads-per-worker is what every pool in the
test process uses: torch's intra-op threads, each native pool threadpoolctl finds
(OpenBLAS, MKL, BLIS, OpenMP) and the `*_NUM_THREADS` variables that child processes
inherit. Everything is restored afterwards, whatever the test did.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["THREAD_ENV", "WorkerConfig", "applied_threads"]

# The variables OpenMP, MKL and OpenBLAS read when a process (a worker) starts.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class WorkerConfig:
    """`workers` processes with `threads` threads each."""

    workers: int
    threads: int = 1

    @property
    def total(self) -> int:
        return self.workers * self.threads

    @property
    def id(self) -> str:
        return f"{self.workers}x{self.threads}"

    def to_record(self) -> dict[str, int]:
        return {"workers": self.workers, "threads": self.threads, "total": self.total}


def _torch() -> object | None:
    """torch when installed (imported so its thread count can be set), else None."""
    if "torch" in sys.modules:
        return sys.modules["torch"]
    from pytest_hwperf.hardware.probing import quiet_probe

    with quiet_probe():  # the user's warning filters are not for our probing
        if importlib.util.find_spec("torch") is None:
            return None
        import torch

    return torch


@contextmanager
def applied_threads(threads: int) -> Iterator[None]:
    """Limit this process's thread pools to `threads` and restore them on exit."""
    from pytest_hwperf.hardware.probing import quiet_probe

    saved_env = {name: os.environ.get(name) for name in THREAD_ENV}
    torch = _torch()
    saved_torch = torch.get_num_threads() if torch is not None else None  # type: ignore[attr-defined]
    from threadpoolctl import threadpool_limits

    try:
        for name in THREAD_ENV:
            os.environ[name] = str(threads)
        if torch is not None:
            torch.set_num_threads(threads)  # type: ignore[attr-defined]
        with quiet_probe():
            limits = threadpool_limits(limits=threads)
        with limits:
            yield
    finally:
        if torch is not None and saved_torch is not None:
            torch.set_num_threads(saved_torch)  # type: ignore[attr-defined]
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
