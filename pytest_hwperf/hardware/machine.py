"""The whole machine in one value: CPU, memory, GPUs, threads, software and host name.

Each part has its own detector; this module only gathers them, so that the fingerprint,
the pytest header, the reports and ``hwperf info`` describe the same detection instead
of each asking the machine again (GPU detection can cost a torch import in a child
process, seconds).
"""

from __future__ import annotations

import importlib
import importlib.util
import socket
from dataclasses import dataclass

from pytest_hwperf.hardware.cpu import CpuInfo, detect_cpu
from pytest_hwperf.hardware.gpu import GpuReport, detect_gpus
from pytest_hwperf.hardware.memory import MemoryInfo, detect_memory
from pytest_hwperf.hardware.probing import quiet_probe
from pytest_hwperf.hardware.threads import thread_settings
from pytest_hwperf.hardware.versions import software_versions

__all__ = ["MEASURED_LIBRARIES", "Machine", "detect_machine", "load_measured_libraries"]


@dataclass(frozen=True)
class Machine:
    """Everything detected about this machine and process, at one moment.

    ``threads`` is :func:`~pytest_hwperf.hardware.threads.thread_settings` (torch threads
    appear only when torch was already imported); ``software`` is
    :func:`~pytest_hwperf.hardware.versions.software_versions`, copied so that a caller
    changing it cannot change the cached original.
    """

    cpu: CpuInfo
    memory: MemoryInfo
    gpus: GpuReport
    threads: dict[str, object]
    software: dict[str, str | None]
    hostname: str

    def to_record(self) -> dict[str, object]:
        """A JSON-ready dict for reports and ``hwperf info --json``."""
        return {
            "hostname": self.hostname,
            "cpu": self.cpu.to_record(),
            "memory": self.memory.to_record(),
            "gpus": self.gpus.to_record(),
            "threads": self.threads,
            "software": dict(self.software),
        }


def _hostname() -> str:
    try:
        return socket.gethostname()
    except OSError:  # a sandbox without uname; the name is only ever informative
        return "unknown"


# Imported by `hwperf info` before it shows the thread pools, which threadpoolctl finds
# only in loaded libraries. A pytest session never imports them for its own sake: the
# fingerprint holds no thread pools and reads versions from package metadata.
MEASURED_LIBRARIES = ("numpy", "torch")


def load_measured_libraries() -> dict[str, str]:
    """Import each of MEASURED_LIBRARIES; name -> "loaded", "not installed" or the failure."""
    status: dict[str, str] = {}
    for name in MEASURED_LIBRARIES:
        try:
            with quiet_probe():  # the user's warning filters are not for our probing
                if importlib.util.find_spec(name) is None:
                    status[name] = "not installed"
                    continue
                importlib.import_module(name)
        except Exception as exc:  # a broken install (missing .so, bad wheel) is a fact
            status[name] = f"import failed: {type(exc).__name__}: {exc}"
        else:
            status[name] = "loaded"
    return status


def detect_machine(
    *,
    affinity: tuple[int, ...] | None = None,
    torch_fallback: bool = True,
    gpus: GpuReport | None = None,
) -> Machine:
    """Detect every part of the machine; never raises for a machine that lacks something.

    ``affinity``: the CPU set read early by :func:`~pytest_hwperf.hardware.cpu.read_affinity`
    (before torch's OpenMP runtime can pin the main thread); None reads it now.
    ``torch_fallback``: whether GPU detection may ask torch in a child process when NVML
    cannot answer (seconds; pass False where the GPU facts from torch are not needed).
    ``gpus``: a GPU report already taken (GPUs do not come and go within a session).
    """
    return Machine(
        cpu=detect_cpu(affinity=affinity),
        memory=detect_memory(),
        gpus=gpus if gpus is not None else detect_gpus(torch_fallback=torch_fallback),
        threads=thread_settings(),
        software=dict(software_versions()),
        hostname=_hostname(),
    )
