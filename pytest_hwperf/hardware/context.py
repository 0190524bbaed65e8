"""The machine as one pytest session sees it: detected once, on first need.

GPU detection can cost seconds (a torch probe in a child process where NVML is
missing, unless the installed torch is a CPU build) and full detection reads psutil and
cgroup files; none of it runs unless a test, the header or a report asks, and none of
it imports a library the tests did not.
The affinity set is read before the conftests load (their imports of torch can pin the
main thread through OpenMP), and handed in.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_hwperf.hardware.cpu import CpuInfo
    from pytest_hwperf.hardware.fingerprint import Fingerprint
    from pytest_hwperf.hardware.gpu import GpuReport
    from pytest_hwperf.hardware.machine import Machine
    from pytest_hwperf.hardware.memory import MemoryInfo

__all__ = ["HardwareContext", "HardwareInfo"]


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
        """The fingerprint: the hardware class, and the versions read from package
        metadata. Nothing is imported for it (a session that never used torch does not
        pay for importing it), and it does not depend on what the tests imported."""
        from pytest_hwperf.hardware.fingerprint import fingerprint

        return fingerprint(self.machine)

    def present_devices(self) -> list[str]:
        from pytest_hwperf.hardware.devices import present_devices

        return present_devices(self.gpus)

    def device_unavailable(self, device: str) -> str | None:
        from pytest_hwperf.hardware.devices import device_unavailable

        return device_unavailable(device, self.gpus)


class HardwareInfo:
    """What the `hwinfo` fixture gives: the machine as this session detected it."""

    def __init__(self, context: HardwareContext) -> None:
        self._context = context

    @property
    def machine(self) -> Machine:
        return self._context.machine

    @property
    def cpu(self) -> CpuInfo:
        return self.machine.cpu

    @property
    def memory(self) -> MemoryInfo:
        return self.machine.memory

    @property
    def gpus(self) -> GpuReport:
        return self._context.gpus

    @property
    def usable_cores(self) -> int:
        return self.machine.cpu.usable_cores

    @property
    def fingerprint(self) -> Fingerprint:
        return self._context.fingerprint

    def to_record(self) -> dict[str, object]:
        record = self.machine.to_record()
        record["fingerprint"] = self.fingerprint.to_record()
        return record
