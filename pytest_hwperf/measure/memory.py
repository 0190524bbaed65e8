"""Peak memory while a measurement runs: resident memory of the test process and its
children, and the torch allocator's peak on a CUDA device.

A memory peak can last a millisecond (a temporary tensor, a copy in a pre-processing
step), so a sampler would have to poll very fast to see it, and a Python thread that
polls every millisecond competes for the GIL with the target it is meant to leave
alone: the latency samples would pay for the memory figures. So on Linux the kernel
does the work. Writing ``5`` to ``/proc/<pid>/clear_refs`` (Linux 4.0+) resets the
process's resident high-water mark to its current RSS, and ``VmHWM`` in
``/proc/<pid>/status`` is read at the end: the exact peak, whatever its length, at no
cost during the measurement. The same is done for every child process that exists when
the measurement starts (a worker pool's workers); a child born later starts its own
high-water mark at birth, so reading it at the end is exact too.

The figure judged against a budget, ``rss_peak_mb``, is the test process's peak plus
each child's peak. Each term is exact, but the peaks may fall at different moments, so
the sum is an upper bound of the tree's simultaneous peak: a budget never passes on a
missed peak. A helper thread samples every ``interval_s`` (10 ms) only while children
exist, because only they need it: it keeps the last high-water mark of a child that
exits before the end (up to 10 ms of its life unseen), and the highest sampled total
of the whole tree (``tree_sampled_peak_mb``, a lower bound of the simultaneous peak).

Where ``clear_refs`` cannot be written (not Linux, an old kernel, a hardened
``/proc``) the helper thread samples RSS every ``interval_s`` instead, and a peak
shorter than that can be missed; ``method`` says ``"sampled"`` and ``resolution_ms``
gives the interval. A peak that is the process's highest since it started is still
caught exactly there, from ``getrusage``'s ``ru_maxrss``.

Resetting the high-water mark also resets what ``getrusage(RUSAGE_SELF).ru_maxrss``
(and so ``/usr/bin/time``) reports for the pytest process: after a measurement it is
the peak since that measurement began.

The device figure is torch's own: ``torch.cuda.reset_peak_memory_stats(device)``
before, ``torch.cuda.max_memory_allocated(device)`` after; the memory torch's
allocator handed to tensors, not its cache nor other libraries' allocations. It is
read only for CUDA measurements and only when torch is already imported (never
imported here).

Every reader is injectable, so the bookkeeping is tested on synthetic figures; nothing
here imports pytest, and nothing here raises for a process that vanishes or a file
that cannot be read (the figure degrades, and says so).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytest_hwperf.measure.window import WindowContext
from pytest_hwperf.records.types import MemoryRecord

if TYPE_CHECKING:
    from pytest_hwperf.measure.result import Measurement

__all__ = [
    "DEFAULT_INTERVAL_S",
    "GpuReaders",
    "MemoryReaders",
    "MemoryTracker",
    "MemoryUsage",
    "ProcessMemory",
    "gpu_readers",
    "linux_readers",
    "portable_readers",
]

MB = 1 << 20  # a memory budget's "MB" is a mebibyte, as RSS tools count it
DEFAULT_INTERVAL_S = 0.01
# The process tree is listed again every tenth sample (about 0.1 ms from the kernel's
# per-thread children lists; psutil's full /proc scan, the fallback, takes a millisecond),
# while reading the known children is a few tens of microseconds each.
RELIST_EVERY = 10


@dataclass(frozen=True)
class ProcessMemory:
    """One reading of a process: current RSS and high-water mark (None where the
    platform has none), in bytes."""

    rss_bytes: int
    peak_bytes: int | None = None


@dataclass(frozen=True)
class MemoryReaders:
    """Where the figures come from; ``linux_readers()`` and ``portable_readers()`` are
    the real ones.

    ``reset_peak(pid)`` resets a process's high-water mark and says whether it could;
    ``read(pid)`` reads a process (None when it is gone or unreadable);
    ``descendants(pid)`` lists its children's and their children's pids;
    ``max_rss()`` is this process's lifetime peak RSS in bytes (``getrusage``), or None.
    """

    reset_peak: Callable[[int], bool]
    read: Callable[[int], ProcessMemory | None]
    descendants: Callable[[int], list[int]]
    max_rss: Callable[[], int | None] = lambda: None


def _linux_reset_peak(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")  # 5: reset the peak resident set size (Linux 4.0+)
    except (OSError, ValueError):
        return False
    return True


def _linux_read(pid: int) -> ProcessMemory | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    rss = peak = None
    for line in text.splitlines():
        if line.startswith(b"VmRSS:"):
            rss = int(line.split()[1]) * 1024  # the kernel writes kB (KiB)
        elif line.startswith(b"VmHWM:"):
            peak = int(line.split()[1]) * 1024
    if rss is None:
        return None  # a zombie or a kernel thread: no memory of its own
    return ProcessMemory(rss, peak)


def _psutil_read(pid: int) -> ProcessMemory | None:
    import psutil

    try:
        return ProcessMemory(int(psutil.Process(pid).memory_info().rss))
    except (psutil.Error, OSError):
        return None


def _linux_descendants(pid: int) -> list[int]:
    """Descendants from /proc/<pid>/task/<tid>/children (each thread's own children),
    recursively; psutil's scan of all of /proc where the kernel lacks those files."""
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue  # exited meanwhile
        for tid in tids:
            try:
                with open(f"/proc/{parent}/task/{tid}/children", "rb") as fh:
                    kids = [int(k) for k in fh.read().split()]
            except FileNotFoundError:
                if not os.path.exists(f"/proc/{parent}/task/{tid}"):
                    continue  # the thread ended meanwhile
                return _psutil_descendants(pid)  # CONFIG_PROC_CHILDREN is off
            except (OSError, ValueError):
                continue
            found.extend(kids)
            stack.extend(kids)
    return found


def _psutil_descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except (psutil.Error, OSError):
        return []


def _rusage_max_rss() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def linux_readers() -> MemoryReaders:
    """The kernel's high-water marks from /proc."""
    return MemoryReaders(_linux_reset_peak, _linux_read, _linux_descendants, _rusage_max_rss)


def portable_readers() -> MemoryReaders:
    """psutil's RSS, without high-water marks: the tracker samples."""
    return MemoryReaders(lambda pid: False, _psutil_read, _psutil_descendants, _rusage_max_rss)


def _default_readers() -> MemoryReaders:
    return linux_readers() if sys.platform.startswith("linux") else portable_readers()


@dataclass(frozen=True)
class GpuReaders:
    """``reset(device)`` and ``peak_bytes(device)`` of a device's allocator."""

    reset: Callable[[str], None]
    peak_bytes: Callable[[str], int]
    # What the allocator holds when the window opens: the base of `gpu_added_mb`.
    allocated_bytes: Callable[[str], int] | None = None


def gpu_readers(device: str | None) -> GpuReaders | None:
    """torch's CUDA allocator statistics for a ``cuda`` device when torch is already
    imported; None otherwise (a CPU or MPS measurement, or torch never loaded)."""
    if device is None or not device.startswith("cuda") or "torch" not in sys.modules:
        return None
    import torch

    def reset(dev: str) -> None:
        torch.cuda.reset_peak_memory_stats(dev)

    def peak_bytes(dev: str) -> int:
        return int(torch.cuda.max_memory_allocated(dev))

    def allocated_bytes(dev: str) -> int:
        return int(torch.cuda.memory_allocated(dev))

    return GpuReaders(reset, peak_bytes, allocated_bytes)


@dataclass(frozen=True)
class MemoryUsage:
    """What one measurement used; sizes in MiB, see the module's docstring for what each
    figure is. ``None`` where a figure could not be read."""

    rss_peak_mb: float | None
    rss_start_mb: float | None
    process_peak_mb: float | None
    children_peak_mb: float | None  # None when no child process was seen
    children: int
    tree_sampled_peak_mb: float | None  # None when nothing was sampled
    gpu_peak_mb: float | None
    gpu_device: str | None
    method: str  # "kernel-hwm", "kernel-hwm+sampled", "sampled" or "unavailable"
    resolution_ms: float | None  # 0.0: exact; else the sampling interval
    samples: int
    notes: tuple[str, ...] = ()
    gpu_start_mb: float | None = None  # the allocator's holding when the window opened

    @property
    def scope(self) -> str:
        """What ``rss_peak_mb`` covers and how it was taken, for one-line messages."""
        who = "test process and children" if self.children else "test process"
        if self.method == "kernel-hwm":
            how = "kernel high-water mark"
        elif self.method == "kernel-hwm+sampled":
            how = f"kernel high-water marks, some children sampled every {self.resolution_ms:g} ms"
        elif self.resolution_ms is not None:
            how = f"sampled every {self.resolution_ms:g} ms"
        else:
            how = "not readable"
        return f"{who}, {how}"

    def record(self) -> MemoryRecord:
        return MemoryRecord(
            rss_peak_mb=self.rss_peak_mb,
            rss_start_mb=self.rss_start_mb,
            process_peak_mb=self.process_peak_mb,
            children_peak_mb=self.children_peak_mb,
            children=self.children,
            tree_sampled_peak_mb=self.tree_sampled_peak_mb,
            gpu_peak_mb=self.gpu_peak_mb,
            gpu_device=self.gpu_device,
            gpu_start_mb=self.gpu_start_mb,
            method=self.method,
            resolution_ms=self.resolution_ms,
            samples=self.samples,
            scope=self.scope,
        )


@dataclass
class _Child:
    """What is known of one child process during the window."""

    exact: bool  # its high-water mark covers only the window (reset, or born in it)
    peak_bytes: int = 0  # best figure so far: high-water mark, else highest sampled RSS
    alive: bool = True


@dataclass
class _Window:
    start_bytes: int | None = None
    own_sampled_bytes: int = 0
    tree_sampled_bytes: int | None = None
    samples: int = 0
    children: dict[int, _Child] = field(default_factory=dict)


def _mb(n: int | None) -> float | None:
    return None if n is None else n / MB


class MemoryTracker(WindowContext):
    """Peak memory over a window; wrap the measurement in it.

    >>> with MemoryTracker(gpu_device="cuda:0") as tracker:  # doctest: +SKIP
    ...     run_measurement()
    >>> tracker.usage.rss_peak_mb  # doctest: +SKIP

    ``start()``/``stop()`` do the same without a ``with``, and ``apply(measurement)``
    records the figures (a window of measure/window.py). ``readers`` and ``gpu``
    replace the real readers; ``thread=False`` leaves sampling to explicit ``sample()``
    calls (tests drive it that way).
    """

    def __init__(
        self,
        *,
        gpu_device: str | None = None,
        pid: int | None = None,
        readers: MemoryReaders | None = None,
        gpu: GpuReaders | bool | None = True,
        interval_s: float = DEFAULT_INTERVAL_S,
        thread: bool = True,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        self.pid = os.getpid() if pid is None else pid
        self.gpu_device = gpu_device
        self.interval_s = interval_s
        self._readers = readers or _default_readers()
        self._gpu: GpuReaders | None
        if gpu is True:
            self._gpu = gpu_readers(gpu_device)
        else:
            self._gpu = gpu if isinstance(gpu, GpuReaders) else None
        self._use_thread = thread
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._window: _Window | None = None
        self._exact_own = False
        self._max_rss_start: int | None = None
        self._notes: list[str] = []
        self._usage: MemoryUsage | None = None
        self._gpu_start: float | None = None

    # -- the window -------------------------------------------------------------------

    def start(self) -> None:
        """Reset the high-water marks and take the first reading; the window opens."""
        r = self._readers
        self._usage = None
        self._notes = []
        self._gpu_start = None
        window = _Window()
        self._exact_own = r.reset_peak(self.pid)
        own = r.read(self.pid)
        if own is None or (self._exact_own and own.peak_bytes is None):
            self._exact_own = False
        if not self._exact_own:
            self._max_rss_start = r.max_rss()
        start = None if own is None else own.rss_bytes
        window.own_sampled_bytes = start or 0
        for pid in r.descendants(self.pid):
            exact = r.reset_peak(pid)
            child = r.read(pid)
            if child is None:
                window.children[pid] = _Child(exact=False, alive=False)  # gone already
                continue
            window.children[pid] = _Child(exact and child.peak_bytes is not None, child.rss_bytes)
            start = None if start is None else start + child.rss_bytes
        window.start_bytes = start
        self._window = window
        if self._gpu is not None and self.gpu_device is not None:
            try:
                self._gpu.reset(self.gpu_device)
                if self._gpu.allocated_bytes is not None:
                    self._gpu_start = _mb(self._gpu.allocated_bytes(self.gpu_device))
            except Exception as exc:  # a driver error must not break the measurement
                self._gpu = None
                self._notes.append(f"device memory not tracked: {type(exc).__name__}: {exc}")
        # The thread runs only where the kernel cannot give the peak on its own: when
        # children exist (exits, tree total) or without high-water marks at all.
        if self._use_thread and (window.children or not self._exact_own):
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="hwperf-memory", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        """One reading of the tree: children's high-water marks kept, totals sampled."""
        r = self._readers
        with self._lock:
            window = self._window
            if window is None:
                return
            window.samples += 1
            if window.samples % RELIST_EVERY == 0:
                for pid in r.descendants(self.pid):
                    # Born in the window: its high-water mark is the window's.
                    window.children.setdefault(pid, _Child(exact=True))
            own = r.read(self.pid)
            total = 0 if own is None else own.rss_bytes
            if own is not None:
                window.own_sampled_bytes = max(window.own_sampled_bytes, own.rss_bytes)
            for pid, child in window.children.items():
                if not child.alive:
                    continue
                found = r.read(pid)
                if found is None:
                    child.alive = False
                    continue
                total += found.rss_bytes
                best = found.peak_bytes if child.exact and found.peak_bytes else found.rss_bytes
                child.peak_bytes = max(child.peak_bytes, best)
            if own is not None:
                window.tree_sampled_bytes = max(window.tree_sampled_bytes or 0, total)

    def stop(self) -> MemoryUsage:
        """Read the high-water marks and close the window."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        window = self._window
        if window is None:
            raise RuntimeError("MemoryTracker.stop() called before start()")
        r = self._readers
        sampled = window.samples > 0
        with self._lock:
            own = r.read(self.pid)
            # Children born since the last listing are read too: exact from birth.
            for pid in r.descendants(self.pid):
                window.children.setdefault(pid, _Child(exact=True))
            resolution_missed = False
            for pid, child in window.children.items():
                found = r.read(pid) if child.alive else None
                if found is None:
                    # Exited: its last reading stands, up to an interval of its life unseen.
                    resolution_missed = resolution_missed or child.peak_bytes > 0
                    child.alive = False
                    continue
                if child.exact and found.peak_bytes is not None:
                    child.peak_bytes = max(child.peak_bytes, found.peak_bytes)
                else:
                    child.peak_bytes = max(child.peak_bytes, found.rss_bytes)
                    resolution_missed = True
            self._window = None
        process_peak: int | None
        if own is None:
            process_peak = None
            self._notes.append("the test process's memory could not be read")
        elif self._exact_own and own.peak_bytes is not None:
            process_peak = own.peak_bytes
        else:
            process_peak = max(window.own_sampled_bytes, own.rss_bytes)
            end_max = r.max_rss()
            start_max = self._max_rss_start
            if end_max is not None and start_max is not None and end_max > start_max:
                # A new lifetime peak fell inside the window: that is its peak.
                process_peak = max(process_peak, end_max)
        seen = [c for c in window.children.values() if c.peak_bytes > 0]
        children_peak = sum(c.peak_bytes for c in seen) if seen else None
        if process_peak is None:
            method, resolution = "unavailable", None
        elif not self._exact_own:
            method, resolution = "sampled", self.interval_s * 1000
        elif resolution_missed:
            method, resolution = "kernel-hwm+sampled", self.interval_s * 1000
        else:
            method, resolution = "kernel-hwm", 0.0
        rss_peak = None if process_peak is None else process_peak + (children_peak or 0)
        gpu_peak = self._gpu_peak()  # before the notes are taken: it may add one
        self._usage = MemoryUsage(
            rss_peak_mb=_mb(rss_peak),
            rss_start_mb=_mb(window.start_bytes),
            process_peak_mb=_mb(process_peak),
            children_peak_mb=_mb(children_peak),
            children=len(seen),
            tree_sampled_peak_mb=_mb(window.tree_sampled_bytes) if sampled else None,
            gpu_peak_mb=gpu_peak,
            gpu_device=self.gpu_device if self._gpu is not None else None,
            gpu_start_mb=self._gpu_start if self._gpu is not None else None,
            method=method,
            resolution_ms=resolution,
            samples=window.samples,
            notes=tuple(self._notes),
        )
        return self._usage

    def _gpu_peak(self) -> float | None:
        if self._gpu is None or self.gpu_device is None:
            return None
        try:
            return self._gpu.peak_bytes(self.gpu_device) / MB
        except Exception as exc:  # a driver error must not break the measurement
            self._notes.append(f"device memory not read: {type(exc).__name__}: {exc}")
            return None

    @property
    def usage(self) -> MemoryUsage:
        """The last window's figures; RuntimeError before a window has closed."""
        if self._usage is None:
            raise RuntimeError("no memory usage yet: the MemoryTracker window has not closed")
        return self._usage

    def apply(self, measurement: Measurement) -> None:
        """The figures onto the measurement, with the notes of those it could not read."""
        usage = self.usage
        measurement.memory = usage.record()
        measurement.notes.extend(usage.notes)
