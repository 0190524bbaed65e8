"""pytest_hwperf.hardware.cpu on real cgroup v1/v2 trees built in tmp_path, and on this
machine (including under ``taskset``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_hwperf.hardware.cpu import (
    CpuQuota,
    cgroup_levels,
    detect_cpu,
    format_cpu_list,
    read_affinity,
    read_cpu_quota,
    usable_cores,
)
from pytest_hwperf.warnings import HwperfEnvironmentWarning

ROOT_FS = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw"
V2_MOUNT = (
    "30 23 0:26 {root} /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4"
    " - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot"
)
V1_CPU_MOUNT = (
    "32 31 0:29 {root} /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:9"
    " - cgroup cgroup rw,cpu,cpuacct"
)
V1_MEMORY_MOUNT = (
    "33 31 0:30 {root} /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:10"
    " - cgroup cgroup rw,memory"
)


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
    """A pure cgroup v2 host (or container) with the process in ``path``."""
    return build_tree(
        root,
        [f"0::{path}"],
        [ROOT_FS, V2_MOUNT.format(root=mount_root)],
        {f"sys/fs/cgroup/{key}": value for key, value in files.items()},
    )


def v1_tree(root: Path, path: str, files: dict[str, str], mount_root: str = "/") -> Path:
    """A cgroup v1 host with cpu,cpuacct co-mounted and the process in ``path``."""
    return build_tree(
        root,
        [
            "12:pids:/user.slice",
            f"4:cpu,cpuacct:{path}",
            "3:memory:/user.slice",
            "1:name=systemd:/user.slice",
        ],
        [ROOT_FS, V1_CPU_MOUNT.format(root=mount_root), V1_MEMORY_MOUNT.format(root="/")],
        {f"sys/fs/cgroup/cpu,cpuacct/{key}": value for key, value in files.items()},
    )


def cfs(quota: int, period: int = 100000) -> dict[str, str]:
    return {"cpu.cfs_quota_us": str(quota), "cpu.cfs_period_us": str(period)}


def v1_files(levels: dict[str, dict[str, str]]) -> dict[str, str]:
    files: dict[str, str] = {}
    for directory, contents in levels.items():
        for name, text in contents.items():
            files[f"{directory}/{name}" if directory else name] = text
    return files


def usable(root: Path, affinity: tuple[int, ...]) -> tuple[int, str]:
    info = detect_cpu(root, affinity=affinity)
    return info.usable_cores, info.usable_source


# ------------------------------------------------------------------ cgroup v2


def test_v2_nested_half_core_quota_gives_one_core(tmp_path):
    root = v2_tree(
        tmp_path,
        "/system.slice/ci.scope/job",
        {
            "cgroup.controllers": "cpuset cpu io memory pids",
            "system.slice/cpu.max": "max 100000",
            "system.slice/ci.scope/cpu.max": "50000 100000",
            "system.slice/ci.scope/job/cpu.max": "max 100000",
        },
    )
    quota = read_cpu_quota(root)
    assert quota == CpuQuota(0.5, "cgroup v2 cpu.max at /sys/fs/cgroup/system.slice/ci.scope")
    cores, source = usable(root, (0, 1))
    assert cores == 1
    assert source.startswith("CPU quota 0.5 cores")
    assert "cpu.max at /sys/fs/cgroup/system.slice/ci.scope" in source
    assert "rounded up to 1" in source


def test_v2_one_and_a_half_cores_round_up_to_two(tmp_path):
    root = v2_tree(tmp_path, "/a/b", {"a/b/cpu.max": "150000 100000"})
    cores, source = usable(root, (0, 1, 2, 3))
    assert cores == 2
    assert source.startswith("CPU quota 1.5 cores (cgroup v2 cpu.max at /sys/fs/cgroup/a/b)")
    assert "rounded up to 2" in source
    assert "affinity 0-3 (4 CPUs)" in source


def test_v2_max_gives_the_affinity_count(tmp_path):
    root = v2_tree(tmp_path, "/a/b", {"a/cpu.max": "max 100000", "a/b/cpu.max": "max 100000"})
    assert read_cpu_quota(root) == CpuQuota(None, "no CPU quota")
    cores, source = usable(root, (0, 1, 2))
    assert cores == 3
    assert source == "affinity 0-2 (3 CPUs), no CPU quota"


def test_no_cgroup_files_at_all_give_the_affinity_count(tmp_path):
    assert cgroup_levels(tmp_path, "cpu") == []
    assert read_cpu_quota(tmp_path) == CpuQuota(None, "no CPU quota")
    cores, source = usable(tmp_path, (0, 2, 3, 4))
    assert cores == 4
    assert source == "affinity 0,2-4 (4 CPUs), no CPU quota"


def test_cgroup_known_but_limit_files_missing_means_no_limit(tmp_path):
    root = v2_tree(tmp_path, "/a/b", {"a/b/cgroup.procs": "1"})
    assert read_cpu_quota(root).cores is None


def test_v2_smallest_limit_over_nested_levels_wins(tmp_path):
    root = v2_tree(
        tmp_path,
        "/slurm/job/step",
        {
            "slurm/cpu.max": "max 100000",
            "slurm/job/cpu.max": "100000 100000",  # parent: 1 core
            "slurm/job/step/cpu.max": "300000 100000",  # child: 3 cores
        },
    )
    quota = read_cpu_quota(root)
    assert quota.cores == 1
    assert quota.source == "cgroup v2 cpu.max at /sys/fs/cgroup/slurm/job"
    cores, source = usable(root, tuple(range(8)))
    assert cores == 1
    assert "rounded up" not in source
    assert source.startswith("CPU quota 1 core (")


def test_v2_child_tighter_than_parent(tmp_path):
    root = v2_tree(
        tmp_path,
        "/p/c",
        {"p/cpu.max": "400000 100000", "p/c/cpu.max": "200000 100000"},
    )
    assert read_cpu_quota(root) == CpuQuota(2.0, "cgroup v2 cpu.max at /sys/fs/cgroup/p/c")


def test_v2_levels_walk_from_the_process_cgroup_to_the_mount_point(tmp_path):
    root = v2_tree(tmp_path, "/a/b/c", {})
    levels = cgroup_levels(root, "cpu")
    assert [(level.version, level.directory) for level in levels] == [
        (2, tmp_path / "sys/fs/cgroup/a/b/c"),
        (2, tmp_path / "sys/fs/cgroup/a/b"),
        (2, tmp_path / "sys/fs/cgroup/a"),
        (2, tmp_path / "sys/fs/cgroup"),
    ]


@pytest.mark.parametrize("inner", ["", "/inner"])
def test_v2_container_mount_root_is_not_slash(tmp_path, inner):
    # Without a cgroup namespace the container sees its full host path in
    # /proc/self/cgroup while /sys/fs/cgroup shows the tree from /docker/abc down.
    leaf = "sys/fs/cgroup" + inner
    root = v2_tree(
        tmp_path,
        "/docker/abc" + inner,
        {
            f"{inner}/cpu.max".lstrip("/"): "200000 100000",
            # decoys where a naive join of mount point and cgroup path would look
            "docker/abc/cpu.max": "10000 100000",
            "docker/abc/inner/cpu.max": "10000 100000",
        },
        mount_root="/docker/abc",
    )
    quota = read_cpu_quota(root)
    assert quota.cores == 2
    assert quota.source == f"cgroup v2 cpu.max at /{leaf}"
    assert usable(root, tuple(range(4)))[0] == 2


def test_v2_cgroup_outside_the_mount_root_falls_back_to_the_mount_point(tmp_path):
    root = v2_tree(
        tmp_path,
        "/elsewhere/x",
        {"cpu.max": "300000 100000"},
        mount_root="/docker/abc",
    )
    assert read_cpu_quota(root).cores == 3


def test_mountinfo_escapes_are_decoded(tmp_path):
    root = build_tree(
        tmp_path,
        ["0::/a"],
        [r"30 23 0:26 / /sys/fs/my\040cgroup rw shared:4 - cgroup2 cgroup2 rw"],
        {"sys/fs/my cgroup/a/cpu.max": "250000 100000"},
    )
    assert read_cpu_quota(root).cores == 2.5


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("banana", "expected"),
        ("50000", "expected"),
        ("-5 100000", "positive"),
        ("50000 0", "positive"),
        ("1 2 3", "expected"),
        ("5x 100000", "invalid literal"),
    ],
)
def test_v2_malformed_cpu_max_is_skipped_with_a_warning(tmp_path, content, why):
    root = v2_tree(
        tmp_path,
        "/a/b",
        {"a/cpu.max": "300000 100000", "a/b/cpu.max": content},
    )
    with pytest.warns(HwperfEnvironmentWarning, match=r"/sys/fs/cgroup/a/b/cpu\.max") as record:
        quota = read_cpu_quota(root)
    assert why in str(record[0].message)
    assert quota == CpuQuota(3.0, "cgroup v2 cpu.max at /sys/fs/cgroup/a")


def test_unreadable_limit_is_no_limit_and_no_warning(tmp_path):
    root = v2_tree(tmp_path, "/a", {"a/cpu.max/oops": "x"})  # cpu.max is a directory
    assert read_cpu_quota(root).cores is None


# ------------------------------------------------------------------ cgroup v1


def test_v1_nested_half_core_quota_gives_one_core(tmp_path):
    root = v1_tree(
        tmp_path,
        "/system.slice/ci.service/job",
        v1_files(
            {
                "": cfs(-1),
                "system.slice": cfs(-1),
                "system.slice/ci.service": cfs(50000),
                "system.slice/ci.service/job": cfs(-1),
            }
        ),
    )
    quota = read_cpu_quota(root)
    assert quota.cores == 0.5
    assert quota.source == (
        "cgroup v1 cpu.cfs_quota_us/cpu.cfs_period_us at"
        " /sys/fs/cgroup/cpu,cpuacct/system.slice/ci.service"
    )
    cores, source = usable(root, (0, 1))
    assert cores == 1
    assert source.startswith("CPU quota 0.5 cores (cgroup v1")


def test_v1_one_and_a_half_cores_round_up_to_two(tmp_path):
    root = v1_tree(tmp_path, "/job", v1_files({"job": cfs(150000), "": cfs(-1)}))
    cores, source = usable(root, (0, 1, 2, 3))
    assert cores == 2
    assert "rounded up to 2" in source


def test_v1_minus_one_quota_gives_the_affinity_count(tmp_path):
    root = v1_tree(tmp_path, "/job", v1_files({"job": cfs(-1), "": cfs(-1)}))
    assert read_cpu_quota(root) == CpuQuota(None, "no CPU quota")
    assert usable(root, (0, 1, 2)) == (3, "affinity 0-2 (3 CPUs), no CPU quota")


def test_v1_other_period_and_smallest_over_levels(tmp_path):
    root = v1_tree(
        tmp_path,
        "/p/c",
        v1_files({"p": cfs(50000, 50000), "p/c": cfs(600000, 200000)}),
    )
    quota = read_cpu_quota(root)
    assert quota.cores == 1
    assert quota.source.endswith("/sys/fs/cgroup/cpu,cpuacct/p")


def test_v1_container_mount_root(tmp_path):
    root = v1_tree(
        tmp_path,
        "/docker/abc",
        v1_files({"": cfs(200000), "docker/abc": cfs(10000)}),
        mount_root="/docker/abc",
    )
    assert read_cpu_quota(root) == CpuQuota(
        2.0, "cgroup v1 cpu.cfs_quota_us/cpu.cfs_period_us at /sys/fs/cgroup/cpu,cpuacct"
    )


def test_v1_quota_without_period_is_no_limit(tmp_path):
    root = v1_tree(tmp_path, "/job", {"job/cpu.cfs_quota_us": "50000"})
    assert read_cpu_quota(root).cores is None


@pytest.mark.parametrize(
    ("files", "bad"),
    [
        ({"cpu.cfs_quota_us": "lots", "cpu.cfs_period_us": "100000"}, "cpu.cfs_quota_us"),
        ({"cpu.cfs_quota_us": "0", "cpu.cfs_period_us": "100000"}, "cpu.cfs_quota_us"),
        ({"cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "0"}, "cpu.cfs_period_us"),
    ],
)
def test_v1_malformed_files_are_skipped_with_a_warning(tmp_path, files, bad):
    root = v1_tree(tmp_path, "/job", v1_files({"job": files, "": cfs(400000)}))
    with pytest.warns(HwperfEnvironmentWarning, match=f"cpu,cpuacct/job/{bad}"):
        quota = read_cpu_quota(root)
    assert quota.cores == 4


def test_hybrid_host_reads_v1_cpu_and_v2_unified(tmp_path):
    # systemd "hybrid": cgroup2 mounted at /sys/fs/cgroup/unified without controllers,
    # the cpu controller on v1 (as on this project's CI host).
    root = build_tree(
        tmp_path,
        ["1:cpu:/job", "0::/job"],
        [
            ROOT_FS,
            "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
            "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
            "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
        ],
        {
            "sys/fs/cgroup/cpu/job/cpu.cfs_quota_us": "100000",
            "sys/fs/cgroup/cpu/job/cpu.cfs_period_us": "100000",
            "sys/fs/cgroup/unified/job/cgroup.procs": "1",
        },
    )
    assert [level.version for level in cgroup_levels(root, "cpu")] == [1, 1, 2, 2]
    assert read_cpu_quota(root).cores == 1


# --------------------------------------------------------------- usable_cores


def test_affinity_smaller_than_quota_wins():
    quota = CpuQuota(2.0, "cgroup v2 cpu.max at /sys/fs/cgroup/x")
    cores, source = usable_cores(1, quota, "3")
    assert cores == 1
    assert source.startswith("affinity 3 (1 CPU); CPU quota 2 cores")
    assert source.endswith("is not smaller")


def test_usable_cores_is_at_least_one():
    assert usable_cores(4, CpuQuota(0.01, "q"))[0] == 1
    assert usable_cores(0, CpuQuota(None, "no CPU quota"))[0] == 1


def test_usable_cores_without_cpu_list_names_the_count():
    assert usable_cores(2, CpuQuota(None, "no CPU quota")) == (
        2,
        "affinity 2 CPUs, no CPU quota",
    )


@pytest.mark.parametrize(
    ("cpus", "text"),
    [
        ((), ""),
        ((0,), "0"),
        ((0, 1, 2, 5), "0-2,5"),
        ((5, 0, 2, 1), "0-2,5"),
        ((0, 2, 4), "0,2,4"),
        ((1, 2, 3, 7, 8, 10), "1-3,7-8,10"),
    ],
)
def test_format_cpu_list(cpus, text):
    assert format_cpu_list(cpus) == text


# ------------------------------------------------------------ model and ISA

X86_V3_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx"
    " fxsr sse sse2 ht syscall nx lm constant_tsc pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2"
    " movbe popcnt aes xsave avx f16c rdrand lahf_lm abm bmi1 avx2 bmi2"
)


def write_cpuinfo(root: Path, text: str) -> Path:
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "cpuinfo").write_text(text)
    return root


@pytest.mark.parametrize(
    ("extra", "level"),
    [
        ("", "x86-64-v3"),
        (" avx512f avx512bw avx512cd avx512dq avx512vl", "x86-64-v4"),
        (" avx512f", "x86-64-v3"),
    ],
)
def test_x86_model_and_level(tmp_path, extra, level):
    root = write_cpuinfo(
        tmp_path,
        "processor\t: 0\nvendor_id\t: GenuineIntel\n"
        "model name\t: Intel(R) Xeon(R)  Gold 6248 CPU @ 2.50GHz\n"
        f"flags\t\t: {X86_V3_FLAGS}{extra}\n\n"
        "processor\t: 1\nmodel name\t: something else\nflags\t\t: fpu\n",
    )
    info = detect_cpu(root, affinity=(0, 1))
    assert info.model == "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"
    assert info.isa_level == level


def test_x86_levels_below_v3(tmp_path):
    v2 = "lm cmov cx8 fpu fxsr mmx syscall sse sse2 cx16 lahf_lm popcnt pni sse4_1 sse4_2 ssse3"
    assert detect_cpu(write_cpuinfo(tmp_path, f"flags : {v2}\n"), (0,)).isa_level == "x86-64-v2"
    assert detect_cpu(write_cpuinfo(tmp_path, "flags : fpu\n"), (0,)).isa_level is None


def test_aarch64_model_and_features(tmp_path):
    root = write_cpuinfo(
        tmp_path,
        "processor\t: 0\nBogoMIPS\t: 2000.00\n"
        "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid"
        " asimdrdm lrcpc dcpop asimddp sve i8mm bf16 sve2\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n"
        "CPU part\t: 0xd4f\nCPU revision\t: 0\n",
    )
    info = detect_cpu(root, affinity=(0,))
    assert info.model == "ARM Neoverse-V2"
    assert info.isa_level == "aarch64+asimd+asimddp+fphp+bf16+i8mm+sve+sve2"


def test_arm_unknown_part_and_hardware_line(tmp_path):
    unknown = write_cpuinfo(
        tmp_path / "a", "Features : fp\nCPU implementer : 0x61\nCPU part : 0x022\n"
    )
    assert detect_cpu(unknown, (0,)).model == "CPU implementer 0x61 part 0x022"
    board = write_cpuinfo(tmp_path / "b", "Features : fp asimd\nHardware : BCM2835\n")
    assert detect_cpu(board, (0,)).model == "BCM2835"


def test_missing_cpuinfo_falls_back(tmp_path):
    info = detect_cpu(tmp_path, affinity=(0,))
    assert info.model
    assert info.isa_level is None


@pytest.mark.parametrize(("active", "smt"), [("1", True), ("0", False)])
def test_smt_from_sysfs(tmp_path, active, smt):
    path = tmp_path / "sys/devices/system/cpu/smt/active"
    path.parent.mkdir(parents=True)
    path.write_text(active + "\n")
    assert detect_cpu(tmp_path, affinity=(0,)).smt is smt


def test_to_record_is_json_ready(tmp_path):
    root = v2_tree(tmp_path, "/a", {"a/cpu.max": "150000 100000"})
    record = detect_cpu(root, affinity=(3, 1, 2)).to_record()
    assert json.loads(json.dumps(record)) == record
    assert record["affinity"] == [1, 2, 3]
    assert record["affinity_list"] == "1-3"
    assert record["quota_cores"] == 1.5
    assert record["usable_cores"] == 2
    assert set(record) >= {"logical", "physical", "model", "isa_level", "smt", "usable_source"}


# ------------------------------------------------------------- this machine


def test_this_machine():
    info = detect_cpu()
    assert 1 <= info.usable_cores <= info.logical
    assert info.affinity == read_affinity()
    assert info.physical is None or 1 <= info.physical <= info.logical
    assert info.model
    assert info.usable_source


def test_read_affinity_is_sorted_and_non_empty():
    cpus = read_affinity()
    assert cpus
    assert list(cpus) == sorted(set(cpus))
    if hasattr(os, "sched_getaffinity"):
        assert set(cpus) == os.sched_getaffinity(0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="taskset is Linux-only")
def test_taskset_one_cpu_gives_one_usable_core():
    taskset = shutil.which("taskset")
    if taskset is None:
        pytest.skip("the taskset binary (util-linux) is not installed")
    cpu = read_affinity()[0]
    script = (
        "from pytest_hwperf.hardware.cpu import detect_cpu\n"
        "info = detect_cpu()\n"
        "print(info.usable_cores)\n"
        "print(info.usable_source)\n"
    )
    done = subprocess.run(
        [taskset, "-c", str(cpu), sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    cores, source = done.stdout.splitlines()[:2]
    assert cores == "1"
    assert source.startswith(f"affinity {cpu} (1 CPU)")
