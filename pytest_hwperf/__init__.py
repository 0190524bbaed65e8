"""pytest-hwperf: hardware-aware performance regression testing of ML models.

The public surface is small: the `Hwperf` handle (the `hwperf` fixture), the
`Measurement` it records with its `Statistics` and `BudgetVerdict`s, `Outcome`, the
serving config `WorkerConfig` (to parametrize `worker_config` with), and the warning
classes. Everything else is private. Names are resolved on first use, so that
importing the plugin at pytest start-up does not import numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_hwperf.judge.budgets import Outcome
from pytest_hwperf.warnings import HwperfEnvironmentWarning, HwperfWarning

if TYPE_CHECKING:
    from pytest_hwperf.judge.compliance import BudgetVerdict
    from pytest_hwperf.measure import Measurement, Statistics
    from pytest_hwperf.plugin.fixtures import Hwperf
    from pytest_hwperf.workers.config import WorkerConfig

__all__ = [
    "BudgetVerdict",
    "Hwperf",
    "HwperfEnvironmentWarning",
    "HwperfWarning",
    "Measurement",
    "Outcome",
    "Statistics",
    "WorkerConfig",
    "__version__",
]

__version__ = "0.1.0"

_LAZY = {
    "Hwperf": "pytest_hwperf.plugin.fixtures",
    "Measurement": "pytest_hwperf.measure",
    "Statistics": "pytest_hwperf.measure",
    "BudgetVerdict": "pytest_hwperf.judge.compliance",
    "WorkerConfig": "pytest_hwperf.workers.config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_hwperf' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
