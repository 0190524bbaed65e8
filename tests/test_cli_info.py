"""`hwperf info`: the console script on this machine (text, JSON, pinned with taskset),
and its rendering of machines built by hand (GPUs, warnings, errors)."""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_hwperf import cli
from pytest_hwperf.cli.info import info_lines, serving_recommendations
from pytest_hwperf.hardware import Machine, fingerprint
from pytest_hwperf.hardware import machine as machine_module
from pytest_hwperf.hardware.cpu import CpuInfo, CpuQuota
from pytest_hwperf.hardware.gpu import GpuInfo, GpuReport
from pytest_hwperf.hardware.memory import MemoryInfo
from pytest_hwperf.warnings import HwperfEnvironmentWarning

GIB = 1 << 30
UUID_A = "GPU-abc12345-1111-2222-3333-444444444444"
UUID_B = "GPU-def67890-5555-6666-7777-888888888888"


def hwperf_command():
    """The installed console script next to this interpreter, else the module."""
    script = Path(sys.executable).parent / "hwperf"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pytest_hwperf.cli"]


def run_info(*args, prefix=()):
    # Each run imports torch and may probe GPUs through torch in a child process
    # (seconds): the module fixtures below run each form once.
    proc = subprocess.run(
        [*prefix, *hwperf_command(), "info", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def info_json():
    return json.loads(run_info("--json"))


@pytest.fixture(scope="module")
def info_text():
    return run_info()


@pytest.fixture(scope="module")
def pinned_json():
    if shutil.which("taskset") is None:
        pytest.skip("taskset is not installed")
    return json.loads(run_info("--json", prefix=("taskset", "-c", "0")))


# -- this machine, through the console script ---------------------------------------


def test_json_states_cores_with_their_source(info_json):
    cpu = info_json["cpu"]
    assert cpu["logical"] >= 1
    assert cpu["physical"] is None or cpu["physical"] >= 1
    assert 1 <= cpu["usable_cores"] <= cpu["logical"]
    assert cpu["usable_source"].startswith(("affinity", "CPU quota"))
    assert cpu["model"]


def test_json_states_memory(info_json):
    memory = info_json["memory"]
    assert memory["total_bytes"] > 0
    assert 0 < memory["effective_bytes"] <= memory["total_bytes"]
    assert "cgroup_limit_bytes" in memory
    assert memory["cgroup_source"]


def test_json_states_gpus_or_why_there_are_none(info_json):
    gpus = info_json["gpus"]
    if gpus["visible_count"] == 0:
        assert gpus["reason"], "no GPU must come with its reason"
    else:
        assert all(gpu["name"] for gpu in gpus["gpus"])


def test_json_states_thread_pools(info_json):
    threads = info_json["threads"]
    assert isinstance(threads["native_pools"], list)
    assert isinstance(threads["env"], dict)
    libraries = info_json["libraries_loaded"]
    assert libraries["numpy"] == "loaded"  # a dependency: its BLAS pool is listed
    assert any(pool["user_api"] == "blas" for pool in threads["native_pools"])
    if libraries.get("torch") == "loaded":
        assert threads["torch_intra_op"] >= 1
        assert threads["torch_inter_op"] >= 1


def test_json_carries_the_fingerprint_and_recommendations(info_json):
    found = info_json["fingerprint"]
    assert re.fullmatch(r"[0-9a-f]{12}", found["digest"])
    assert found["label"]
    assert set(found) == {"digest", "label", "hashed", "versions", "volatile"}
    assert found["versions"]["python"] == platform.python_version()
    assert found["hashed"]["cpu"]["usable_cores"] == info_json["cpu"]["usable_cores"]
    assert found["volatile"]["hostname"] == info_json["hostname"]
    cores = info_json["cpu"]["usable_cores"]
    advice = info_json["recommendations"]
    assert advice["usable_cores"] == cores
    assert advice["many_small_requests"]["workers"] == cores
    assert advice["many_small_requests"]["threads_per_worker"] == 1
    assert advice["large_model_latency"]["workers"] == 1
    assert advice["large_model_latency"]["threads_per_worker"] == cores
    assert info_json["warnings"] == []


def test_text_states_the_same_as_json(info_text, info_json):
    cpu, memory, gpus = info_json["cpu"], info_json["memory"], info_json["gpus"]
    assert f"logical:   {cpu['logical']} (os.cpu_count()" in info_text
    assert "physical:" in info_text
    assert "(psutil)" in info_text
    assert f"usable:    {cpu['usable_cores']} ({cpu['usable_source']})" in info_text
    assert cpu["model"] in info_text
    assert "total:" in info_text
    assert "effective:" in info_text
    assert "cgroup limit: " in info_text
    assert memory["cgroup_source"] in info_text
    if gpus["visible_count"] == 0:
        assert f"no GPU: {gpus['reason']}" in info_text
    assert "native pools:" in info_text
    assert "torch:" in info_text
    # Two processes, one fingerprint.
    assert f"digest: {info_json['fingerprint']['digest']}" in info_text
    assert f"label:  {info_json['fingerprint']['label']}" in info_text
    cores = cpu["usable_cores"]
    assert "many small requests: " in info_text
    assert "latency of large models: " in info_text
    assert f"1 worker x {cores} thread" in info_text


def test_pinned_to_one_cpu_reports_one_usable_core_from_affinity(pinned_json, info_json):
    cpu = pinned_json["cpu"]
    assert cpu["usable_cores"] == 1
    assert cpu["usable_source"].startswith("affinity")
    assert cpu["affinity"] == [0]
    assert pinned_json["recommendations"]["many_small_requests"]["workers"] == 1
    if info_json["cpu"]["usable_cores"] >= 2:
        assert pinned_json["fingerprint"]["digest"] != info_json["fingerprint"]["digest"]


# -- rendering, in this process, of machines built by hand --------------------------


def gpu(uuid, index, cuda_index, name="NVIDIA H100 80GB HBM3"):
    return GpuInfo(index, name, uuid, 85_520_809_984, (9, 0), False, 132, cuda_index)


def fake_machine(gpus=None):
    return Machine(
        cpu=CpuInfo(
            logical=16,
            physical=8,
            affinity=(0, 1, 2, 3),
            quota=CpuQuota(cores=3.0, source="cgroup v2 cpu.max at /sys/fs/cgroup/job"),
            usable_cores=3,
            usable_source="CPU quota 3 cores (cgroup v2 cpu.max at /sys/fs/cgroup/job)",
            model="AMD EPYC 7R13 Processor",
            isa_level="x86-64-v3",
            smt=True,
        ),
        memory=MemoryInfo(
            total_bytes=64 * GIB,
            available_bytes=50 * GIB,
            cgroup_limit_bytes=8 * GIB,
            cgroup_source="cgroup v2 memory.max at /sys/fs/cgroup/job",
            effective_bytes=8 * GIB,
        ),
        gpus=gpus or GpuReport((), None, None, "none", "no NVIDIA driver library"),
        threads={"native_pools": [], "env": {}},
        software={"python": "3.11.7", "python_implementation": "CPython", "torch": None},
        hostname="fake-host",
    )


@pytest.fixture
def fake_detection(monkeypatch):
    """`hwperf info` in this process, on a machine built by hand: no torch import, no
    GPU probe. Returns a setter for the machine and an optional side effect."""
    state = {"machine": fake_machine(), "effect": None}

    def detect(*, affinity=None, torch_fallback=True):
        if state["effect"] is not None:
            state["effect"]()
        return state["machine"]

    monkeypatch.setattr(machine_module, "detect_machine", detect)
    monkeypatch.setattr(
        machine_module, "load_measured_libraries", lambda: {"numpy": "loaded", "torch": "x"}
    )
    return state


def test_rendering_with_gpus(fake_detection, capsys):
    report = GpuReport(
        gpus=(gpu(UUID_A, 0, 0), gpu(UUID_B, 1, None)),
        driver_version="550.54.15",
        cuda_driver_version="12.4",
        source="nvml",
        reason=None,
        cuda_visible_devices="0",
    )
    fake_detection["machine"] = fake_machine(report)
    assert cli.main(["info"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert (
        f"cuda:0  NVIDIA H100 80GB HBM3, 79.6 GiB, compute 9.0, 132 SMs, MIG off, {UUID_A}" in out
    )
    assert "(1 more hidden by CUDA_VISIBLE_DEVICES=0)" in out
    assert "driver: 550.54.15, CUDA 12.4" in out
    assert "no GPU" not in out
    assert "usable:    3 (CPU quota 3 cores" in out
    assert "cgroup limit: 8.0 GiB (cgroup v2 memory.max at /sys/fs/cgroup/job)" in out
    assert "1x NVIDIA H100 80GB HBM3 80 GB" in out  # the label: hardware only
    assert "driver 550, CUDA 12.4" not in out
    assert "3 workers x 1 thread" in out
    assert "1 worker x 3 threads" in out


def test_rendering_json_of_a_machine_built_by_hand(fake_detection, capsys):
    assert cli.main(["info", "--json"]) == 0
    out, _ = capsys.readouterr()
    document = json.loads(out)
    machine = fake_detection["machine"]
    assert document["fingerprint"] == fingerprint(machine).to_record()
    assert document["cpu"] == machine.cpu.to_record()
    assert document["gpus"]["reason"] == "no NVIDIA driver library"
    assert document["libraries_loaded"] == {"numpy": "loaded", "torch": "x"}
    assert document["recommendations"] == serving_recommendations(3)


def test_a_degraded_reading_is_a_warning_line_not_a_traceback(fake_detection, capsys):
    def warn():
        warnings.warn("malformed cgroup file", HwperfEnvironmentWarning, stacklevel=1)

    fake_detection["effect"] = warn
    assert cli.main(["info"]) == 0
    out, err = capsys.readouterr()
    assert "warning: malformed cgroup file" in out
    assert "Traceback" not in out + err


def test_an_error_is_one_line_and_exit_1(fake_detection, capsys):
    def fail():
        raise OSError("cannot read /proc")

    fake_detection["effect"] = fail
    assert cli.main(["info", "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["hwperf info: error: OSError: cannot read /proc"]


def test_torch_not_loaded_is_stated(fake_detection, capsys):
    assert cli.main(["info"]) == 0
    out, _ = capsys.readouterr()
    assert "torch:        not loaded (x)" in out
    assert "native pools: none loaded" in out


def test_serving_recommendations_use_every_core_once():
    for cores in (1, 2, 8):
        advice = serving_recommendations(cores)
        for key in ("many_small_requests", "large_model_latency"):
            layout = advice[key]
            assert layout["workers"] * layout["threads_per_worker"] == cores
            assert layout["why"]
    assert serving_recommendations(0)["usable_cores"] == 1


def test_help_lists_info(capsys):
    assert cli.main([]) == 2
    out, _ = capsys.readouterr()
    assert "info" in out


def test_hidden_gpus_alone_are_no_gpu_with_the_reason():
    report = GpuReport(
        gpus=(gpu(UUID_A, 0, None),),
        driver_version="550.54.15",
        cuda_driver_version="12.4",
        source="nvml",
        reason="0 GPUs visible (CUDA_VISIBLE_DEVICES='')",
        cuda_visible_devices="",
    )
    machine = replace(fake_machine(), gpus=report)
    lines = info_lines(machine, fingerprint(machine))
    assert "  no GPU: 0 GPUs visible (CUDA_VISIBLE_DEVICES='')" in lines


def test_works_without_torch_and_nvidia_ml_py_and_says_why():
    # Both imports blocked in a child: what a venv without either installed sees.
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['pynvml'] = None; "
        "from pytest_hwperf.cli import main; sys.exit(main(['info']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "no GPU: nvidia-ml-py is not installed (no module pynvml); torch is not installed" in (
        proc.stdout
    )
    assert "torch:        not loaded (not installed)" in proc.stdout
    assert "digest: " in proc.stdout
