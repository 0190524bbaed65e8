"""`unmet_requirements`: each `hardware(...)` requirement against a machine.

The machine is this one, detected once per module (no torch probe), with its CPU,
memory and GPUs replaced by exact stand-ins through `dataclasses.replace`, so each
phrase, and the measured value in it, is known in advance.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pytest_hwperf.hardware.gpu import GpuInfo, GpuReport
from pytest_hwperf.hardware.machine import Machine, detect_machine
from pytest_hwperf.hardware.requirements import HardwareRequirements, unmet_requirements
from pytest_hwperf.plugin.markers import HardwareMarker, MarkerError

GB = 1_000_000_000
NO_GPU_REASON = "no NVIDIA driver library (libnvidia-ml.so.1 not found)"
CORES_SOURCE = "affinity 0-3 (4 CPUs), no CPU quota"
MEMORY_SOURCE = "cgroup v2 memory.max 16000000000 at /sys/fs/cgroup/ci.slice"

_MACHINE: list[Machine] = []  # the real detection, taken once per module


@pytest.fixture(scope="module")
def real_machine() -> Machine:
    if not _MACHINE:
        _MACHINE.append(detect_machine(torch_fallback=False))
    return _MACHINE[0]


def gpu(
    name: str = "NVIDIA A100-SXM4-80GB",
    *,
    index: int = 0,
    memory_gb: float | None = 80,
    cc: tuple[int, int] | None = (8, 0),
) -> GpuInfo:
    return GpuInfo(
        index=index,
        name=name,
        uuid=f"GPU-0000000{index}-1111-2222-3333-444444444444",
        memory_total_bytes=None if memory_gb is None else int(memory_gb * GB),
        compute_capability=cc,
        mig_mode=False,
        multiprocessors=108,
        cuda_index=index,
    )


def gpu_report(*gpus: GpuInfo, reason: str | None = None) -> GpuReport:
    return GpuReport(
        gpus=tuple(gpus),
        driver_version="550.54.15" if gpus else None,
        cuda_driver_version="12.4" if gpus else None,
        source="nvml" if gpus else "none",
        reason=reason if reason is not None or gpus else NO_GPU_REASON,
    )


@pytest.fixture
def machine(real_machine: Machine):
    """Build a machine: `machine(cores=4, memory_gb=16, gpus=(...))`."""

    def build(*, cores: int = 4, memory_gb: float = 16, gpus: tuple[GpuInfo, ...] = ()) -> Machine:
        return replace(
            real_machine,
            cpu=replace(real_machine.cpu, usable_cores=cores, usable_source=CORES_SOURCE),
            memory=replace(
                real_machine.memory,
                effective_bytes=int(memory_gb * GB),
                cgroup_source=MEMORY_SOURCE,
            ),
            gpus=gpu_report(*gpus),
        )

    return build


def test_the_real_machine_meets_no_requirements_by_default(real_machine: Machine) -> None:
    assert unmet_requirements(HardwareRequirements(), real_machine) == []
    assert unmet_requirements(HardwareRequirements(min_cores=1), real_machine) == []


def test_all_requirements_met_gives_nothing(machine) -> None:
    req = HardwareRequirements(
        gpu=True,
        min_gpus=2,
        min_cores=4,
        min_memory_gb=16,
        gpu_name="a100",
        min_gpu_memory_gb=80,
        min_compute_capability=(8, 0),
    )
    m = machine(cores=4, memory_gb=16, gpus=(gpu(index=0), gpu(index=1)))
    assert unmet_requirements(req, m) == []


def test_gpu_needed_and_none_present_names_the_reason(machine) -> None:
    unmet = unmet_requirements(HardwareRequirements(gpu=True), machine())
    assert unmet == [f"needs a GPU, this machine has 0: {NO_GPU_REASON}"]


def test_gpu_needed_and_one_present(machine) -> None:
    assert unmet_requirements(HardwareRequirements(gpu=True), machine(gpus=(gpu(),))) == []


def test_gpu_facts_imply_a_gpu(machine) -> None:
    """gpu_name, min_gpu_memory_gb and min_compute_capability each need one GPU."""
    for req in (
        HardwareRequirements(gpu_name="A100"),
        HardwareRequirements(min_gpu_memory_gb=1),
        HardwareRequirements(min_compute_capability=(7, 0)),
    ):
        assert req.gpus_needed == 1
        assert unmet_requirements(req, machine()) == [
            f"needs a GPU, this machine has 0: {NO_GPU_REASON}"
        ]
    assert HardwareRequirements().gpus_needed == 0


def test_min_gpus_two_with_one(machine) -> None:
    """With a GPU present the reason for having none is not given."""
    unmet = unmet_requirements(HardwareRequirements(min_gpus=2), machine(gpus=(gpu(),)))
    assert unmet == ["needs >= 2 GPUs, this machine has 1"]


def test_min_gpus_two_with_none(machine) -> None:
    unmet = unmet_requirements(HardwareRequirements(gpu=True, min_gpus=2), machine())
    assert unmet == [f"needs >= 2 GPUs, this machine has 0: {NO_GPU_REASON}"]


def test_gpus_hidden_by_cuda_visible_devices_do_not_count(machine) -> None:
    hidden = replace(gpu(), cuda_index=None)
    m = replace(
        machine(),
        gpus=gpu_report(hidden, reason="0 GPUs visible (CUDA_VISIBLE_DEVICES='')"),
    )
    assert unmet_requirements(HardwareRequirements(gpu=True), m) == [
        "needs a GPU, this machine has 0: 0 GPUs visible (CUDA_VISIBLE_DEVICES='')"
    ]


@pytest.mark.parametrize("wanted", ["a100", "A100", "nvidia a100-sxm4", "SXM4-80GB"])
def test_gpu_name_matches_case_insensitively_within_the_name(machine, wanted: str) -> None:
    m = machine(gpus=(gpu("Tesla T4", index=0, cc=(7, 5)), gpu(index=1)))
    assert unmet_requirements(HardwareRequirements(gpu_name=wanted), m) == []


def test_gpu_name_mismatch_lists_the_visible_names(machine) -> None:
    m = machine(gpus=(gpu("Tesla T4", index=0), gpu("NVIDIA L4", index=1)))
    unmet = unmet_requirements(HardwareRequirements(gpu_name="H100"), m)
    assert unmet == ["needs a GPU named like 'H100', visible: Tesla T4, NVIDIA L4"]


def test_min_gpu_memory_uses_the_largest_visible_gpu(machine) -> None:
    m = machine(gpus=(gpu("Tesla T4", index=0, memory_gb=16), gpu(index=1, memory_gb=40)))
    assert unmet_requirements(HardwareRequirements(min_gpu_memory_gb=40), m) == []
    unmet = unmet_requirements(HardwareRequirements(min_gpu_memory_gb=80), m)
    assert unmet == ["needs a GPU with >= 80 GB, the largest visible has 40.0 GB"]


def test_unknown_gpu_memory_is_reported_as_unknown(machine) -> None:
    m = machine(gpus=(gpu(memory_gb=None),))
    unmet = unmet_requirements(HardwareRequirements(min_gpu_memory_gb=16), m)
    assert len(unmet) == 1
    assert "unknown" in unmet[0]
    assert "0.0 GB" not in unmet[0]


def test_min_compute_capability_is_a_tuple_comparison(machine) -> None:
    """(8, 10) would be above (8, 9) as a tuple; 8.10 as a float would be below 8.9."""
    m = machine(gpus=(gpu("Tesla T4", index=0, cc=(7, 5)), gpu("RTX", index=1, cc=(8, 9))))
    assert unmet_requirements(HardwareRequirements(min_compute_capability=(8, 9)), m) == []
    assert unmet_requirements(HardwareRequirements(min_compute_capability=(7, 10)), m) == []
    assert unmet_requirements(HardwareRequirements(min_compute_capability=(9, 0)), m) == [
        "needs compute capability >= 9.0, the best visible GPU has 8.9"
    ]
    m10 = machine(gpus=(gpu(cc=(8, 10)),))
    assert unmet_requirements(HardwareRequirements(min_compute_capability=(8, 9)), m10) == []


def test_unknown_compute_capability_is_unmet_and_says_so(machine) -> None:
    m = machine(gpus=(gpu(cc=None),))
    unmet = unmet_requirements(HardwareRequirements(min_compute_capability=(7, 0)), m)
    assert unmet == ["needs compute capability >= 7.0, the best visible GPU has unknown"]


def test_min_memory_gb_names_the_effective_memory_and_its_source(machine) -> None:
    m = machine(memory_gb=16)
    assert unmet_requirements(HardwareRequirements(min_memory_gb=16), m) == []
    unmet = unmet_requirements(HardwareRequirements(min_memory_gb=32.5), m)
    assert unmet == [f"needs >= 32.5 GB of memory, this machine has 16.0 GB ({MEMORY_SOURCE})"]


def test_min_cores_names_the_usable_cores_and_their_source(machine) -> None:
    m = machine(cores=4)
    assert unmet_requirements(HardwareRequirements(min_cores=4), m) == []
    unmet = unmet_requirements(HardwareRequirements(min_cores=64), m)
    assert unmet == [f"needs >= 64 usable cores, this machine has 4 ({CORES_SOURCE})"]


def test_min_cores_on_the_real_machine_states_its_real_figures(real_machine: Machine) -> None:
    cpu = real_machine.cpu
    (phrase,) = unmet_requirements(
        HardwareRequirements(min_cores=cpu.usable_cores + 1), real_machine
    )
    assert f"this machine has {cpu.usable_cores} ({cpu.usable_source})" in phrase


def test_every_unmet_requirement_is_named_once_each(machine) -> None:
    req = HardwareRequirements(min_cores=8, min_memory_gb=64, gpu=True)
    unmet = unmet_requirements(req, machine(cores=2, memory_gb=8))
    assert unmet == [
        f"needs >= 8 usable cores, this machine has 2 ({CORES_SOURCE})",
        f"needs >= 64 GB of memory, this machine has 8.0 GB ({MEMORY_SOURCE})",
        f"needs a GPU, this machine has 0: {NO_GPU_REASON}",
    ]


def test_the_hardware_marker_binds_to_exactly_these_requirements() -> None:
    """The marker's arguments are HardwareRequirements' fields, declared there once."""
    marker = HardwareMarker.from_args(
        (), {"min_cores": 2, "gpu_name": "A100", "min_compute_capability": "8.6"}
    )
    assert marker.requirements == HardwareRequirements(
        min_cores=2, gpu_name="A100", min_compute_capability=(8, 6)
    )
    assert type(marker.requirements) is HardwareRequirements
    assert str(HardwareMarker.SIGNATURE) == (
        "(*, gpu=False, min_gpus=0, min_cores=None, min_memory_gb=None, gpu_name=None,"
        " min_gpu_memory_gb=None, min_compute_capability=None)"
    )


@pytest.mark.parametrize(
    "arg", ["min_gpus", "min_cores", "min_memory_gb", "min_gpu_memory_gb", "min_compute_capability"]
)
def test_a_requirement_no_float_holds_is_a_marker_error(arg: str) -> None:
    with pytest.raises(MarkerError, match=rf"^@pytest.mark.hardware: argument '{arg}' must be"):
        HardwareMarker.from_args((), {arg: 10**400})
