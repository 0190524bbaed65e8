"""The fingerprint that keys baselines: a hash of the hardware class, and a readable label.

Two runs share a baseline when they ran on the same class of hardware, so the hash holds
what the machine is and nothing that differs between identical runners, and no software:
a pull request that upgrades torch must be compared with the runs saved before it (that
is when a model is most likely to slow down), not start from "no baseline". The
software a measurement depends on is recorded beside it instead (``versions``): each
saved run keeps the versions it ran with, and a comparison across a change names it
(``torch 2.13 -> 2.14``). What went into the hash is kept in ``Fingerprint.hashed`` (so
a changed digest can be explained by diffing two of them); facts that churn are kept in
``Fingerprint.volatile``, recorded beside the digest but never hashed.

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
- Visible GPUs in CUDA order: model name, memory rounded to whole GiB, MIG mode, and
  their count. UUIDs identify one card, not a class, so they are volatile.
- The operating system and the processor architecture (``sys.platform``,
  ``platform.machine()``): a different kernel and ABI, not a different version.
- ``fingerprint_version``: changing what is hashed must change every digest. Version 1
  also hashed the thread pools and the major.minor of Python, torch and numpy, so it
  needed torch imported to be computed (seconds, and ~200 MB in a session that never
  used torch); its baselines are still found (``store.baselines`` migrates them by
  their hardware part).

Recorded per run (``versions``, never hashed): Python and its implementation, torch
(with its build tag: "2.13.0+cpu" and "2.13.0+cu124" run different code), numpy, and
with a visible GPU the driver and the CUDA version it supports. All are read from
package metadata and the GPU probe the session makes anyway: nothing is imported.

Volatile (never hashed): host name, GPU UUIDs, host logical and physical counts, the
affinity list, where usable cores came from, exact memory sizes and available memory,
the thread settings (torch's only when the tests imported it) and the threading
environment.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
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
    "hardware_differences",
    "hardware_part",
    "major_minor",
    "ram_class_gb",
    "run_versions",
    "same_hardware",
    "v1_versions",
    "version_changes",
]

FINGERPRINT_VERSION = 2
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
    versions: dict[str, str]

    def to_record(self) -> dict[str, object]:
        """A JSON-ready dict for reports and ``hwperf info --json``."""
        return {
            "digest": self.digest,
            "label": self.label,
            "hashed": self.hashed,
            "versions": self.versions,
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


# ------------------------------------------------------------------------ hashed


def _gpu_class(device: GpuInfo) -> dict[str, object]:
    return {
        "name": device.name,
        "memory_gb": gib_rounded(device.memory_total_bytes),
        "mig_mode": device.mig_mode,
    }


def _hashed(machine: Machine) -> dict[str, object]:
    cpu = machine.cpu
    visible = machine.gpus.visible
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
        },
        "system": {
            "platform": machine.software.get("platform"),
            "machine": machine.software.get("machine"),
        },
    }


# ---------------------------------------------------------------------- versions

# The hardware part of a fingerprint: what two fingerprints must share for a baseline
# saved under one to be compared with a run under the other (see hardware_part).
_HARDWARE_KEYS = ("cpu", "ram_class_gb", "gpu", "system")
# What version 1 also hashed, beside its hardware (it is read back as the runs' versions).
_V1_GPU_SOFTWARE = ("driver_major", "cuda")


def hardware_part(hashed: Mapping[str, object]) -> dict[str, object]:
    """What a fingerprint's hashed facts say about the hardware alone, in the form of
    the current version, so that a baseline saved under an older fingerprint version is
    found on the same machine (its software and thread pools are left out).

    Version 1 kept the platform under "software" and the GPU driver beside the devices.
    """
    gpu = hashed.get("gpu")
    gpu_part: object = gpu
    if isinstance(gpu, Mapping):
        gpu_part = {k: v for k, v in gpu.items() if k not in _V1_GPU_SOFTWARE}
    system = hashed.get("system")
    if system is None:
        software = hashed.get("software")
        platform_name = software.get("platform") if isinstance(software, Mapping) else None
        system = {"platform": platform_name, "machine": None}
    part = {"cpu": hashed.get("cpu"), "ram_class_gb": hashed.get("ram_class_gb")}
    part["gpu"] = gpu_part
    part["system"] = system
    return part


def _comparable(
    ours: Mapping[str, object], theirs: Mapping[str, object]
) -> tuple[dict[str, object], dict[str, object]]:
    """Both hardware parts, without the architecture when one side did not record it
    (version 1 did not): an unknown is not a difference."""
    a, b = hardware_part(ours), hardware_part(theirs)
    sys_a, sys_b = a["system"], b["system"]
    if (
        isinstance(sys_a, Mapping)
        and isinstance(sys_b, Mapping)
        and (sys_a.get("machine") is None or sys_b.get("machine") is None)
    ):
        a["system"] = {k: v for k, v in sys_a.items() if k != "machine"}
        b["system"] = {k: v for k, v in sys_b.items() if k != "machine"}
    return a, b


def same_hardware(ours: Mapping[str, object], theirs: Mapping[str, object]) -> bool:
    """Whether two fingerprints' hashed facts describe the same hardware class."""
    a, b = _comparable(ours, theirs)
    return a == b


def hardware_differences(ours: Mapping[str, object], theirs: Mapping[str, object]) -> list[str]:
    """How another fingerprint's hardware differs from ours, one short phrase per fact
    ("usable_cores 4, here 2"), for the line that says a baseline exists elsewhere."""
    found: list[str] = []

    def walk(prefix: str, a: object, b: object) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in sorted(set(a) | set(b)):
                walk(f"{prefix}.{key}" if prefix else str(key), a.get(key), b.get(key))
        elif a != b:
            name = prefix.rsplit(".", 1)[-1] if "." in prefix else prefix
            found.append(f"{name} {_fact(b)}, here {_fact(a)}")

    walk("", *_comparable(ours, theirs))
    return found


def _fact(value: object) -> str:
    if isinstance(value, list | dict):
        return canonical_json(value)
    return str(value)


def run_versions(machine: Machine) -> dict[str, str]:
    """The software a run's figures depend on, as recorded with each saved run."""
    software = machine.software
    found: dict[str, str | None] = {
        "python": software.get("python"),
        "python_implementation": software.get("python_implementation"),
        "torch": software.get("torch"),
        "numpy": software.get("numpy"),
    }
    if machine.gpus.visible:
        found["gpu_driver"] = machine.gpus.driver_version
        found["cuda"] = machine.gpus.cuda_driver_version
    return {key: value for key, value in found.items() if value}


def v1_versions(hashed: Mapping[str, object]) -> dict[str, str]:
    """The versions a version-1 fingerprint hashed (major.minor only), as a run's."""
    software = hashed.get("software")
    found: dict[str, str] = {}
    if isinstance(software, Mapping):
        for key in ("python", "python_implementation", "torch", "numpy"):
            value = software.get(key)
            if isinstance(value, str) and value:
                found[key] = value
        build = software.get("torch_build")
        if isinstance(build, str) and build and "torch" in found:
            found["torch"] += f"+{build}"
    gpu = hashed.get("gpu")
    if isinstance(gpu, Mapping) and isinstance(gpu.get("cuda"), str):
        found["cuda"] = str(gpu["cuda"])
    return found


_VERSION_NAMES = {"python_implementation": "Python implementation", "gpu_driver": "driver"}


def version_changes(before: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """What changed between a saved run's versions and this run's, one phrase each:
    "torch 2.13 -> 2.14" (major.minor when that differs and the build tag does not, the
    full versions otherwise). A fact one side did not record is not a change."""
    changes: list[str] = []
    for key in sorted(set(before) & set(now)):
        old, new = before[key], now[key]
        if old == new or _same_release(old, new):
            continue
        if major_minor(old) != major_minor(new) and _local_tag(old) == _local_tag(new):
            old, new = str(major_minor(old)), str(major_minor(new))
        changes.append(f"{_VERSION_NAMES.get(key, key)} {old} -> {new}")
    return changes


def _same_release(old: str, new: str) -> bool:
    """A version recorded by major.minor (fingerprint version 1) matches any patch."""
    if _local_tag(old) != _local_tag(new):
        return False
    short = old.split("+", 1)[0]
    return short.count(".") == 1 and major_minor(new) == short


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
        "threads": {k: v for k, v in machine.threads.items() if k != "env"},
        "threads_env": dict(threads_env) if isinstance(threads_env, dict) else {},
        "software": dict(machine.software),
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
    return " + ".join(f"{count}x {text}" for text, count in groups)


def _label(machine: Machine, hashed: dict[str, object]) -> str:
    cpu = machine.cpu
    cpu_text = _short_model(cpu.model)
    if cpu.isa_level:
        cpu_text += f" {cpu.isa_level}"
    cores = "1 core" if cpu.usable_cores == 1 else f"{cpu.usable_cores} cores"
    parts = [cpu_text, cores, f"{hashed['ram_class_gb']} GB RAM class", _gpu_label(machine)]
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
        versions=run_versions(machine),
    )
