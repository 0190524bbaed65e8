"""A seeded co-tenant for the benchmarks: busy processes spinning in random bursts.

`CoTenant(procs=2, seed=7, busy_mean_s=1.5, idle_mean_s=1.5)` starts `procs` processes,
each of which alternates a busy stretch (a pure-Python loop on one core) and an idle
one (sleep), both durations drawn from exponential distributions with those means by
its own `random.Random` seeded from `seed` and its index. So the schedule of bursts of
each process is the same for the same seed; where it falls on the benchmark's runs is
not (start-up times differ), but its statistics are.

Nothing outlives the benchmark: `stop()` (also a context manager's exit, and an atexit
hook) terminates and then kills the processes; each process also ends on its own when
its parent dies (`PR_SET_PDEATHSIG` on Linux, and a check of its parent's pid every
0.2 s elsewhere), so a benchmark killed with SIGKILL leaves no spinner behind.

Run as a script, this module is one co-tenant process (`--worker`): the parent starts it
with `python _cotenant.py --worker ...`; it writes what it did (busy and idle seconds,
bursts) to `--stats` when it is stopped.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

from pytest_hwperf.files import atomic_write

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.2  # how often an idle or busy co-tenant checks that its parent lives


@dataclass(frozen=True)
class CoTenantStats:
    """What the co-tenant processes did, summed over them."""

    procs: int
    busy_s: float
    idle_s: float
    bursts: int

    @property
    def busy_fraction(self) -> float:
        total = self.busy_s + self.idle_s
        return self.busy_s / total if total > 0 else 0.0


class CoTenant:
    """`procs` processes spinning in seeded random bursts, from `start()` to `stop()`."""

    def __init__(
        self,
        *,
        procs: int,
        seed: int,
        busy_mean_s: float,
        idle_mean_s: float,
        stats_dir: Path,
    ) -> None:
        self.procs = procs
        self.seed = seed
        self.busy_mean_s = busy_mean_s
        self.idle_mean_s = idle_mean_s
        self.stats_dir = stats_dir
        self._children: list[subprocess.Popen[bytes]] = []
        self.pids: list[int] = []  # every co-tenant process ever started
        self.stats: CoTenantStats | None = None

    def describe(self) -> str:
        """The parameters, as the table header prints them (enough to reproduce them)."""
        return (
            f"co-tenant: {self.procs} processes spinning in bursts of exp(mean"
            f" {self.busy_mean_s:g} s) busy / exp(mean {self.idle_mean_s:g} s) idle,"
            f" seed {self.seed}"
        )

    def start(self) -> None:
        self.stats_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        for index in range(self.procs):
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--worker",
                f"--seed={self.seed}",
                f"--index={index}",
                f"--busy={self.busy_mean_s}",
                f"--idle={self.idle_mean_s}",
                f"--parent={os.getpid()}",
                f"--stats={self.stats_dir / f'cotenant-{index}.json'}",
            ]
            # Its own session: a Ctrl-C in the terminal reaches the benchmark, which
            # stops the co-tenant in order (and reads its stats) rather than racing it.
            child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
            self._children.append(child)
            self.pids.append(child.pid)

    def stop(self) -> None:
        """Terminate every co-tenant process (kill any still there after 5 s); idempotent."""
        children, self._children = self._children, []
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 5.0
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if children:
            self.stats = self._read_stats(len(children))

    def leftover(self) -> list[int]:
        """Pids of co-tenant processes that still exist (after `stop()`: none), read from
        /proc where there is one."""
        left = []
        for pid in self.pids:
            cmdline = Path(f"/proc/{pid}/cmdline")
            if cmdline.parent.exists():
                try:
                    if b"_cotenant.py" in cmdline.read_bytes():
                        left.append(pid)
                except OSError:
                    pass
            elif not Path("/proc").exists():
                try:
                    os.kill(pid, 0)
                    left.append(pid)
                except OSError:
                    pass
        return left

    def _read_stats(self, procs: int) -> CoTenantStats:
        busy = idle = 0.0
        bursts = 0
        for index in range(procs):
            path = self.stats_dir / f"cotenant-{index}.json"
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            busy += float(data["busy_s"])
            idle += float(data["idle_s"])
            bursts += int(data["bursts"])
        return CoTenantStats(procs=procs, busy_s=busy, idle_s=idle, bursts=bursts)

    def __enter__(self) -> CoTenant:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- one co-tenant process ---------------------------------------------------------


class _Stop(Exception):
    pass


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; elsewhere the pid check
    in the loops does it (within `_POLL_S`)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        raise _Stop


def _spin(until: float, parent: int) -> None:
    """Burn one core in pure Python until `until` (monotonic seconds)."""
    x = 0.0
    check = time.monotonic() + _POLL_S
    while True:
        for _ in range(2000):
            x = x * 0.999999 + 1.0
        now = time.monotonic()
        if now >= until:
            return
        if now >= check:
            if os.getppid() != parent:
                raise _Stop
            check = now + _POLL_S


def _idle(until: float, parent: int) -> None:
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, _POLL_S))
        if os.getppid() != parent:
            raise _Stop


def _worker(args: argparse.Namespace) -> int:
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:  # once: a second signal must not cut the stats write short
            stopping = True
            raise _Stop

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    rng = random.Random(f"{args.seed}-{args.index}")
    busy = idle = 0.0
    bursts = 0
    try:
        _die_with_parent(args.parent)
        while True:
            start = time.monotonic()
            try:
                _spin(start + rng.expovariate(1.0 / args.busy), args.parent)
            finally:
                busy += time.monotonic() - start
                bursts += 1
            start = time.monotonic()
            try:
                _idle(start + rng.expovariate(1.0 / args.idle), args.parent)
            finally:
                idle += time.monotonic() - start
    except _Stop:
        pass
    if stopping:  # stopped by the benchmark: say what was done
        stats = {"busy_s": busy, "idle_s": idle, "bursts": bursts}
        atomic_write(Path(args.stats), json.dumps(stats) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="one co-tenant process (internal)")
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--busy", type=float, required=True)
    parser.add_argument("--idle", type=float, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--stats", required=True)
    return _worker(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
