"""CUDA timing. These run only where CUDA exists (scripts/gpu-check.sh runs them all and
fails if they would skip); on a CPU machine each skips naming why."""

from __future__ import annotations

import pytest
from _output import FAST_RUN

from pytest_hwperf.judge.compliance import LatencyBudget, Outcome
from pytest_hwperf.measure import SamplingPolicy, device_sync, measure

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
    # Not FAST_RUN: the values this GPU test was checked with on a GPU (a longer warm-up
    # for the device's first calls); not re-verified on a machine without one.
    result = pytester.runpytest("--hwperf", "--hwperf-max-time=2", "--hwperf-warmup=0.05")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*p95*breaches budget*"])


# -- the device fixture, hwperf_model, the hardware marker and hwinfo on a GPU ---------

GPU_PLUGIN_TESTS = """
import json

import pytest
import torch


def dump(name, measurement):
    with open(f"{name}.json", "w") as fh:
        json.dump({"device": measurement.device, "sync": measurement.sync_method}, fh)


def test_model(device, hwperf_model, hwperf):
    model = hwperf_model(torch.nn.Linear(1024, 1024), device)
    x = torch.ones(64, 1024, device=device)
    out = hwperf(model, x)
    assert out.device.type == "cuda"
    assert out.is_inference()
    dump("model", hwperf.last)


def test_plain(device, hwperf):
    hwperf(torch.cuda._sleep, 1000)
    dump("plain", hwperf.last)


@pytest.mark.hardware(gpu=True, min_gpus=1, min_gpu_memory_gb=1, min_compute_capability=(3, 0))
def test_gpu_marker(hwinfo):
    visible = hwinfo.gpus.visible
    with open("hwinfo.json", "w") as fh:
        json.dump(
            {
                "names": [g.name for g in visible],
                "cuda_indices": [g.cuda_index for g in visible],
                "uuids": [g.uuid for g in visible],
            },
            fh,
        )
"""


def test_gpu_device_fixture_model_marker_and_hwinfo(cuda_device, pytester):
    """--hwperf-devices=cuda: measurements in a test using `device` synchronize CUDA
    without device= (for a prepared model and for a plain function), hardware(gpu=True)
    runs, and hwinfo sees the GPUs torch sees."""
    import json

    torch = pytest.importorskip("torch")
    pytester.makepyfile(test_on_gpu=GPU_PLUGIN_TESTS)
    result = pytester.runpytest(
        "--hwperf",
        "--hwperf-devices=cuda",
        *FAST_RUN,
        "--hwperf-json=out.json",
        "-rs",
    )
    # Nothing skipped: the device is present and hardware(gpu=True) is met.
    result.assert_outcomes(passed=3)
    for name in ("model", "plain"):
        facts = json.loads((pytester.path / f"{name}.json").read_text())
        assert facts == {"device": "cuda:0", "sync": "cuda-synchronize"}, name
    records = {
        r["test_id"].split("::")[1]: r
        for r in json.loads((pytester.path / "out.json").read_text())["measurements"]
    }
    model_record = records["test_model[cuda]"]
    assert model_record["device"] == "cuda:0"
    assert model_record["timing"]["sync"] == "cuda-synchronize"
    assert model_record["model"]["parameters"] == 1024 * 1024 + 1024
    assert model_record["model"]["device"] == "cuda:0"
    info = json.loads((pytester.path / "hwinfo.json").read_text())
    assert info["names"], "hwinfo.gpus.visible is empty on a GPU machine"
    assert len(info["names"]) == torch.cuda.device_count()
    assert info["cuda_indices"] == list(range(torch.cuda.device_count()))
    assert info["names"][0] == torch.cuda.get_device_name(0)


def test_gpu_unmet_gpu_count_names_the_visible_count(cuda_device, pytester):
    torch = pytest.importorskip("torch")
    count = torch.cuda.device_count()
    pytester.makepyfile(
        test_many=f"""
        import pytest

        @pytest.mark.hardware(min_gpus={count + 1})
        def test_needs_more():
            pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [f"SKIPPED * hardware: needs >= {count + 1} GPUs, this machine has {count}"]
    )


# -- GPU utilisation and device advice -------------------------------------------------


def test_gpu_utilization_of_a_busy_gpu(cuda_device):
    """A spinning kernel keeps the GPU busy: NVML's own samples over a 1.5 s window say
    so, in percent."""
    torch = pytest.importorskip("torch")
    from pytest_hwperf.hardware.gpu import detect_gpus
    from pytest_hwperf.measure.gpu_util import utilization_sampler

    def spin() -> None:
        torch.cuda._sleep(SPIN_CYCLES)

    spin()
    sampler = utilization_sampler(cuda_device, lambda: detect_gpus(torch_fallback=False))
    assert sampler is not None
    with sampler:
        measure(
            spin,
            name="spin",
            policy=SamplingPolicy(max_time_s=1.5, warmup_s=0.05, min_time_s=1.5),
            sync=device_sync(cuda_device),
        )
    result = sampler.result
    assert result is not None, sampler.note
    assert result.method == "nvml-samples", sampler.note
    assert result.samples >= 1
    assert 50 <= result.mean_pct <= result.max_pct <= 100, result


GPU_ADVICE_TESTS = """
import pytest
import torch


@pytest.mark.latency(ms=1000)
def test_small(device, hwperf_model, hwperf):
    model = hwperf_model(torch.nn.Linear(64, 64), device)
    x = torch.ones(8, 64, device=device)
    hwperf(model, x, name="linear")
"""


def test_gpu_utilization_recorded_and_device_advice(cuda_device, pytester):
    """A small model measured on cpu and cuda: the CUDA record carries a utilisation
    figure within 0..100, and the advice compares both devices and recommends the CPU
    (both meet a 1 s budget; the CPU is cheaper)."""
    import json

    pytester.makepyfile(test_util=GPU_ADVICE_TESTS)
    result = pytester.runpytest(
        "--hwperf",
        "--hwperf-devices=cpu,cuda",
        # Not FAST_RUN: the values this GPU test was checked with on a GPU (a longer
        # warm-up for the device's first calls); not re-verified without one.
        "--hwperf-max-time=2",
        "--hwperf-warmup=0.05",
        "--hwperf-json=out.json",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=2)
    document = json.loads((pytester.path / "out.json").read_text())
    by_device = {r["device"]: r for r in document["measurements"]}
    figure = by_device["cuda:0"]["gpu_utilization"]
    assert figure is not None, by_device["cuda:0"]["notes"]
    assert figure["method"] in ("nvml-samples", "nvml-utilization-rates")
    assert figure["samples"] >= 1
    assert 0 <= figure["mean_pct"] <= figure["max_pct"] <= 100, figure
    assert by_device["cpu"]["gpu_utilization"] is None
    (entry,) = document["advice"]
    assert entry["test"] == "test_util.py::test_small"
    assert [d["device"] for d in entry["devices"]] == ["cpu", "cuda:0"]
    assert entry["met"] == ["cpu", "cuda:0"]
    assert entry["recommended"] == "cpu"
    result.stdout.fnmatch_lines(
        ["test_util.py::test_small: recommend cpu, the cheapest device that met its budget*"]
    )
