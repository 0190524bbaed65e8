"""The reference workload follows how the measured target used the cores (issue 5)."""

from __future__ import annotations

import json
import os

import pytest
from _output import FAST_RUN

PROJECT = """
import torch

torch.set_num_threads(2)
A = torch.randn(768, 768)


def spin():
    total = 0
    for i in range(20_000):
        total += i
    return total


def test_single_threaded(hwperf):
    hwperf(spin, name="python")


def test_parallel(hwperf):
    with torch.inference_mode():
        hwperf(torch.mm, A, A, name="torch")
"""


def test_a_parallel_target_gets_a_parallel_gauge_and_a_serial_one_a_serial_gauge(
    pytester: pytest.Pytester,
):
    import torch

    if torch.get_num_threads() < 2 or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two usable cores for a two-thread torch pool")
    pytester.makepyfile(test_kinds=PROJECT)
    result = pytester.runpytest(
        "--hwperf",
        *FAST_RUN,
        "--hwperf-json=out.json",
        "--hwperf-oversubscription=off",
        "--hwperf-reference=on",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=2)
    records = {
        r["name"]: r for r in json.loads((pytester.path / "out.json").read_text())["measurements"]
    }
    assert records["python"]["reference_kind"] == "numpy-dot/1"
    assert records["torch"]["reference_kind"] == "torch-mm/2"
    assert records["python"]["reference_ms"] > 0
    assert records["torch"]["reference_ms"] > 0
