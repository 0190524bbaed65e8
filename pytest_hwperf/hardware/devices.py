"""Which devices this machine can measure on, and why one it lacks is missing.

Device names are torch's: "cpu", "cuda:N", "mps". CUDA devices come from the GPU
report (NVML, no CUDA context in this process); MPS is asked of torch, on macOS only.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_hwperf.hardware.gpu import GpuReport

__all__ = ["device_id", "device_unavailable", "mps_available", "present_devices"]

# A variable, not `sys.platform` in each condition: type checkers would call the other
# platforms' branches unreachable.
_MACOS: bool = sys.platform == "darwin"


def mps_available() -> bool:
    """Apple's Metal backend: only on macOS, and only asked of torch there."""
    if not _MACOS:
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.backends.mps.is_available())


def present_devices(gpus: GpuReport) -> list[str]:
    """Every device present: the CPU, each CUDA device CUDA will see, MPS where available."""
    devices = ["cpu"]
    devices.extend(f"cuda:{g.cuda_index}" for g in gpus.visible)
    if mps_available():
        devices.append("mps")
    return devices


def device_unavailable(device: str, gpus: GpuReport) -> str | None:
    """Why `device` (normalised, e.g. "cuda:1") cannot be used here, or None when it can."""
    if device == "cpu":
        return None
    if device.startswith("cuda:"):
        index = int(device.split(":", 1)[1])
        count = len(gpus.visible)
        if count == 0:
            return f"no CUDA device: {gpus.reason or 'none found'}"
        if index >= count:
            return f"this machine has {count} visible CUDA device(s) (cuda:0..cuda:{count - 1})"
        return None
    if device == "mps":
        if not _MACOS:
            return "MPS (Apple Metal) exists only on macOS"
        return None if mps_available() else "torch reports the MPS backend unavailable"
    return f"pytest-hwperf does not measure on {device!r} devices yet"


def device_id(device: str) -> str:
    """The test id of a device: "cpu", "cuda" (for cuda:0), "cuda:1", "mps"."""
    return "cuda" if device == "cuda:0" else device
