"""The A/B mode of `verdict_quality.py`: a git repository made in a temp dir, the
unchanged model committed as the base, one branch per change level with the change
committed on top of it as the head, and `pytest --hwperf --hwperf-against=HEAD~1`
run on each head.

`ABRepo.probe()` asks the installed plugin whether it knows `--hwperf-against` (a
collect-only run); without it the mode is not available and the benchmark says so in
one line.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from _vq_runs import (
    Process,
    TestResult,
    model_source,
    pytest_cmd,
    run_process,
    run_tests,
    test_source,
)

from pytest_hwperf.files import atomic_write

GIT = [
    "git",
    "-c",
    "user.name=verdict-quality",
    "-c",
    "user.email=verdict-quality@example.invalid",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "init.defaultBranch=main",
]


class ABRepo:
    """The repository: branch `vq-base` (the unchanged model) and one branch per
    level, each one commit on top of it."""

    def __init__(self, root: Path, out: Path, options: list[str]) -> None:
        self.root = root  # the repository
        self.out = out  # reports and the (unused) baseline dir, outside the repository
        self.options = options  # --hwperf and the benchmark's settings
        self.ab_options: list[str] = []  # more options for the A/B runs only (--ab-args)
        self.head: str | None = None
        self.labels: list[str] = []

    def _git(self, *args: str) -> None:
        subprocess.run([*GIT, *args], cwd=self.root, check=True, capture_output=True)

    def create(
        self, base_layers: int, budget_ms: float, levels: dict[str, tuple[int, bool]]
    ) -> None:
        """`levels`: label -> (layers, tail). A level with the base's layers and no tail
        changes only a comment (an identical build)."""
        self.root.mkdir(parents=True)
        self.out.mkdir(parents=True, exist_ok=True)
        self._git("init", "-q")
        atomic_write(self.root / "pytest.ini", "[pytest]\n")
        atomic_write(self.root / ".gitignore", "__pycache__/\n.hwperf/\n")
        atomic_write(self.root / "test_model.py", test_source(benchmark=False))
        self._write(base_layers, tail=False, budget_ms=budget_ms, revision="base")
        self._git("add", "-A")
        self._git("commit", "-q", "-m", "base: the unchanged model")
        self._git("branch", "vq-base")
        for label, (layers, tail) in levels.items():
            self._git("checkout", "-q", "-B", _branch(label), "vq-base")
            # The tail level's budget is as much wider as its p95 is: the gate, not the
            # budget, has to catch it.
            budget = budget_ms * (4 if tail else 1)
            self._write(layers, tail=tail, budget_ms=budget, revision=f"head {label}")
            self._git("commit", "-q", "-am", f"head: {label}")
        self._git("checkout", "-q", "vq-base")
        self.labels = list(levels)

    def _write(self, layers: int, *, tail: bool, budget_ms: float, revision: str) -> None:
        source = model_source(layers, tail=tail, budget_ms=budget_ms, revision=revision)
        atomic_write(self.root / "vq_model.py", source)

    def checkout(self, label: str) -> None:
        if self.head != label:
            self._git("checkout", "-q", _branch(label))
            self.head = label

    def probe(self) -> str | None:
        """None when `--hwperf-against` is accepted, else the one line saying why not."""
        if shutil.which("git") is None:
            return "A/B mode is not available here: no `git` on PATH"
        self.checkout(self.labels[0])
        args = [*self.options, "--hwperf-against=HEAD~1", "--collect-only", "test_model.py"]
        process = run_process(pytest_cmd(*args), self.root, timeout_s=300)
        if process.rc == 0:
            return None
        if process.rc == 4 or "hwperf-against" in process.output_tail:
            return (
                "A/B mode is not available in this install (pytest rejects --hwperf-against);"
                " going on without it"
            )
        last = [line for line in process.output_tail.splitlines() if line.strip()]
        last_line = last[-1] if last else "no output"
        return (
            f"A/B mode is not available: its probe run failed (exit code {process.rc}: {last_line})"
        )

    def run(self, label: str, tag: str, *, against: bool) -> tuple[Process, TestResult | None]:
        """The head of `label` measured with `--hwperf-against=HEAD~1`, or (`against`
        False) plainly with `--hwperf`, the cost ratio's reference."""
        self.checkout(label)
        options = [*self.options, f"--hwperf-baseline-dir={self.out / 'hwperf'}"]
        if against:
            options += ["--hwperf-against=HEAD~1", *self.ab_options]
        process, results = run_tests(
            self.root, self.out, tag, ["test_model.py"], options, bench=False
        )
        return process, results.get("test_model")


def _branch(label: str) -> str:
    return "vq-" + label.replace("%", "pct").replace("+", "plus")
