"""The fingerprint: stable across detections and processes, blind to volatile facts and
to software (host name, UUIDs, free memory, thread pools, every version: those are
recorded per run), sensitive to the hardware class (usable cores, RAM class, GPU class,
OS and architecture); version-1 fingerprints are matched by their hardware part."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest

from pytest_hwperf.hardware import Fingerprint, Machine, detect_machine, fingerprint
from pytest_hwperf.hardware.cpu import CpuInfo, CpuQuota
from pytest_hwperf.hardware.fingerprint import (
    canonical_json,
    gib_rounded,
    major_minor,
    ram_class_gb,
)
from pytest_hwperf.hardware.gpu import GpuInfo, GpuReport
from pytest_hwperf.hardware.memory import MemoryInfo

GIB = 1 << 30
UUID_A = "GPU-abc12345-1111-2222-3333-444444444444"
UUID_B = "GPU-def67890-5555-6666-7777-888888888888"
H100_MEMORY = 85_520_809_984  # what NVML reports for an H100 80GB HBM3: 79.6 GiB

# Prints this process's fingerprint record; no torch fallback (a 3 s child process),
# which would not change the digest on a machine without NVML anyway.
FINGERPRINT_SCRIPT = textwrap.dedent(
    """
    import json
    from pytest_hwperf.hardware import detect_machine, fingerprint
    print(json.dumps(fingerprint(detect_machine(torch_fallback=False)).to_record()))
    """
)


def gpu(uuid=UUID_A, *, name="NVIDIA H100 80GB HBM3", memory=H100_MEMORY, index=0, **kw):
    return GpuInfo(
        index=index,
        name=name,
        uuid=uuid,
        memory_total_bytes=memory,
        compute_capability=(9, 0),
        mig_mode=kw.pop("mig_mode", False),
        multiprocessors=132,
        cuda_index=kw.pop("cuda_index", index),
        **kw,
    )


def gpu_report(*gpus, driver="550.54.15", cuda="12.4"):
    return GpuReport(
        gpus=tuple(gpus),
        driver_version=driver,
        cuda_driver_version=cuda,
        source="nvml",
        reason=None,
    )


def make_machine(**changes):
    """A machine built by hand: every fact is known, so every test sees the same one."""
    machine = Machine(
        cpu=CpuInfo(
            logical=8,
            physical=4,
            affinity=(0, 1, 2, 3),
            quota=CpuQuota(cores=None, source="no CPU quota"),
            usable_cores=4,
            usable_source="affinity 0-3 (4 CPUs), no CPU quota",
            model="Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz",
            isa_level="x86-64-v4",
            smt=True,
        ),
        memory=MemoryInfo(
            total_bytes=int(15.6 * GIB),
            available_bytes=int(12.1 * GIB),
            cgroup_limit_bytes=None,
            cgroup_source="no cgroup memory limit",
            effective_bytes=int(15.6 * GIB),
        ),
        gpus=GpuReport((), None, None, "none", "no NVIDIA driver library"),
        threads={
            "native_pools": [
                {
                    "user_api": "blas",
                    "internal_api": "openblas",
                    "num_threads": 4,
                    "version": "0.3.27",
                },
                {"user_api": "openmp", "internal_api": "openmp", "num_threads": 4, "version": None},
            ],
            "env": {"OMP_NUM_THREADS": "4"},
            "torch_intra_op": 4,
            "torch_inter_op": 4,
        },
        software={
            "python": "3.11.7",
            "python_implementation": "CPython",
            "platform": "linux",
            "machine": "x86_64",
            "pytest_hwperf": "0.1.0",
            "pytest": "9.2.0",
            "numpy": "2.4.6",
            "torch": "2.13.0+cpu",
        },
        hostname="runner-1",
    )
    return replace(machine, **changes)


def digest(machine):
    return fingerprint(machine).digest


def with_memory(machine, effective, total=None):
    total = effective if total is None else total
    memory = replace(machine.memory, total_bytes=total, effective_bytes=effective)
    return replace(machine, memory=memory)


@pytest.fixture(scope="module")
def here():
    """This machine, detected once per module (detection is not free)."""
    return detect_machine(torch_fallback=False)


def run_script(*prefix):
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", FINGERPRINT_SCRIPT],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# -- this machine -------------------------------------------------------------------


def test_digest_is_twelve_hex_characters_of_sha256_over_what_is_hashed(here):
    found = fingerprint(here)
    assert isinstance(found, Fingerprint)
    assert len(found.digest) == 12
    assert int(found.digest, 16) >= 0
    expected = hashlib.sha256(canonical_json(found.hashed).encode()).hexdigest()[:12]
    assert found.digest == expected
    # JSON-ready: the report writes both dicts as they are.
    assert json.loads(json.dumps(found.to_record())) == found.to_record()


def test_identical_across_two_detections_in_one_process(here):
    again = detect_machine(torch_fallback=False)
    assert fingerprint(again).digest == fingerprint(here).digest
    assert fingerprint(again).hashed == fingerprint(here).hashed


def test_identical_across_two_processes():
    first, second = run_script(), run_script()
    assert first["digest"] == second["digest"]
    assert first["hashed"] == second["hashed"]
    assert first["label"] == second["label"]


def test_differs_when_pinned_to_one_cpu(here):
    if shutil.which("taskset") is None:
        pytest.skip("taskset is not installed")
    if here.cpu.usable_cores < 2:
        pytest.skip(
            f"this machine has {here.cpu.usable_cores} usable core; pinning changes nothing"
        )
    free, pinned = run_script(), run_script("taskset", "-c", "0")
    assert pinned["hashed"]["cpu"]["usable_cores"] == 1
    assert free["hashed"]["cpu"]["usable_cores"] == here.cpu.usable_cores
    assert pinned["digest"] != free["digest"]


def test_label_of_this_machine_names_cores_memory_and_gpus_and_versions_are_apart(here):
    found = fingerprint(here)
    assert f"{here.cpu.usable_cores} core" in found.label
    assert "GB RAM class" in found.label
    if not here.gpus.visible:
        assert "no GPU" in found.label
    assert "py3" not in found.label
    assert found.versions["python"] == ".".join(map(str, sys.version_info[:3]))


# -- what is not hashed ---------------------------------------------------------------


def test_hostname_is_volatile():
    one = make_machine(hostname="runner-1")
    other = make_machine(hostname="another-host-xyz")
    assert fingerprint(one).digest == fingerprint(other).digest
    assert fingerprint(other).volatile["hostname"] == "another-host-xyz"
    assert "another-host-xyz" not in canonical_json(fingerprint(other).hashed)


def test_hostname_is_volatile_on_this_machine(here):
    assert digest(replace(here, hostname="elsewhere")) == digest(here)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda m: with_memory(m, int(16.2 * GIB)), id="effective-memory-same-class"),
        pytest.param(
            lambda m: replace(m, memory=replace(m.memory, available_bytes=GIB)), id="free-memory"
        ),
        pytest.param(
            lambda m: replace(m, cpu=replace(m.cpu, affinity=(4, 5, 6, 7))), id="affinity-list"
        ),
        pytest.param(lambda m: replace(m, cpu=replace(m.cpu, logical=96)), id="host-logical"),
        pytest.param(
            lambda m: replace(m, cpu=replace(m.cpu, usable_source="CPU quota 4 cores")),
            id="usable-source",
        ),
        pytest.param(
            lambda m: replace(m, threads={**m.threads, "env": {"OMP_NUM_THREADS": "8"}}),
            id="thread-env",
        ),
        pytest.param(
            lambda m: replace(m, software={**m.software, "torch": "2.13.1+cpu"}),
            id="torch-patch",
        ),
        pytest.param(
            lambda m: replace(m, software={**m.software, "python": "3.11.9"}), id="python-patch"
        ),
        pytest.param(
            lambda m: replace(m, software={**m.software, "pytest_hwperf": "9.9.9"}),
            id="plugin-version",
        ),
        pytest.param(
            lambda m: replace(m, threads={**m.threads, "torch_intra_op": 2}), id="torch-threads"
        ),
        pytest.param(
            lambda m: replace(m, threads={k: v for k, v in m.threads.items() if "torch" not in k}),
            id="torch-not-loaded",
        ),
        pytest.param(
            lambda m: replace(
                m,
                threads={
                    **m.threads,
                    "native_pools": [{"internal_api": "openblas", "num_threads": 1}],
                },
            ),
            id="native-pools",
        ),
    ],
)
def test_volatile_facts_do_not_change_the_digest(change):
    machine = make_machine()
    changed = change(machine)
    assert fingerprint(changed).volatile != fingerprint(machine).volatile
    assert digest(changed) == digest(machine)


# -- what is hashed -------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda m: replace(m, cpu=replace(m.cpu, usable_cores=2)), id="usable-cores"),
        pytest.param(lambda m: replace(m, cpu=replace(m.cpu, smt=False)), id="smt"),
        pytest.param(
            lambda m: replace(m, cpu=replace(m.cpu, isa_level="x86-64-v3")), id="isa-level"
        ),
        pytest.param(
            lambda m: replace(m, cpu=replace(m.cpu, model="AMD EPYC 7R13 Processor")),
            id="cpu-model",
        ),
        pytest.param(lambda m: with_memory(m, 32 * GIB), id="ram-class"),
        pytest.param(lambda m: replace(m, software={**m.software, "platform": "darwin"}), id="os"),
        pytest.param(
            lambda m: replace(m, software={**m.software, "machine": "aarch64"}), id="arch"
        ),
        pytest.param(lambda m: replace(m, gpus=gpu_report(gpu())), id="a-gpu"),
    ],
)
def test_performance_facts_change_the_digest(change):
    machine = make_machine()
    assert digest(change(machine)) != digest(machine)


def test_cgroup_limit_sets_the_ram_class():
    machine = make_machine()
    limited = replace(
        machine,
        memory=replace(machine.memory, cgroup_limit_bytes=4 * GIB, effective_bytes=4 * GIB),
    )
    assert fingerprint(limited).hashed["ram_class_gb"] == 4
    assert fingerprint(machine).hashed["ram_class_gb"] == 16


@pytest.mark.parametrize(
    ("software", "key", "value"),
    [
        ({"torch": "2.14.0+cpu"}, "torch", "2.14.0+cpu"),
        ({"torch": "2.13.0+cu124"}, "torch", "2.13.0+cu124"),
        ({"numpy": "2.5.0"}, "numpy", "2.5.0"),
        ({"python": "3.12.1"}, "python", "3.12.1"),
    ],
)
def test_software_is_recorded_per_run_and_not_hashed(software, key, value):
    machine = make_machine()
    upgraded = replace(machine, software={**machine.software, **software})
    assert digest(upgraded) == digest(machine)
    assert fingerprint(upgraded).versions[key] == value
    assert fingerprint(machine).versions[key] != value


# -- RAM class ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gib", "expected"),
    [
        (15.6, 16),
        (16.0, 16),
        (16.2, 16),
        (11.0, 8),  # below 8 * sqrt(2) = 11.31
        (11.7, 16),  # a "12 GB" machine
        (23.5, 32),  # a "24 GB" machine, kernel-reserved
        (24.0, 32),  # ... and one limited by a cgroup to exactly 24 GiB: the same class
        (62.8, 64),
        (1.0, 1),
        (0.5, 0.5),
        (0.0, 0),
    ],
)
def test_ram_class_is_the_nearest_power_of_two_on_a_log_scale(gib, expected):
    assert ram_class_gb(int(gib * GIB)) == expected


def test_ram_class_whole_gib_are_ints():
    assert isinstance(ram_class_gb(16 * GIB), int)


def test_ram_class_digest_ignores_small_wobble():
    machine = make_machine()
    low, high = with_memory(machine, int(15.6 * GIB)), with_memory(machine, int(16.2 * GIB))
    assert digest(low) == digest(high)
    assert fingerprint(low).volatile["memory"] != fingerprint(high).volatile["memory"]
    assert "16 GB RAM class" in fingerprint(low).label


# -- GPUs -----------------------------------------------------------------------------


def test_gpu_class_is_hashed_and_uuid_is_not():
    one = make_machine(gpus=gpu_report(gpu(UUID_A)))
    other = make_machine(gpus=gpu_report(gpu(UUID_B)))
    assert digest(one) == digest(other)
    hashed = fingerprint(one).hashed["gpu"]
    assert hashed == {
        "count": 1,
        "devices": [{"name": "NVIDIA H100 80GB HBM3", "memory_gb": 80, "mig_mode": False}],
    }
    assert UUID_A not in canonical_json(fingerprint(one).hashed)
    assert fingerprint(one).volatile["gpu"]["uuids"] == [UUID_A]
    assert fingerprint(other).volatile["gpu"]["uuids"] == [UUID_B]


def test_driver_and_cuda_are_recorded_per_run_not_hashed():
    base = make_machine(gpus=gpu_report(gpu(), driver="550.54.15", cuda="12.4"))
    newer = make_machine(gpus=gpu_report(gpu(), driver="560.28.03", cuda="12.6"))
    assert digest(newer) == digest(base)
    assert fingerprint(newer).versions["gpu_driver"] == "560.28.03"
    assert fingerprint(newer).versions["cuda"] == "12.6"
    assert "gpu_driver" not in fingerprint(make_machine()).versions


@pytest.mark.parametrize(
    "gpus",
    [
        pytest.param(gpu_report(gpu(), gpu(UUID_B, index=1)), id="count"),
        pytest.param(gpu_report(gpu(name="NVIDIA A100-SXM4-80GB")), id="model"),
        pytest.param(gpu_report(gpu(memory=40 * GIB)), id="memory"),
        pytest.param(gpu_report(gpu(mig_mode=True)), id="mig"),
    ],
)
def test_gpu_facts_change_the_digest(gpus):
    base = make_machine(gpus=gpu_report(gpu()))
    assert digest(make_machine(gpus=gpus)) != digest(base)


def test_only_gpus_visible_to_cuda_count():
    hidden = gpu(UUID_B, index=1, cuda_index=None)
    one = make_machine(gpus=gpu_report(gpu()))
    with_hidden = make_machine(gpus=gpu_report(gpu(), hidden))
    assert digest(one) == digest(with_hidden)
    assert fingerprint(with_hidden).hashed["gpu"]["count"] == 1


def test_driver_is_not_hashed_without_a_visible_gpu():
    # CUDA_VISIBLE_DEVICES="" on a GPU host: a CPU run, whatever the driver.
    hidden = gpu(cuda_index=None)
    old = make_machine(gpus=gpu_report(hidden, driver="535.1.1", cuda="12.2"))
    new = make_machine(gpus=gpu_report(hidden, driver="560.1.1", cuda="12.6"))
    assert digest(old) == digest(new) == digest(make_machine())


def test_label_with_gpus():
    machine = make_machine(gpus=gpu_report(gpu(), gpu(UUID_B, index=1)))
    assert fingerprint(machine).label == (
        "Intel Xeon Platinum 8375C x86-64-v4, 4 cores, 16 GB RAM class, "
        "2x NVIDIA H100 80GB HBM3 80 GB"
    )


def test_label_without_gpu():
    assert fingerprint(make_machine()).label == (
        "Intel Xeon Platinum 8375C x86-64-v4, 4 cores, 16 GB RAM class, no GPU"
    )


def test_label_without_torch_and_one_core():
    machine = make_machine(software={**make_machine().software, "torch": None})
    machine = replace(machine, cpu=replace(machine.cpu, usable_cores=1))
    label = fingerprint(machine).label
    assert "1 core," in label
    assert "torch" not in fingerprint(machine).versions


# -- helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "expected"),
    [("2.13.0+cpu", "2.13"), ("3.11.7", "3.11"), ("2", "2.0"), (None, None), ("dev", "dev")],
)
def test_major_minor(version, expected):
    assert major_minor(version) == expected


def test_gib_rounded():
    assert gib_rounded(H100_MEMORY) == 80
    assert gib_rounded(None) is None


def test_package_exports_the_function_not_the_module():
    # Importing the submodule by its full name must not rebind the package attribute.
    import pytest_hwperf.hardware.fingerprint

    assert pytest_hwperf.hardware.fingerprint is fingerprint
    assert callable(pytest_hwperf.hardware.fingerprint)


def test_importing_the_package_stays_light():
    code = (
        "import sys, pytest_hwperf.hardware; "
        "print([m for m in ('psutil', 'numpy', 'torch') if m in sys.modules])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == "[]"
