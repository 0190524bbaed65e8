"""pytest-hwperf: hardware-aware performance regression testing of ML models.

The public surface is small: the `Hwperf` handle (the `hwperf` fixture), the
`Measurement` it records, and the warning classes. Everything else is private.
"""

from __future__ import annotations

from pytest_hwperf.fixtures import Hwperf
from pytest_hwperf.measure import Measurement, Statistics
from pytest_hwperf.verdict import BudgetVerdict, Outcome
from pytest_hwperf.warnings import HwperfEnvironmentWarning, HwperfWarning

__all__ = [
    "BudgetVerdict",
    "Hwperf",
    "HwperfEnvironmentWarning",
    "HwperfWarning",
    "Measurement",
    "Outcome",
    "Statistics",
    "__version__",
]

__version__ = "0.1.0"
