"""The example project is a complete adoption: its tests use every marker and fixture,
its GitHub workflow runs a CPU and a GPU job that go red on missing hardware, and
docs/ci.md shows exactly the workflow's commands."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_hwperf.plugin.markers import MARKERS
from pytest_hwperf.plugin.options import OPTIONS

yaml = pytest.importorskip("yaml", reason="reading the workflow needs pyyaml (the dev extra)")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
WORKFLOW_PATH = EXAMPLE / ".github" / "workflows" / "perf.yml"
CI_DOC = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
GPU_ARGUMENTS = {"gpu", "min_gpus", "gpu_name", "min_gpu_memory_gb", "min_compute_capability"}


def _workflow() -> dict[Any, Any]:
    document = yaml.safe_load(WORKFLOW_PATH.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _steps(job: str) -> list[dict[str, Any]]:
    steps = _workflow()["jobs"][job]["steps"]
    assert isinstance(steps, list)
    return steps


def _run_commands() -> list[str]:
    """Every command line of every `run:` step, in order."""
    commands = []
    for job in _workflow()["jobs"].values():
        for step in job["steps"]:
            run = step.get("run")
            if run:
                commands += [line.strip() for line in run.splitlines() if line.strip()]
    return commands


def _gate(job: str) -> list[str]:
    """The job's gating pytest command, split as the shell splits it."""
    gates = [step["run"] for step in _steps(job) if str(step.get("run", "")).startswith("pytest ")]
    assert len(gates) == 1, f"{job}: expected one gating pytest step, got {gates}"
    return shlex.split(gates[0])


def _value(args: list[str], flag: str) -> str | None:
    for arg in args:
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
    return None


def _doc_code_lines() -> list[str]:
    """The lines inside docs/ci.md's fenced code blocks."""
    lines: list[str] = []
    inside = False
    for line in CI_DOC.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            continue
        if inside:
            lines.append(line.strip())
    return lines


# -- the workflow -------------------------------------------------------------------------


def test_the_workflow_has_a_cpu_and_a_gpu_job_on_the_expected_runners():
    workflow = _workflow()
    # YAML 1.1 reads the bare key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert {"push", "pull_request", "workflow_dispatch"} <= set(triggers)
    jobs = workflow["jobs"]
    assert set(jobs) == {"cpu", "gpu", "ab"}
    assert jobs["cpu"]["runs-on"] == "ubuntu-latest"
    assert jobs["gpu"]["runs-on"] == ["self-hosted", "linux", "gpu"]
    # Same-run A/B on pull requests: the base branch's history is fetched to check it out.
    assert jobs["ab"]["if"] == "github.event_name == 'pull_request'"
    assert _steps("ab")[0]["with"]["fetch-depth"] == 0
    assert "--hwperf-against=origin/${{ github.base_ref }}" in " ".join(_gate("ab"))
    for job in jobs:
        setups = [
            step
            for step in _steps(job)
            if str(step.get("uses", "")).startswith("actions/setup-python")
        ]
        assert [s["with"]["python-version"] for s in setups] == ["3.11"], job


def test_torch_is_pinned_and_comes_from_pytorchs_index_for_the_job():
    torch_pin = re.search(
        r"^torch==(\S+)", (ROOT / "constraints.txt").read_text(encoding="utf-8"), re.MULTILINE
    )
    assert torch_pin is not None
    installs = {
        job: [
            step["run"] for step in _steps(job) if "pip install torch" in str(step.get("run", ""))
        ]
        for job in ("cpu", "gpu")
    }
    for job, commands in installs.items():
        assert len(commands) == 1, job
        args = shlex.split(commands[0])
        assert f"torch=={torch_pin.group(1)}" in args, job
        index = args[args.index("--index-url") + 1]
        assert index.startswith("https://download.pytorch.org/whl/"), job
    assert shlex.split(installs["cpu"][0])[-1].endswith("/whl/cpu")
    assert not shlex.split(installs["gpu"][0])[-1].endswith("/whl/cpu")


def test_the_example_requirements_pin_what_this_repository_pins():
    """The example's own pins agree with constraints.txt, under which its committed
    baselines were recorded (the fingerprint hashes torch's and numpy's versions)."""

    def pins(path: Path) -> dict[str, str]:
        found = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
            if match:
                found[match.group(1).lower()] = match.group(2)
        return found

    example, constraints = pins(EXAMPLE / "requirements.txt"), pins(ROOT / "constraints.txt")
    for name in ("torch", "numpy", "scikit-learn"):
        assert example.get(name) == constraints.get(name), name
    assert "pytest-hwperf" in example


def test_both_gates_are_strict_and_only_the_cpu_job_deselects_gpu_tests():
    cpu, gpu = _gate("cpu"), _gate("gpu")
    for args in (cpu, gpu):
        assert args[:2] == ["pytest", "--hwperf"]
        assert "--hwperf-strict-hardware" in args
        assert "--hwperf-save" not in args  # the gate compares; saving is a manual run
    # CPU job: strict, so whatever needs a GPU must not be selected at all.
    assert cpu[cpu.index("-m") + 1] == "not gpu"
    assert _value(cpu, "--hwperf-devices") in (None, "cpu")
    # GPU job: every test, with CUDA named explicitly, so a lost GPU fails the device cases
    # too instead of quietly dropping them from "every device present".
    assert "-m" not in gpu
    devices = (_value(gpu, "--hwperf-devices") or "").split(",")
    assert "cpu" in devices
    assert any(d.startswith("cuda") for d in devices)


def test_each_job_uploads_its_reports_even_when_the_gate_fails():
    for job in ("cpu", "gpu"):
        gate = _gate(job)
        reports = {_value(gate, f"--hwperf-{kind}") for kind in ("json", "html", "markdown")}
        assert None not in reports, f"{job}: the gate writes no json, html or markdown report"
        uploads = [
            step
            for step in _steps(job)
            if str(step.get("uses", "")).startswith("actions/upload-artifact")
            and step.get("if") == "always()"
        ]
        assert len(uploads) == 1, job
        assert set(uploads[0]["with"]["path"].split()) == reports, job


def test_the_workflow_names_only_options_the_plugin_has():
    known = {option.flag for option in OPTIONS}
    text = WORKFLOW_PATH.read_text(encoding="utf-8")
    named = set(re.findall(r"--hwperf(?:-[a-z]+)*", text))
    assert named <= known, f"unknown options: {sorted(named - known)}"


# -- docs/ci.md -----------------------------------------------------------------------------


def test_every_workflow_command_is_in_docs_ci_md_verbatim():
    missing = [command for command in _run_commands() if command not in CI_DOC]
    assert not missing, f"docs/ci.md lacks: {missing}"


def test_every_pytest_command_in_docs_ci_md_is_the_workflows():
    """A pytest command shown in docs/ci.md (alone in a shell block, or as a step's
    `run:` in a YAML excerpt) is one the workflow runs, character for character."""
    commands = set(_run_commands())
    shown = [line.removeprefix("run: ") for line in _doc_code_lines()]
    documented = [line for line in shown if line.startswith("pytest")]
    assert len(documented) >= 2, "docs/ci.md shows no pytest command of its own"
    stray = [line for line in shown if "pytest " in line and line not in commands]
    assert not stray, f"not in the workflow: {stray}"


def test_docs_ci_md_shows_the_baseline_accept_command_the_cli_has():
    from pytest_hwperf.cli import build_parser

    accepts = [line for line in _doc_code_lines() if line.startswith("hwperf baseline accept ")]
    assert accepts
    for line in accepts:
        args = build_parser().parse_args(shlex.split(line)[1:])
        assert args.baseline_command == "accept"


# -- the example's tests ------------------------------------------------------------------


def _example_sources() -> dict[Path, ast.Module]:
    return {
        path: ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for path in sorted((EXAMPLE / "tests").glob("*.py"))
    }


def _mark_name(node: ast.expr) -> str | None:
    """`x` for `pytest.mark.x` or `pytest.mark.x(...)`."""
    if isinstance(node, ast.Call):
        node = node.func
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "mark"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "pytest"
    ):
        return node.attr
    return None


def _functions(tree: ast.Module) -> list[ast.FunctionDef]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]


def _documented_fixtures() -> tuple[str, ...]:
    """FIXTURES of tests/test_docs.py, the fixtures the reference must document."""
    tree = ast.parse((ROOT / "tests" / "test_docs.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "FIXTURES" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, tuple)
            return value
    raise AssertionError("tests/test_docs.py has no FIXTURES")


def test_the_example_tests_use_every_marker():
    used = {
        name
        for tree in _example_sources().values()
        for node in ast.walk(tree)
        if isinstance(node, ast.expr)
        for name in [_mark_name(node)]
        if name
    }
    missing = {marker.NAME for marker in MARKERS} - used
    assert not missing, f"example_project/tests never uses: {sorted(missing)}"


def test_the_example_tests_use_every_fixture():
    used = {
        arg.arg
        for tree in _example_sources().values()
        for function in _functions(tree)
        for arg in function.args.args
    }
    fixtures = _documented_fixtures()
    assert len(fixtures) >= 6
    missing = set(fixtures) - used
    assert not missing, f"example_project/tests never uses: {sorted(missing)}"


def test_every_gpu_test_of_the_example_is_marked_gpu():
    """The CPU job deselects `-m "not gpu"` under --hwperf-strict-hardware: a GPU test
    without the marker would fail it."""
    ini = (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^markers = \[\n\s+"gpu: ', ini, re.MULTILINE), "no gpu marker registered"
    gpu_tests = []
    for path, tree in _example_sources().items():
        for function in _functions(tree):
            marks = {_mark_name(d): d for d in function.decorator_list}
            hardware = marks.get("hardware")
            needs_gpu = isinstance(hardware, ast.Call) and any(
                kw.arg in GPU_ARGUMENTS
                and not (isinstance(kw.value, ast.Constant) and kw.value.value in (False, 0))
                for kw in hardware.keywords
            )
            if needs_gpu:
                gpu_tests.append(function.name)
                assert "gpu" in marks, f"{path.name}::{function.name} needs a GPU, not marked gpu"
    assert gpu_tests, "the example has no GPU test for the GPU job"


# -- the committed baseline ---------------------------------------------------------------


def test_the_committed_baselines_cover_only_tests_that_exist():
    files = sorted((EXAMPLE / ".hwperf" / "baselines").glob("*.json"))
    assert files, "example_project/.hwperf/baselines/ holds no baseline"
    test_files = {path.name for path in (EXAMPLE / "tests").glob("test_*.py")}
    for path in files:
        document = json.loads(path.read_text(encoding="utf-8"))
        assert document["fingerprint"]["digest"] == path.stem
        keys = list(document["measurements"])
        assert keys, path
        for key in keys:
            test_file = key.split("::", 1)[0].removeprefix("tests/")
            assert test_file in test_files, f"{path.name}: {key} names no example test file"


# -- the jobs' test selections, run on this machine -----------------------------------------


def _example_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    """pytest on the example project (its own ini), functional mode, in a child process."""
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_cpu_jobs_selection_needs_no_gpu():
    gate = _gate("cpu")
    selection = ["-m", gate[gate.index("-m") + 1]]
    result = _example_pytest("--collect-only", "-q", *selection, "example_project")
    assert result.returncode == 0, result.stdout + result.stderr
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert collected
    assert not [line for line in collected if "gpu" in line or "cuda" in line]


def test_a_gpu_runner_without_its_gpu_goes_red():
    """The GPU job's flags on a machine without CUDA: the GPU cases fail (not skip)."""
    from pytest_hwperf.hardware.gpu import detect_gpus

    if detect_gpus().visible:
        pytest.skip("this machine has a GPU: the GPU job's tests can pass here")
    gate = _gate("gpu")
    devices = _value(gate, "--hwperf-devices")
    assert devices is not None
    # Only the cases that need a GPU, without --hwperf (the checks run either way).
    result = _example_pytest(
        "--hwperf-strict-hardware",
        f"--hwperf-devices={devices}",
        "-k",
        "cuda or gpu",
        "example_project",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "(--hwperf-strict-hardware)" in output
    assert re.search(r"\d+ (failed|errors?)", output), output
    assert " passed" not in output.splitlines()[-1]
    assert "skipped" not in output.splitlines()[-1]
