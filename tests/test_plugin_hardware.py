"""The hardware seen from pytest: the `device` fixture and --hwperf-devices, the
`hardware` marker and --hwperf-strict-hardware, the `hwinfo` fixture, the --hwperf
header and the JSON report's environment, the affinity read before the conftests, and
pytest-benchmark interop (machine_info and budgets judged on `benchmark` rounds).

Expected values come from outside the plugin's session: the usable cores and GPU reason
are computed here with the detection modules, the fingerprint by `hwperf info --json`
in a child process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest
from _output import FAST_RUN

from pytest_hwperf.hardware.cpu import format_cpu_list, read_affinity, read_cpu_quota, usable_cores
from pytest_hwperf.hardware.gpu import GpuReport, detect_gpus

HEX12 = re.compile(r"[0-9a-f]{12}")

_CACHE: dict[str, Any] = {}  # expensive facts, taken once per process


@pytest.fixture(scope="module")
def cores() -> tuple[int, str]:
    """This process's usable cores and their source, computed as the plugin documents."""
    affinity = read_affinity()
    return usable_cores(len(affinity), read_cpu_quota(), format_cpu_list(affinity))


@pytest.fixture
def few_cores(cores: tuple[int, str]) -> tuple[int, str]:
    """The usable cores, on a machine where hardware(min_cores=64) is unmet."""
    if cores[0] >= 64:
        pytest.skip(f"this machine has {cores[0]} usable cores: min_cores=64 is met here")
    return cores


@pytest.fixture(scope="module")
def gpus() -> GpuReport:
    return detect_gpus()


@pytest.fixture
def no_gpu_reason(gpus: GpuReport) -> str:
    """Why this machine has no CUDA device; tests of the missing-GPU paths skip on a GPU
    machine (tests/test_gpu.py covers that side)."""
    if gpus.visible:
        pytest.skip("a CUDA device is visible here; this checks the machine without one")
    assert gpus.reason
    return gpus.reason


def line_of(path: Any, text: str) -> int:
    """The 1-based number of the line of `path` that starts with `text`."""
    lines = path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(text))


def block(result: pytest.RunResult, title: str) -> list[str]:
    """The non-empty lines of the FAILURES/ERRORS entry titled `title`, up to its first
    section (captured output, the hwperf figures)."""
    lines = result.stdout.lines
    header = re.compile(rf"_+ {re.escape(title)} _+")
    start = next((i for i, line in enumerate(lines) if header.fullmatch(line)), None)
    assert start is not None, f"no entry {title!r} in:\n{result.stdout.str()}"
    body: list[str] = []
    for line in lines[start + 1 :]:
        if re.match(r"(_{3,} |={3,} |-{3,} )", line):
            break
        if line.strip():
            body.append(line)
    return body


def collected_ids(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stdout.lines if "::" in line]


# -- the device fixture ----------------------------------------------------------------

DEVICE_TEST = """
def test_d(device, hwperf):
    hwperf(sum, [1, 2, 3])
    assert hwperf.last.device == device
"""


def test_default_devices_are_the_ones_present(pytester: pytest.Pytester) -> None:
    """Without --hwperf-devices: the CPU and each CUDA device (torch's count, an
    oracle independent of the plugin's NVML detection)."""
    torch = pytest.importorskip("torch")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    expected = ["cpu"] + ["cuda" if i == 0 else f"cuda:{i}" for i in range(count)]
    pytester.makepyfile(test_dev=DEVICE_TEST)
    result = pytester.runpytest("--collect-only", "-q")
    assert collected_ids(result) == [f"test_dev.py::test_d[{i}]" for i in expected]


def test_device_ids_and_duplicates(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dev=DEVICE_TEST)
    result = pytester.runpytest(
        "--collect-only", "-q", "--hwperf-devices=cpu, cuda,cuda:1,cuda:0,CPU"
    )
    assert collected_ids(result) == [
        "test_dev.py::test_d[cpu]",
        "test_dev.py::test_d[cuda]",
        "test_dev.py::test_d[cuda:1]",
    ]


def test_a_device_id_with_a_colon_can_be_selected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dev=DEVICE_TEST)
    args = ("--hwperf-devices=cpu,cuda:1", "--collect-only", "-q")
    by_id = pytester.runpytest("test_dev.py::test_d[cuda:1]", *args)
    assert collected_ids(by_id) == ["test_dev.py::test_d[cuda:1]"]
    by_k = pytester.runpytest("-k", "cuda:1", *args)
    assert collected_ids(by_k) == ["test_dev.py::test_d[cuda:1]"]


def test_unknown_device_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dev=DEVICE_TEST)
    result = pytester.runpytest("--hwperf-devices=cpu,tpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--hwperf-devices: invalid value 'cpu,tpu': unknown device 'tpu'*"]
    )


@pytest.mark.parametrize("measuring", [True, False], ids=["hwperf", "plain"])
def test_missing_cuda_is_a_skip_naming_why(
    pytester: pytest.Pytester, no_gpu_reason: str, measuring: bool
) -> None:
    path = pytester.makepyfile(test_dev=DEVICE_TEST)
    args = ["--hwperf", *FAST_RUN] if measuring else []
    result = pytester.runpytest(*args, "--hwperf-devices=cpu,cuda", "-rs", "-v")
    line = line_of(path, "def test_d")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "*test_d[[]cpu[]] PASSED*",
            "*test_d[[]cuda[]] SKIPPED*",
            f"SKIPPED [[]1[]] test_dev.py:{line}: device cuda:0: no CUDA device: {no_gpu_reason}",
        ]
    )


def test_missing_cuda_fails_under_strict_hardware(
    pytester: pytest.Pytester, no_gpu_reason: str
) -> None:
    pytester.makepyfile(test_dev=DEVICE_TEST)
    result = pytester.runpytest(
        "--hwperf", *FAST_RUN, "--hwperf-devices=cpu,cuda", "--hwperf-strict-hardware"
    )
    result.assert_outcomes(passed=1, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert block(result, "ERROR at setup of test_d[cuda]") == [
        f"device cuda:0: no CUDA device: {no_gpu_reason} (--hwperf-strict-hardware)"
    ]


def test_missing_second_gpu_and_mps_name_why(pytester: pytest.Pytester, gpus: GpuReport) -> None:
    if len(gpus.visible) >= 2 or sys.platform == "darwin":
        pytest.skip("needs a machine with fewer than two CUDA devices and without MPS")
    pytester.makepyfile(test_dev=DEVICE_TEST)
    result = pytester.runpytest("--hwperf-devices=cuda:1,mps", "-rs")
    result.assert_outcomes(skipped=2)
    cuda1 = (
        f"no CUDA device: {gpus.reason}"
        if not gpus.visible
        else "this machine has 1 visible CUDA device(s) (cuda:0..cuda:0)"
    )
    result.stdout.fnmatch_lines_random(
        [
            f"SKIPPED * device cuda:1: {cuda1}",
            "SKIPPED * device mps: MPS (Apple Metal) exists only on macOS",
        ]
    )


def test_a_test_that_parametrizes_device_itself_is_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_own="""
        import pytest

        @pytest.mark.parametrize("device", ["meta", "cpu"])
        def test_direct(device):
            assert device in ("meta", "cpu")

        @pytest.mark.parametrize(("n", "device"), [(1, "meta")])
        def test_tuple_names(n, device):
            assert device == "meta"

        @pytest.mark.parametrize(argnames="device", argvalues=["meta"])
        def test_keyword(device):
            assert device == "meta"
        """
    )
    result = pytester.runpytest("--hwperf-devices=cpu,cuda", "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines_random(
        [
            "*test_direct[[]meta[]] PASSED*",
            "*test_direct[[]cpu[]] PASSED*",
            "*test_tuple_names[[]1-meta[]] PASSED*",
            "*test_keyword[[]meta[]] PASSED*",
        ]
    )


def test_indirect_parametrization_feeds_the_fixture(pytester: pytest.Pytester) -> None:
    if sys.platform == "darwin":
        pytest.skip("MPS may exist on macOS; this expects the skip other platforms give")
    pytester.makepyfile(
        test_ind="""
        import pytest

        @pytest.mark.parametrize("device", ["cpu", "mps"], indirect=True)
        def test_ind(device):
            assert device == "cpu"
        """
    )
    result = pytester.runpytest("--hwperf-devices=cuda", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * device mps: MPS (Apple Metal) exists only on macOS"])


def test_indirect_device_names_are_normalized(pytester: pytest.Pytester, gpus: GpuReport) -> None:
    pytester.makepyfile(
        test_ind="""
        import pytest

        @pytest.mark.parametrize("device", ["CPU", "cuda"], indirect=True)
        def test_ind(device):
            assert device in ("cpu", "cuda:0")
        """
    )
    result = pytester.runpytest("-rs")
    if gpus.visible:
        result.assert_outcomes(passed=2)
    else:
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines(["SKIPPED * device cuda:0: no CUDA device: *"])


def test_a_project_device_fixture_is_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def device():
            return "npu:7"
        """
    )
    pytester.makepyfile(
        test_own="""
        def test_mine(device):
            assert device == "npu:7"
        """
    )
    result = pytester.runpytest("--hwperf-devices=cpu,cuda", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_own.py::test_mine PASSED*"])


def test_a_conftest_parametrizing_device_is_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_generate_tests(metafunc):
            if "device" in metafunc.fixturenames:
                metafunc.parametrize("device", ["meta"], ids=["mine"])
        """
    )
    pytester.makepyfile(
        test_own="""
        def test_mine(device):
            assert device == "meta"
        """
    )
    result = pytester.runpytest("--hwperf-devices=cpu,cuda", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_mine[[]mine[]] PASSED*"])


def test_measurements_record_the_fixture_device(pytester: pytest.Pytester) -> None:
    """Whichever order the fixtures are asked for, without device= being passed."""
    pytester.makepyfile(
        test_dev="""
        def test_device_first(device, hwperf):
            hwperf(sum, [1, 2, 3], name="first")

        def test_device_last(hwperf, device):
            hwperf(sum, [1, 2, 3], name="last")
        """
    )
    result = pytester.runpytest(
        "--hwperf", *FAST_RUN, "--hwperf-devices=cpu", "--hwperf-json=o.json"
    )
    result.assert_outcomes(passed=2)
    records = json.loads((pytester.path / "o.json").read_text())["measurements"]
    assert {(r["test_id"].split("::")[1], r["device"], r["timing"]["sync"]) for r in records} == {
        ("test_device_first[cpu]", "cpu", "none"),
        ("test_device_last[cpu]", "cpu", "none"),
    }


# -- the hardware marker ---------------------------------------------------------------

HARDWARE_TESTS = """
import pytest

@pytest.mark.skip(reason="plain skip")
def test_plain_skip():
    pass

@pytest.mark.hardware(min_cores=64)
def test_many_cores():
    pass

@pytest.mark.hardware(gpu=True)
def test_gpu():
    pass

@pytest.mark.hardware(min_cores=1, min_memory_gb=0.001)
def test_met():
    pass
"""


@pytest.mark.parametrize("measuring", [True, False], ids=["hwperf", "plain"])
def test_unmet_hardware_skips_naming_the_need_and_the_value(
    pytester: pytest.Pytester, few_cores: tuple[int, str], no_gpu_reason: str, measuring: bool
) -> None:
    count, source = few_cores
    path = pytester.makepyfile(test_hw=HARDWARE_TESTS)
    args = ["--hwperf", *FAST_RUN] if measuring else []
    result = pytester.runpytest(*args, "-rs")
    result.assert_outcomes(passed=1, skipped=3)
    # The hardware skips point at the test, at the line a skip mark's would: its
    # first decorator.
    skip = line_of(path, "@pytest.mark.skip(")
    cores_line = line_of(path, "@pytest.mark.hardware(min_cores=64)")
    gpu_line = line_of(path, "@pytest.mark.hardware(gpu=True)")
    result.stdout.fnmatch_lines(
        [
            f"SKIPPED [[]1[]] test_hw.py:{skip}: plain skip",
            f"SKIPPED [[]1[]] test_hw.py:{cores_line}: hardware: needs >= 64 usable cores,"
            f" this machine has {count} ({source})",
            f"SKIPPED [[]1[]] test_hw.py:{gpu_line}: hardware: needs a GPU, this machine has 0:"
            f" {no_gpu_reason}",
        ]
    )
    assert "plugin.py" not in result.stdout.str()


def test_unmet_hardware_fails_under_strict(
    pytester: pytest.Pytester, few_cores: tuple[int, str], no_gpu_reason: str
) -> None:
    count, source = few_cores
    pytester.makepyfile(test_hw=HARDWARE_TESTS)
    result = pytester.runpytest("--hwperf-strict-hardware")
    result.assert_outcomes(passed=1, skipped=1, errors=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert block(result, "ERROR at setup of test_many_cores") == [
        f"hardware: needs >= 64 usable cores, this machine has {count} ({source})"
        " (--hwperf-strict-hardware)"
    ]
    assert block(result, "ERROR at setup of test_gpu") == [
        f"hardware: needs a GPU, this machine has 0: {no_gpu_reason} (--hwperf-strict-hardware)"
    ]


def test_function_requirement_adds_to_the_module_one(
    pytester: pytest.Pytester, few_cores: tuple[int, str]
) -> None:
    count, source = few_cores
    pytester.makepyfile(
        test_hw="""
        import pytest

        pytestmark = pytest.mark.hardware(min_cores=1)

        def test_module_only():
            pass

        @pytest.mark.hardware(min_cores=64)
        def test_both():
            pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [f"SKIPPED * hardware: needs >= 64 usable cores, this machine has {count} ({source})"]
    )


BAD_HARDWARE = [
    pytest.param(
        'min_cores="many"',
        "@pytest.mark.hardware: argument 'min_cores' must be an integer >= 1, got 'many'",
        id="min_cores-string",
    ),
    pytest.param(
        'gpu="yes"',
        "@pytest.mark.hardware: argument 'gpu' must be True or False, got 'yes'",
        id="gpu-string",
    ),
    pytest.param(
        'min_compute_capability="8.x"',
        "@pytest.mark.hardware: argument 'min_compute_capability' must be a compute"
        " capability such as 8.0, \"8.6\" or (9, 0), got '8.x'",
        id="cc-string",
    ),
    pytest.param(
        "min_gpus=-1",
        "@pytest.mark.hardware: argument 'min_gpus' must be an integer >= 0, got -1",
        id="min_gpus-negative",
    ),
    pytest.param(
        "cores=4",
        "@pytest.mark.hardware: unknown argument 'cores' (allowed: gpu, min_gpus, min_cores,"
        " min_memory_gb, gpu_name, min_gpu_memory_gb, min_compute_capability)",
        id="unknown-argument",
    ),
]


@pytest.mark.parametrize(("marker", "message"), BAD_HARDWARE)
def test_bad_hardware_argument_fails_only_its_test_with_one_line(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(
        test_bad=f"""
        import pathlib
        import pytest

        def test_before():
            pass

        @pytest.mark.hardware({marker})
        def test_bad():
            pathlib.Path("ran.txt").write_text("ran")

        @pytest.mark.hardware(min_cores=1)
        def test_after():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    assert block(result, "test_bad") == [f"test_bad.py::test_bad: {message}"]
    assert not (pytester.path / "ran.txt").exists()


def test_bad_hardware_argument_fails_under_hwperf_and_strict_too(
    pytester: pytest.Pytester,
) -> None:
    """A bad argument is a failure of the call, not an unmet need: never a skip."""
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.hardware(min_cores="many", gpu=True)
        def test_bad():
            pass
        """
    )
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--hwperf-strict-hardware")
    result.assert_outcomes(failed=1)
    assert block(result, "test_bad") == [
        "test_bad.py::test_bad: @pytest.mark.hardware: argument 'min_cores' must be an"
        " integer >= 1, got 'many'"
    ]


# -- hwinfo, the header and the JSON environment ---------------------------------------

HWINFO_TEST = """
import json

def test_info(hwinfo):
    record = hwinfo.to_record()
    facts = {
        "usable_cores": hwinfo.usable_cores,
        "cpu_usable_cores": hwinfo.cpu.usable_cores,
        "digest": hwinfo.fingerprint.digest,
        "record_keys": sorted(record),
        "record_digest": record["fingerprint"]["digest"],
        "record_cores": record["cpu"]["usable_cores"],
        "visible_gpus": len(hwinfo.gpus.visible),
        "memory": hwinfo.memory.effective_bytes,
    }
    with open("hwinfo.json", "w") as fh:
        json.dump(facts, fh)
"""


def test_hwinfo_fixture(pytester: pytest.Pytester, cores: tuple[int, str], gpus) -> None:
    pytester.makepyfile(test_info=HWINFO_TEST)
    result = pytester.runpytest()  # no --hwperf needed
    result.assert_outcomes(passed=1)
    facts = json.loads((pytester.path / "hwinfo.json").read_text())
    assert facts["usable_cores"] == facts["cpu_usable_cores"] == facts["record_cores"] == cores[0]
    assert HEX12.fullmatch(facts["digest"])
    assert facts["record_digest"] == facts["digest"]
    assert set(facts["record_keys"]) >= {
        "cpu",
        "memory",
        "gpus",
        "threads",
        "software",
        "hostname",
        "fingerprint",
    }
    assert facts["visible_gpus"] == len(gpus.visible)
    assert facts["memory"] > 0


def hwperf_info_json() -> dict[str, Any]:
    """`hwperf info --json` in a child process."""
    if "info" not in _CACHE:
        done = subprocess.run(
            [sys.executable, "-m", "pytest_hwperf.cli", "info", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        _CACHE["info"] = json.loads(done.stdout)
    info: dict[str, Any] = _CACHE["info"]
    return info


@pytest.fixture
def session_run(pytester: pytest.Pytester) -> dict[str, Any]:
    """One `pytest --hwperf --hwperf-json` in a child process (as a user runs it): its
    header lines and its JSON report."""
    if "session" not in _CACHE:
        pytester.makepyfile(
            test_one="""
            def test_one(hwperf):
                hwperf(sum, [1, 2, 3])
            """
        )
        result = pytester.runpytest_subprocess("--hwperf", *FAST_RUN, "--hwperf-json=out.json")
        result.assert_outcomes(passed=1)
        _CACHE["session"] = {
            "header": [line for line in result.stdout.lines if line.startswith("hwperf: ")],
            "json": json.loads((pytester.path / "out.json").read_text()),
        }
    session: dict[str, Any] = _CACHE["session"]
    return session


def header_digest(header: list[str]) -> str:
    (line,) = [line for line in header if line.startswith("hwperf: fingerprint ")]
    match = re.fullmatch(r"hwperf: fingerprint ([0-9a-f]{12}) \((.+)\)", line)
    assert match, line
    return match.group(1)


def test_header_fingerprint_equals_hwperf_info(session_run: dict[str, Any]) -> None:
    """The cross-process stability baselines rely on: a pytest session and `hwperf info`
    in another process give the same digest."""
    info = hwperf_info_json()
    assert header_digest(session_run["header"]) == info["fingerprint"]["digest"]


def test_header_states_cores_source_ram_and_gpus(
    session_run: dict[str, Any], cores: tuple[int, str], gpus: GpuReport
) -> None:
    count, source = cores
    (line,) = [line for line in session_run["header"] if "usable cores (" in line]
    assert line.startswith(f"hwperf: {count} usable cores ({source}), ")
    assert re.search(r", \d+\.\d GiB RAM, ", line), line
    if gpus.visible:
        assert "cuda:0 " in line
    else:
        assert line.endswith(f"no GPU ({gpus.reason})")


def test_json_environment_has_the_machine_and_the_header_fingerprint(
    session_run: dict[str, Any], cores: tuple[int, str]
) -> None:
    environment = session_run["json"]["environment"]
    assert environment["machine"]["cpu"]["usable_cores"] == cores[0]
    assert environment["machine"]["cpu"]["usable_source"] == cores[1]
    assert environment["fingerprint"]["digest"] == header_digest(session_run["header"])
    assert set(environment["fingerprint"]) >= {"digest", "label", "hashed", "volatile"}


def test_affinity_is_read_before_the_conftests(pytester: pytest.Pytester) -> None:
    """A conftest that pins the process to one CPU (as an OpenMP runtime loaded by a
    conftest's torch import can) does not shrink the usable cores."""
    affinity = read_affinity()
    if len(affinity) < 2 or not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs os.sched_setaffinity and at least 2 CPUs in this process's set")
    pytester.makeconftest(f"import os\nos.sched_setaffinity(0, {{{affinity[0]}}})\n")
    pytester.makepyfile(
        test_aff="""
        import os

        def test_pinned(hwinfo):
            assert os.sched_getaffinity(0) == {PINNED}
            with open("cores.txt", "w") as fh:
                fh.write(str(hwinfo.usable_cores))
        """.replace("PINNED", str(affinity[0]))
    )
    # A child process: pinning this one would slow every later test.
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    expected, _ = usable_cores(len(affinity), read_cpu_quota())
    assert int((pytester.path / "cores.txt").read_text()) == expected


# -- pytest-benchmark interop ----------------------------------------------------------

BENCHMARK_TESTS = """
import time
import pytest

@pytest.mark.latency(ms=5)
def test_slow(benchmark):
    benchmark.pedantic(time.sleep, args=(0.02,), rounds=10, iterations=1)

@pytest.mark.latency(ms=500)
def test_generous(benchmark):
    benchmark.pedantic(time.sleep, args=(0.001,), rounds=100, iterations=1)
"""


@pytest.fixture
def with_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pytest_benchmark")
    # pytest-benchmark switches itself off where PYTEST_XDIST_WORKER is set, which an
    # inner run inherits when this suite runs under pytest-xdist.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)


@pytest.mark.usefixtures("with_benchmark")
def test_latency_budget_is_judged_on_benchmark_rounds(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bench=BENCHMARK_TESTS)
    result = pytester.runpytest(
        "--hwperf", *FAST_RUN, "--hwperf-json=o.json", "-v", "--benchmark-json=b.json"
    )
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*test_slow PERF*"])
    (reason,) = block(result, "test_slow")
    assert reason.startswith("hwperf: 'benchmark' on cpu: ")
    assert "breaches budget" in reason
    records = {
        r["test_id"].split("::")[1]: r
        for r in json.loads((pytester.path / "o.json").read_text())["measurements"]
    }
    assert records["test_slow"]["outcome"] == "fail"
    assert records["test_generous"]["outcome"] == "pass"
    assert records["test_generous"]["stats"]["n"] == 100


@pytest.mark.parametrize("measuring", [True, False], ids=["hwperf", "plain"])
@pytest.mark.usefixtures("with_benchmark")
def test_benchmark_json_carries_the_hwperf_block(
    pytester: pytest.Pytester, cores: tuple[int, str], measuring: bool
) -> None:
    pytester.makepyfile(
        test_bench="""
        def test_one(benchmark):
            benchmark.pedantic(sum, args=([1, 2],), rounds=5)
        """
    )
    args = ["--hwperf", *FAST_RUN] if measuring else []
    result = pytester.runpytest(*args, "--benchmark-json=b.json")
    result.assert_outcomes(passed=1)
    saved = json.loads((pytester.path / "b.json").read_text())
    block_ = saved["machine_info"]["hwperf"]
    assert block_["usable_cores"] == cores[0]
    assert block_["usable_source"] == cores[1]
    assert HEX12.fullmatch(block_["fingerprint"])
    if measuring:
        header = [line for line in result.stdout.lines if line.startswith("hwperf: ")]
        assert block_["fingerprint"] == header_digest(header)


@pytest.mark.usefixtures("with_benchmark")
def test_disabled_benchmark_is_not_judged(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bench=BENCHMARK_TESTS)
    result = pytester.runpytest("--hwperf", *FAST_RUN, "--benchmark-disable", "-rP")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_slow _*",
            "*- hwperf -*",
            "budget not judged: pytest-benchmark took no rounds (disabled)",
        ]
    )
