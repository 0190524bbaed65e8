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
        unmet.extend(_gpu_facts_unmet(req, visible))
    return unmet


def _name_ok(req: HardwareRequirements, gpu: GpuInfo) -> bool:
    return req.gpu_name is None or req.gpu_name.lower() in gpu.name.lower()


def _memory_ok(req: HardwareRequirements, gpu: GpuInfo) -> bool:
    if req.min_gpu_memory_gb is None:
        return True
    return (
        gpu.memory_total_bytes is not None and gpu.memory_total_bytes / _GB >= req.min_gpu_memory_gb
    )


def _cc_ok(req: HardwareRequirements, gpu: GpuInfo) -> bool:
    if req.min_compute_capability is None:
        return True
    return (
        gpu.compute_capability is not None and gpu.compute_capability >= req.min_compute_capability
    )


def _gpu_facts_unmet(req: HardwareRequirements, visible: tuple[GpuInfo, ...]) -> list[str]:
    """The GPU facts must hold on one GPU together: an A100 40 GB and another 80 GB GPU do
    not make an "A100 with 80 GB"."""
    if any(_name_ok(req, g) and _memory_ok(req, g) and _cc_ok(req, g) for g in visible):
        return []
    unmet: list[str] = []
    if not any(_name_ok(req, g) for g in visible):
        unmet.append(f"needs a GPU named like {req.gpu_name!r}, visible: {_gpu_list(visible)}")
    if not any(_memory_ok(req, g) for g in visible):
        known = [g.memory_total_bytes for g in visible if g.memory_total_bytes is not None]
        have = f"{max(known) / _GB:.1f} GB" if known else "unknown memory"
        unmet.append(
            f"needs a GPU with >= {req.min_gpu_memory_gb:g} GB, the largest visible has {have}"
        )
    if not any(_cc_ok(req, g) for g in visible) and req.min_compute_capability is not None:
        ccs = [g.compute_capability for g in visible if g.compute_capability is not None]
        want = ".".join(map(str, req.min_compute_capability))
        have = ".".join(map(str, max(ccs))) if ccs else "unknown"
        unmet.append(f"needs compute capability >= {want}, the best visible GPU has {have}")
    if not unmet:
        unmet.append(
            "needs one GPU that meets every GPU requirement together, visible: "
            + _gpu_list(visible)
        )
    return unmet
