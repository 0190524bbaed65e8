"""The machine as one pytest session sees it: detected once, on first need.

GPU detection can cost seconds (a torch probe in a child process where NVML is
missing), full detection reads psutil and cgroup files, and the fingerprint imports the
measured libraries first; none of it runs unless a test, the header or a report asks.
The affinity set is read before the conftests load (their imports of torch can pin the
main thread through OpenMP), and handed in.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_hwperf.hardware.fingerprint import Fingerprint
    from pytest_hwperf.hardware.gpu import GpuReport
    from pytest_hwperf.hardware.machine import Machine

__all__ = ["HardwareContext"]


class HardwareContext:
    """Lazily detected hardware facts for one session."""

    def __init__(self, affinity: tuple[int, ...] | None) -> None:
        self.affinity = affinity

    @cached_property
    def gpus(self) -> GpuReport:
        from pytest_hwperf.hardware.gpu import detect_gpus

        return detect_gpus()

    @cached_property
    def machine(self) -> Machine:
        from pytest_hwperf.hardware.machine import detect_machine

        return detect_machine(affinity=self.affinity, gpus=self.gpus)

    @cached_property
    def fingerprint(self) -> Fingerprint:
        """The fingerprint, taken with numpy and torch (when installed) imported, so that it
        does not depend on what the tests happened to import first."""
        from pytest_hwperf.hardware.fingerprint import fingerprint
        from pytest_hwperf.hardware.machine import detect_machine, load_measured_libraries

        load_measured_libraries()
        return fingerprint(detect_machine(affinity=self.affinity, gpus=self.gpus))

    def present_devices(self) -> list[str]:
        from pytest_hwperf.hardware.devices import present_devices

        return present_devices(self.gpus)

    def device_unavailable(self, device: str) -> str | None:
        from pytest_hwperf.hardware.devices import device_unavailable

        return device_unavailable(device, self.gpus)
