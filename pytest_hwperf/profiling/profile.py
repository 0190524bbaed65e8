"""Profiles of what fails: a failing measurement's target run again under a profiler.

A budget breach or a regression says *that* a target is slow; a profile of the same
call says *where* (issue 6, part 2). The runners here take a zero-argument target and
the device's synchronisation, call the target in a loop for about a second (at least
once), keep the profiler's artifact and name the five functions with the most own
time. They know nothing of pytest: the session calls `take_profile` for a breaching
record and shows `profile_lines` of the result in the test's report section.

Whatever goes wrong here (a profiler that is not installed, a process that may not be
traced, a target that raises) becomes the profile's `error`, never an exception: a
profile is evidence about a verdict already given and must not change it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_hwperf.profiling.tools import PROFILERS, ProfilerChoice
from pytest_hwperf.records.types import ProfileRecord, TopFunction

__all__ = [
    "PROFILERS",
    "Profile",
    "ProfilerChoice",
    "TopFunction",
    "artifact_base",
    "parse_collapsed",
    "profile_lines",
    "ptrace_blocker",
    "resolve_tool",
    "take_profile",
]

PROFILE_SECONDS = 1.0  # long enough for a few hundred py-spy samples, short enough for CI
TOP_N = 5
PY_SPY_RATE_HZ = 1000
PY_SPY_START_TIMEOUT_S = 10.0  # attaching (reading the interpreter's memory) takes ~0.1-1 s
PY_SPY_STOP_TIMEOUT_S = 30.0
CAP_SYS_PTRACE = 19  # bit in /proc/<pid>/status CapEff (linux/capability.h)

# The loop that drives the target; py-spy's stacks are cut at this frame, so that only
# the target's frames (and not the harness or other threads) count.
_LOOP_NAME = "_hwperf_profile_loop"

Target = Callable[[], object]
Sync = Callable[[], None] | None


@dataclass(frozen=True)
class Profile:
    """What a profiler made of the target: its artifact, the top functions, or why not."""

    tool: str
    path: Path | None = None
    top: tuple[TopFunction, ...] = ()
    error: str | None = None
    calls: int = 0  # target calls that completed under the profiler

    def as_record(self) -> ProfileRecord:
        """This profile as the typed record a measurement carries (`profile`)."""
        return ProfileRecord(
            tool=self.tool,
            path=None if self.path is None else str(self.path),
            top=self.top,
            error=self.error,
            calls=self.calls,
        )


def resolve_tool(choice: str, device: str) -> str | None:
    """The profiler `choice` stands for on `device`; None for off.

    `auto` takes torch.profiler for a CUDA measurement when torch is already imported
    (the kernels' time is on the device, where cProfile cannot see it), else cProfile.
    """
    if choice == "off":
        return None
    if choice == "auto":
        return "torch" if device.startswith("cuda") and "torch" in sys.modules else "cprofile"
    return choice


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(text: str, limit: int) -> str:
    return _UNSAFE.sub("_", text).strip("_.")[:limit] or "_"


def artifact_base(directory: Path, test_id: str, name: str, when: datetime) -> Path:
    """`<directory>/<safe test id>-<safe name>-<timestamp>`; the runner adds the extension."""
    stamp = when.strftime("%Y%m%dT%H%M%S%f")
    return directory / f"{_safe(test_id, 120)}-{_safe(name, 60)}-{stamp}"


def take_profile(
    tool: str,
    target: Target,
    *,
    synchronize: Sync,
    base: Path,
    device: str = "cpu",
    seconds: float = PROFILE_SECONDS,
    which: Callable[[str], str | None] = shutil.which,
) -> Profile:
    """Profile `target` with `tool` ("cprofile", "py-spy", "scalene", "torch").

    The artifact is `base` plus the tool's extension; its folder is created. Never raises
    for a profiler that cannot run or a target that fails: the Profile's `error` says so.
    """
    runners: dict[str, Callable[[], Profile]] = {
        "cprofile": lambda: _cprofile(target, synchronize, base, seconds),
        "torch": lambda: _torch_profile(target, synchronize, base, seconds, device),
        "py-spy": lambda: _py_spy(target, synchronize, base, seconds, which),
        "scalene": lambda: _scalene(target, synchronize, seconds),
    }
    runner = runners.get(tool)
    if runner is None:
        return Profile(tool, error=f"unknown profiler {tool!r} (expected {', '.join(PROFILERS)})")
    if tool != "scalene":  # scalene writes its own file, where its command line says
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return Profile(tool, error=f"cannot create {base.parent}: {exc.strerror or exc}")
    return runner()


# -- driving the target -------------------------------------------------------------


@dataclass
class _Run:
    calls: int = 0
    failure: str | None = None


class _Deadline:
    """Set by a timer thread: checking it in the loop is an attribute read, not a call,
    so the harness adds no function of its own to a deterministic profile."""

    def __init__(self, seconds: float) -> None:
        self.passed = False
        self._timer = threading.Timer(seconds, self._pass)
        self._timer.daemon = True

    def _pass(self) -> None:
        self.passed = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > 200:
        first = first[:197] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _hwperf_profile_loop(target: Target, synchronize: Sync, deadline: _Deadline, run: _Run) -> None:
    """Call the target (and synchronise its device, so that its device work is inside
    the profile) until the deadline has passed, at least once; a failure stops the loop.

    Nothing here calls a function but the target and the sync: the clock and the timer
    live outside, so a deterministic profile holds only the target's functions."""
    try:
        while True:
            target()
            if synchronize is not None:
                synchronize()
            run.calls += 1
            if deadline.passed:
                break
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # a failing target is reported, never raised from here
        run.failure = (
            f"the target raised {_one_line(exc)} after {run.calls} calls under the profiler"
        )


def _top(own: Mapping[str, float]) -> tuple[TopFunction, ...]:
    """The TOP_N functions by own time (in seconds), with their share of the total."""
    total = sum(v for v in own.values() if v > 0)
    if total <= 0:
        return ()
    ranked = sorted(((v, k) for k, v in own.items() if v > 0), key=lambda vk: (-vk[0], vk[1]))
    return tuple(TopFunction(k, v * 1000.0, v / total) for v, k in ranked[:TOP_N])


def _short_file(path: str) -> str:
    """A file inside the working directory is shown relative to it."""
    try:
        cwd = os.getcwd()
    except OSError:
        return path
    if path.startswith(cwd + os.sep):
        return path[len(cwd) + 1 :]
    return path


# -- cProfile -----------------------------------------------------------------------


def _cprofile(target: Target, synchronize: Sync, base: Path, seconds: float) -> Profile:
    import cProfile
    import pstats

    path = base.with_name(base.name + ".prof")
    profiler = cProfile.Profile()
    run = _Run()
    with _Deadline(seconds) as deadline:  # its timer thread starts outside the profile
        try:
            profiler.enable()
        except ValueError as exc:  # another profiler holds sys.setprofile (Python >= 3.12)
            return Profile("cprofile", error=f"cProfile could not start: {exc}")
        try:
            _hwperf_profile_loop(target, synchronize, deadline, run)
        finally:
            profiler.disable()
    try:
        profiler.dump_stats(str(path))
    except OSError as exc:
        return Profile("cprofile", error=f"cannot write {path}: {exc.strerror or exc}")
    return Profile("cprofile", path, _cprofile_top(pstats.Stats(profiler)), run.failure, run.calls)


_HARNESS_BUILTINS = frozenset({"<method 'disable' of '_lsprof.Profiler' objects>"})


# The whole package, not only this folder: the `hwperf` fixture's wrapper around the
# target (plugin/fixtures.py `target`) is the harness too, not the user's code.
_PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _cprofile_top(stats: Any) -> tuple[TopFunction, ...]:
    """Top functions by own time (pstats' `tottime`), the harness's own frames left out."""
    own: dict[str, float] = {}
    for key, (_cc, _nc, tottime, _cumtime, _callers) in stats.stats.items():
        filename, _line, name = key
        if filename.startswith(_PLUGIN_DIR) or (filename == "~" and name in _HARNESS_BUILTINS):
            continue  # the plugin's own frames (this harness, the fixture's wrappers)
        if filename == "~":  # a builtin, shown as pstats shows it: {built-in method ...}
            label = "{" + name[1:-1] + "}" if name.startswith("<") and name.endswith(">") else name
        else:
            label = f"{_short_file(filename)}:{_line}({name})"
        own[label] = own.get(label, 0.0) + float(tottime)
    return _top(own)


# -- torch.profiler -----------------------------------------------------------------


def _torch_profile(
    target: Target, synchronize: Sync, base: Path, seconds: float, device: str
) -> Profile:
    try:
        import torch.profiler as tp
    except ImportError:
        return Profile("torch", error="torch is not installed: pip install torch")
    on_cuda = device.startswith("cuda")
    activities = [tp.ProfilerActivity.CPU]
    if on_cuda:
        activities.append(tp.ProfilerActivity.CUDA)
    path = base.with_name(base.name + ".json")
    run = _Run()
    try:
        with _Deadline(seconds) as deadline, tp.profile(activities=activities) as prof:
            _hwperf_profile_loop(target, synchronize, deadline, run)
        prof.export_chrome_trace(str(path))
        events = prof.key_averages()
    except Exception as exc:  # the profiler's own failure (CUPTI, another session, I/O)
        return Profile("torch", error=f"torch.profiler failed: {_one_line(exc)}", calls=run.calls)
    own: dict[str, float] = {}
    for event in events:
        if on_cuda:
            micros = getattr(event, "self_device_time_total", None)
            if micros is None:  # torch < 2.4
                micros = getattr(event, "self_cuda_time_total", 0)
        else:
            micros = event.self_cpu_time_total
        own[str(event.key)] = own.get(str(event.key), 0.0) + float(micros or 0) / 1e6
    return Profile("torch", path, _top(own), run.failure, run.calls)


# -- py-spy -------------------------------------------------------------------------


def ptrace_blocker(
    scope_file: Path = Path("/proc/sys/kernel/yama/ptrace_scope"),
    status_file: Path = Path("/proc/self/status"),
) -> str | None:
    """Why a child process (py-spy) may not read this process's memory, or None.

    Linux lets a process trace another of the same user unless Yama restricts it:
    ptrace_scope 1 allows only a tracer that is the target's ancestor (py-spy is our
    child), 2 only a tracer with CAP_SYS_PTRACE, 3 none at all. macOS needs root.
    """
    if sys.platform == "darwin":
        return None if os.geteuid() == 0 else "py-spy needs root on macOS (sudo)"
    if not sys.platform.startswith("linux"):
        return None
    try:
        scope = scope_file.read_text().strip()
    except OSError:
        return None  # no Yama: same-user tracing is allowed
    if scope == "0":
        return None
    if scope == "3":
        return "ptrace is disabled on this machine (kernel.yama.ptrace_scope=3)"
    if _has_capability(status_file, CAP_SYS_PTRACE):
        return None
    return (
        f"py-spy cannot attach to this process: kernel.yama.ptrace_scope={scope} and it lacks"
        " CAP_SYS_PTRACE (run as root, add the capability, e.g. docker --cap-add SYS_PTRACE,"
        " or set kernel.yama.ptrace_scope=0)"
    )


def _has_capability(status_file: Path, bit: int) -> bool:
    try:
        for line in status_file.read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


_PERMISSION = re.compile(r"permission denied|operation not permitted|os error (1|13)\b", re.I)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*):(?P<line>\d+)\)$")


def parse_collapsed(text: str, *, seconds: float) -> tuple[TopFunction, ...]:
    """Top functions from py-spy's collapsed stacks (`--format raw`).

    Each line is `frame;frame;...;leaf count`, a frame `function (file:line)`. Only
    stacks through the profiling loop count, cut below it; own time is the leaf's share
    of those samples times the loop's wall time (`seconds`), which holds whatever rate
    py-spy achieved.
    """
    counts: dict[str, int] = {}
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        loop = [i for i, frame in enumerate(frames) if frame.startswith(_LOOP_NAME + " (")]
        if not loop or loop[-1] == len(frames) - 1:
            continue  # another thread, or the loop itself between two calls
        match = _FRAME.match(frames[-1])
        leaf = f"{match['file']}:{match['line']}({match['function']})" if match else frames[-1]
        counts[leaf] = counts.get(leaf, 0) + int(count)
    total = sum(counts.values())
    if total == 0:
        return ()
    return _top({leaf: seconds * n / total for leaf, n in counts.items()})


def _py_spy(
    target: Target,
    synchronize: Sync,
    base: Path,
    seconds: float,
    which: Callable[[str], str | None],
) -> Profile:
    executable = which("py-spy")
    if executable is None:
        return Profile("py-spy", error="py-spy is not on PATH: pip install py-spy")
    blocker = ptrace_blocker()
    if blocker is not None:
        return Profile("py-spy", error=blocker)
    path = base.with_name(base.name + ".txt")
    command = [
        executable,
        "record",
        "--pid",
        str(os.getpid()),
        "--rate",
        str(PY_SPY_RATE_HZ),
        "--format",
        "raw",  # collapsed stacks: flamegraph.pl and speedscope read them
        "--function",  # a function's first line, so that its samples add up
        "--idle",  # waiting (sleep, I/O, a device sync) is latency too
        "--output",
        str(path),
    ]
    try:
        spy = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        return Profile("py-spy", error=f"cannot start py-spy: {exc.strerror or exc}")
    stdout: list[str] = []
    sampling = threading.Event()

    def read_stdout() -> None:
        assert spy.stdout is not None
        for line in spy.stdout:
            stdout.append(line)
            if "Sampling process" in line:
                sampling.set()

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    waited = time.monotonic() + PY_SPY_START_TIMEOUT_S
    while not sampling.wait(0.02) and spy.poll() is None and time.monotonic() < waited:
        pass
    run = _Run()
    elapsed_s = 0.0
    if spy.poll() is None and sampling.is_set():
        started = time.perf_counter()
        with _Deadline(seconds) as deadline:
            _hwperf_profile_loop(target, synchronize, deadline, run)
        elapsed_s = time.perf_counter() - started
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    try:
        _, stderr = spy.communicate(timeout=PY_SPY_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        spy.kill()
        _, stderr = spy.communicate()
        return Profile("py-spy", error="py-spy did not stop within 30 s", calls=run.calls)
    reader.join(timeout=5)
    problem = _py_spy_problem(spy.returncode, stderr, "".join(stdout), path, sampled=run.calls)
    if problem is not None:
        return Profile("py-spy", error=problem, calls=run.calls)
    top = parse_collapsed(path.read_text(encoding="utf-8", errors="replace"), seconds=elapsed_s)
    return Profile("py-spy", path, top, run.failure, run.calls)


def _py_spy_problem(
    returncode: int | None, stderr: str, stdout: str, path: Path, *, sampled: int
) -> str | None:
    """Why py-spy gave no profile, in one line, or None when it wrote one."""
    said = (stderr.strip() or stdout.strip()).splitlines()
    last = said[-1].strip() if said else ""
    if _PERMISSION.search(stderr) or _PERMISSION.search(stdout):
        return (
            f"py-spy may not read this process ({last}): it needs ptrace permission (root or"
            " CAP_SYS_PTRACE, and kernel.yama.ptrace_scope=0 for an unprivileged user)"
        )
    if sampled == 0 and not path.exists():
        return f"py-spy did not start sampling (exit code {returncode}): {last or 'no output'}"
    if not path.exists():
        return f"py-spy wrote no profile (exit code {returncode}): {last or 'no output'}"
    return None


# -- scalene ------------------------------------------------------------------------

SCALENE_HINT = (
    "scalene profiles only a process it starts: run `scalene run --off --profile-all -m pytest"
    " --- <pytest arguments>` (scalene 2.x) and pytest-hwperf turns it on around each"
    " failing target"
)


SCALENE_WHOLE_RUN = (
    "scalene is profiling the whole run (started without --off), this target included;"
    " start it with --off to profile only the failing targets"
)


def _scalene_controls() -> tuple[Callable[[], None], Callable[[], None], bool] | None:
    """scalene's programmatic start and stop, and whether it was started with --off,
    when this process runs under scalene; None otherwise."""
    module = sys.modules.get("scalene.scalene_profiler")
    scalene = getattr(module, "Scalene", None)
    # Set by scalene's own start-up; start() without it exits the process.
    if module is None or not getattr(scalene, "_Scalene__initialized", False):
        return None
    started_off = bool(getattr(getattr(scalene, "_Scalene__args", None), "off", False))
    return module.start, module.stop, started_off


def _scalene(target: Target, synchronize: Sync, seconds: float) -> Profile:
    controls = _scalene_controls()
    if controls is None:
        return Profile("scalene", error=SCALENE_HINT)
    start, stop, started_off = controls
    if not started_off:
        # Already on for everything: stopping it here would end the user's profile.
        return Profile("scalene", error=SCALENE_WHOLE_RUN)
    run = _Run()
    with _Deadline(seconds) as deadline:
        start()
        try:
            _hwperf_profile_loop(target, synchronize, deadline, run)
        finally:
            stop()
    # scalene aggregates and writes its profile when the process exits, to the file its
    # command line names (scalene-profile.json by default): there is no file of ours.
    return Profile("scalene", None, (), run.failure, run.calls)


# -- the report section ---------------------------------------------------------------


def profile_lines(name: str, profile: ProfileRecord) -> list[str]:
    """The lines of a measurement's profile in its report section."""
    tool, path, error = profile.tool, profile.path, profile.error
    if path is None and tool == "scalene" and error is None:
        return [
            f"{name}: profile (scalene): {profile.calls} calls profiled; scalene"
            " writes its profile (scalene-profile.json, or its --outfile) when pytest exits"
        ]
    if path is None:
        return [f"{name}: profile ({tool}): not taken: {error}"]
    lines = [f"{name}: profile ({tool}): {path}"]
    if error:
        lines.append(f"{name}: profile: note: {error}")
    if not profile.top:
        lines.append(f"{name}: profile: no function recorded any own time")
    for entry in profile.top:
        lines.append(
            f"{name}: profile:   {entry.function}  own {entry.own_ms:.1f} ms ({entry.share:.0%})"
        )
    return lines
