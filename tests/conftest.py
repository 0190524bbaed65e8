"""Shared test helpers."""

from __future__ import annotations

import contextlib
import os

# pytester's in-process runs drop modules first imported during the run from
# sys.modules, and neither numpy nor torch can be loaded twice in one process (torch
# crashes). The plugin imports numpy when it measures, and both when it takes the
# fingerprint, so import them once here, before any in-process run.
import numpy  # noqa: F401
import pytest

with contextlib.suppress(ImportError):  # the suite also runs without torch
    import torch  # noqa: F401


@pytest.fixture(autouse=True)
def _machine_load_is_not_the_subject(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pytest runs a test starts (pytester, in process or not) judge virtual clocks
    and synthetic targets; this suite's own load on a 2-core machine must not make their
    rounds "disturbed" (measure/contention.py) and change their verdicts or round counts.
    tests/test_contention.py, where it is the subject, passes --hwperf-busy-wait itself
    (a later option wins over PYTEST_ADDOPTS); a run without the plugin (-p no:hwperf)
    drops the variable."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")  # it clears PYTEST_ADDOPTS: set it after
    monkeypatch.setenv("PYTEST_ADDOPTS", "--hwperf-busy-wait=0")


def _cuda_missing_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "needs torch with CUDA; torch is not installed"
    if not torch.cuda.is_available():
        return "needs a CUDA device; torch.cuda.is_available() is False on this machine"
    return None


@pytest.fixture
def cuda_device() -> str:
    """'cuda:0', or a skip naming why (a failure under HWPERF_REQUIRE_GPU=1, so a GPU
    check cannot go green by skipping)."""
    reason = _cuda_missing_reason()
    if reason is not None:
        if os.environ.get("HWPERF_REQUIRE_GPU") == "1":
            pytest.fail(f"HWPERF_REQUIRE_GPU=1 but this test {reason}", pytrace=False)
        pytest.skip(reason)
    return "cuda:0"
