"""Measuring: device synchronisation, the sampling loop and its results.

Names are resolved on first use: importing a light module of this package (the
pytest-benchmark conversion, the thread observer) must not import numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_hwperf.measure.device import DeviceError, DeviceSync, device_sync
    from pytest_hwperf.measure.result import Measurement, Statistics
    from pytest_hwperf.measure.sampler import SamplingPolicy, measure

__all__ = [
    "DeviceError",
    "DeviceSync",
    "Measurement",
    "SamplingPolicy",
    "Statistics",
    "device_sync",
    "measure",
]

_LAZY = {
    "DeviceError": "pytest_hwperf.measure.device",
    "DeviceSync": "pytest_hwperf.measure.device",
    "device_sync": "pytest_hwperf.measure.device",
    "Measurement": "pytest_hwperf.measure.result",
    "Statistics": "pytest_hwperf.measure.result",
    "SamplingPolicy": "pytest_hwperf.measure.sampler",
    "measure": "pytest_hwperf.measure.sampler",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_hwperf.measure' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
