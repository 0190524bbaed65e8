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
