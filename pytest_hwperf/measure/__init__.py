"""Measuring: device synchronisation, the sampling loop and its results."""

from __future__ import annotations

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
