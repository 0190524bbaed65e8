"""Hardware requirements (the `hardware` marker's arguments) checked against a machine.

Each unmet requirement becomes one phrase naming what is needed and what this machine
has, so a skip (or, under --hwperf-strict-hardware, a failure) says exactly why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_hwperf.hardware.gpu import GpuInfo
    from pytest_hwperf.hardware.machine import Machine

__all__ = ["HardwareRequirements", "unmet_requirements"]

_GB = 1e9


@dataclass(frozen=True)
class HardwareRequirements:
    """What a test needs. None (or False / 0) means no requirement."""

    gpu: bool = False
    min_gpus: int = 0
    min_cores: int | None = None
    min_memory_gb: float | None = None
    gpu_name: str | None = None
    min_gpu_memory_gb: float | None = None
    min_compute_capability: tuple[int, int] | None = None

    @property
    def gpus_needed(self) -> int:
        needs_any = self.gpu or any(
            v is not None
            for v in (self.gpu_name, self.min_gpu_memory_gb, self.min_compute_capability)
        )
        return max(self.min_gpus, 1 if needs_any else 0)


def _gpu_list(gpus: tuple[GpuInfo, ...]) -> str:
    return ", ".join(g.name for g in gpus) if gpus else "none"


def unmet_requirements(req: HardwareRequirements, machine: Machine) -> list[str]:
    """One phrase per unmet requirement, with the measured value; empty when all are met."""
    unmet: list[str] = []
    cpu = machine.cpu
    if req.min_cores is not None and cpu.usable_cores < req.min_cores:
        unmet.append(
            f"needs >= {req.min_cores} usable cores, this machine has {cpu.usable_cores}"
            f" ({cpu.usable_source})"
        )
    if req.min_memory_gb is not None:
        have_gb = machine.memory.effective_bytes / _GB
        if have_gb < req.min_memory_gb:
            unmet.append(
                f"needs >= {req.min_memory_gb:g} GB of memory, this machine has"
                f" {have_gb:.1f} GB ({machine.memory.cgroup_source})"
            )
    visible = machine.gpus.visible
    needed = req.gpus_needed
    if needed and len(visible) < needed:
        why = f": {machine.gpus.reason}" if not visible and machine.gpus.reason else ""
        what = "a GPU" if needed == 1 else f">= {needed} GPUs"
        unmet.append(f"needs {what}, this machine has {len(visible)}{why}")
    if visible:
        if req.gpu_name is not None and not any(
            req.gpu_name.lower() in g.name.lower() for g in visible
        ):
            unmet.append(f"needs a GPU named like {req.gpu_name!r}, visible: {_gpu_list(visible)}")
        if req.min_gpu_memory_gb is not None:
            best = max((g.memory_total_bytes or 0) for g in visible) / _GB
            if best < req.min_gpu_memory_gb:
                unmet.append(
                    f"needs a GPU with >= {req.min_gpu_memory_gb:g} GB, the largest visible"
                    f" has {best:.1f} GB"
                )
        if req.min_compute_capability is not None:
            known = [g.compute_capability for g in visible if g.compute_capability is not None]
            best_cc = max(known) if known else None
            if best_cc is None or best_cc < req.min_compute_capability:
                want = ".".join(map(str, req.min_compute_capability))
                have = "unknown" if best_cc is None else ".".join(map(str, best_cc))
                unmet.append(f"needs compute capability >= {want}, the best visible GPU has {have}")
    return unmet
