"""GPU utilisation from NVML, with a fake NVML standing in for the driver.

The fake answers as NVML does (the real pynvml sample structures, its error codes, only
samples newer than the timestamp asked); these tests check our window, arithmetic,
fallbacks and notes. The real reading on a GPU is in tests/test_gpu.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from pytest_hwperf.hardware.gpu import GpuInfo, GpuReport
from pytest_hwperf.measure import Measurement
from pytest_hwperf.measure.gpu_util import (
    IDLE_BELOW_PCT,
    GpuUtilization,
    GpuUtilizationSampler,
    nvml_identity,
    utilization_sampler,
)
from pytest_hwperf.records.codec import to_json

pynvml = pytest.importorskip("pynvml")

NOT_FOUND = 6
NOT_SUPPORTED = 3
START_US = 1_700_000_000_000_000  # NVML timestamps: the host's wall clock, microseconds


class NVMLError(Exception):
    """pynvml's error: `value` is NVML's return code."""

    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


def nvml_sample(timestamp_us: int, value: float, field: str = "uiVal") -> Any:
    sample = pynvml.c_nvmlSample_t()
    sample.timeStamp = timestamp_us
    setattr(sample.sampleValue, field, value)
    return sample


class FakeNVML:
    NVMLError = NVMLError
    NVML_ERROR_NOT_FOUND = NOT_FOUND
    NVML_GPU_UTILIZATION_SAMPLES = 1

    def __init__(
        self,
        samples: list[Any] | None = None,
        *,
        value_type: int = 1,  # NVML_VALUE_TYPE_UNSIGNED_INT
        rate: int = 0,
        uuids: dict[str, str] | None = None,
        init_error: Exception | None = None,
        samples_error: int | None = None,
        honour_since: bool = True,
    ) -> None:
        self.samples = list(samples or [])
        self.value_type = value_type
        self.rate = rate
        self.uuids = {"GPU-aaaa": "handle-0"} if uuids is None else uuids
        self.init_error = init_error
        self.samples_error = samples_error
        self.honour_since = honour_since
        self.inits = 0
        self.shutdowns = 0
        self.asked: list[tuple[object, int, int]] = []

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        if uuid not in self.uuids:
            raise NVMLError(NOT_FOUND)
        return self.uuids[uuid]

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"handle-by-index-{index}"

    def nvmlDeviceGetSamples(self, handle: object, kind: int, since: int) -> tuple[int, list]:
        self.asked.append((handle, kind, since))
        if self.samples_error is not None:
            raise NVMLError(self.samples_error)
        found = [s for s in self.samples if s.timeStamp > since or not self.honour_since]
        if not found:
            raise NVMLError(NOT_FOUND)
        return self.value_type, found

    def nvmlDeviceGetUtilizationRates(self, handle: object) -> SimpleNamespace:
        return SimpleNamespace(gpu=self.rate, memory=0)


class Clock:
    """Wall clock in microseconds, advanced by hand."""

    def __init__(self) -> None:
        self.now = START_US

    def __call__(self) -> int:
        return self.now


def run(nvml: Any, *, identity=(["GPU-aaaa"], None), elapsed_us: int = 2_000_000):
    clock = Clock()
    sampler = GpuUtilizationSampler("cuda:0", lambda: identity, nvml=nvml, now_us=clock)
    with sampler:
        clock.now += elapsed_us
    return sampler


def test_driver_samples_in_the_window_are_averaged():
    nvml = FakeNVML(
        [nvml_sample(START_US - 500_000, 99)]  # before the measurement: not counted
        + [nvml_sample(START_US + i * 166_000, v) for i, v in enumerate([10, 20, 30, 60], 1)]
    )
    sampler = run(nvml)
    assert sampler.result == GpuUtilization(30.0, 60.0, 4, "nvml-samples")
    assert sampler.note is None
    # Asked once, after the measurement, for what came after its start, of this device.
    assert nvml.asked == [("handle-0", 1, START_US)]
    assert (nvml.inits, nvml.shutdowns) == (1, 1)


def test_samples_the_driver_returns_from_before_the_window_are_dropped():
    nvml = FakeNVML(
        [nvml_sample(START_US - 1, 100), nvml_sample(START_US + 10, 50)], honour_since=False
    )
    assert run(nvml).result == GpuUtilization(50.0, 50.0, 1, "nvml-samples")


def test_the_value_type_picks_the_union_field():
    nvml = FakeNVML([nvml_sample(START_US + 1, 42.5, "dVal")], value_type=0)
    result = run(nvml).result
    assert result is not None
    assert result.mean_pct == 42.5


def test_no_sample_in_a_short_window_reads_the_last_period_and_says_so():
    nvml = FakeNVML([nvml_sample(START_US - 10, 80)], rate=7)
    sampler = run(nvml, elapsed_us=50_000)
    assert sampler.result == GpuUtilization(7.0, 7.0, 1, "nvml-utilization-rates")
    assert sampler.note == (
        "GPU utilization of cuda:0: no driver sample fell within the 0.05 s measurement;"
        " the figure is one reading of the driver's last sampling period (1/6 s to 1 s)"
    )


def test_uuid_first_then_nvml_index():
    nvml = FakeNVML([nvml_sample(START_US + 1, 5)], uuids={"GPU-bbbb": "by-uuid"})
    run(nvml, identity=(["GPU-nope", "GPU-bbbb"], 3))
    assert nvml.asked[0][0] == "by-uuid"
    nvml = FakeNVML([nvml_sample(START_US + 1, 5)], uuids={})
    run(nvml, identity=(["GPU-nope"], 3))
    assert nvml.asked[0][0] == "handle-by-index-3"


def test_no_matching_device_is_a_note():
    nvml = FakeNVML(uuids={})
    sampler = run(nvml, identity=(["GPU-nope"], None))
    assert sampler.result is None
    assert sampler.note == "GPU utilization of cuda:0 not sampled: NVML has no device matching it"
    assert (nvml.inits, nvml.shutdowns) == (1, 1)


def test_an_unsupported_query_is_a_note_never_an_error():
    nvml = FakeNVML(samples_error=NOT_SUPPORTED)
    sampler = run(nvml)
    assert sampler.result is None
    assert sampler.note == "GPU utilization of cuda:0 not sampled: NVML error: NVML error 3"
    assert nvml.shutdowns == 1


def test_nvml_that_cannot_start_is_a_note():
    nvml = FakeNVML(init_error=NVMLError(9))
    sampler = run(nvml)
    assert sampler.result is None
    assert sampler.note is not None
    assert sampler.note.startswith("GPU utilization of cuda:0 not sampled: ")
    assert nvml.shutdowns == 0  # nothing to shut down


def test_without_nvidia_ml_py_is_a_note():
    def missing() -> Any:
        raise ImportError("No module named 'pynvml'")

    sampler = GpuUtilizationSampler("cuda:1", lambda: ([], 0), import_nvml=missing)
    with sampler:
        pass
    assert sampler.result is None
    assert sampler.note == (
        "GPU utilization of cuda:1 not sampled: nvidia-ml-py is not installed (no module pynvml)"
    )


def test_real_nvml_without_a_driver_is_a_note():
    """The real pynvml: on a machine without the NVIDIA driver, a note naming why."""
    from pytest_hwperf.hardware.gpu import detect_gpus

    if detect_gpus(torch_fallback=False).source == "nvml":
        pytest.skip("NVML answers on this machine; the driver-less path cannot be seen")
    sampler = GpuUtilizationSampler("cuda:0", lambda: ([], 0))
    with sampler:
        pass
    assert sampler.result is None
    assert sampler.note is not None
    assert sampler.note.startswith("GPU utilization of cuda:0 not sampled: ")


def test_a_failed_measurement_asks_nvml_nothing():
    nvml = FakeNVML([nvml_sample(START_US + 1, 5)])
    sampler = GpuUtilizationSampler("cuda:0", lambda: (["GPU-aaaa"], None), nvml=nvml)
    with pytest.raises(RuntimeError, match="boom"), sampler:
        raise RuntimeError("boom")
    assert nvml.inits == 0
    assert sampler.result is None


def test_record_and_idle_threshold():
    figure = GpuUtilization(12.0, 40.0, 9, "nvml-samples")
    assert figure.mostly_idle
    assert not GpuUtilization(IDLE_BELOW_PCT, 40.0, 9, "nvml-samples").mostly_idle
    assert to_json(figure.record()) == {
        "mean_pct": 12.0,
        "max_pct": 40.0,
        "samples": 9,
        "method": "nvml-samples",
        "idle_below_pct": 30.0,
    }


def test_only_cuda_devices_are_sampled_and_the_gpu_report_is_asked_lazily():
    asked: list[bool] = []

    def gpus() -> GpuReport | None:
        asked.append(True)
        return None

    assert utilization_sampler("cpu", gpus) is None
    assert utilization_sampler("mps", gpus) is None
    sampler = utilization_sampler("cuda:0", gpus)
    assert isinstance(sampler, GpuUtilizationSampler)
    assert asked == []  # a CPU measurement never triggers GPU detection


def gpu(index: int, uuid: str | None, cuda_index: int | None, **kwargs: Any) -> GpuInfo:
    return GpuInfo(index, f"GPU {index}", uuid, None, (9, 0), False, 132, cuda_index, **kwargs)


def test_identity_follows_cuda_visible_devices_through_the_gpu_report():
    """CUDA_VISIBLE_DEVICES=1,0: cuda:0 is NVML's GPU 1."""
    report = GpuReport(
        gpus=(gpu(0, "GPU-zero", 1), gpu(1, "GPU-one", 0)),
        driver_version=None,
        cuda_driver_version=None,
        source="nvml",
        reason=None,
        cuda_visible_devices="1,0",
    )
    uuids, index = nvml_identity("cuda:0", report)
    assert "GPU-one" in uuids
    assert "GPU-zero" not in uuids
    assert index == 1
    assert nvml_identity("cuda:5", report) == ([], None)


def test_identity_of_a_mig_instance_is_by_uuid_only():
    mig = gpu(0, "MIG-1234", 0, mig_devices=())
    parent = gpu(0, "GPU-parent", None, mig_devices=(mig,))
    report = GpuReport((parent,), None, None, "nvml", None)
    uuids, index = nvml_identity("cuda:0", report)
    assert "MIG-1234" in uuids
    assert index is None  # by index NVML would answer for the whole GPU


def measurement() -> Measurement:
    return Measurement(
        name="predict",
        device="cuda:0",
        mode="measured",
        timing_method="perf_counter_ns",
        sync_method="cuda-synchronize",
        block_size=1,
        samples_ns=np.asarray([1_000_000, 1_100_000], dtype=np.int64),
        warmup_calls=2,
        warmup_ns=2_000_000,
        per_call_estimate_ns=1e6,
        gc_policy="collect-then-enabled",
        stop_reason="max-time",
        alpha=0.01,
        looks=1,
    )


def test_an_idle_gpu_is_called_out_on_the_measurement():
    nvml = FakeNVML([nvml_sample(START_US + i, v) for i, v in enumerate([8, 12, 16], 1)])
    m = measurement()
    run(nvml).apply(m)
    record = m.to_record()
    assert record["gpu_utilization"]["mean_pct"] == pytest.approx(12.0)
    assert record["gpu_utilization"]["samples"] == 3
    assert record["notes"] == [
        "cuda:0 was busy 12% of the time while measuring: the model is likely too small for"
        " this GPU (batch more, or serve it on CPU)"
    ]


def test_a_busy_gpu_adds_no_note_and_a_missing_figure_adds_only_why():
    busy = measurement()
    run(FakeNVML([nvml_sample(START_US + 1, 95)])).apply(busy)
    assert busy.notes == []
    assert busy.to_record()["gpu_utilization"]["max_pct"] == 95.0
    missing = measurement()
    run(FakeNVML(samples_error=NOT_SUPPORTED)).apply(missing)
    assert missing.to_record()["gpu_utilization"] is None
    assert missing.notes == ["GPU utilization of cuda:0 not sampled: NVML error: NVML error 3"]
