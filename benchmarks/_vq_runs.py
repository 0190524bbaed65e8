"""One pytest run of `verdict_quality.py` and what it decided, read from its reports.

Each run is a separate pytest process in its own session (process group), so that an
interrupted benchmark kills it and whatever it started. A test of the run *failed* when
its JUnit XML says so (whatever made it fail: a budget, a regression, anything else),
or, without one, when the exit code is not 0; the hwperf JSON report says why
(`budget`, `regression`) and gives the figures; pytest-benchmark's JSON gives its
recorded minimum and median.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_hwperf.files import atomic_write

RUN_TIMEOUT_S = 900.0  # one pytest process; a hung run is killed and counted as an error
TAIL_EVERY = 10  # the tail target: every 10th call ...
TAIL_FACTOR = 4  # ... does 4 calls' work

MODEL = textwrap.dedent(
    '''
    """The benchmark's model, written by benchmarks/verdict_quality.py."""

    import torch

    # revision: {revision}
    LAYERS = {layers}
    TAIL = {tail}  # every {every}th call does {factor} calls' work
    BUDGET_MS = {budget_ms!r}  # the test's p95 latency budget; 0: none

    torch.manual_seed(0)
    MODEL = torch.nn.Sequential(
        *[m for _ in range(LAYERS) for m in (torch.nn.Linear(256, 256), torch.nn.ReLU())]
    ).eval()
    X = torch.randn(64, 256)
    _calls = [0]


    def infer():
        _calls[0] += 1
        repeat = {factor} if TAIL and _calls[0] % {every} == 0 else 1
        with torch.inference_mode():
            for _ in range(repeat):
                out = MODEL(X)
        return out
    '''
)

TEST = textwrap.dedent(
    """
    import pytest

    from vq_model import BUDGET_MS, infer

    pytestmark = [pytest.mark.latency(ms=BUDGET_MS)] if BUDGET_MS > 0 else []


    def test_model(hwperf{benchmark_arg}):
        hwperf(infer, name="model"){benchmark_call}
    """
)

BUDGET_TEST = textwrap.dedent(
    """
    import pytest

    from vq_model import infer


    @pytest.mark.latency(ms={third_ms!r})
    def test_third_of_budget(hwperf):
        hwperf(infer, name="model")


    @pytest.mark.latency(ms={twice_ms!r})
    def test_twice_the_budget(hwperf):
        hwperf(infer, name="model")
    """
)


def model_source(layers: int, *, tail: bool, budget_ms: float, revision: str = "") -> str:
    return MODEL.format(
        layers=layers,
        tail=tail,
        budget_ms=round(budget_ms, 4),
        revision=revision or "-",
        every=TAIL_EVERY,
        factor=TAIL_FACTOR,
    )


def test_source(*, benchmark: bool) -> str:
    return TEST.format(
        benchmark_arg=", benchmark" if benchmark else "",
        benchmark_call="\n    benchmark(infer)" if benchmark else "",
    )


def write_model(folder: Path, layers: int, *, tail: bool, budget_ms: float) -> None:
    atomic_write(folder / "vq_model.py", model_source(layers, tail=tail, budget_ms=budget_ms))


def run_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    # vq_model.py is rewritten between runs, within the same second and at the same
    # size: a cached .pyc would be taken for it.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@dataclass(frozen=True)
class Process:
    rc: int
    wall_s: float
    output_tail: str  # the last lines of stdout and stderr


def run_process(cmd: list[str], cwd: Path, *, timeout_s: float = RUN_TIMEOUT_S) -> Process:
    """Run `cmd` in its own session; on timeout or interruption kill its whole group."""
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=run_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, rc = b"(killed after %d s)" % int(timeout_s), 124
    except BaseException:
        _kill_group(proc)
        raise
    tail = "\n".join(out.decode(errors="replace").strip().splitlines()[-15:])
    return Process(rc=rc, wall_s=time.monotonic() - started, output_tail=tail)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.communicate()


def pytest_cmd(*args: str) -> list[str]:
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    return [*base, *args]


@dataclass
class TestResult:
    """One test of one judged run."""

    failed: bool
    reasons: list[str] = field(default_factory=list)  # budget, regression, other, error
    outcome: str | None = None  # the comparison's outcome
    comparison_mode: str | None = None  # "ab" for an A/B comparison
    change_pct: float | None = None
    ci_low_pct: float | None = None
    ci_high_pct: float | None = None
    sigma_pct: float | None = None
    rounds: float | None = None
    tail_change_pct: float | None = None  # the budget percentile's comparison, where made
    drift_factor: float | None = None  # how the reference workload rescaled the baseline
    reference_ms: float | None = None  # the reference workload's time (--hwperf-reference)
    gate_ms: float | None = None  # the fastest call over the quiet rounds (what is compared)
    p95_ms: float | None = None
    min_ms: float | None = None
    budget_ms: float | None = None
    bench_min: float | None = None
    bench_median: float | None = None
    wall_s: float = 0.0  # the whole pytest process
    test_s: float | None = None  # the test itself, from the JUnit XML
    error: str | None = None  # why the run gave no verdict, in one line


@dataclass
class Series:
    """One stored-baseline series: K saves in a fresh folder, then judged runs."""

    k: int
    folder: Path
    saves_ok: int = 0
    saves_tried: int = 0
    bench_min: float | None = None  # pytest-benchmark's last save
    bench_median: float | None = None
    p95s: list[float] = field(default_factory=list)

    def base_p95(self) -> float | None:
        if not self.p95s:
            return None
        return math.exp(sum(math.log(v) for v in self.p95s) / len(self.p95s))


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _junit(path: Path) -> dict[str, tuple[bool, float | None, str]]:
    """test name -> (failed, seconds, the failure message's first line)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return {}
    cases: dict[str, tuple[bool, float | None, str]] = {}
    for case in root.iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        message = "" if problem is None else (problem.get("message") or problem.text or "")
        seconds = case.get("time")
        cases[case.get("name", "")] = (
            problem is not None,
            float(seconds) if seconds else None,
            message.strip().splitlines()[0] if message.strip() else "",
        )
    return cases


def _regressed(record: dict[str, Any]) -> bool:
    """Whether any comparison of the measurement is a regression: the `comparison`
    (against saved runs, or A/B), its `tail` (the budget percentile's)."""
    comparison = record.get("comparison")
    if not isinstance(comparison, dict):
        return False
    tail = comparison.get("tail")
    return comparison.get("outcome") == "regression" or (
        isinstance(tail, dict) and tail.get("outcome") == "regression"
    )


def _from_record(result: TestResult, record: dict[str, Any]) -> None:
    stats = record.get("stats") or {}
    result.p95_ms = _float(stats.get("p95_ms"))
    result.min_ms = _float(stats.get("min_ms"))
    result.reference_ms = _float(record.get("reference_ms"))
    rounds = [r for r in record.get("rounds") or [] if isinstance(r, dict)]
    quiet = [_float(r.get("min_ms")) for r in rounds if not r.get("disturbed")]
    figures = [v for v in quiet if v] or [v for r in rounds if (v := _float(r.get("min_ms")))]
    result.gate_ms = min(figures) if figures else result.min_ms
    comparison = record.get("comparison") or {}
    if isinstance(comparison, dict):
        result.outcome = comparison.get("outcome")
        result.comparison_mode = comparison.get("mode")
        result.change_pct = _float(comparison.get("change_pct"))
        result.ci_low_pct = _float(comparison.get("ci_low_pct"))
        result.ci_high_pct = _float(comparison.get("ci_high_pct"))
        result.sigma_pct = _float(comparison.get("sigma_pct"))
        result.rounds = _float(comparison.get("rounds"))
        result.drift_factor = _float(comparison.get("drift_factor"))
        tail = comparison.get("tail")
        if isinstance(tail, dict):
            result.tail_change_pct = _float(tail.get("change_pct"))
    budgets = [b for b in record.get("budgets") or [] if isinstance(b, dict)]
    # Rounds measured: the comparison's, or those recorded (a budget confirmed, too).
    counts = [result.rounds, float(len(record.get("rounds") or []) or 1)]
    counts += [_float(b.get("rounds")) for b in budgets]
    result.rounds = max(c for c in counts if c is not None)
    latency = [b for b in budgets if b.get("kind") == "latency"]
    if latency:
        result.budget_ms = _float(latency[0].get("budget_ms"))
    if any(b.get("outcome") == "fail" for b in budgets):
        result.reasons.append("budget")
    if _regressed(record):
        result.reasons.append("regression")


def read_results(
    process: Process, *, hwperf_json: Path, junit: Path, bench_json: Path | None
) -> dict[str, TestResult]:
    """Every test of one run, by test function name."""
    report = _load_json(hwperf_json)
    cases = _junit(junit)
    bench = _load_json(bench_json) if bench_json is not None else None
    records: dict[str, dict[str, Any]] = {}
    for record in (report or {}).get("measurements") or []:
        name = str(record.get("test_id", "")).split("::")[-1]
        records.setdefault(name, record)
    benches = {
        str(b.get("name", "")): b.get("stats") or {} for b in (bench or {}).get("benchmarks") or []
    }
    results: dict[str, TestResult] = {}
    for name in sorted(set(cases) | set(records)):
        failed, seconds, message = cases.get(name, (process.rc != 0, None, ""))
        result = TestResult(failed=failed, wall_s=process.wall_s, test_s=seconds)
        if name in records:
            _from_record(result, records[name])
        elif failed:
            result.error = message or _last_line(process)
        if failed and not result.reasons:
            lowered = message.lower()
            result.reasons.append(
                "regression"
                if "regression" in lowered
                else "budget"
                if "budget" in lowered
                else "other"
            )
        if name in benches:
            result.bench_min = _float(benches[name].get("min"))
            result.bench_median = _float(benches[name].get("median"))
        results[name] = result
    return results


def _last_line(process: Process) -> str:
    lines = [line for line in process.output_tail.splitlines() if line.strip()]
    return f"exit code {process.rc}: " + (lines[-1] if lines else "no output")


def no_result(process: Process) -> TestResult:
    """A run that reported no test at all (it crashed, or pytest refused it)."""
    return TestResult(
        failed=True, reasons=["error"], wall_s=process.wall_s, error=_last_line(process)
    )


def run_tests(
    folder: Path, out: Path, tag: str, files: list[str], options: list[str], *, bench: bool
) -> tuple[Process, dict[str, TestResult]]:
    """One pytest process on `files` in `folder`, its reports written under `out`."""
    hwperf_json = out / f"{tag}.hwperf.json"
    junit = out / f"{tag}.junit.xml"
    bench_json = out / f"{tag}.bench.json" if bench else None
    for path in (hwperf_json, junit, bench_json):
        if path is not None:
            path.unlink(missing_ok=True)
    args = [*options, f"--hwperf-json={hwperf_json}", f"--junitxml={junit}"]
    if bench_json is not None:
        args.append(f"--benchmark-json={bench_json}")
    else:
        args += ["-p", "no:benchmark"]
    process = run_process(pytest_cmd(*args, *files), folder)
    results = read_results(process, hwperf_json=hwperf_json, junit=junit, bench_json=bench_json)
    return process, results
