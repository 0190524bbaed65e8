"""GPU detection: NVML through a fake module (every path, on any machine), this machine
as it is, the torch probe in a child process, and -- where CUDA exists, marked `gpu` --
NVML's facts checked against torch's and CUDA_VISIBLE_DEVICES against real CUDA."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
import textwrap
import time
import types
from dataclasses import dataclass, field, replace

import pytest

from pytest_hwperf.hardware import gpu as gpu_module
from pytest_hwperf.hardware.gpu import (
    GpuInfo,
    GpuReport,
    cuda_version_string,
    detect_gpus,
    match_by_uuid,
    parse_cuda_visible_devices,
    visible_devices,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

UUID_A = "GPU-abc12345-1111-2222-3333-444444444444"
UUID_B = "GPU-def67890-5555-6666-7777-888888888888"
H100_MEMORY = 85_520_809_984

# -- a fake pynvml ----------------------------------------------------------------------


class NVMLError(Exception):
    """Like pynvml's: one subclass per error code, str() is the code's text."""

    text = "Unknown Error"

    def __str__(self) -> str:
        return self.text


class NVMLError_Uninitialized(NVMLError):  # pynvml's names
    text = "Uninitialized"


class NVMLError_NotSupported(NVMLError):
    text = "Not Supported"


class NVMLError_NotFound(NVMLError):
    text = "Not Found"


class NVMLError_DriverNotLoaded(NVMLError):
    text = "Driver Not Loaded"


class NVMLError_LibraryNotFound(NVMLError):
    text = "NVML Shared Library Not Found"


class NVMLError_FunctionNotFound(NVMLError):
    text = "Function Not Found"


class NVMLError_GpuIsLost(NVMLError):
    text = "GPU is lost"


@dataclass
class FakeDevice:
    name: str
    uuid: str
    memory: int
    cc: tuple[int, int] = (9, 0)
    mig: tuple[int, int] = (0, 0)
    cores: int = 16896  # 132 SMs of 128 cores (H100 SXM)
    sms: int | None = None  # nvmlDeviceGetAttributes answers only for MIG handles
    migs: list[FakeDevice | None] = field(default_factory=list)  # None: an empty slot
    fail: dict[str, Exception] = field(default_factory=dict)  # function -> raised


class FakeMemory:
    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total // 2
        self.used = total - self.free


class FakeAttributes:
    def __init__(self, sms: int) -> None:
        self.multiprocessorCount = sms


class FakeNvml(types.ModuleType):
    """The part of pynvml that gpu.py calls, over configurable devices."""

    NVMLError = NVMLError
    NVMLError_Uninitialized = NVMLError_Uninitialized
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NotFound = NVMLError_NotFound
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    NVMLError_GpuIsLost = NVMLError_GpuIsLost
    NVML_DEVICE_MIG_ENABLE = 1

    def __init__(
        self,
        devices: list[FakeDevice],
        *,
        driver: str | bytes = "550.54.15",
        cuda: int = 12040,
        cuda_v2: bool = True,
        init_error: Exception | None = None,
        count_error: Exception | None = None,
    ) -> None:
        super().__init__("pynvml")
        self.devices = devices
        self.driver = driver
        self.cuda = cuda
        self.cuda_v2 = cuda_v2
        self.init_error = init_error
        self.count_error = count_error
        self.init_calls = 0
        self.shutdown_calls = 0
        self.live = 0

    def _check(self) -> None:
        if self.live <= 0:
            raise NVMLError_Uninitialized()

    def _query(self, handle: FakeDevice, function: str) -> None:
        self._check()
        if function in handle.fail:
            raise handle.fail[function]

    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise self.init_error
        self.live += 1

    def nvmlShutdown(self) -> None:
        self._check()
        self.shutdown_calls += 1
        self.live -= 1

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        self._check()
        return self.driver

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        self._check()
        if not self.cuda_v2:
            raise NVMLError_FunctionNotFound()
        return self.cuda

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._check()
        return self.cuda

    def nvmlDeviceGetCount(self) -> int:
        self._check()
        if self.count_error is not None:
            raise self.count_error
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeDevice:
        self._check()
        device = self.devices[index]
        if "nvmlDeviceGetHandleByIndex" in device.fail:
            raise device.fail["nvmlDeviceGetHandleByIndex"]
        return device

    def nvmlDeviceGetName(self, handle: FakeDevice) -> str:
        self._query(handle, "nvmlDeviceGetName")
        return handle.name

    def nvmlDeviceGetUUID(self, handle: FakeDevice) -> str:
        self._query(handle, "nvmlDeviceGetUUID")
        return handle.uuid

    def nvmlDeviceGetMemoryInfo(self, handle: FakeDevice) -> FakeMemory:
        self._query(handle, "nvmlDeviceGetMemoryInfo")
        return FakeMemory(handle.memory)

    def nvmlDeviceGetCudaComputeCapability(self, handle: FakeDevice) -> tuple[int, int]:
        self._query(handle, "nvmlDeviceGetCudaComputeCapability")
        return handle.cc

    def nvmlDeviceGetMigMode(self, handle: FakeDevice) -> list[int]:
        self._query(handle, "nvmlDeviceGetMigMode")
        return list(handle.mig)

    def nvmlDeviceGetNumGpuCores(self, handle: FakeDevice) -> int:
        self._query(handle, "nvmlDeviceGetNumGpuCores")
        return handle.cores

    def nvmlDeviceGetAttributes(self, handle: FakeDevice) -> FakeAttributes:
        self._query(handle, "nvmlDeviceGetAttributes")
        if handle.sms is None:
            raise NVMLError_NotSupported()
        return FakeAttributes(handle.sms)

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeDevice) -> int:
        self._query(handle, "nvmlDeviceGetMaxMigDeviceCount")
        return len(handle.migs)

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeDevice, index: int) -> FakeDevice:
        self._query(handle, "nvmlDeviceGetMigDeviceHandleByIndex")
        mig = handle.migs[index]
        if mig is None:
            raise NVMLError_NotFound()
        return mig


def two_h100s(**fail_on_first: Exception) -> list[FakeDevice]:
    return [
        FakeDevice("NVIDIA H100 80GB HBM3", UUID_A, H100_MEMORY, fail=dict(fail_on_first)),
        FakeDevice("NVIDIA H100 80GB HBM3", UUID_B, H100_MEMORY),
    ]


def _no_pynvml() -> types.ModuleType:
    raise ImportError("No module named 'pynvml'")


# -- NVML through the fake --------------------------------------------------------------


def test_two_gpus_read_fully():
    nvml = FakeNvml(two_h100s())
    report = detect_gpus(nvml=nvml, environ={})
    assert report.source == "nvml"
    assert report.reason is None
    assert report.driver_version == "550.54.15"
    assert report.cuda_driver_version == "12.4"
    assert report.cuda_visible_devices is None
    assert [g.index for g in report.gpus] == [0, 1]
    assert [g.cuda_index for g in report.gpus] == [0, 1]
    assert [g.uuid for g in report.gpus] == [UUID_A, UUID_B]
    for g in report.gpus:
        assert g.name == "NVIDIA H100 80GB HBM3"
        assert g.memory_total_bytes == H100_MEMORY
        assert g.compute_capability == (9, 0)
        assert g.mig_mode is False
        assert g.multiprocessors == 132  # 16896 cores / 128 per SM
        assert g.mig_devices == ()
    assert report.visible == report.gpus
    assert (nvml.init_calls, nvml.shutdown_calls, nvml.live) == (1, 1, 0)


def test_records_are_json():
    report = detect_gpus(nvml=FakeNvml(two_h100s()), environ={"CUDA_VISIBLE_DEVICES": "1"})
    record = json.loads(json.dumps(report.to_record()))
    assert record["source"] == "nvml"
    assert record["count"] == 2
    assert record["visible_count"] == 1
    assert record["cuda_visible_devices"] == "1"
    assert record["gpus"][0]["compute_capability"] == "9.0"
    assert record["gpus"][0]["cuda_index"] is None
    assert record["gpus"][1]["cuda_index"] == 0
    assert record["gpus"][1]["uuid"] == UUID_B


@pytest.mark.parametrize(
    ("version", "text"),
    [(12040, "12.4"), (11080, "11.8"), (12000, "12.0"), (13010, "13.1"), (10020, "10.2")],
)
def test_cuda_version_string(version, text):
    assert cuda_version_string(version) == text


def test_cuda_version_falls_back_to_v1():
    report = detect_gpus(nvml=FakeNvml(two_h100s(), cuda=11080, cuda_v2=False), environ={})
    assert report.cuda_driver_version == "11.8"


def test_bytes_from_old_nvidia_ml_py_are_decoded():
    device = FakeDevice("Tesla V100", UUID_A, 16 << 30, cc=(7, 0), cores=5120)
    device.name = b"Tesla V100"  # type: ignore[assignment]
    device.uuid = UUID_A.encode()  # type: ignore[assignment]
    report = detect_gpus(nvml=FakeNvml([device], driver=b"470.82.01"), environ={})
    assert report.driver_version == "470.82.01"
    assert report.gpus[0].name == "Tesla V100"
    assert report.gpus[0].uuid == UUID_A
    assert report.gpus[0].multiprocessors == 80  # 5120 / 64


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (NVMLError_LibraryNotFound(), "no NVIDIA driver library (libnvidia-ml.so.1 not found)"),
        (NVMLError_DriverNotLoaded(), "NVIDIA driver not loaded"),
        (NVMLError(), "NVML error: Unknown Error"),
        (RuntimeError("odd"), "NVML failed: RuntimeError: odd"),
    ],
)
def test_init_failure_is_a_reason(error, expected):
    if "libnvidia" in expected and sys.platform.startswith("win"):
        expected = expected.replace("libnvidia-ml.so.1", "nvml.dll")
    nvml = FakeNvml(two_h100s(), init_error=error)
    report = detect_gpus(nvml=nvml, environ={}, torch_fallback=False)
    assert report == GpuReport((), None, None, "none", expected, None)
    # nvmlInit failed: there is nothing to shut down.
    assert (nvml.init_calls, nvml.shutdown_calls) == (1, 0)


@pytest.mark.parametrize("error", [NVMLError_GpuIsLost(), TypeError("bad handle")])
def test_failure_after_init_is_a_reason_and_still_shuts_down(error):
    nvml = FakeNvml(two_h100s(), count_error=error)
    report = detect_gpus(nvml=nvml, environ={}, torch_fallback=False)
    assert report.source == "none"
    assert report.gpus == ()
    assert report.reason in ("NVML error: GPU is lost", "NVML failed: TypeError: bad handle")
    assert (nvml.init_calls, nvml.shutdown_calls, nvml.live) == (1, 1, 0)


def test_pynvml_missing_is_a_reason():
    report = detect_gpus(import_nvml=_no_pynvml, environ={}, torch_fallback=False)
    assert report.source == "none"
    assert report.gpus == ()
    assert report.reason is not None
    assert report.reason.startswith("nvidia-ml-py is not installed")


def _run_child(code: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_neither_pynvml_nor_torch_importable():
    """Both imports blocked in a child: a report with both reasons, torch not loaded."""
    out = _run_child(
        """
        import json, sys
        sys.modules["pynvml"] = None
        sys.modules["torch"] = None
        from pytest_hwperf.hardware.gpu import detect_gpus
        r = detect_gpus()
        print(json.dumps(r.to_record()))
        """
    )
    record = json.loads(out)
    assert record["source"] == "none"
    assert record["count"] == 0
    assert (
        record["reason"]
        == "nvidia-ml-py is not installed (no module pynvml); torch is not installed"
    )


@pytest.mark.parametrize(
    "function",
    [
        "nvmlDeviceGetMigMode",
        "nvmlDeviceGetCudaComputeCapability",
        "nvmlDeviceGetMemoryInfo",
        "nvmlDeviceGetNumGpuCores",
        "nvmlDeviceGetUUID",
        "nvmlDeviceGetName",
    ],
)
def test_one_unsupported_query_loses_only_its_field(function):
    nvml = FakeNvml(two_h100s(**{function: NVMLError_NotSupported()}))
    report = detect_gpus(nvml=nvml, environ={})
    first, second = report.gpus
    field_of = {
        "nvmlDeviceGetMigMode": {"mig_mode": None},
        # Without the compute capability the SM count cannot be derived from the cores.
        "nvmlDeviceGetCudaComputeCapability": {"compute_capability": None, "multiprocessors": None},
        "nvmlDeviceGetMemoryInfo": {"memory_total_bytes": None},
        "nvmlDeviceGetNumGpuCores": {"multiprocessors": None},
        "nvmlDeviceGetUUID": {"uuid": None},
        "nvmlDeviceGetName": {"name": "unknown"},
    }
    # Everything else on the first GPU, and all of the second, is still read.
    assert first == replace(
        second, **{"index": 0, "cuda_index": 0, "uuid": UUID_A, **field_of[function]}
    )
    assert second.mig_mode is False
    assert second.multiprocessors == 132
    assert report.source == "nvml"
    assert report.reason is None
    assert nvml.shutdown_calls == 1


def test_unknown_architecture_gives_no_sm_count():
    device = FakeDevice("Future GPU", UUID_A, 1 << 35, cc=(42, 0), cores=20000)
    assert detect_gpus(nvml=FakeNvml([device]), environ={}).gpus[0].multiprocessors is None


def test_a_lost_gpu_is_listed_without_facts():
    nvml = FakeNvml(two_h100s(nvmlDeviceGetHandleByIndex=NVMLError_GpuIsLost()))
    report = detect_gpus(nvml=nvml, environ={})
    lost, good = report.gpus
    assert lost.name == "unknown (NVML error: GPU is lost)"
    assert (lost.uuid, lost.memory_total_bytes, lost.compute_capability) == (None, None, None)
    assert good.uuid == UUID_B
    assert good.memory_total_bytes == H100_MEMORY
    assert nvml.shutdown_calls == 1


def test_no_gpus_is_a_reason():
    report = detect_gpus(nvml=FakeNvml([]), environ={})
    assert report.source == "nvml"
    assert report.gpus == ()
    assert report.reason == "NVML reports 0 GPUs"
    assert report.driver_version == "550.54.15"


MIG_1 = "MIG-11111111-aaaa-bbbb-cccc-000000000001"
MIG_2 = "MIG-22222222-aaaa-bbbb-cccc-000000000002"


def mig_a100() -> FakeDevice:
    return FakeDevice(
        "NVIDIA A100-SXM4-40GB",
        UUID_A,
        40 << 30,
        cc=(8, 0),
        mig=(1, 1),
        cores=6912,
        migs=[
            FakeDevice("NVIDIA A100-SXM4-40GB MIG 3g.20gb", MIG_1, 20 << 30, sms=42),
            None,
            FakeDevice("NVIDIA A100-SXM4-40GB MIG 1g.5gb", MIG_2, 5 << 30, sms=14),
        ],
    )


def test_mig_instances_are_read():
    report = detect_gpus(nvml=FakeNvml([mig_a100()]), environ={})
    (a100,) = report.gpus
    assert a100.mig_mode is True
    assert a100.multiprocessors == 108
    assert [m.uuid for m in a100.mig_devices] == [MIG_1, MIG_2]
    assert [m.multiprocessors for m in a100.mig_devices] == [42, 14]
    assert [m.memory_total_bytes for m in a100.mig_devices] == [20 << 30, 5 << 30]
    assert all(m.compute_capability == (8, 0) and m.index == 0 for m in a100.mig_devices)
    assert a100.to_record()["mig_devices"][1]["uuid"] == MIG_2  # type: ignore[index]


def test_cuda_visible_devices_selects_a_mig_instance():
    report = detect_gpus(nvml=FakeNvml([mig_a100()]), environ={"CUDA_VISIBLE_DEVICES": "MIG-2222"})
    (visible,) = report.visible
    assert visible.uuid == MIG_2
    assert visible.cuda_index == 0
    assert report.gpus[0].cuda_index is None
    assert report.gpus[0].mig_devices[1].cuda_index == 0
    assert report.reason is None


# -- CUDA_VISIBLE_DEVICES ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (None, None),
        ("", []),
        ("-1", []),
        ("NoDevFiles", []),
        ("1,0", [1, 0]),
        (" 1 , 0 ", [1, 0]),
        ("0,7,1", [0, 7, 1]),
        ("1gpu,2", [1, 2]),
        ("0,-1,1", [0]),
        ("0,x,1", [0]),
        ("0,0", []),
        ("GPU-abc,GPU-def", ["GPU-abc", "GPU-def"]),
        ("GPU-abc,1", ["GPU-abc"]),
        ("GPU-abc,GPU-abc", []),
        ("MIG-abc,GPU-def", ["MIG-abc"]),
        ("1,GPU-abc", [1]),
    ],
)
def test_parse_cuda_visible_devices(value, parsed):
    assert parse_cuda_visible_devices(value) == parsed


def _gpus() -> tuple[GpuInfo, ...]:
    return (
        GpuInfo(0, "A", UUID_A, 1, (9, 0), False, 132),
        GpuInfo(1, "B", UUID_B, 1, (9, 0), False, 132),
    )


@pytest.mark.parametrize(
    ("value", "uuids"),
    [
        (None, [UUID_A, UUID_B]),
        ("1,0", [UUID_B, UUID_A]),
        ("1", [UUID_B]),
        ("GPU-abc", [UUID_A]),
        ("GPU-def6,GPU-abc1", [UUID_B, UUID_A]),
        (UUID_B, [UUID_B]),
        ("", []),
        ("-1", []),
        ("NoDevFiles", []),
        ("0,7,1", [UUID_A]),  # 7 does not exist: the list stops there
        ("2", []),
        ("GPU-", []),  # ambiguous: matches both
        ("GPU-abc,GPU-999,GPU-def", [UUID_A]),  # no match stops the list
        ("GPU-abc,GPU-abc1", []),  # the same device twice selects nothing
        ("MIG-abc", []),  # no MIG instances
    ],
)
def test_visible_devices(value, uuids):
    environ = {} if value is None else {"CUDA_VISIBLE_DEVICES": value}
    visible = visible_devices(environ, _gpus())
    assert [g.uuid for g in visible] == uuids
    assert [g.cuda_index for g in visible] == list(range(len(uuids)))


def test_detect_gpus_applies_cuda_visible_devices():
    report = detect_gpus(nvml=FakeNvml(two_h100s()), environ={"CUDA_VISIBLE_DEVICES": "1,0"})
    assert [g.cuda_index for g in report.gpus] == [1, 0]
    assert [g.uuid for g in report.visible] == [UUID_B, UUID_A]
    assert report.reason is None


@pytest.mark.parametrize("value", ["", "-1", "NoDevFiles", "3"])
def test_no_visible_gpu_is_a_reason(value):
    report = detect_gpus(nvml=FakeNvml(two_h100s()), environ={"CUDA_VISIBLE_DEVICES": value})
    assert report.source == "nvml"
    assert len(report.gpus) == 2  # still listed: they exist
    assert report.visible == ()
    assert report.reason == f"0 GPUs visible (CUDA_VISIBLE_DEVICES={value!r})"


def test_match_by_uuid():
    gpus = (*_gpus(), GpuInfo(0, "mig", None, 1, None, True, 14))
    mig_parent = GpuInfo(
        2,
        "C",
        "GPU-c",
        1,
        (8, 0),
        True,
        None,
        mig_devices=(GpuInfo(2, "C MIG", MIG_1, 1, (8, 0), True, 42),),
    )
    torch_style = [
        UUID_B[len("GPU-") :],  # torch's bare form
        UUID_A.upper(),
        "00000000-0000-0000-0000-000000000000",
        MIG_1[len("MIG-") :],
    ]
    matched = match_by_uuid((*gpus, mig_parent), torch_style)
    assert [m.uuid if m else None for m in matched] == [UUID_B, UUID_A, None, MIG_1]
    assert [m.cuda_index if m else None for m in matched] == [0, 1, None, 3]


# -- the torch probe, in a child process ------------------------------------------------


def _fake_probe(monkeypatch, code: str) -> None:
    monkeypatch.setattr(gpu_module, "_torch_installed", lambda: True)
    monkeypatch.setattr(gpu_module, "_TORCH_PROBE", textwrap.dedent(code))
    # The fake probe stands for a CUDA build: skip the CPU-only shortcut.
    monkeypatch.setattr(gpu_module, "_cpu_only_torch", lambda: None)


def test_probe_devices_are_read(monkeypatch):
    devices = [
        {
            "name": "NVIDIA H200",
            "uuid": "abc12345-1111-2222-3333-444444444444",
            "total_memory": 150_000_000_000,
            "major": 9,
            "minor": 0,
            "multi_processor_count": 132,
        }
    ]
    payload = json.dumps({"torch": "2.13.0", "cuda": "12.8", "devices": devices})
    _fake_probe(monkeypatch, f"print('noise'); print({gpu_module._PROBE_MARK!r} + {payload!r})")
    report = detect_gpus(import_nvml=_no_pynvml, environ={})
    assert report.source == "torch (subprocess)"
    assert report.reason is None
    (g,) = report.gpus
    assert g == GpuInfo(0, "NVIDIA H200", UUID_A, 150_000_000_000, (9, 0), None, 132, cuda_index=0)


def test_probe_with_no_visible_device(monkeypatch):
    payload = json.dumps({"torch": "2.13.0", "cuda": "12.8", "devices": []})
    _fake_probe(monkeypatch, f"print({gpu_module._PROBE_MARK!r} + {payload!r})")
    report = detect_gpus(import_nvml=_no_pynvml, environ={"CUDA_VISIBLE_DEVICES": ""})
    assert report.source == "torch (subprocess)"
    assert report.reason == (
        "nvidia-ml-py is not installed (no module pynvml); 0 GPUs visible (CUDA_VISIBLE_DEVICES='')"
    )


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("import time; time.sleep(30)", "the torch probe did not finish in 0.5 s"),
        ("import sys; sys.exit('no luck')", "the torch probe failed (exit 1): no luck"),
        ("print('nothing useful')", "the torch probe failed (exit 0): no output"),
        (
            f"print({gpu_module._PROBE_MARK!r} + '{{}}')",
            "the torch probe gave unreadable output: 'devices'",
        ),
    ],
)
def test_probe_failure_is_a_reason(monkeypatch, code, reason):
    _fake_probe(monkeypatch, code)
    report = detect_gpus(
        import_nvml=_no_pynvml, environ={}, timeout_s=0.5 if "sleep" in code else 60
    )
    assert report.source == "none"
    assert report.gpus == ()
    assert report.reason == f"nvidia-ml-py is not installed (no module pynvml); {reason}"


def test_probe_env_takes_the_device_selection():
    env = gpu_module._probe_env({"CUDA_VISIBLE_DEVICES": "1"})
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert "CUDA_DEVICE_ORDER" not in env
    assert env.get("PATH") == os.environ.get("PATH")


def test_torch_probe_on_a_cpu_build():
    torch = pytest.importorskip("torch", reason="the torch fallback needs torch installed")
    if torch.version.cuda is not None:
        pytest.skip(f"torch {torch.__version__} is a CUDA build; this checks a CPU-only one")
    report = detect_gpus(import_nvml=_no_pynvml, environ={}, timeout_s=90)
    assert report.gpus == ()
    assert report.reason == (
        f"nvidia-ml-py is not installed (no module pynvml); "
        f"torch {torch.__version__} is a CPU-only build"
    )


def test_torch_probe_subprocess_on_a_cpu_build(monkeypatch):
    torch = pytest.importorskip("torch", reason="the torch fallback needs torch installed")
    if torch.version.cuda is not None:
        pytest.skip(f"torch {torch.__version__} is a CUDA build; this checks a CPU-only one")
    monkeypatch.setattr(gpu_module, "_cpu_only_torch", lambda: None)  # force the real probe
    report = detect_gpus(import_nvml=_no_pynvml, environ={}, timeout_s=90)
    assert report.source == "torch (subprocess)"
    assert report.gpus == ()
    assert report.reason == (
        f"nvidia-ml-py is not installed (no module pynvml); "
        f"torch {torch.__version__} is a CPU-only build"
    )


def test_cpu_only_torch_is_known_without_a_probe(monkeypatch):
    torch = pytest.importorskip("torch", reason="needs torch installed")
    if torch.version.cuda is not None or torch.version.hip is not None:
        pytest.skip(f"torch {torch.__version__} is a GPU build; this checks a CPU-only one")
    assert gpu_module._cpu_only_torch() == torch.__version__

    def no_probe(*args, **kwargs):
        raise AssertionError("the child probe ran for a CPU-only torch")

    monkeypatch.setattr(gpu_module.subprocess, "run", no_probe)
    report = detect_gpus(import_nvml=_no_pynvml, environ={})
    assert report.gpus == ()
    assert "CPU-only build" in (report.reason or "")


# -- this machine -----------------------------------------------------------------------


def test_this_machine_reports_without_raising():
    start = time.monotonic()
    report = detect_gpus()
    elapsed = time.monotonic() - start
    assert elapsed < 60, elapsed
    assert report.source in ("nvml", "torch (subprocess)", "none")
    assert (report.reason is None) == bool(report.visible), report
    json.dumps(report.to_record())
    if ctypes.util.find_library("nvidia-ml") is None and not os.path.exists("/dev/nvidiactl"):
        # No NVIDIA driver here (this project's CPU machines): no GPU, and NVML says why.
        assert report.gpus == ()
        assert report.reason is not None
        assert "no NVIDIA driver library" in report.reason


def test_detection_leaves_torch_and_cuda_alone():
    """Detection neither imports torch into this process nor initializes CUDA in it."""
    out = _run_child(
        """
        import json, sys
        from pytest_hwperf.hardware.gpu import detect_gpus
        detect_gpus()
        imported = "torch" in sys.modules
        try:
            import torch
        except ImportError:
            print(json.dumps([imported, False]))
        else:
            detect_gpus()
            print(json.dumps([imported, torch.cuda.is_initialized()]))
        """
    )
    assert json.loads(out) == [False, False]


# -- on a real GPU ----------------------------------------------------------------------


def _nvml_report_or_skip() -> GpuReport:
    report = detect_gpus(torch_fallback=False)
    assert report.source == "nvml", report.reason
    if any(g.mig_mode for g in report.gpus):
        pytest.skip("MIG is enabled: CUDA devices are MIG instances, not the GPUs compared here")
    return report


@pytest.mark.gpu
def test_nvml_facts_match_torch(cuda_device):
    import torch

    report = _nvml_report_or_skip()
    assert report.reason is None
    assert report.driver_version
    assert report.cuda_driver_version
    count = torch.cuda.device_count()
    assert len(report.visible) == count >= 1
    for i, nvml_gpu in enumerate(report.visible):
        props = torch.cuda.get_device_properties(i)
        assert nvml_gpu.cuda_index == i
        assert nvml_gpu.uuid == f"GPU-{props.uuid}"
        assert nvml_gpu.memory_total_bytes is not None
        assert abs(nvml_gpu.memory_total_bytes - props.total_memory) <= 0.01 * props.total_memory
        assert nvml_gpu.compute_capability == torch.cuda.get_device_capability(i)
        if nvml_gpu.multiprocessors is not None:
            assert nvml_gpu.multiprocessors == props.multi_processor_count
        assert props.name in nvml_gpu.name or nvml_gpu.name in props.name


@pytest.mark.gpu
def test_match_by_uuid_maps_cuda_devices(cuda_device):
    import torch

    report = _nvml_report_or_skip()
    uuids = [
        str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())
    ]
    matched = match_by_uuid(report.gpus, uuids)
    assert all(m is not None for m in matched)
    assert [m.cuda_index for m in matched if m] == list(range(len(uuids)))
    assert [m.uuid for m in matched if m] == [g.uuid for g in report.visible]


@pytest.mark.gpu
def test_cuda_visible_devices_agrees_with_cuda(cuda_device):
    """For each setting, a child process compares our visible list with what CUDA itself
    enumerates under it."""
    report = _nvml_report_or_skip()
    first = report.gpus[0].uuid
    assert first is not None
    settings = ["0", first[:12], first, "", "-1", "NoDevFiles", "0,7", "0,0"]
    if len(report.gpus) >= 2:
        settings += ["1,0", "1", f"{report.gpus[1].uuid},{first}"]
    code = """
        import json
        import torch
        from pytest_hwperf.hardware.gpu import detect_gpus
        ours = [g.uuid for g in detect_gpus(torch_fallback=False).visible]
        cuda = [f"GPU-{torch.cuda.get_device_properties(i).uuid}"
                for i in range(torch.cuda.device_count())]
        print(json.dumps([ours, cuda]))
        """
    for setting in settings:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": setting, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        ours, cuda = json.loads(_run_child(code, env=env))
        assert ours == cuda, setting
