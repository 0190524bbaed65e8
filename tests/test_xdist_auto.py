"""`pytest -n auto` uses the usable cores (affinity capped by the CPU quota)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from pytest_hwperf.hardware import cpu
from pytest_hwperf.plugin import hooks as plugin


def test_auto_workers_follow_the_cpu_quota(monkeypatch, pytestconfig):
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    monkeypatch.setattr(cpu, "read_affinity", lambda: (0, 1, 2, 3))
    monkeypatch.setattr(
        cpu, "read_cpu_quota", lambda root=None: cpu.CpuQuota(1.5, "cgroup v2 cpu.max at /x")
    )
    assert plugin.pytest_xdist_auto_num_workers(pytestconfig) == 2  # 1.5 cores, rounded up


def test_auto_workers_follow_the_affinity(monkeypatch, pytestconfig):
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    monkeypatch.setattr(cpu, "read_affinity", lambda: (3,))
    monkeypatch.setattr(cpu, "read_cpu_quota", lambda root=None: cpu.CpuQuota(None, "no CPU quota"))
    assert plugin.pytest_xdist_auto_num_workers(pytestconfig) == 1


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs the taskset binary")
def test_n_auto_under_taskset_starts_one_worker(pytester):
    pytest.importorskip("xdist", reason="needs pytest-xdist")
    pytester.makepyfile("def test_one():\n    assert True\n")
    proc = subprocess.run(
        [
            "taskset",
            "-c",
            "0",
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "auto",
            "-p",
            "no:cacheprovider",
        ],
        cwd=pytester.path,
        env={k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_AUTO_NUM_WORKERS"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 worker [1 item]" in proc.stdout, proc.stdout


def test_xdist_environment_variable_still_wins(monkeypatch, pytestconfig):
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "5")
    assert plugin.pytest_xdist_auto_num_workers(pytestconfig) is None
