"""Typed stash keys: where the plugin keeps its state on the config and on items."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from pytest_hwperf.hardware.context import HardwareContext
    from pytest_hwperf.measure.device import DeviceSync
    from pytest_hwperf.measure.result import Measurement
    from pytest_hwperf.plugin.markers import TestSpec
    from pytest_hwperf.plugin.options import Settings
    from pytest_hwperf.workers.config import WorkerConfig
    from pytest_hwperf.workers.placement import Placement

__all__ = [
    "AFFINITY_KEY",
    "CONTEXT_KEY",
    "DEVICE_KEY",
    "MARKER_ERROR_KEY",
    "MEASUREMENTS_KEY",
    "MODELS_KEY",
    "PLACEMENT_KEY",
    "PROFILE_TARGETS_KEY",
    "SETTINGS_KEY",
    "SPEC_KEY",
    "WORKER_CONFIG_KEY",
]

SETTINGS_KEY: pytest.StashKey[Settings] = pytest.StashKey()
SPEC_KEY: pytest.StashKey[TestSpec] = pytest.StashKey()
MARKER_ERROR_KEY: pytest.StashKey[str] = pytest.StashKey()
MEASUREMENTS_KEY: pytest.StashKey[list[Measurement]] = pytest.StashKey()
AFFINITY_KEY: pytest.StashKey[tuple[int, ...]] = pytest.StashKey()
CONTEXT_KEY: pytest.StashKey[HardwareContext] = pytest.StashKey()
DEVICE_KEY: pytest.StashKey[str] = pytest.StashKey()  # the test's `device` fixture value
MODELS_KEY: pytest.StashKey[list[dict[str, object]]] = pytest.StashKey()  # hwperf_model
WORKER_CONFIG_KEY: pytest.StashKey[WorkerConfig] = pytest.StashKey()  # declared or gridded
PLACEMENT_KEY: pytest.StashKey[Placement] = pytest.StashKey()  # an xdist worker's share
# Under --hwperf: each measurement's target and device sync by name, so that a failing one
# can be profiled in the call's makereport (before fixture teardown); popped there.
PROFILE_TARGETS_KEY: pytest.StashKey[dict[str, tuple[Callable[[], object], DeviceSync]]] = (
    pytest.StashKey()
)
