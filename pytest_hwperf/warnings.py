"""Warning classes of pytest-hwperf.

Problems in the environment (no NVML, an unreadable cgroup file, a profiler that
cannot run) degrade a result and say so through one of these; they never crash a run.
The plugin's own test suite turns them into errors.
"""

from __future__ import annotations

__all__ = ["HwperfEnvironmentWarning", "HwperfOversubscriptionWarning", "HwperfWarning"]


class HwperfWarning(UserWarning):
    """Base class of every warning pytest-hwperf emits."""


class HwperfEnvironmentWarning(HwperfWarning):
    """Something about this machine could not be read; the result is degraded and says so."""


class HwperfOversubscriptionWarning(HwperfWarning):
    """A workers x threads config, declared or observed, above the usable cores, under
    --hwperf-oversubscription=warn."""
