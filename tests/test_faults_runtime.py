"""Faults at run time (issue 13, items 6, 8 and 9): the user's warning filters, a parent
killed under its pool workers, and a measured call that never returns.

Real processes and real time throughout, with wide margins (a shared 2-core machine):
each bound asserted is many times what the mechanism needs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import psutil
import pytest

from pytest_hwperf.measure import SamplingPolicy, measure
from pytest_hwperf.measure.deadline import CallTimeout, call_limit, signal_method_available
from pytest_hwperf.settings import DEFAULTS, Settings, option

pytest_plugins = ["pytester"]

TESTS_DIR = Path(__file__).resolve().parent


def _output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


# --- item 6: warnings as errors ---------------------------------------------------------

# pygal's shape of finder (find_module only, appended to sys.meta_path): under Python
# 3.11 importlib warns ImportWarning whenever it has to consult it. It is consulted
# only for names no other finder knows; the second finder stands for that case for
# the libraries the plugin probes (torch, pynvml), which are installed here.
LEGACY_FINDER_CONFTEST = """
import sys
import warnings

import numpy  # the project's own imports, before the finder


class LegacyFinder:
    def find_module(self, fullname, path=None):
        return None


class ProbedLibraryNotInstalled:
    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in ("torch", "pynvml"):
            warnings.warn(
                "LegacyFinder.find_spec() not found; falling back to find_module()",
                ImportWarning,
            )
        return None


sys.meta_path.append(LegacyFinder())
sys.meta_path.insert(0, ProbedLibraryNotInstalled())
"""


@pytest.mark.parametrize("how", ["ini", "-W"])
def test_warnings_as_errors_do_not_break_detection_or_reports(
    pytester: pytest.Pytester, how: str
) -> None:
    pytester.makeconftest(LEGACY_FINDER_CONFTEST)
    pytester.makepyfile(
        test_model="""
        def test_model(hwperf):
            hwperf(lambda: sum(range(100)))
        """
    )
    args = ["--hwperf", "--hwperf-max-time=0.3", "--hwperf-confirm=0", "--hwperf-json=out.json"]
    if how == "ini":
        pytester.makeini("[pytest]\nfilterwarnings =\n    error\n")
    else:
        args += ["-W", "error"]
    result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider", timeout=240)
    output = _output(result)
    assert result.ret == pytest.ExitCode.OK, output
    result.assert_outcomes(passed=1)
    assert "Traceback" not in output, output
    assert "INTERNALERROR" not in output, output
    assert "ImportWarning" not in output, output
    document = json.loads((pytester.path / "out.json").read_text())
    assert [m["name"] for m in document["measurements"]] == ["lambda"]


def test_quiet_probe_ignores_only_probe_noise_and_restores_the_filters() -> None:
    from pytest_hwperf.hardware.probing import quiet_probe
    from pytest_hwperf.warnings import HwperfEnvironmentWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with quiet_probe():
            warnings.warn("a legacy finder", ImportWarning, stacklevel=1)
            warnings.warn("a deprecated package", FutureWarning, stacklevel=1)
        with pytest.raises(ImportWarning):  # the user's filter, after the probe
            warnings.warn("the user's", ImportWarning, stacklevel=1)
        with pytest.raises(HwperfEnvironmentWarning), quiet_probe():  # ours still reach them
            warnings.warn(HwperfEnvironmentWarning("degraded"), stacklevel=1)


# --- item 8: pool workers die with their parent -----------------------------------------

_ORPHAN_SCRIPT = """
import json
import sys
import threading

import psutil
from _pool_factories import Sleepy

from pytest_hwperf.workers.pool import PoolConfig, WorkerPool


def trackers():
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "multiprocessing.resource_tracker" in " ".join(child.cmdline()):
                found.append(child.pid)
        except psutil.Error:
            pass
    return found


def main():
    pool = WorkerPool(Sleepy(1000.0), PoolConfig(workers=2, request_timeout_s=3600.0))
    if sys.argv[1] == "thread":
        # Started on a thread that then ends: no parent-death signal (it would follow that
        # thread), so the watcher thread alone must end the workers.
        starter = threading.Thread(target=pool.start)
        starter.start()
        starter.join()
    else:
        pool.start()
    print(json.dumps({"pids": list(pool.pids), "trackers": trackers()}), flush=True)
    pool.run([1, 2], concurrency=2, requests=2, warmup_requests=0)  # hangs for 1000 s


if __name__ == "__main__":
    main()
"""


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pids: list[int], within_s: float) -> list[int]:
    deadline = time.monotonic() + within_s
    while True:
        left = [pid for pid in pids if _alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("started_on", ["main", "thread"])
def test_workers_die_with_a_sigkilled_parent_while_a_request_hangs(
    tmp_path: Path, started_on: str
) -> None:
    script = tmp_path / "orphaned_pool.py"
    script.write_text(textwrap.dedent(_ORPHAN_SCRIPT))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, str(script), started_on],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    pids: list[int] = []
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, proc.stderr.read() if proc.stderr else ""
        facts = json.loads(first)
        pids, trackers = facts["pids"], facts["trackers"]
        assert len(pids) == 2
        time.sleep(1.0)  # the requests are under way (and hang)
        assert proc.poll() is None
        assert all(_alive(pid) for pid in pids), "a worker died before its parent"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # The workers go (the parent-death signal at once, the watcher within 0.5 s);
        # the resource tracker then reads EOF on its pipe, which they held too, and goes.
        assert _wait_gone(pids, 15.0) == [], "workers outlived their SIGKILLed parent"
        assert _wait_gone(trackers, 15.0) == [], "the resource tracker outlived them"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in pids:  # never leave one behind, whatever failed above
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.communicate(timeout=30)  # EOF once no process holds its pipes


# --- item 9: a measured call that never returns -----------------------------------------


def test_the_call_timeout_default_and_off() -> None:
    assert DEFAULTS.call_timeout_s is None
    assert DEFAULTS.call_limit_s == 60.0  # 10 x 5 s, at least 60 s
    assert Settings(max_time_s=30.0).call_limit_s == 300.0
    parse = option("--hwperf-call-timeout").parse
    assert parse("2.5") == 2.5
    assert Settings(call_timeout_s=parse("off")).call_limit_s is None
    assert Settings(call_timeout_s=parse("0")).call_limit_s is None
    for bad in ("-1", "soon", "1e308", "nan"):
        with pytest.raises(ValueError, match="or 0 or off for no limit"):
            parse(bad)


@pytest.mark.skipif(not signal_method_available(), reason="needs SIGALRM on the main thread")
def test_a_hung_call_raises_on_the_main_thread_and_the_alarm_is_restored() -> None:
    before = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    with pytest.raises(CallTimeout, match=r"a call did not return within 0\.5 s"):
        measure(lambda: time.sleep(1000), name="sleep", policy=SamplingPolicy(call_timeout_s=0.5))
    assert time.monotonic() - started < 30
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_call_shorter_than_the_limit_is_never_stopped() -> None:
    calls: list[int] = []

    def slowish() -> None:
        calls.append(1)
        time.sleep(0.3)

    policy = SamplingPolicy(call_timeout_s=2.0, max_time_s=0.5, warmup_s=0.01)
    _, measurement = measure(slowish, name="slowish", policy=policy)
    assert measurement.n >= 1
    assert len(calls) >= 3


def test_off_the_main_thread_the_watchdog_reports_the_hang() -> None:
    """The thread method: the call cannot be interrupted, `on_hang` gets the line (the
    plugin's ends the process; here it releases the call instead)."""
    release = threading.Event()
    messages: list[str] = []
    errors: list[BaseException] = []

    def on_hang(message: str) -> None:
        messages.append(message)
        release.set()

    def run() -> None:
        try:
            measure(
                lambda: release.wait(1000),
                name="wait",
                policy=SamplingPolicy(call_timeout_s=0.4, max_time_s=0.2, warmup_s=0.01),
                on_hang=on_hang,
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(60)
    assert not worker.is_alive()
    assert not errors
    assert messages == ["'wait' on cpu: a call did not return within 0.4 s"]


def test_sigalrm_in_use_means_the_thread_method() -> None:
    if not hasattr(signal, "SIGALRM"):
        pytest.skip("no SIGALRM")
    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    try:
        assert not signal_method_available()
        hung: list[str] = []
        with call_limit(None, lambda: 0, on_hang=hung.append):
            pass  # no limit: nothing runs
        assert hung == []
    finally:
        signal.signal(signal.SIGALRM, previous)


HUNG_TESTS = """
import time


def test_hangs(hwperf):
    def sleep():
        time.sleep(1000)

    hwperf(sleep)


def test_after(hwperf):
    assert hwperf(lambda: 41 + 1) == 42
"""


def test_a_hung_target_fails_in_one_line_and_the_session_goes_on(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_hung=HUNG_TESTS)
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        "--hwperf",
        "--hwperf-max-time=1",
        "--hwperf-call-timeout=1",
        "--hwperf-confirm=0",
        "-p",
        "no:cacheprovider",
        timeout=240,
    )
    elapsed = time.monotonic() - started
    output = _output(result)
    result.assert_outcomes(failed=1, passed=1)
    # The failure is that one line, no traceback of the sleeping target.
    result.stdout.fnmatch_lines(
        [
            "*_ test_hangs _*",
            "hwperf: 'sleep' on cpu: a call did not return within 1 s (--hwperf-call-timeout)",
        ]
    )
    assert "Traceback" not in output, output
    assert "INTERNALERROR" not in output, output
    assert elapsed < 120, f"took {elapsed:.0f} s"


def test_the_call_timeout_from_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_hung=HUNG_TESTS)
    pytester.makeini("[pytest]\nhwperf_call_timeout = 1.5\n")
    result = pytester.runpytest_subprocess(
        "--hwperf",
        "--hwperf-max-time=1",
        "--hwperf-confirm=0",
        "-p",
        "no:cacheprovider",
        timeout=240,
    )
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*a call did not return within 1.5 s (--hwperf-call-timeout)"])


def test_a_hung_call_off_the_main_thread_ends_the_process_saying_why(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_threaded="""
        import threading
        import time


        def test_hangs_on_a_thread(hwperf):
            def sleep():
                time.sleep(1000)

            worker = threading.Thread(target=hwperf, args=(sleep,), daemon=True)
            worker.start()
            worker.join()
        """
    )
    result = pytester.runpytest_subprocess(
        "--hwperf", "--hwperf-call-timeout=1", "-p", "no:cacheprovider", timeout=240
    )
    output = _output(result)
    assert result.ret == 1, output
    assert (
        "hwperf: 'sleep' on cpu: a call did not return within 1 s (--hwperf-call-timeout);"
        " it cannot be interrupted here" in output
    ), output
    assert "Thread 0x" in output  # every thread's stack, as faulthandler writes it
