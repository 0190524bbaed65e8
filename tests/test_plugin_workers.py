"""Workers x threads: the `workers` marker, the `worker_config` grid, the declared gate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from _output import FAST_RUN

from pytest_hwperf.hardware.cpu import detect_cpu

_CPU = detect_cpu()
CORES, SOURCE = _CPU.usable_cores, _CPU.usable_source

WORKERS_FILE = """
import pytest

@pytest.mark.workers({over})
def test_over():
    pass

@pytest.mark.workers({fits})
def test_fits(worker_config):
    assert worker_config.workers == {fits}
"""


def _file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(WORKERS_FILE.format(over=CORES * 2, fits=CORES))


def test_declared_oversubscription_fails_with_the_numbers_and_source(pytester):
    """Under --hwperf an oversubscribed config fails as a performance failure (`P`,
    before it measures), with the numbers and where the core count came from; without
    --hwperf it runs as a plain functional test (issue 14, item 4)."""
    _file(pytester)
    plain = pytester.runpytest()
    plain.assert_outcomes(passed=2)
    assert plain.ret == pytest.ExitCode.OK
    result = pytester.runpytest("--hwperf", "-rf")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    plural = "core" if CORES == 1 else "cores"
    line = (
        f"hwperf: oversubscribed: {CORES * 2} workers x 1 thread = {CORES * 2} >"
        f" {CORES} usable {plural} ({SOURCE})"
    )
    result.stdout.fnmatch_lines(["test_*.py P.*", line, "PERF test_*.py::test_over*"])
    assert "Traceback" not in result.stdout.str()


def test_oversubscription_off_and_warn(pytester):
    _file(pytester)
    off = pytester.runpytest("--hwperf", "--hwperf-oversubscription=off")
    off.assert_outcomes(passed=2)
    warn = pytester.runpytest("--hwperf", "--hwperf-oversubscription=warn", "-W", "default")
    warn.assert_outcomes(passed=2)
    warn.stdout.fnmatch_lines(["*HwperfOversubscriptionWarning: *workers x 1 thread*usable*"])


def test_a_sweep_under_warn_measures_every_config_but_never_recommends_one_over_the_cores(
    pytester,
):
    """--hwperf-oversubscription=warn measures a config that does not fit (with the
    warning), marks its measurements oversubscribed ("declared: ..."), and the sweep
    leaves it out of the recommendation however fast it was."""
    over = CORES + 1
    pytester.makepyfile(
        """
        NOW = [0]

        def test_serve(hwperf, worker_config):
            hwperf.clock = lambda: NOW[0]

            def call():  # more workers: faster, on a virtual clock
                NOW[0] += 4_000_000 // worker_config.workers

            hwperf(call, name="serve")
        """
    )
    result = pytester.runpytest(
        "--hwperf",
        *FAST_RUN,
        "--hwperf-oversubscription=warn",
        f"--hwperf-workers=1,{over}",
        "--hwperf-threads=1",
        "--hwperf-json=out.json",
        "-W",
        "default",
    )
    result.assert_outcomes(passed=2)
    document = json.loads((pytester.path / "out.json").read_text())
    records = {r["worker_config"]["workers"]: r for r in document["measurements"]}
    assert records[1]["oversubscription"] is None
    assert records[over]["oversubscription"].startswith(
        f"declared: {over} workers x 1 thread = {over} > {CORES} usable"
    )
    (sweep,) = document["sweeps"]
    rates = {c["workers"]: c["throughput_per_s"] for c in sweep["configs"]}
    assert rates[over] > rates[1]  # the oversubscribed config was the faster ...
    assert [c["oversubscribed"] for c in sweep["configs"]] == [False, True]
    assert sweep["recommended"] == {"workers": 1, "threads": 1}  # ... and is not chosen


def test_oversubscription_from_ini(pytester):
    _file(pytester)
    pytester.makeini("[pytest]\nhwperf_oversubscription = off\n")
    pytester.runpytest().assert_outcomes(passed=2)


TASKSET = ("taskset", "-c", "0")


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs the taskset binary")
@pytest.mark.skipif(CORES < 2, reason="needs 2 usable cores to shrink to 1 with taskset")
def test_two_workers_fail_under_taskset_one_core(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.workers(2)
        def test_two():
            pass
        """
    )
    pytester.runpytest("--hwperf").assert_outcomes(passed=1)
    proc = subprocess.run(
        [*TASKSET, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--hwperf"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout
    assert "2 workers x 1 thread = 2 > 1 usable core (affinity 0" in proc.stdout


def test_grid_parametrizes_and_each_oversubscribed_case_fails(pytester):
    pytester.makepyfile(
        """
        def test_grid(worker_config):
            assert worker_config.total == worker_config.workers * worker_config.threads
        """
    )
    counts = f"1,{CORES + 1}"
    result = pytester.runpytest(
        "--hwperf", f"--hwperf-workers={counts}", "--hwperf-threads=1", "-v"
    )
    result.stdout.fnmatch_lines(
        ["*test_grid[[]1x1[]] PASSED*", f"*test_grid[[]{CORES + 1}x1[]] PERF*"]
    )


def test_threads_are_applied_in_the_test_and_restored_after(pytester):
    torch = pytest.importorskip("torch", reason="checks torch's thread count")
    before = torch.get_num_threads()
    omp_before = os.environ.get("OMP_NUM_THREADS")
    pytester.makepyfile(
        f"""
        import os
        import pytest
        import torch
        from threadpoolctl import threadpool_info

        OMP_BEFORE = {omp_before!r}

        @pytest.mark.workers(1, threads=1)
        def test_inside(worker_config):
            assert torch.get_num_threads() == 1
            assert all(p["num_threads"] == 1 for p in threadpool_info())
            assert os.environ["OMP_NUM_THREADS"] == "1"

        def test_after():
            assert torch.get_num_threads() == {before}
            assert os.environ.get("OMP_NUM_THREADS") == OMP_BEFORE
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    ("marker", "argument"),
    [
        ("workers()", "n"),
        ("workers(0)", "n"),
        ("workers(2, threads=0)", "threads"),
        ("workers('4')", "n"),
    ],
)
def test_bad_workers_marker_fails_only_its_test(pytester, marker, argument):
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_bad():
            pass

        def test_good():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"*test_bad*@pytest.mark.workers*'{argument}'*"])


FOUR_MEASURED = """
import os
import time

def _busy():
    time.sleep(0.001)

def test_a(hwperf):
    hwperf(_busy)

def test_b(hwperf):
    hwperf(_busy)

def test_c(hwperf):
    hwperf(_busy)

def test_d(hwperf):
    hwperf(_busy)
"""


@pytest.mark.skipif(CORES < 2, reason="needs 2 usable cores for 2 disjoint xdist shares")
def test_xdist_workers_each_run_on_their_own_cores(pytester, monkeypatch):
    pytest.importorskip("xdist", reason="needs pytest-xdist")
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(FOUR_MEASURED)
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "--hwperf",
        *FAST_RUN,
        "--hwperf-json=out.json",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=4)
    document = json.loads((pytester.path / "out.json").read_text())
    records = document["measurements"]
    assert sorted(r["test_id"].split("::")[1] for r in records) == [
        "test_a",
        "test_b",
        "test_c",
        "test_d",
    ]
    by_worker: dict[str, set[int]] = {}
    for record in records:
        placement = record["placement"]
        assert placement["disjoint"] is True
        by_worker.setdefault(placement["xdist_worker"], set()).update(placement["cpus"])
    assert len(by_worker) == 2, by_worker  # both workers measured something
    first, second = by_worker.values()
    assert first
    assert second
    assert not (first & second)  # disjoint CPU sets
    for name in ("test_a", "test_b", "test_c", "test_d"):
        result.stdout.fnmatch_lines([f"*::{name} *"])
