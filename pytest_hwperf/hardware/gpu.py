"""The GPUs of this machine, read without creating a CUDA context in this process.

A CUDA context made in the pytest process breaks fork-based workers later (xdist,
multiprocessing), so detection goes through NVML (the `nvidia-ml-py` package, module
`pynvml`), which only talks to the driver. Only when NVML cannot answer is torch asked,
and then in a child process. No GPU is a normal state: every failure becomes a stated
reason in the report, never an exception.

`CUDA_VISIBLE_DEVICES` is applied the way CUDA (and torch's NVML-based device count)
applies it (hardware/cuda_visible.py), so each GPU carries the index CUDA will give it
here (`cuda_index`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from importlib import metadata
from types import ModuleType
from typing import Any

from pytest_hwperf.hardware.cuda_visible import (
    match_by_uuid,
    parse_cuda_visible_devices,
    visible_devices,
    with_cuda_indices,
)

# Re-exported: CUDA's device selection lives beside this module.
from pytest_hwperf.hardware.probing import quiet_probe

__all__ = [
    "GpuInfo",
    "GpuReport",
    "cuda_version_string",
    "detect_gpus",
    "match_by_uuid",
    "nvml_reason",
    "parse_cuda_visible_devices",
    "visible_devices",
]

TORCH_PROBE_TIMEOUT_S = 30.0

# CUDA cores per streaming multiprocessor by compute capability (as in the CUDA samples'
# helper_cuda.h). NVML gives the SM count directly only for MIG device handles; for a
# whole GPU it is derived from nvmlDeviceGetNumGpuCores. Architectures not listed give
# None rather than a guess.
_CORES_PER_SM: dict[tuple[int, int], int] = {
    (3, 0): 192,
    (3, 2): 192,
    (3, 5): 192,
    (3, 7): 192,
    (5, 0): 128,
    (5, 2): 128,
    (5, 3): 128,
    (6, 0): 64,
    (6, 1): 128,
    (6, 2): 128,
    (7, 0): 64,
    (7, 2): 64,
    (7, 5): 64,
    (8, 0): 64,
    (8, 6): 128,
    (8, 7): 128,
    (8, 9): 128,
    (9, 0): 128,
}

_NVML_LIBRARY = "nvml.dll" if sys.platform.startswith("win") else "libnvidia-ml.so.1"

# NVMLError subclasses (pynvml names one per error code) that have a plainer explanation.
_NVML_REASONS = {
    "NVMLError_LibraryNotFound": f"no NVIDIA driver library ({_NVML_LIBRARY} not found)",
    "NVMLError_DriverNotLoaded": "NVIDIA driver not loaded",
    "NVMLError_NoPermission": "no permission to query the NVIDIA driver",
    "NVMLError_LibRmVersionMismatch": (
        "NVIDIA driver and its library have different versions (reload the driver or reboot)"
    ),
    "NVMLError_FunctionNotFound": "the NVIDIA driver is older than nvidia-ml-py expects",
}


@dataclass(frozen=True)
class GpuInfo:
    """One GPU (or one MIG instance, inside `GpuInfo.mig_devices` of its GPU).

    `index` is NVML's index (PCI bus order); for a MIG instance it is its parent GPU's,
    and for a GPU reported by the torch fallback it is CUDA's, since NVML's is unknown.
    `cuda_index` is the index CUDA gives the device in this process after
    `CUDA_VISIBLE_DEVICES`, None when CUDA will not see it. A fact the driver would
    not give is None, not a guess.
    """

    index: int
    name: str
    uuid: str | None
    memory_total_bytes: int | None
    compute_capability: tuple[int, int] | None
    mig_mode: bool | None
    multiprocessors: int | None
    cuda_index: int | None = None
    mig_devices: tuple[GpuInfo, ...] = ()

    def to_record(self) -> dict[str, object]:
        cc = self.compute_capability
        record: dict[str, object] = {
            "index": self.index,
            "cuda_index": self.cuda_index,
            "name": self.name,
            "uuid": self.uuid,
            "memory_total_bytes": self.memory_total_bytes,
            "compute_capability": f"{cc[0]}.{cc[1]}" if cc is not None else None,
            "mig_mode": self.mig_mode,
            "multiprocessors": self.multiprocessors,
        }
        if self.mig_devices:
            record["mig_devices"] = [m.to_record() for m in self.mig_devices]
        return record


@dataclass(frozen=True)
class GpuReport:
    """What is known about the GPUs and where it came from.

    `source` is what answered: "nvml", "torch (subprocess)", or "none" when nothing
    could. `reason` says why no GPU is usable by CUDA here (no driver library, no
    nvidia-ml-py, `CUDA_VISIBLE_DEVICES` hiding them all, ...); None when one is.
    `gpus` holds every GPU NVML sees, visible to CUDA or not.
    """

    gpus: tuple[GpuInfo, ...]
    driver_version: str | None
    cuda_driver_version: str | None
    source: str
    reason: str | None
    cuda_visible_devices: str | None = None

    @property
    def visible(self) -> tuple[GpuInfo, ...]:
        """The devices CUDA will see, in CUDA's order (MIG instances when selected)."""
        found = [
            device
            for gpu in self.gpus
            for device in (gpu, *gpu.mig_devices)
            if device.cuda_index is not None
        ]
        return tuple(sorted(found, key=lambda d: d.cuda_index or 0))

    def to_record(self) -> dict[str, object]:
        return {
            "source": self.source,
            "reason": self.reason,
            "driver_version": self.driver_version,
            "cuda_driver_version": self.cuda_driver_version,
            "cuda_visible_devices": self.cuda_visible_devices,
            "count": len(self.gpus),
            "visible_count": len(self.visible),
            "gpus": [gpu.to_record() for gpu in self.gpus],
        }


def cuda_version_string(version: int) -> str:
    """NVML's and CUDA's integer version (12040) as people write it ("12.4")."""
    return f"{version // 1000}.{(version % 1000) // 10}"


# -- NVML -------------------------------------------------------------------------------


def _import_pynvml() -> ModuleType:
    return importlib.import_module("pynvml")


def _text(value: object) -> str | None:
    """NVML strings; older nvidia-ml-py versions return bytes."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _optional(nvml: ModuleType, function: str, *args: object) -> Any:
    """One NVML query, None when this GPU, driver or nvidia-ml-py version cannot answer
    it: one unsupported fact (MIG on a consumer GPU) must not lose the others."""
    fn = getattr(nvml, function, None)
    if fn is None:
        return None
    try:
        return fn(*args)
    except getattr(nvml, "NVMLError", ()):
        return None


def nvml_reason(exc: BaseException) -> str:
    """What went wrong, in a line, for anything NVML (or pynvml) raised."""
    name = type(exc).__name__
    try:
        detail = str(exc)
    except Exception:  # pynvml's __str__ asks the library, which may be the problem
        detail = name
    if name in _NVML_REASONS:
        return _NVML_REASONS[name]
    if name.startswith("NVMLError"):
        return f"NVML error: {detail}"
    return f"NVML failed: {name}: {detail}"


def _multiprocessors(nvml: ModuleType, handle: object, cc: tuple[int, int] | None) -> int | None:
    attributes = _optional(nvml, "nvmlDeviceGetAttributes", handle)
    count = getattr(attributes, "multiprocessorCount", None)
    if isinstance(count, int) and count > 0:
        return count
    cores = _optional(nvml, "nvmlDeviceGetNumGpuCores", handle)
    per_sm = _CORES_PER_SM.get(cc) if cc is not None else None
    if isinstance(cores, int) and per_sm and cores > 0 and cores % per_sm == 0:
        return cores // per_sm
    return None


def _memory_total(nvml: ModuleType, handle: object) -> int | None:
    total = getattr(_optional(nvml, "nvmlDeviceGetMemoryInfo", handle), "total", None)
    return int(total) if total is not None else None


def _mig_devices(
    nvml: ModuleType, handle: object, index: int, cc: tuple[int, int] | None
) -> tuple[GpuInfo, ...]:
    slots = _optional(nvml, "nvmlDeviceGetMaxMigDeviceCount", handle) or 0
    devices: list[GpuInfo] = []
    for slot in range(int(slots)):
        mig = _optional(nvml, "nvmlDeviceGetMigDeviceHandleByIndex", handle, slot)
        if mig is None:  # an empty slot answers NotFound
            continue
        attributes = _optional(nvml, "nvmlDeviceGetAttributes", mig)
        count = getattr(attributes, "multiprocessorCount", None)
        devices.append(
            GpuInfo(
                index=index,
                name=_text(_optional(nvml, "nvmlDeviceGetName", mig)) or "unknown MIG device",
                uuid=_text(_optional(nvml, "nvmlDeviceGetUUID", mig)),
                memory_total_bytes=_memory_total(nvml, mig),
                compute_capability=cc,
                mig_mode=True,
                multiprocessors=int(count) if isinstance(count, int) else None,
            )
        )
    return tuple(devices)


def _read_gpu(nvml: ModuleType, index: int) -> GpuInfo:
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
    except getattr(nvml, "NVMLError", ()) as exc:
        # A lost or forbidden GPU still counts; its facts are unknown.
        return GpuInfo(index, f"unknown ({nvml_reason(exc)})", None, None, None, None, None)
    raw_cc = _optional(nvml, "nvmlDeviceGetCudaComputeCapability", handle)
    cc = (int(raw_cc[0]), int(raw_cc[1])) if raw_cc is not None else None
    raw_mig = _optional(nvml, "nvmlDeviceGetMigMode", handle)
    mig = (
        int(raw_mig[0]) == int(getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1))
        if raw_mig is not None
        else None
    )
    return GpuInfo(
        index=index,
        name=_text(_optional(nvml, "nvmlDeviceGetName", handle)) or "unknown",
        uuid=_text(_optional(nvml, "nvmlDeviceGetUUID", handle)),
        memory_total_bytes=_memory_total(nvml, handle),
        compute_capability=cc,
        mig_mode=mig,
        multiprocessors=_multiprocessors(nvml, handle, cc),
        mig_devices=_mig_devices(nvml, handle, index, cc) if mig else (),
    )


def _cuda_driver_version(nvml: ModuleType) -> str | None:
    for function in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
        version = _optional(nvml, function)
        if isinstance(version, int) and version > 0:
            return cuda_version_string(version)
    return None


def _from_nvml(
    nvml: ModuleType | None,
    import_nvml: Callable[[], ModuleType],
    environ: Mapping[str, str],
) -> GpuReport | str:
    """The report from NVML, or why NVML could not give one."""
    if nvml is None:
        try:
            nvml = import_nvml()
        except ImportError:
            return "nvidia-ml-py is not installed (no module pynvml)"
    # Detection runs while the session starts; an odd driver or library must cost the
    # GPU facts, not the session, so anything NVML raises becomes the reason.
    try:
        nvml.nvmlInit()
    except Exception as exc:
        return nvml_reason(exc)
    try:
        driver = _text(_optional(nvml, "nvmlSystemGetDriverVersion"))
        cuda = _cuda_driver_version(nvml)
        gpus = tuple(_read_gpu(nvml, i) for i in range(int(nvml.nvmlDeviceGetCount())))
    except Exception as exc:
        return nvml_reason(exc)
    finally:
        with contextlib.suppress(Exception):  # nothing left to lose
            nvml.nvmlShutdown()
    cvd = environ.get("CUDA_VISIBLE_DEVICES")
    visible = visible_devices(environ, gpus)
    reason = None
    if not gpus:
        reason = "NVML reports 0 GPUs"
    elif not visible:
        reason = f"0 GPUs visible (CUDA_VISIBLE_DEVICES={cvd!r})"
    return GpuReport(
        gpus=with_cuda_indices(gpus, visible),
        driver_version=driver,
        cuda_driver_version=cuda,
        source="nvml",
        reason=reason,
        cuda_visible_devices=cvd,
    )


# -- torch, in a child process ----------------------------------------------------------

_PROBE_MARK = "HWPERF-GPU-PROBE:"

# Run by `python -c`: CUDA is initialized in the child, never in the pytest process.
_TORCH_PROBE = f"""
import json
import torch
out = {{"torch": torch.__version__, "cuda": torch.version.cuda, "devices": []}}
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        uuid = getattr(p, "uuid", None)
        out["devices"].append({{
            "name": p.name,
            "uuid": str(uuid) if uuid is not None else None,
            "total_memory": int(p.total_memory),
            "major": int(p.major),
            "minor": int(p.minor),
            "multi_processor_count": int(p.multi_processor_count),
        }})
print({_PROBE_MARK!r} + json.dumps(out))
"""


def _probe_env(environ: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with environ's CUDA device selection."""
    env = dict(os.environ)
    for key in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"):
        if key in environ:
            env[key] = environ[key]
        else:
            env.pop(key, None)
    return env


def _torch_installed() -> bool:
    """Whether torch can be imported, learned without importing it."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def _cpu_only_torch() -> str | None:
    """The installed torch's version when it is a CPU-only build (known without a probe).

    A loaded torch says so itself (no CUDA and no ROCm version); otherwise the wheel's
    local version tag ("2.13.0+cpu") does. Either spares the seconds of a child probe.
    """
    torch = sys.modules.get("torch")
    version_info = getattr(torch, "version", None)
    if version_info is not None:
        if (
            getattr(version_info, "cuda", None) is None
            and getattr(version_info, "hip", None) is None
        ):
            return str(getattr(torch, "__version__", "?"))
        return None
    try:
        installed = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None
    return installed if installed.endswith("+cpu") else None


def _from_torch(environ: Mapping[str, str], timeout_s: float) -> GpuReport | str:
    """The report from torch in a child process, or why it could not give one."""
    if not _torch_installed():
        return "torch is not installed"
    cpu_only = _cpu_only_torch()
    if cpu_only is not None:
        return f"torch {cpu_only} is a CPU-only build"
    try:
        done = subprocess.run(
            [sys.executable, "-c", _TORCH_PROBE],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=_probe_env(environ),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"the torch probe did not finish in {timeout_s:g} s"
    except OSError as exc:
        return f"the torch probe could not start: {exc}"
    line = next(
        (ln for ln in reversed(done.stdout.splitlines()) if ln.startswith(_PROBE_MARK)), None
    )
    if done.returncode != 0 or line is None:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"the torch probe failed (exit {done.returncode}): {last}"
    try:
        data = json.loads(line[len(_PROBE_MARK) :])
        gpus = tuple(
            GpuInfo(
                index=i,
                name=str(d["name"]),
                uuid=f"GPU-{d['uuid']}" if d.get("uuid") else None,
                memory_total_bytes=int(d["total_memory"]),
                compute_capability=(int(d["major"]), int(d["minor"])),
                mig_mode=None,
                multiprocessors=int(d["multi_processor_count"]),
                cuda_index=i,  # torch has applied CUDA_VISIBLE_DEVICES already
            )
            for i, d in enumerate(data["devices"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        return f"the torch probe gave unreadable output: {exc}"
    cvd = environ.get("CUDA_VISIBLE_DEVICES")
    reason = None
    if not gpus:
        if data.get("cuda") is None:
            reason = f"torch {data.get('torch')} is a CPU-only build"
        elif cvd is not None:
            reason = f"0 GPUs visible (CUDA_VISIBLE_DEVICES={cvd!r})"
        else:
            reason = f"torch {data.get('torch')} (CUDA {data.get('cuda')}) sees no CUDA device"
    return GpuReport(
        gpus=gpus,
        driver_version=None,
        cuda_driver_version=None,
        source="torch (subprocess)",
        reason=reason,
        cuda_visible_devices=cvd,
    )


def detect_gpus(
    *,
    nvml: ModuleType | None = None,
    import_nvml: Callable[[], ModuleType] = _import_pynvml,
    environ: Mapping[str, str] | None = None,
    torch_fallback: bool = True,
    timeout_s: float = TORCH_PROBE_TIMEOUT_S,
) -> GpuReport:
    """The GPUs, from NVML, else from torch in a child process; never raises.

    nvml replaces the pynvml module (tests pass a fake); import_nvml replaces how it is
    imported. environ (default os.environ) supplies `CUDA_VISIBLE_DEVICES`. The torch
    fallback runs only when NVML cannot answer and torch is installed, and costs a
    torch import in a child (seconds): callers that ask more than once should keep the
    report. When neither answers, the reason names both failures. The user's warning
    filters do not reach the probing (`quiet_probe`): a legacy import finder's
    ImportWarning under `filterwarnings = error` must not cost the GPU facts.
    """
    with quiet_probe():
        return _detect_gpus(nvml, import_nvml, environ, torch_fallback, timeout_s)


def _detect_gpus(
    nvml: ModuleType | None,
    import_nvml: Callable[[], ModuleType],
    environ: Mapping[str, str] | None,
    torch_fallback: bool,
    timeout_s: float,
) -> GpuReport:
    env = os.environ if environ is None else environ
    nvml_result = _from_nvml(nvml, import_nvml, env)
    if isinstance(nvml_result, GpuReport):
        return nvml_result
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if not torch_fallback:
        return GpuReport((), None, None, "none", nvml_result, cvd)
    torch_result = _from_torch(env, timeout_s)
    if isinstance(torch_result, str):
        return GpuReport((), None, None, "none", f"{nvml_result}; {torch_result}", cvd)
    if torch_result.reason is not None:
        return replace(torch_result, reason=f"{nvml_result}; {torch_result.reason}")
    return torch_result
