"""pytest_hwperf.hardware.memory on real cgroup v1/v2 trees built in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from pytest_hwperf.hardware.memory import (
    MemoryLimit,
    detect_memory,
    read_memory_limit,
)
from pytest_hwperf.warnings import HwperfEnvironmentWarning

GIB = 1 << 30
V1_UNLIMITED_4K = "9223372036854771712"  # what v1 shows for "no limit" with 4 KiB pages
V1_UNLIMITED_64K = "9223372036854710272"  # ... and with 64 KiB pages (arm64 kernels)

ROOT_FS = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw"
V2_MOUNT = (
    "30 23 0:26 {root} /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4"
    " - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot"
)
V1_MOUNTS = [
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct",
    "33 31 0:30 {root} /sys/fs/cgroup/memory rw,relatime shared:10 - cgroup cgroup rw,memory",
]


def build_tree(root: Path, cgroup: list[str], mountinfo: list[str], files: dict[str, str]) -> Path:
    """Write proc/self/cgroup, proc/self/mountinfo and the given files under ``root``."""
    (root / "proc" / "self").mkdir(parents=True)
    (root / "proc" / "self" / "cgroup").write_text("".join(f"{line}\n" for line in cgroup))
    (root / "proc" / "self" / "mountinfo").write_text("".join(f"{line}\n" for line in mountinfo))
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


def v2_tree(root: Path, path: str, files: dict[str, str], mount_root: str = "/") -> Path:
    return build_tree(
        root,
        [f"0::{path}"],
        [ROOT_FS, V2_MOUNT.format(root=mount_root)],
        {f"sys/fs/cgroup/{key}": value for key, value in files.items()},
    )


def v1_tree(root: Path, path: str, files: dict[str, str], mount_root: str = "/") -> Path:
    return build_tree(
        root,
        ["4:cpu,cpuacct:/", f"3:memory:{path}", "1:name=systemd:/"],
        [ROOT_FS, *(line.format(root=mount_root) for line in V1_MOUNTS)],
        {f"sys/fs/cgroup/memory/{key}": value for key, value in files.items()},
    )


# ------------------------------------------------------------------ cgroup v2


def test_v2_limit(tmp_path):
    root = v2_tree(tmp_path, "/ci/job", {"ci/job/memory.max": str(2 * GIB)})
    assert read_memory_limit(root) == MemoryLimit(
        2 * GIB, "cgroup v2 memory.max at /sys/fs/cgroup/ci/job"
    )


def test_v2_max_is_no_limit(tmp_path):
    root = v2_tree(tmp_path, "/ci/job", {"ci/memory.max": "max", "ci/job/memory.max": "max"})
    assert read_memory_limit(root) == MemoryLimit(None, "no cgroup memory limit")


def test_no_cgroup_files_at_all(tmp_path):
    assert read_memory_limit(tmp_path) == MemoryLimit(None, "no cgroup memory limit")


def test_v2_nested_smallest_wins(tmp_path):
    root = v2_tree(
        tmp_path,
        "/user.slice/user-1000.slice/session.scope",
        {
            "user.slice/memory.max": "max",
            "user.slice/user-1000.slice/memory.max": str(3 * GIB),
            "user.slice/user-1000.slice/session.scope/memory.max": str(8 * GIB),
        },
    )
    limit = read_memory_limit(root)
    assert limit.limit_bytes == 3 * GIB
    assert limit.source == "cgroup v2 memory.max at /sys/fs/cgroup/user.slice/user-1000.slice"


def test_v2_container_mount_root(tmp_path):
    root = v2_tree(
        tmp_path,
        "/docker/abc",
        {"memory.max": str(GIB), "docker/abc/memory.max": "1"},
        mount_root="/docker/abc",
    )
    assert read_memory_limit(root) == MemoryLimit(GIB, "cgroup v2 memory.max at /sys/fs/cgroup")


@pytest.mark.parametrize("content", ["lots", "-1", "1.5G"])
def test_v2_malformed_is_skipped_with_a_warning(tmp_path, content):
    root = v2_tree(tmp_path, "/a/b", {"a/memory.max": str(GIB), "a/b/memory.max": content})
    with pytest.warns(HwperfEnvironmentWarning, match=r"/sys/fs/cgroup/a/b/memory\.max"):
        limit = read_memory_limit(root)
    assert limit.limit_bytes == GIB


# ------------------------------------------------------------------ cgroup v1


@pytest.mark.parametrize("huge", [V1_UNLIMITED_4K, V1_UNLIMITED_64K])
def test_v1_huge_value_is_no_limit(tmp_path, huge):
    root = v1_tree(
        tmp_path,
        "/job",
        {"memory.limit_in_bytes": huge, "job/memory.limit_in_bytes": huge},
    )
    assert read_memory_limit(root) == MemoryLimit(None, "no cgroup memory limit")


def test_v1_limit_and_nested_smallest(tmp_path):
    root = v1_tree(
        tmp_path,
        "/slurm/uid_1000/job_7",
        {
            "memory.limit_in_bytes": V1_UNLIMITED_4K,
            "slurm/memory.limit_in_bytes": V1_UNLIMITED_4K,
            "slurm/uid_1000/memory.limit_in_bytes": str(16 * GIB),
            "slurm/uid_1000/job_7/memory.limit_in_bytes": str(4 * GIB),
        },
    )
    assert read_memory_limit(root) == MemoryLimit(
        4 * GIB, "cgroup v1 memory.limit_in_bytes at /sys/fs/cgroup/memory/slurm/uid_1000/job_7"
    )


def test_v1_container_mount_root(tmp_path):
    root = v1_tree(
        tmp_path,
        "/docker/abc/inner",
        {"inner/memory.limit_in_bytes": str(GIB), "memory.limit_in_bytes": str(2 * GIB)},
        mount_root="/docker/abc",
    )
    assert read_memory_limit(root).limit_bytes == GIB


def test_v1_malformed_is_skipped_with_a_warning(tmp_path):
    root = v1_tree(
        tmp_path,
        "/job",
        {"job/memory.limit_in_bytes": "n/a", "memory.limit_in_bytes": str(GIB)},
    )
    with pytest.warns(HwperfEnvironmentWarning, match="memory/job/memory.limit_in_bytes"):
        assert read_memory_limit(root).limit_bytes == GIB


# --------------------------------------------------------------- detect_memory


def test_detect_memory_caps_effective_at_the_limit(tmp_path):
    root = v2_tree(tmp_path, "/job", {"job/memory.max": str(64 * 1024 * 1024)})
    info = detect_memory(root)
    assert info.cgroup_limit_bytes == 64 * 1024 * 1024
    assert info.effective_bytes == min(info.total_bytes, 64 * 1024 * 1024)
    assert info.cgroup_source == "cgroup v2 memory.max at /sys/fs/cgroup/job"
    record = info.to_record()
    assert json.loads(json.dumps(record)) == record
    assert record["effective_bytes"] == info.effective_bytes


def test_detect_memory_limit_above_ram_leaves_total(tmp_path):
    huge = psutil.virtual_memory().total * 4
    root = v2_tree(tmp_path, "/job", {"job/memory.max": str(huge)})
    info = detect_memory(root)
    assert info.cgroup_limit_bytes == huge
    assert info.effective_bytes == info.total_bytes


def test_detect_memory_on_this_machine():
    info = detect_memory()
    assert info.total_bytes > 0
    assert 0 < info.effective_bytes <= info.total_bytes
    assert 0 <= info.available_bytes <= info.total_bytes
    if info.cgroup_limit_bytes is None:
        assert info.effective_bytes == info.total_bytes
        assert info.cgroup_source == "no cgroup memory limit"
    else:
        assert info.cgroup_source.startswith("cgroup v")
