"""The fingerprint that keys baselines: a hash of the hardware class, and a readable label.

Two runs may share a baseline when their numbers are comparable, so the hash holds what
changes performance and nothing that differs between identical runners. What went into
the hash is kept in ``Fingerprint.hashed`` (so a changed digest can be explained by
diffing two of them); facts that churn are kept in ``Fingerprint.volatile``, recorded
beside the digest but never hashed.

Hashed, and why:

- CPU model string and instruction-set level: the kernels BLAS, oneDNN and XNNPACK pick
  depend on them. The raw model string is hashed (the label shows a cleaned one).
- Usable cores (affinity capped by the CPU quota) and SMT: what parallel code can use.
  The host's logical and physical counts are not hashed: a 2-core slice of a 64-core
  host runs like a 2-core slice of a 96-core one, and CI runners land on either.
- RAM class: effective memory (the cgroup limit when smaller) rounded to the nearest
  power of two GiB *on a log scale*, so 15.6 and 16.2 GiB are both 16. The class edges
  then sit at 2^k * sqrt(2) (11.3, 22.6, 45.3, 90.5 GiB ...), away from the sizes
  machines are sold in (12, 24, 48, 96 GiB), whose kernel-reserved totals wobble.
- Visible GPUs in CUDA order: model name, memory rounded to whole GiB, MIG mode; their
  count; the driver's major version and the CUDA version it supports (only with a
  visible GPU: a CPU run does not depend on them). UUIDs identify one card, not a
  class, so they are volatile.
- Thread pools: torch intra-/inter-op threads when torch is loaded, and each native pool
  threadpoolctl sees as (internal API, thread count), deduplicated so that two copies
  of OpenBLAS count once. They depend on what the process has imported, so compute the
  fingerprint at the same point of every run.
- Python implementation and major.minor, the platform, torch and numpy major.minor,
  and torch's build tag ("cpu", "cu124"): a CPU-only and a CUDA build run different
  code. Patch versions are volatile: they fix bugs, not kernels, and churn.
- ``fingerprint_version``: changing what is hashed must change every digest.

Volatile (never hashed): host name, GPU UUIDs and full driver version, host logical and
physical counts, the affinity list, where usable cores came from, exact memory sizes
and available memory, the threading environment, exact software and plugin versions.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_hwperf.hardware.gpu import GpuInfo
    from pytest_hwperf.hardware.machine import Machine

__all__ = [
    "FINGERPRINT_VERSION",
    "Fingerprint",
    "canonical_json",
    "fingerprint",
    "gib_rounded",
    "major_minor",
    "ram_class_gb",
]

FINGERPRINT_VERSION = 1
DIGEST_LENGTH = 12  # 48 bits: collisions among a project's few hardware classes are moot

_GIB = 1 << 30


@dataclass(frozen=True)
class Fingerprint:
    """``digest`` keys baselines; ``label`` is for people; ``hashed`` is exactly what the
    digest covers; ``volatile`` is recorded beside it and never hashed."""

    digest: str
    label: str
    hashed: dict[str, object]
    volatile: dict[str, object]

    def to_record(self) -> dict[str, object]:
        """A JSON-ready dict for reports and ``hwperf info --json``."""
        return {
            "digest": self.digest,
            "label": self.label,
            "hashed": self.hashed,
            "volatile": self.volatile,
        }


def canonical_json(value: object) -> str:
    """One spelling per value: sorted keys, no spaces, ASCII only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def ram_class_gb(nbytes: int) -> float:
    """Memory rounded to the nearest power of two GiB on a log scale (see the module).

    Whole GiB come back as int (16, not 16.0); below 1 GiB the class is a fraction.
    """
    if nbytes <= 0:
        return 0
    size = 2.0 ** round(math.log2(nbytes / _GIB))
    return int(size) if size >= 1 else size


def gib_rounded(nbytes: int | None) -> int | None:
    """Bytes to the nearest whole GiB (GPU memory: fixed per model, so no classes)."""
    return None if nbytes is None else round(nbytes / _GIB)


_VERSION = re.compile(r"^\s*v?(\d+)(?:\.(\d+))?")


def major_minor(version: str | None) -> str | None:
    """Major.minor ("2.13.0+cpu" -> "2.13"); None for none; the text itself if unparsable."""
    if version is None:
        return None
    match = _VERSION.match(version)
    if match is None:
        return version
    return f"{match.group(1)}.{match.group(2) or 0}"


def _local_tag(version: str | None) -> str | None:
    """The build tag after "+" ("2.13.0+cpu" -> "cpu"), None when there is none."""
    if version is None or "+" not in version:
        return None
    return version.split("+", 1)[1]


def _driver_major(version: str | None) -> str | None:
    return None if version is None else version.split(".", 1)[0]


# ------------------------------------------------------------------------ hashed


def _gpu_class(device: GpuInfo) -> dict[str, object]:
    return {
        "name": device.name,
        "memory_gb": gib_rounded(device.memory_total_bytes),
        "mig_mode": device.mig_mode,
    }


def _native_pool_classes(threads: dict[str, object]) -> list[list[object]]:
    pools = threads.get("native_pools")
    found: set[tuple[str, int]] = set()
    if isinstance(pools, list):
        for pool in pools:
            if not isinstance(pool, dict):
                continue
            count = pool.get("num_threads")
            found.add((str(pool.get("internal_api")), count if isinstance(count, int) else -1))
    return [[api, count] for api, count in sorted(found)]


def _hashed(machine: Machine) -> dict[str, object]:
    cpu = machine.cpu
    visible = machine.gpus.visible
    threads: dict[str, object] = {"native_pools": _native_pool_classes(machine.threads)}
    for key in ("torch_intra_op", "torch_inter_op"):
        if key in machine.threads:
            threads[key] = machine.threads[key]
    software = machine.software
    return {
        "fingerprint_version": FINGERPRINT_VERSION,
        "cpu": {
            "model": cpu.model,
            "isa_level": cpu.isa_level,
            "usable_cores": cpu.usable_cores,
            "smt": cpu.smt,
        },
        "ram_class_gb": ram_class_gb(machine.memory.effective_bytes),
        "gpu": {
            "count": len(visible),
            "devices": [_gpu_class(device) for device in visible],
            "driver_major": _driver_major(machine.gpus.driver_version) if visible else None,
            "cuda": machine.gpus.cuda_driver_version if visible else None,
        },
        "threads": threads,
        "software": {
            "python": major_minor(software.get("python")),
            "python_implementation": software.get("python_implementation"),
            "platform": software.get("platform"),
            "numpy": major_minor(software.get("numpy")),
            "torch": major_minor(software.get("torch")),
            "torch_build": _local_tag(software.get("torch")),
        },
    }


# ---------------------------------------------------------------------- volatile


def _volatile(machine: Machine) -> dict[str, object]:
    cpu, memory, gpus = machine.cpu, machine.memory, machine.gpus
    threads_env = machine.threads.get("env")
    return {
        "hostname": machine.hostname,
        "cpu": {
            "logical": cpu.logical,
            "physical": cpu.physical,
            "affinity": list(cpu.affinity),
            "usable_source": cpu.usable_source,
            "quota_cores": cpu.quota.cores,
        },
        "memory": {
            "total_bytes": memory.total_bytes,
            "effective_bytes": memory.effective_bytes,
            "available_bytes": memory.available_bytes,
            "cgroup_limit_bytes": memory.cgroup_limit_bytes,
        },
        "gpu": {
            "uuids": [device.uuid for device in gpus.visible],
            "driver_version": gpus.driver_version,
            "source": gpus.source,
            "reason": gpus.reason,
            "cuda_visible_devices": gpus.cuda_visible_devices,
        },
        "threads_env": dict(threads_env) if isinstance(threads_env, dict) else {},
        "versions": dict(machine.software),
    }


# ------------------------------------------------------------------------- label

_MODEL_NOISE = re.compile(
    r"\((?:R|TM|tm|r)\)|\bCPU\b|\bProcessor\b|@\s*\S+|\b\d+-Core\b", re.IGNORECASE
)


def _short_model(model: str) -> str:
    """The model without trademarks, clock and filler, for the label.

    "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz" -> "Intel Xeon Platinum 8375C".
    """
    short = " ".join(_MODEL_NOISE.sub(" ", model).split())
    return short or model


def _gpu_label(machine: Machine) -> str:
    visible = machine.gpus.visible
    if not visible:
        return "no GPU"
    groups: list[tuple[str, int]] = []  # runs of identical devices, in CUDA order
    for device in visible:
        memory = gib_rounded(device.memory_total_bytes)
        text = device.name + (f" {memory} GB" if memory is not None else "")
        if device.mig_mode:
            text += " MIG"
        if groups and groups[-1][0] == text:
            groups[-1] = (text, groups[-1][1] + 1)
        else:
            groups.append((text, 1))
    parts = [" + ".join(f"{count}x {text}" for text, count in groups)]
    driver = _driver_major(machine.gpus.driver_version)
    if driver is not None:
        parts.append(f"driver {driver}")
    if machine.gpus.cuda_driver_version is not None:
        parts.append(f"CUDA {machine.gpus.cuda_driver_version}")
    return ", ".join(parts)


def _label(machine: Machine, hashed: dict[str, object]) -> str:
    cpu = machine.cpu
    cpu_text = _short_model(cpu.model)
    if cpu.isa_level:
        cpu_text += f" {cpu.isa_level}"
    cores = "1 core" if cpu.usable_cores == 1 else f"{cpu.usable_cores} cores"
    parts = [cpu_text, cores, f"{hashed['ram_class_gb']} GB RAM class", _gpu_label(machine)]
    python = major_minor(machine.software.get("python"))
    if python is not None:
        parts.append(f"py{python}")
    torch = major_minor(machine.software.get("torch"))
    if torch is not None:
        parts.append(f"torch {torch}")
    return ", ".join(parts)


def fingerprint(machine: Machine) -> Fingerprint:
    """The hardware-class fingerprint of ``machine`` (see the module for what is hashed)."""
    hashed = _hashed(machine)
    digest = hashlib.sha256(canonical_json(hashed).encode("ascii")).hexdigest()[:DIGEST_LENGTH]
    return Fingerprint(
        digest=digest,
        label=_label(machine, hashed),
        hashed=hashed,
        volatile=_volatile(machine),
    )
