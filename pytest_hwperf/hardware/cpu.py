"""How many CPU cores this process can really use, and what kind of CPU they are.

``os.cpu_count()`` is the host's count: inside a container, a CI runner, a systemd
slice or a Slurm job the process may be pinned to fewer CPUs (its affinity set) and
throttled by a CPU quota (cgroup v2 ``cpu.max``, cgroup v1 ``cpu.cfs_quota_us`` /
``cpu.cfs_period_us``). Usable cores are the smaller of the two, the quota rounded up.

The quota is found the way the kernel applies it: the process's cgroup is located
through ``/proc/self/cgroup`` and ``/proc/self/mountinfo``, and every level from that
cgroup up to the mount point is read, because a limit on any ancestor (a systemd slice,
a Slurm job step, a container's parent) throttles everything below it. Readers that
look only at the root of ``/sys/fs/cgroup`` miss those. Every reader takes a ``root``
so tests can build real cgroup trees in a temporary folder.

Nothing here raises on a strange machine: a missing or unreadable file means no limit
from that level; a malformed one is skipped with a ``HwperfEnvironmentWarning``.
"""

from __future__ import annotations

import math
import os
import platform
import posixpath
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil

from pytest_hwperf.hardware.affinity import read_affinity
from pytest_hwperf.warnings import HwperfEnvironmentWarning

__all__ = [
    "CgroupLevel",
    "CpuInfo",
    "CpuQuota",
    "cgroup_levels",
    "detect_cpu",
    "display_path",
    "format_cpu_list",
    "read_affinity",
    "read_cgroup_file",
    "read_cpu_quota",
    "smallest_cgroup_limit",
    "usable_cores",
    "warn_malformed",
]

_READ_LIMIT = 64 * 1024  # cgroup and proc files are small; never slurp something odd
_NumberT = TypeVar("_NumberT", int, float)


# --------------------------------------------------------------------------- cgroups


@dataclass(frozen=True)
class CgroupLevel:
    """One directory whose limits apply to this process.

    ``version`` is 1 or 2 (the file names differ); ``directory`` lies under the root
    the levels were discovered from.
    """

    version: int
    directory: Path


@dataclass(frozen=True)
class _Mount:
    root: str  # the cgroup path that the mount point shows (not "/" in many containers)
    mount_point: str
    fstype: str
    super_options: frozenset[str]


def _under(root: Path, absolute: str) -> Path:
    return root / absolute.lstrip("/")


def display_path(root: Path, path: Path) -> str:
    """``path`` as the process would see it when ``root`` is "/" (tests pass a tmp root)."""
    try:
        return "/" + path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def read_cgroup_file(path: Path) -> str | None:
    """The stripped text of a small kernel file, or None when it is missing or unreadable.

    Missing and unreadable are normal (no controller there, no permission), not errors.
    Undecodable bytes come back replaced so the caller reports the file as malformed.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(_READ_LIMIT)
    except OSError:
        return None
    return data.decode("utf-8", errors="replace").strip()


def warn_malformed(description: str, content: str, why: str) -> None:
    """Say that a cgroup file was skipped; the result is degraded, the run goes on."""
    warnings.warn(
        f"pytest-hwperf: ignoring malformed {description}: {content[:80]!r} ({why})",
        HwperfEnvironmentWarning,
        stacklevel=2,
    )


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape_mountinfo(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \040, \011, \012, \134.
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def _cgroup_mounts(root: Path) -> list[_Mount]:
    text = read_cgroup_file(root / "proc" / "self" / "mountinfo")
    if text is None:
        return []
    mounts: list[_Mount] = []
    for line in text.splitlines():
        fields = line.split()
        # ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if len(fields) < separator + 4:
            continue
        fstype = fields[separator + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        mounts.append(
            _Mount(
                root=_unescape_mountinfo(fields[3]),
                mount_point=_unescape_mountinfo(fields[4]),
                fstype=fstype,
                super_options=frozenset(fields[separator + 3].split(",")),
            )
        )
    return mounts


def _process_cgroups(root: Path) -> list[tuple[str, frozenset[str], str]]:
    """(hierarchy id, controllers, path) for each line of /proc/self/cgroup."""
    text = read_cgroup_file(root / "proc" / "self" / "cgroup")
    if text is None:
        return []
    entries: list[tuple[str, frozenset[str], str]] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[2].startswith("/"):
            continue
        hierarchy, controllers, path = parts
        entries.append((hierarchy, frozenset(filter(None, controllers.split(","))), path))
    return entries


def _relative_to_mount(cgroup_path: str, mount_root: str) -> str | None:
    """The part of the process's cgroup path below the mount's root, or None if outside.

    In a container without a cgroup namespace the process sees "/docker/abc/x" in
    /proc/self/cgroup while /sys/fs/cgroup shows the hierarchy from "/docker/abc" down,
    so "/docker/abc/x" lives at <mount point>/x.
    """
    path = posixpath.normpath(cgroup_path)
    base = posixpath.normpath(mount_root)
    if base == "/":
        return path.lstrip("/")
    if path == base:
        return ""
    if path.startswith(base + "/"):
        return path[len(base) + 1 :]
    return None


def _levels_in_mount(root: Path, cgroup_path: str, mounts: Iterable[_Mount]) -> list[Path]:
    candidates = list(mounts)
    if not candidates:
        return []
    chosen: tuple[_Mount, str] | None = None
    for mount in candidates:
        relative = _relative_to_mount(cgroup_path, mount.root)
        if relative is not None:
            chosen = (mount, relative)
            break
    if chosen is None:
        # The cgroup is not visible below any mount's root (a cgroup namespace seen
        # from outside it): the mount point is the nearest level we can read.
        chosen = (candidates[0], "")
    mount, relative = chosen
    top = _under(root, mount.mount_point)
    directory = top / relative if relative else top
    levels = [directory]
    while directory != top:
        directory = directory.parent
        levels.append(directory)
    return levels


def cgroup_levels(root: Path, v1_controller: str) -> list[CgroupLevel]:
    """Every cgroup directory whose ``v1_controller`` limits apply to this process.

    The process's own cgroup first, then each parent up to the mount point, for the
    unified (v2) hierarchy and for the v1 hierarchy carrying ``v1_controller`` ("cpu",
    "memory"). Hybrid hosts mount both; reading both and keeping the smallest limit is
    right on each, since a v2 level without the controller has no limit file.
    Empty when there is no cgroup information at all (not Linux, a bare chroot).
    """
    mounts = _cgroup_mounts(root)
    levels: list[CgroupLevel] = []
    for hierarchy, controllers, path in _process_cgroups(root):
        if hierarchy == "0" and not controllers:
            v2_mounts = [mount for mount in mounts if mount.fstype == "cgroup2"]
            directories = _levels_in_mount(root, path, v2_mounts)
            levels.extend(CgroupLevel(2, directory) for directory in directories)
        elif v1_controller in controllers:
            v1_mounts = [
                mount
                for mount in mounts
                if mount.fstype == "cgroup" and v1_controller in mount.super_options
            ]
            directories = _levels_in_mount(root, path, v1_mounts)
            levels.extend(CgroupLevel(1, directory) for directory in directories)
    return levels


def smallest_cgroup_limit(
    root: Path,
    v1_controller: str,
    read_level: Callable[[CgroupLevel], tuple[_NumberT, str] | None],
) -> tuple[_NumberT, str] | None:
    """The smallest limit over every level of :func:`cgroup_levels`, with its source.

    ``read_level`` returns (limit, where it was read) or None for no limit at that level;
    on a tie the level nearest the process wins, being the most specific.
    """
    best: tuple[_NumberT, str] | None = None
    for level in cgroup_levels(root, v1_controller):
        found = read_level(level)
        if found is not None and (best is None or found[0] < best[0]):
            best = found
    return best


# ----------------------------------------------------------------------- CPU quota


@dataclass(frozen=True)
class CpuQuota:
    """The CPU quota in cores (quota / period), None when unlimited, and where it is set."""

    cores: float | None
    source: str


_NO_QUOTA = "no CPU quota"


def _read_cpu_max(root: Path, directory: Path) -> tuple[float, str] | None:
    path = directory / "cpu.max"
    text = read_cgroup_file(path)
    if text is None:
        return None
    description = f"cgroup v2 cpu.max at {display_path(root, directory)}"
    parts = text.split()
    if parts and parts[0] == "max" and len(parts) <= 2:
        return None
    try:
        if len(parts) != 2:
            raise ValueError("expected '<quota> <period>' or 'max <period>'")
        quota, period = int(parts[0]), int(parts[1])
        if quota <= 0 or period <= 0:
            raise ValueError("quota and period must be positive")
    except ValueError as error:
        warn_malformed(f"cgroup file {display_path(root, path)}", text, str(error))
        return None
    return quota / period, description


def _read_cfs(root: Path, directory: Path) -> tuple[float, str] | None:
    quota_path = directory / "cpu.cfs_quota_us"
    period_path = directory / "cpu.cfs_period_us"
    quota_text = read_cgroup_file(quota_path)
    if quota_text is None:
        return None
    try:
        quota = int(quota_text)
    except ValueError:
        warn_malformed(
            f"cgroup file {display_path(root, quota_path)}", quota_text, "not an integer"
        )
        return None
    if quota < 0:  # the kernel stores any negative quota as -1: unlimited
        return None
    if quota == 0:
        warn_malformed(f"cgroup file {display_path(root, quota_path)}", quota_text, "zero quota")
        return None
    period_text = read_cgroup_file(period_path)
    if period_text is None:
        return None
    try:
        period = int(period_text)
        if period <= 0:
            raise ValueError("period must be positive")
    except ValueError as error:
        warn_malformed(f"cgroup file {display_path(root, period_path)}", period_text, str(error))
        return None
    description = f"cgroup v1 cpu.cfs_quota_us/cpu.cfs_period_us at {display_path(root, directory)}"
    return quota / period, description


def read_cpu_quota(root: Path = Path("/")) -> CpuQuota:
    """The tightest CPU quota over this process's cgroup and all its parents."""

    def read_level(level: CgroupLevel) -> tuple[float, str] | None:
        if level.version == 2:
            return _read_cpu_max(root, level.directory)
        return _read_cfs(root, level.directory)

    found = smallest_cgroup_limit(root, "cpu", read_level)
    if found is None:
        return CpuQuota(cores=None, source=_NO_QUOTA)
    return CpuQuota(cores=found[0], source=found[1])


# ------------------------------------------------------------------------ affinity


def format_cpu_list(cpus: Iterable[int]) -> str:
    """CPU ids in the kernel's list syntax: (0, 1, 2, 5) -> "0-2,5"."""
    ordered = sorted(set(cpus))
    ranges: list[str] = []
    index = 0
    while index < len(ordered):
        start = end = ordered[index]
        while index + 1 < len(ordered) and ordered[index + 1] == end + 1:
            index += 1
            end = ordered[index]
        ranges.append(str(start) if start == end else f"{start}-{end}")
        index += 1
    return ",".join(ranges)


def _plural(count: float, noun: str) -> str:
    return f"{count:g} {noun}" if count == 1 else f"{count:g} {noun}s"


def usable_cores(
    affinity_count: int, quota: CpuQuota, affinity_cpus: str | None = None
) -> tuple[int, str]:
    """The smaller of the affinity count and the quota rounded up (at least 1), and why.

    ``affinity_cpus`` (the list as :func:`format_cpu_list` writes it) only makes the
    source more readable. The source starts with what set the number: "affinity ..."
    or "CPU quota ...".
    """
    affinity = _plural(affinity_count, "CPU")
    if affinity_cpus:
        affinity = f"{affinity_cpus} ({affinity})"
    if quota.cores is None:
        return max(1, affinity_count), f"affinity {affinity}, {quota.source}"
    quota_cores = max(1, math.ceil(quota.cores))
    quota_text = f"CPU quota {_plural(quota.cores, 'core')} ({quota.source})"
    if quota_cores < affinity_count:
        rounded = "" if quota_cores == quota.cores else f", rounded up to {quota_cores}"
        return quota_cores, f"{quota_text}{rounded}; affinity {affinity}"
    return max(1, affinity_count), f"affinity {affinity}; {quota_text} is not smaller"


# ------------------------------------------------------------------ model and ISA


_X86_LEVELS: tuple[tuple[str, frozenset[str]], ...] = (
    # /proc/cpuinfo spells SSE3 "pni" and LZCNT "abm"; OSXSAVE is not listed, so XSAVE
    # stands in for it.
    (
        "x86-64-v1",
        frozenset({"lm", "cmov", "cx8", "fpu", "fxsr", "mmx", "syscall", "sse", "sse2"}),
    ),
    ("x86-64-v2", frozenset({"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"})),
    (
        "x86-64-v3",
        frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}),
    ),
    ("x86-64-v4", frozenset({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"})),
)

# aarch64 features that change what compiled kernels (BLAS, oneDNN, XNNPACK) can use.
_AARCH64_FEATURES = ("asimd", "asimddp", "fphp", "bf16", "i8mm", "sve", "sve2", "sme")

# Arm Ltd (implementer 0x41) parts seen on servers and boards; others stay as numbers.
_ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1",
    "0xd40": "Neoverse-V1",
    "0xd49": "Neoverse-N2",
    "0xd4f": "Neoverse-V2",
}


def _cpuinfo_fields(root: Path) -> dict[str, str]:
    """The first value of each key of /proc/cpuinfo (the first processor's block)."""
    text = read_cgroup_file(root / "proc" / "cpuinfo")
    fields: dict[str, str] = {}
    if text is None:
        return fields
    for line in text.splitlines():
        key, separator, value = line.partition(":")
        if separator:
            fields.setdefault(key.strip(), " ".join(value.split()))
    return fields


def _isa_level(fields: dict[str, str]) -> str | None:
    if "flags" in fields:
        flags = set(fields["flags"].split())
        level: str | None = None
        for name, required in _X86_LEVELS:
            if not required <= flags:
                break
            level = name
        return level
    if "Features" in fields:
        features = set(fields["Features"].split())
        present = [feature for feature in _AARCH64_FEATURES if feature in features]
        return "aarch64" + "".join(f"+{feature}" for feature in present)
    return None


def _model(fields: dict[str, str]) -> str:
    for key in ("model name", "Hardware"):
        if fields.get(key):
            return fields[key]
    part = fields.get("CPU part")
    if part:
        implementer = fields.get("CPU implementer", "")
        name = _ARM_PARTS.get(part.lower()) if implementer.lower() == "0x41" else None
        if name is not None:
            return f"ARM {name}"
        return f"CPU implementer {implementer or '?'} part {part}"
    return platform.processor() or platform.machine() or "unknown"


def _smt(root: Path, logical: int, physical: int | None) -> bool | None:
    active = read_cgroup_file(root / "sys" / "devices" / "system" / "cpu" / "smt" / "active")
    if active in ("0", "1"):
        return active == "1"
    if physical is None:
        return None
    return logical > physical


# ------------------------------------------------------------------------- CpuInfo


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as this process sees it; ``usable_cores`` is what parallelism may use."""

    logical: int
    physical: int | None
    affinity: tuple[int, ...]
    quota: CpuQuota
    usable_cores: int
    usable_source: str
    model: str
    isa_level: str | None
    smt: bool | None

    def to_record(self) -> dict[str, object]:
        """A JSON-ready dict for reports and ``hwperf info --json``."""
        return {
            "logical": self.logical,
            "physical": self.physical,
            "affinity": list(self.affinity),
            "affinity_list": format_cpu_list(self.affinity),
            "quota_cores": self.quota.cores,
            "quota_source": self.quota.source,
            "usable_cores": self.usable_cores,
            "usable_source": self.usable_source,
            "model": self.model,
            "isa_level": self.isa_level,
            "smt": self.smt,
        }


def _physical_cores() -> int | None:
    try:
        count = psutil.cpu_count(logical=False)
    except Exception:  # psutil raises odd errors on exotic platforms; unknown is fine
        return None
    return int(count) if count else None


def detect_cpu(root: Path = Path("/"), affinity: tuple[int, ...] | None = None) -> CpuInfo:
    """Everything about the CPU that changes performance, read without importing torch.

    Pass ``affinity`` as read by :func:`read_affinity` at plugin configuration: once
    torch (and its OpenMP runtime) is loaded, pinning variables such as
    ``OMP_PROC_BIND``/``GOMP_CPU_AFFINITY``/``KMP_AFFINITY`` can shrink the main
    thread's set. ``root`` moves /proc and /sys reads (cgroups, cpuinfo, SMT) for tests;
    the logical and physical counts always come from this machine.
    """
    cpus = read_affinity() if affinity is None else tuple(sorted(set(affinity)))
    logical = os.cpu_count() or len(cpus) or 1
    physical = _physical_cores()
    quota = read_cpu_quota(root)
    cores, source = usable_cores(len(cpus), quota, format_cpu_list(cpus))
    fields = _cpuinfo_fields(root)
    return CpuInfo(
        logical=logical,
        physical=physical,
        affinity=cpus,
        quota=quota,
        usable_cores=cores,
        usable_source=source,
        model=_model(fields),
        isa_level=_isa_level(fields),
        smt=_smt(root, logical, physical),
    )
