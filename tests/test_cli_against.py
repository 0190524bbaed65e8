"""`hwperf against REF`: the same-run A/B run as a command (cli/against.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _output import FAST_RUN, load_json

from pytest_hwperf.cli import main
from pytest_hwperf.cli.against import pytest_command

TEST = """
def loop(n):
    return sum(i * i for i in range(n))


def test_loop(hwperf):
    hwperf(loop, 20_000)
"""


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _hwperf(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_hwperf.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_command_is_pytest_with_the_option_and_its_arguments():
    assert pytest_command("HEAD~1", ["-k", "embed"]) == [
        sys.executable, "-m", "pytest", "--hwperf", "--hwperf-against=HEAD~1", "-k", "embed",
    ]  # fmt: skip
    assert pytest_command("main", ["--", "tests"])[-2:] == ["--hwperf-against=main", "tests"]


@pytest.mark.parametrize("ref", ["", "  ", "a\nb"])
def test_a_ref_that_cannot_be_one_is_one_line(ref, capsys):
    assert main(["against", ref]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hwperf against: ")
    assert "is not a git ref" in err
    assert err.count("\n") == 1


def test_against_a_commit_it_compares_and_exits_with_pytests_status(tmp_path):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "ab@example.com")
    _git(tmp_path, "config", "user.name", "ab")
    _git(tmp_path, "config", "commit.gpgsign", "false")
    (tmp_path / "test_work.py").write_text(TEST)
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "base")
    # A 50% threshold, as tests/test_ab.py's AB_RUN: what is checked here is the command,
    # and the same code must pass on a shared runner whatever else runs (another process
    # busy beside one side's rounds once read its p95 +23% at the default 10%).
    options = (
        *FAST_RUN,
        "--hwperf-regression=50",
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
    )
    done = _hwperf(tmp_path, "against", "HEAD", *options, "--hwperf-json=ab.json")
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = load_json(tmp_path / "ab.json")["measurements"]
    assert record["comparison"]["mode"] == "ab"
    assert record["comparison"]["ref"].startswith("HEAD (")
    # A REF that is no commit: pytest's usage error, in one line, and its exit status.
    broken = _hwperf(tmp_path, "against", "no-such-ref", *options)
    assert broken.returncode == pytest.ExitCode.USAGE_ERROR
    assert "'no-such-ref' is neither a commit" in broken.stderr
    assert "Traceback" not in broken.stdout + broken.stderr
