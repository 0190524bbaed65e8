"""Device synchronisation, so that a sample includes the device's work.

CUDA and MPS run kernels asynchronously: a call returns once its work is queued, and
timing it without a synchronisation measures the enqueue (public examples under-report
by ~45x). Each sample therefore ends with a synchronisation of the measured device;
the method is recorded with every result. torch is imported only when a device other
than the CPU is asked for.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DeviceError", "DeviceSync", "device_sync", "normalize_device"]

_DEVICE_RE = re.compile(r"^(cpu|cuda|mps|xpu)(?::(\d+))?$")


class DeviceError(ValueError):
    """The device asked for cannot be used here; the message says why."""


@dataclass(frozen=True)
class DeviceSync:
    """How samples on `device` are closed: `synchronize` is None for the CPU."""

    device: str
    method: str
    synchronize: Callable[[], None] | None


def normalize_device(device: object) -> str:
    """'cuda' -> 'cuda:0'; torch.device objects and strings alike; bad input -> DeviceError."""
    text = str(device).strip().lower()
    match = _DEVICE_RE.match(text)
    if match is None:
        raise DeviceError(
            f"unknown device {device!r}: expected 'cpu', 'cuda', 'cuda:N', 'mps' or 'xpu'"
        )
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        return "cpu"
    if kind == "mps":
        return "mps"
    return f"{kind}:{index or 0}"


def _torch() -> object:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DeviceError(
            "measuring on a GPU device needs PyTorch: pip install 'pytest-hwperf[torch]'"
        ) from exc
    return torch


def device_sync(device: object | None) -> DeviceSync:
    """The synchronisation for `device` (None and 'cpu' need none)."""
    if device is None:
        return DeviceSync("cpu", "none", None)
    name = normalize_device(device)
    if name == "cpu":
        return DeviceSync("cpu", "none", None)
    if name.startswith("cuda:"):
        return _cuda_sync(name)
    if name == "mps":
        return _mps_sync()
    kind = name.split(":", 1)[0]
    raise DeviceError(f"device {name!r}: timing {kind} devices is not supported yet")


def _cuda_sync(name: str) -> DeviceSync:
    torch = _torch()
    cuda = torch.cuda  # type: ignore[attr-defined]
    if not cuda.is_available():
        raise DeviceError(f"device {name!r}: CUDA is not available on this machine")
    index = int(name.split(":", 1)[1])
    count = int(cuda.device_count())
    if index >= count:
        raise DeviceError(f"device {name!r}: this machine has {count} CUDA device(s)")
    torch_device = torch.device(name)  # type: ignore[attr-defined]

    def synchronize() -> None:
        cuda.synchronize(torch_device)

    return DeviceSync(name, "cuda-synchronize", synchronize)


def _mps_sync() -> DeviceSync:
    torch = _torch()
    backend = torch.backends.mps  # type: ignore[attr-defined]
    if not backend.is_available():
        raise DeviceError("device 'mps': the MPS backend is not available on this machine")
    mps = torch.mps  # type: ignore[attr-defined]
    return DeviceSync("mps", "mps-synchronize", mps.synchronize)


def torch_imported() -> bool:
    """True when torch is already imported (reading its state must not import it)."""
    return "torch" in sys.modules
