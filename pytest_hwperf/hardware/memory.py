"""How much memory this process can use: the host's RAM, capped by its cgroup limit.

psutil reports the host's memory; a container or a Slurm job is killed at its cgroup
limit long before that. The limit is found like the CPU quota (see
:mod:`pytest_hwperf.hardware.cpu`): the smallest ``memory.max`` (v2) or
``memory.limit_in_bytes`` (v1) over the process's cgroup and all its parents.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

from pytest_hwperf.hardware.cpu import (
    CgroupLevel,
    display_path,
    read_cgroup_file,
    smallest_cgroup_limit,
    warn_malformed,
)

__all__ = ["MemoryInfo", "MemoryLimit", "detect_memory", "read_memory_limit"]

# cgroup v1 writes "no limit" as the largest page-aligned signed 64-bit value
# (9223372036854771712 with 4 KiB pages, less with larger pages); no machine has 2**62
# bytes, so anything from there up means unlimited.
V1_UNLIMITED_FROM = 1 << 62

_NO_LIMIT = "no cgroup memory limit"


@dataclass(frozen=True)
class MemoryLimit:
    """The cgroup memory limit in bytes, None when unlimited, and where it is set."""

    limit_bytes: int | None
    source: str


def _read_level(root: Path, level: CgroupLevel) -> tuple[int, str] | None:
    name = "memory.max" if level.version == 2 else "memory.limit_in_bytes"
    path = level.directory / name
    text = read_cgroup_file(path)
    if text is None or (level.version == 2 and text == "max"):
        return None
    try:
        limit = int(text)
        if limit < 0:
            raise ValueError("negative")
    except ValueError as error:
        warn_malformed(f"cgroup file {display_path(root, path)}", text, str(error))
        return None
    if level.version == 1 and limit >= V1_UNLIMITED_FROM:
        return None
    return limit, f"cgroup v{level.version} {name} at {display_path(root, level.directory)}"


def read_memory_limit(root: Path = Path("/")) -> MemoryLimit:
    """The tightest memory limit over this process's cgroup and all its parents."""
    found = smallest_cgroup_limit(root, "memory", lambda level: _read_level(root, level))
    if found is None:
        return MemoryLimit(limit_bytes=None, source=_NO_LIMIT)
    return MemoryLimit(limit_bytes=found[0], source=found[1])


@dataclass(frozen=True)
class MemoryInfo:
    """Host RAM, what is available now, the cgroup limit and the smaller of the two.

    ``available_bytes`` is psutil's host-wide figure (volatile: record it, never hash
    it); ``effective_bytes`` is what this process can hold before it is killed.
    """

    total_bytes: int
    available_bytes: int
    cgroup_limit_bytes: int | None
    cgroup_source: str
    effective_bytes: int

    def to_record(self) -> dict[str, object]:
        """A JSON-ready dict for reports and ``hwperf info --json``."""
        return {
            "total_bytes": self.total_bytes,
            "available_bytes": self.available_bytes,
            "cgroup_limit_bytes": self.cgroup_limit_bytes,
            "cgroup_source": self.cgroup_source,
            "effective_bytes": self.effective_bytes,
        }


def detect_memory(root: Path = Path("/")) -> MemoryInfo:
    """This machine's RAM (psutil) capped by the cgroup limit found under ``root``."""
    virtual = psutil.virtual_memory()
    total = int(virtual.total)
    limit = read_memory_limit(root)
    effective = total if limit.limit_bytes is None else min(total, limit.limit_bytes)
    return MemoryInfo(
        total_bytes=total,
        available_bytes=int(virtual.available),
        cgroup_limit_bytes=limit.limit_bytes,
        cgroup_source=limit.source,
        effective_bytes=effective,
    )
