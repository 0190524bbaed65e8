"""CUDA timing. These run only where CUDA exists (scripts/gpu-check.sh runs them all and
fails if they would skip); on a CPU machine each skips naming why."""

from __future__ import annotations

import pytest

from pytest_hwperf.measure import SamplingPolicy, device_sync, measure
from pytest_hwperf.verdict import LatencyBudget, Outcome

pytestmark = pytest.mark.gpu

# torch.cuda._sleep spins the GPU for a number of clock cycles: GPU-only work whose
# launch returns at once, so a timer without a device sync would see ~10 us.
SPIN_CYCLES = 20_000_000


def _event_ms(torch, fn) -> float:
    """The GPU time of one call of fn, from CUDA events."""
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    fn()
    end.record()
    end.synchronize()
    return float(start.elapsed_time(end))


def test_cuda_sync_method(cuda_device):
    sync = device_sync(cuda_device)
    assert sync.method == "cuda-synchronize"
    assert sync.synchronize is not None
    assert device_sync("cuda").device == "cuda:0"


def test_cuda_samples_include_device_work(cuda_device):
    torch = pytest.importorskip("torch")

    def spin() -> None:
        torch.cuda._sleep(SPIN_CYCLES)

    spin()
    gpu_ms = min(_event_ms(torch, spin) for _ in range(5))
    _, m = measure(
        spin,
        name="spin",
        policy=SamplingPolicy(max_time_s=2.0, warmup_s=0.05),
        sync=device_sync(cuda_device),
    )
    assert m.sync_method == "cuda-synchronize"
    assert m.block_size == 1
    # Every sample covers the kernel: at least 90% of its event-timed GPU duration.
    assert min(m.samples_ns) / 1e6 >= 0.9 * gpu_ms, (min(m.samples_ns), gpu_ms)


def test_cuda_budget_breach_is_seen(cuda_device):
    torch = pytest.importorskip("torch")

    def spin() -> None:
        torch.cuda._sleep(SPIN_CYCLES)

    spin()
    gpu_ms = min(_event_ms(torch, spin) for _ in range(5))
    budget = LatencyBudget(ms=gpu_ms / 4)
    _, m = measure(
        spin,
        name="spin",
        budgets=[budget],
        policy=SamplingPolicy(max_time_s=2.0, warmup_s=0.05),
        sync=device_sync(cuda_device),
    )
    assert m.verdicts[0].outcome is Outcome.FAIL


def test_cuda_through_the_plugin(cuda_device, pytester):
    pytester.makepyfile(
        f"""
        import pytest, torch

        @pytest.mark.latency(ms=0.5)
        def test_spin(hwperf):
            hwperf(torch.cuda._sleep, {SPIN_CYCLES}, device="{cuda_device}")
            assert hwperf.last.sync_method == "cuda-synchronize"
        """
    )
    result = pytester.runpytest("--hwperf", "--hwperf-max-time=2", "--hwperf-warmup=0.05")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*p95*breaches budget*"])
